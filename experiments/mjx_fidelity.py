"""How far each MJX DM Control task (MuJoCo Playground's port, as `envs/mjx.py` runs it, or with
`--variant=exact` dm_control's own model on MJX, `envs/mjx_dmc.py`) is from the host dm_control
task (`envs/dmc.py`).

    python -m experiments.mjx_fidelity [--tasks=walker-walk,cheetah-run] [--steps=500] [--seed=0]
        [--variant=playground|exact] [--agent=walker-walk=CHECKPOINT ...] [--x64] [--onestep]
        [--resume] [--out=DIR]

A step is an agent step (2 control steps of the task, the TD-MPC2 action repeat): 500 are an
episode.

Static comparison, per task: the two MjModels (physics options, element counts and names, and the
contact, joint, actuator, geom and body parameters of the elements both have, matched by name), the
protocol (physics steps and simulated seconds per agent step, episode length, how an action in
[-1, 1] becomes a control) and the observation layout, found by measurement: both sides observe the
same physics state (the host's after some random steps, copied into MJX) and each host observation
key is looked for, by value, in the MJX observation vector. Reward terms are Playground's metric
names; both reward functions are cited by source file.

Dynamic check, per task (`--steps` > 0): the host task is reset, its physics state (time, qpos, qvel,
act, ctrl, qacc_warmstart, applied forces, mocap poses) is copied into the MJX state, and both are
stepped through the same actions: uniform random ones (seed `--seed`), and for a task given an
`--agent` checkpoint also those the agent plans on the host's observations. Reported: the first
agent step at which a matched observation entry differs beyond float32 noise (`TOLERANCE`), the mean
and largest absolute observation and reward differences, and each side's return over the steps.
MuJoCo's C library also steps the MJX side's own model in float64 from the same state with the same
controls: MJX's physics states against it (`numerics_*`) measure MJX's numerics (float32, its
solver) apart from the differences between the two models. `--onestep` also steps MJX one agent
step from the host's own state at every step (`onestep_*` columns): each step's difference without
the growth of earlier ones, which chaotic dynamics amplify. Each task's MJX rollout is compiled
once and never resets (the time limit is compared statically), so nothing but the physics and one
forward pass is compiled.

Writes summary.csv (one row per task and action source), differences.csv (one row per difference,
with its source) and README.md (the command, the machine, both tables) under --out, after each task;
`--resume` keeps the rows of the tasks a stopped run already wrote there.
"""
from __future__ import annotations

import csv
import datetime
import json
import math
import os
import pathlib
import platform
import sys
import time
from typing import Any, Callable, NamedTuple

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
OUT = pathlib.Path(__file__).resolve().parent / "results" / "mjx_fidelity"

# float32 noise: MJX computes in float32 (eps 1.2e-7) from a state rounded to float32, the host in
# float64. A forward pass and a constraint solve over a chain of ~10 bodies grow that rounding by a
# factor of order 10-100, to 1e-6..1e-5 of an entry's scale; 1e-4 (relative, with the same absolute
# floor for entries near zero) is ten times above that and far below any modelling difference.
TOLERANCE = (1e-4, 1e-4)  # (relative, absolute): |mjx - host| <= abs + rel * |host|
LAYOUT_TOLERANCE = (1e-3, 1e-3)  # one forward pass from a shared state, for matching layouts
LAYOUT_STEPS = 20  # random host agent steps before the layout is measured (away from zeros at reset)

OPTIONS = ("timestep", "integrator", "solver", "iterations", "ls_iterations", "noslip_iterations", "cone",
           "jacobian", "tolerance", "ls_tolerance", "noslip_tolerance", "impratio", "gravity", "wind", "density",
           "viscosity", "o_margin", "o_solref", "o_solimp", "o_friction", "disableflags", "enableflags")
ENUMS = {"integrator": "mjtIntegrator", "solver": "mjtSolver", "cone": "mjtCone", "jacobian": "mjtJacobian"}
FLAG_BITS = {"disableflags": "mjtDisableBit", "enableflags": "mjtEnableBit"}
COUNTS = ("nq", "nv", "nu", "na", "nbody", "njnt", "ngeom", "nsite", "nsensor", "ntendon", "neq", "npair",
          "nexclude", "nmocap")
# element kind -> (mjtObj name, count, fields compared per element of that kind)
ELEMENTS = {
    "body": ("mjOBJ_BODY", "nbody", ("body_parentid", "body_mass", "body_inertia", "body_pos", "body_quat",
                                      "body_ipos", "body_iquat")),
    "joint": ("mjOBJ_JOINT", "njnt", ("jnt_type", "jnt_bodyid", "jnt_range", "jnt_limited", "jnt_stiffness",
                                       "jnt_pos", "jnt_axis", "jnt_solref", "jnt_solimp", "jnt_margin")),
    "dof": (None, "nv", ("dof_damping", "dof_armature", "dof_frictionloss")),
    "geom": ("mjOBJ_GEOM", "ngeom", ("geom_type", "geom_bodyid", "geom_size", "geom_pos", "geom_quat",
                                      "geom_friction", "geom_solref", "geom_solimp", "geom_solmix", "geom_margin",
                                      "geom_gap", "geom_condim", "geom_contype", "geom_conaffinity",
                                      "geom_priority")),
    "actuator": ("mjOBJ_ACTUATOR", "nu", ("actuator_trntype", "actuator_trnid", "actuator_dyntype",
                                          "actuator_gaintype", "actuator_biastype", "actuator_gear",
                                          "actuator_ctrlrange", "actuator_ctrllimited", "actuator_forcerange",
                                          "actuator_forcelimited", "actuator_gainprm", "actuator_biasprm",
                                          "actuator_dynprm")),
    "site": ("mjOBJ_SITE", "nsite", ("site_bodyid", "site_pos", "site_quat", "site_size")),
    "sensor": ("mjOBJ_SENSOR", "nsensor", ("sensor_type", "sensor_objtype", "sensor_objid", "sensor_dim")),
    "tendon": ("mjOBJ_TENDON", "ntendon", ("tendon_stiffness", "tendon_damping", "tendon_range",
                                            "tendon_limited")),
}
# index fields compared as the names they point to (element order may differ between the models)
ID_FIELDS = {"body_parentid": "body", "jnt_bodyid": "body", "geom_bodyid": "body", "site_bodyid": "body"}
STATE_FIELDS = ("time", "qpos", "qvel", "act", "ctrl", "qacc_warmstart", "qfrc_applied", "xfrc_applied",
                "mocap_pos", "mocap_quat")

SUMMARY_COLUMNS = ("task", "playground", "model_differences", "host_timestep", "mjx_timestep",
                   "host_physics_steps", "mjx_physics_steps", "host_agent_step_s", "mjx_agent_step_s",
                   "host_episode_s", "mjx_episode_s", "host_obs_dim", "mjx_obs_dim", "obs_layout", "obs_unmatched",
                   "actions", "steps", "first_divergent_step", "first_divergent_entry", "step1_obs_diff_max",
                   "obs_diff_mean", "obs_diff_max", "reward_diff_mean", "reward_diff_max", "host_return", "mjx_return",
                   "numerics_first_divergent_step", "numerics_step1_diff_max", "numerics_diff_max",
                   "onestep_obs_diff_max", "onestep_reward_diff_max", "onestep_steps_beyond")
VARIANTS = ("playground", "exact")  # the MJX side: Playground's port, or dm_control's model (envs/mjx_dmc.py)
DIFFERENCE_COLUMNS = ("task", "kind", "what", "host", "mjx", "size", "source")


class Difference(NamedTuple):
    kind: str    # "option", "count", "names", a model element kind, "protocol" or "observation"
    what: str    # the field, e.g. "opt.timestep" or "geom_friction"
    host: str    # host value (or the differing elements' values)
    mjx: str     # MJX value
    size: float  # largest absolute difference; nan where not numeric
    source: str  # where the MJX side's value comes from


# ------------------------------------------------------------------------------------------ tasks


def dm_control_tasks() -> list[str]:
    """Dash names of every DM Control task that has an MJX version, in Playground's order."""
    from tdmpc2_jax.envs.dmc import task_names
    from tdmpc2_jax.envs.mjx import playground_name

    found = {}
    for task in task_names():
        try:
            found[playground_name(task, "jax")] = task
        except ValueError:
            continue
    from tdmpc2_jax.envs.mjx import _registry

    return [found[name] for name in _registry("jax").dm_control_suite.ALL_ENVS if name in found]


def exact_tasks() -> list[str]:
    """Dash names of the tasks whose dm_control model runs on MJX (envs/mjx_dmc.py)."""
    from tdmpc2_jax.envs.mjx_dmc import EXACT_SUFFIX, EXACT_TASKS

    return [task.removesuffix(EXACT_SUFFIX) for task in EXACT_TASKS]


def load_pair(task: str, seed: int = 0, variant: str = "playground"):
    """(host DMCEnv seeded `seed`, MJXEnv on MJX's jax implementation) of a dash task name; the MJX
    side Playground's port, or with variant "exact" dm_control's own model (envs/mjx_dmc.py)."""
    from tdmpc2_jax.envs.dmc import DMCEnv
    from tdmpc2_jax.envs.mjx import MJXEnv
    from tdmpc2_jax.envs.mjx_dmc import EXACT_SUFFIX

    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}: choose {' or '.join(VARIANTS)}")
    return DMCEnv(task, seed), MJXEnv(task + (EXACT_SUFFIX if variant == "exact" else ""), impl="jax")


def is_exact(mjx) -> bool:
    """Whether an MJXEnv runs dm_control's own model (envs/mjx_dmc.py) rather than Playground's port."""
    from tdmpc2_jax.envs.mjx_dmc import ExactTask

    return isinstance(mjx.playground_env, ExactTask)


def host_model(host) -> Any:
    """The host task's mujoco.MjModel."""
    return host._env.physics.model.ptr


def site_path(path: str) -> str:
    """A source file's path from its package down (site-packages and above dropped)."""
    return path.split("site-packages" + os.sep, 1)[-1]


def sources(host, mjx) -> dict[str, str]:
    """The files that define each side: dm_control's task module and XML, Playground's."""
    from tdmpc2_jax.envs.dmc import resolve

    domain, _ = resolve(host.task)
    module = sys.modules[type(host._env.task).__module__].__file__
    host_xml = site_path(module.removesuffix(".py") + ".xml")
    if is_exact(mjx):
        return dict(host_task=site_path(module), host_xml=host_xml, mjx_task="tdmpc2_jax/envs/mjx_dmc.py",
                    mjx_xml=host_xml)
    playground = sys.modules[type(mjx.playground_env).__module__].__file__
    return dict(host_task=site_path(module), host_xml=host_xml,
                mjx_task=site_path(playground), mjx_xml=site_path(mjx.playground_env.xml_path))


# ------------------------------------------------------------------------------------------ models


def show(value: Any) -> str:
    """A compact text form of a model value."""
    if isinstance(value, str):
        return value
    array = np.asarray(value)
    if array.dtype.kind in "fc":
        text = np.array2string(array, precision=6, separator=" ", threshold=12, max_line_width=10**6)
    else:
        text = np.array2string(array, separator=" ", threshold=12, max_line_width=10**6)
    return text.replace("\n", " ")


def size_of(a: Any, b: Any) -> float:
    """Largest absolute difference of two numeric values of one shape; nan otherwise."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype.kind not in "biuf" or b.dtype.kind not in "biuf":
        return math.nan
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


def option_value(model, name: str) -> Any:
    import mujoco

    value = getattr(model.opt, name)
    if name in ENUMS:
        return getattr(mujoco, ENUMS[name])(int(value)).name
    if name in FLAG_BITS:
        bits = getattr(mujoco, FLAG_BITS[name])
        names = [name for name, bit in bits.__members__.items() if "_" in name and int(value) & int(bit)]
        return " ".join(names) or "none"
    return np.asarray(value).copy()


def compare_options(host, mjx, source: str) -> list[Difference]:
    """Physics options (model.opt) that differ."""
    out = []
    for name in OPTIONS:
        a, b = option_value(host, name), option_value(mjx, name)
        if not np.array_equal(np.asarray(a), np.asarray(b)):
            out.append(Difference("option", f"opt.{name}", show(a), show(b), size_of(a, b), source))
    return out


def element_names(model, kind: str) -> list[str]:
    """Names of a model's elements of `kind`; "#i" for an unnamed one; a dof is "joint/k"."""
    import mujoco

    if kind == "dof":
        joints = element_names(model, "joint")
        return [f"{joints[j]}/{i - model.jnt_dofadr[j]}" for i, j in enumerate(model.dof_jntid)]
    obj, count, _ = ELEMENTS[kind]
    return [mujoco.mj_id2name(model, getattr(mujoco.mjtObj, obj), i) or f"#{i}"
            for i in range(getattr(model, count))]


def field_rows(model, field: str) -> np.ndarray:
    """A per-element field, index fields turned into the names they point to: [n, ...]."""
    rows = np.asarray(getattr(model, field)).copy()
    if field in ID_FIELDS:
        names = element_names(model, ID_FIELDS[field])
        return np.asarray([names[i] for i in rows])
    return rows


def compare_elements(host, mjx, kind: str, source: str) -> list[Difference]:
    """Names present on one side only, then per field the shared elements whose values differ."""
    host_names, mjx_names = element_names(host, kind), element_names(mjx, kind)
    out = []
    only_host = [n for n in host_names if n not in mjx_names]
    only_mjx = [n for n in mjx_names if n not in host_names]
    if only_host or only_mjx:
        out.append(Difference("names", f"{kind} names", f"only host: {only_host}", f"only MJX: {only_mjx}",
                              math.nan, source))
    shared = [n for n in host_names if n in mjx_names]
    h_index = [host_names.index(n) for n in shared]
    m_index = [mjx_names.index(n) for n in shared]
    for field in ELEMENTS[kind][2]:
        a, b = field_rows(host, field)[h_index], field_rows(mjx, field)[m_index]
        if a.shape != b.shape:
            out.append(Difference(kind, field, f"shape {a.shape}", f"shape {b.shape}", math.nan, source))
            continue
        differ = [i for i in range(len(shared)) if not np.array_equal(a[i], b[i])]
        if differ:
            out.append(Difference(kind, field, "; ".join(f"{shared[i]}: {show(a[i])}" for i in differ),
                                  "; ".join(f"{shared[i]}: {show(b[i])}" for i in differ),
                                  size_of(a[differ], b[differ]), source))
    return out


def compare_models(host, mjx, source: str, timestep_source: str) -> list[Difference]:
    """Every difference between two MjModels: options, element counts, names and parameters."""
    out = compare_options(host, mjx, source)
    out = [d._replace(source=timestep_source) if d.what == "opt.timestep" else d for d in out]
    for name in COUNTS:
        a, b = getattr(host, name), getattr(mjx, name)
        if a != b:
            out.append(Difference("count", name, str(a), str(b), float(abs(a - b)), source))
    for kind in ELEMENTS:
        out += compare_elements(host, mjx, kind, source)
    return out


# ------------------------------------------------------------------------------------------ protocol


def protocol(host, mjx) -> dict[str, float]:
    """Physics steps and simulated seconds per agent step and per episode, on each side."""
    env, pg = host._env, mjx.playground_env
    host_steps = host.action_repeat * env._n_sub_steps
    mjx_steps = mjx.action_repeat * pg.n_substeps
    return dict(host_timestep=float(host_model(host).opt.timestep), mjx_timestep=float(pg.mj_model.opt.timestep),
                host_physics_steps=host_steps, mjx_physics_steps=mjx_steps,
                host_agent_step_s=host.action_repeat * env.control_timestep(),
                mjx_agent_step_s=mjx.action_repeat * pg.dt,
                host_episode_s=host.episode_length * host.action_repeat * env.control_timestep(),
                mjx_episode_s=mjx.episode_length * mjx.action_repeat * pg.dt,
                host_time_limit_s=float(env._step_limit * env.control_timestep()),
                mjx_time_limit_s=float(time_limit_steps(pg) * pg.dt))


def time_limit_steps(pg) -> int:
    """The control steps of an MJX task's own time limit."""
    return pg.time_limit_steps if hasattr(pg, "time_limit_steps") else int(pg._config.episode_length)


def action_bounds(host, mjx) -> tuple[np.ndarray, np.ndarray]:
    """[nu, 2] control bounds that an action of -1 and 1 maps to, host and MJX."""
    host_bounds = np.stack([host._low, host._high], axis=1)
    return host_bounds, np.asarray(mjx.playground_env.mj_model.actuator_ctrlrange, np.float64)


def compare_protocol(host, mjx, figures: dict[str, float], adapter: str) -> list[Difference]:
    """Protocol differences: physics steps, seconds per agent step and episode, action scaling."""
    out = []
    for name, unit in (("physics_steps", ""), ("agent_step_s", " s"), ("episode_s", " s")):
        a, b = figures[f"host_{name}"], figures[f"mjx_{name}"]
        if not math.isclose(a, b, rel_tol=1e-9):
            out.append(Difference("protocol", name, f"{a:g}{unit}", f"{b:g}{unit}", abs(a - b), adapter))
    h, m = action_bounds(host, mjx)
    if h.shape != m.shape or not np.allclose(h, m, rtol=0, atol=1e-12):
        out.append(Difference("protocol", "action [-1, 1] -> ctrl", show(h), show(m), size_of(h, m), adapter))
    return out


# ------------------------------------------------------------------------------------------ state and layout


def _key(seed: int):
    """A JAX PRNG key."""
    import jax

    return jax.random.key(seed)


def host_state(host) -> dict[str, np.ndarray]:
    """The host physics state the MJX side needs to continue it (STATE_FIELDS)."""
    data = host._env.physics.data
    return {name: np.array(getattr(data, name)) for name in STATE_FIELDS}


def blank_state(mjx, key) -> Any:
    """An MJXEnv EnvState of zeros shaped as a reset's (traced, never compiled: the check never
    resets), its key `key`."""
    import jax
    import jax.numpy as jnp

    from tdmpc2_jax.envs.mjx import EnvState

    def zeros(leaf):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.split(jax.random.key(0), leaf.shape) if leaf.shape else jax.random.key(0)
        return jnp.zeros(leaf.shape, leaf.dtype)

    inner = jax.tree.map(zeros, jax.eval_shape(mjx.playground_env.reset, jax.random.key(0)))
    zero = jnp.zeros((), jnp.int32)
    return EnvState(inner, zero, zero, jnp.zeros((), jnp.float32), key)


def transplant(mjx, state: dict[str, np.ndarray], key) -> Any:
    """An MJXEnv EnvState whose physics is `state` (a host state), forward-computed, its
    observation the MJX task's of that state."""
    import jax
    import jax.numpy as jnp
    from mujoco import mjx as mjx_lib

    env = blank_state(mjx, key)
    data = mjx_lib.make_data(mjx.playground_env.mjx_model)
    data = data.replace(**{name: jnp.asarray(value, getattr(data, name).dtype).reshape(getattr(data, name).shape)
                           for name, value in state.items() if copied(name, value, getattr(data, name).shape)})
    data = jax.jit(mjx_lib.forward)(mjx.playground_env.mjx_model, data)
    return env._replace(inner=env.inner.replace(data=data, obs=observe_data(mjx, data, env.inner.info)))


def copied(name: str, value: np.ndarray, shape: tuple[int, ...]) -> bool:
    """Whether a host state field is copied into MJX data of `shape`: always where the sizes agree;
    a zero field (no applied force, no mocap body) of a model with other element counts is left
    at MJX's zeros; anything else cannot be carried over and is an error."""
    if value.size == int(np.prod(shape)):
        return True
    if not np.any(value):
        return False
    raise ValueError(f"host {name} {value.shape} is nonzero and does not fit MJX's {shape}")


def observe_data(mjx, data, info) -> Any:
    """The MJX task's observation of forward-computed physics `data`."""
    pg = mjx.playground_env
    return pg.observe(data) if is_exact(mjx) else pg._get_obs(data, info)


def host_observation(host) -> dict[str, np.ndarray]:
    """The host task's observation of its current physics state, by key, each entry flattened."""
    obs = host._env.task.get_observation(host._env.physics)
    return {key: np.asarray(value, np.float64).ravel() for key, value in obs.items()}


def close(a: np.ndarray, b: np.ndarray, tolerance: tuple[float, float]) -> np.ndarray:
    """Elementwise |a - b| <= abs + rel * |b| (b the host's values)."""
    rel, abs_ = tolerance
    return np.abs(a - b) <= abs_ + rel * np.abs(b)


def match_layout(host_obs: dict[str, np.ndarray], mjx_obs: np.ndarray) -> list[dict]:
    """Per host key in order: its slice of the host vector and the slice of the MJX vector holding
    the same values (None where no unclaimed slice does; the nearest to the host slice where
    several do). mjx_obs: [mjx_obs_dim]."""
    claimed = np.zeros(len(mjx_obs), bool)
    layout, start = [], 0
    for key, value in host_obs.items():
        n = len(value)
        fits = [o for o in range(len(mjx_obs) - n + 1)
                if not claimed[o:o + n].any() and close(mjx_obs[o:o + n], value, LAYOUT_TOLERANCE).all()]
        mjx_start = min(fits, key=lambda o: abs(o - start)) if fits else None
        if mjx_start is not None:
            claimed[mjx_start:mjx_start + n] = True
        layout.append(dict(key=key, host=(start, start + n),
                           mjx=None if mjx_start is None else (mjx_start, mjx_start + n)))
        start += n
    return layout


def random_actions(steps: int, action_dim: int, seed: int) -> np.ndarray:
    """[steps, action_dim] uniform in [-1, 1], float32."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (steps, action_dim)).astype(np.float32)


def measure_layout(host, mjx, seed: int) -> tuple[list[dict], dict[str, np.ndarray], np.ndarray]:
    """The observation layout (`match_layout`) at the host state after LAYOUT_STEPS random agent
    steps from a reset, with both observations there (host by key, MJX [mjx_obs_dim])."""
    host.reset()
    for action in random_actions(LAYOUT_STEPS, host.action_dim, seed + 1):
        host.step(action)
    state = transplant(mjx, host_state(host), _key(seed))
    host_obs, mjx_obs = host_observation(host), np.asarray(mjx.observe(state), np.float64)
    return match_layout(host_obs, mjx_obs), host_obs, mjx_obs


def describe_layout(layout: list[dict], mjx_dim: int) -> tuple[str, list[str], list[int]]:
    """("same", "reordered" or "differs"; host keys with no match; MJX indices no key matched)."""
    unmatched = [entry["key"] for entry in layout if entry["mjx"] is None]
    claimed = np.zeros(mjx_dim, bool)
    for entry in layout:
        if entry["mjx"] is not None:
            claimed[slice(*entry["mjx"])] = True
    free = [int(i) for i in np.flatnonzero(~claimed)]
    if unmatched or free:
        return "differs", unmatched, free
    same = all(entry["mjx"] == entry["host"] for entry in layout)
    return ("same" if same else "reordered"), unmatched, free


def compare_layout(layout: list[dict], host_obs: dict[str, np.ndarray], mjx_obs: np.ndarray,
                   source: str) -> list[Difference]:
    """Observation differences: host keys without a match, MJX entries no key explains, moved keys
    (values as observed in the shared state of `measure_layout`)."""
    _, _, free = describe_layout(layout, len(mjx_obs))
    out = [Difference("observation", f"obs[{e['key']}]",
                      f"host[{e['host'][0]}:{e['host'][1]}] = {show(host_obs[e['key']])}",
                      "no MJX entry holds these values", math.nan, source) for e in layout if e["mjx"] is None]
    if free:
        out.append(Difference("observation", "MJX entries no host key matches", "-",
                              f"indices {free}, values {show(mjx_obs[free])}", math.nan, source))
    out += [Difference("observation", f"obs[{e['key']}] position", f"host[{e['host'][0]}:{e['host'][1]}]",
                       f"mjx[{e['mjx'][0]}:{e['mjx'][1]}]", math.nan, source)
            for e in layout if e["mjx"] is not None and e["mjx"] != e["host"]]
    return out


# ------------------------------------------------------------------------------------------ static


def static_comparison(host, mjx, seed: int = 0) -> dict[str, Any]:
    """Everything the two sides of one task are made of: protocol figures, the observation layout,
    reward term names, source files, and every difference (a list of Difference)."""
    files = sources(host, mjx)
    owner = "MJX's support, tdmpc2_jax/envs/mjx_dmc.py load_model" if is_exact(mjx) else "Playground's model"
    model_source = f"{owner} ({files['mjx_xml']}; dm_control's: {files['host_xml']})"
    timestep_source = f"{'the model' if is_exact(mjx) else 'Playground'}'s sim_dt ({files['mjx_task']})"
    adapter = f"the adapter (tdmpc2_jax/envs/mjx.py) over the MJX task's control step ({files['mjx_task']})"
    obs_source = (f"{'ExactTask.observe' if is_exact(mjx) else 'Playground' + chr(39) + 's _get_obs'} "
                  f"({files['mjx_task']}; dm_control's get_observation: {files['host_task']})")
    figures = protocol(host, mjx)
    layout, host_obs, mjx_obs = measure_layout(host, mjx, seed)
    verdict, unmatched, _ = describe_layout(layout, len(mjx_obs))
    differences = (compare_models(host_model(host), mjx.playground_env.mj_model, model_source, timestep_source)
                   + compare_protocol(host, mjx, figures, adapter)
                   + compare_layout(layout, host_obs, mjx_obs, obs_source))
    return dict(task=host.task, playground=type(mjx.playground_env).__name__, figures=figures, layout=layout,
                obs_layout=verdict, obs_unmatched=unmatched, host_obs_dim=host.obs_dim, mjx_obs_dim=mjx.obs_dim,
                reward_terms=sorted(k.removeprefix("reward/") for k in blank_state(mjx, _key(seed)).inner.metrics),
                sources=files, differences=differences)


# ------------------------------------------------------------------------------------------ dynamic


def matched_indices(layout: list[dict]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Host indices, MJX indices and entry names ("key[i]") of the observation entries both have."""
    host_index, mjx_index, names = [], [], []
    for entry in layout:
        if entry["mjx"] is None:
            continue
        h, m = range(*entry["host"]), range(*entry["mjx"])
        host_index += h
        mjx_index += m
        names += [f"{entry['key']}[{i}]" for i in range(len(h))]
    return np.asarray(host_index, int), np.asarray(mjx_index, int), names


def make_rollout(mjx) -> Callable:
    """A jitted function of (EnvState, actions [T, A]) -> (observations [T, mjx_obs_dim], rewards
    [T], physics states (qpos, qvel) [T, nq + nv]), compiled once per action count. Episodes are
    never reset (`MJXEnv.advance`): the time limit, a protocol matter compared statically, ends
    nothing, so every state is the physics'."""
    import jax
    import jax.numpy as jnp

    def step(state, action):
        state, out = mjx.advance(state, action)
        data = state.inner.data
        return state, (out.final_obs, out.reward, jnp.concatenate([data.qpos, data.qvel]))

    return jax.jit(lambda state, actions: jax.lax.scan(step, state, actions)[1])


def rollout_mjx(mjx, state, actions: np.ndarray, rollout: Callable | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`make_rollout`'s outputs as float64 arrays, of `actions` [T, A] from EnvState `state`
    (`rollout`: one `make_rollout(mjx)` made before, to compile once)."""
    import jax.numpy as jnp

    out = (rollout or make_rollout(mjx))(state, jnp.asarray(actions))
    return tuple(np.asarray(x, np.float64) for x in out)


def rollout_reference(mjx, state: dict[str, np.ndarray], actions: np.ndarray) -> np.ndarray:
    """Physics states (qpos, qvel) [T, nq + nv] of `actions` [T, A] stepped by MuJoCo's C library in
    float64 on Playground's own model from host state `state`, with the adapter's control mapping
    and physics steps per agent step: what MJX would compute without its own numerics."""
    import mujoco

    model = mjx.playground_env.mj_model
    data = mujoco.MjData(model)
    data.time = float(state["time"])
    for name, value in state.items():
        if name != "time" and copied(name, value, getattr(data, name).shape):
            getattr(data, name)[...] = value
    mujoco.mj_forward(model, data)
    low, high = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    out = []
    for action in np.clip(actions.astype(np.float64), -1.0, 1.0):
        data.ctrl[:] = low + (action + 1.0) * 0.5 * (high - low)
        mujoco.mj_step(model, data, nstep=mjx.action_repeat * mjx.playground_env.n_substeps)
        out.append(np.concatenate([data.qpos, data.qvel]))
    return np.asarray(out)


def first_beyond(a: np.ndarray, b: np.ndarray) -> int | None:
    """Index of the first row [T, n] where b differs from a beyond TOLERANCE; None if none does."""
    off = ~close(b, a, TOLERANCE)
    return int(np.argmax(off.any(axis=1))) if off.any() else None


Policy = Callable[[np.ndarray, int], np.ndarray]  # (host observation [obs_dim], agent step) -> action [A]


def rollout_host(host, start_obs: np.ndarray, policy: Policy, steps: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observations [T, host_obs_dim], rewards [T] and the actions taken [T, A] of `steps` agent
    steps of `policy` from the host's current state, whose observation is `start_obs`."""
    obs, rewards, actions = start_obs, [], []
    observed = []
    for t in range(steps):
        actions.append(np.asarray(policy(obs, t), np.float32))
        result = host.step(actions[-1])
        obs = result.obs
        observed.append(obs)
        rewards.append(result.reward)
    return np.asarray(observed, np.float64), np.asarray(rewards, np.float64), np.asarray(actions)


def random_policy(steps: int, action_dim: int, seed: int) -> Policy:
    """Uniform random actions (`random_actions`), whatever the observation."""
    actions = random_actions(steps, action_dim, seed)
    return lambda obs, t: actions[t]


def agent_policy(task: str, path: str, obs_dim: int, action_dim: int, seed: int) -> Policy:
    """A committed agent (checkpoint `path`, trained on host `task`) planning in eval mode with the
    official planner, one plan per host observation, its warm start kept through the episode."""
    import jax

    from tdmpc2_jax.acting import Planners
    from tdmpc2_jax.agent import Agent
    from tdmpc2_jax.configs.dmc import get_config
    from tdmpc2_jax.loading import load_for_task
    from tdmpc2_jax.run_record import resolve

    agent_cfg, params = load_for_task(path, resolve(get_config(task)), obs_dim, action_dim)
    planners = Planners(Agent(agent_cfg))
    carry = dict(plan=planners.initial_state(), key=jax.random.key(seed))

    def policy(obs: np.ndarray, t: int) -> np.ndarray:
        carry["key"], key = jax.random.split(carry["key"])
        action, carry["plan"] = planners.act(params, obs.astype(np.float32), carry["plan"], key, t == 0, True)
        return action
    return policy


def make_onestep(mjx) -> Callable:
    """A jitted function of (host physics states, STATE_FIELDS leaves [T, ...]; actions [T, A]) ->
    (observations [T, mjx_obs_dim], rewards [T]): one agent step of MJX from each host state, so
    that every step of an episode is compared from the same state, apart from chaos."""
    import jax
    import jax.numpy as jnp
    from mujoco import mjx as mjx_lib

    template = blank_state(mjx, _key(0))
    model = mjx.playground_env.mjx_model
    base = mjx_lib.make_data(model)

    def one(fields, action):
        data = base.replace(**{name: jnp.asarray(value, getattr(base, name).dtype).reshape(getattr(base, name).shape)
                               for name, value in fields.items()})
        data = mjx_lib.forward(model, data)
        inner = template.inner.replace(data=data, obs=observe_data(mjx, data, template.inner.info))
        _, out = mjx.advance(template._replace(inner=inner), action)
        return out.final_obs, out.reward

    return jax.jit(jax.vmap(one))


def onestep_check(onestep: Callable, states: list[dict], actions: np.ndarray, host_obs: np.ndarray,
                  host_rewards: np.ndarray, h: np.ndarray, m: np.ndarray) -> dict[str, Any]:
    """One agent step from each host state (`make_onestep`) against the host's next observation
    [T, host_obs_dim] and reward [T]: the largest differences and the steps beyond TOLERANCE."""
    fields = {name: np.stack([state[name] for state in states]) for name in STATE_FIELDS}
    obs, rewards = (np.asarray(x, np.float64) for x in onestep(fields, actions))
    return dict(onestep_obs_diff_max=float(np.abs(obs[:, m] - host_obs[:, h]).max()),
                onestep_reward_diff_max=float(np.abs(rewards - host_rewards).max()),
                onestep_steps_beyond=int((~close(obs[:, m], host_obs[:, h], TOLERANCE)).any(axis=1).sum()))


def dynamic_check(host, mjx, layout: list[dict], steps: int, seed: int = 0, policy: Policy | None = None,
                  rollout: Callable | None = None, onestep: Callable | None = None) -> dict[str, Any]:
    """Both sides from the host's reset state through the same `steps` actions (`policy` acting on
    the host's observations, by default uniform random ones; MJX replays them): the first
    agent step (0: the copied start state) whose matched observation differs beyond TOLERANCE and
    its entry, the largest absolute observation difference after one agent step, the mean and largest
    over all steps, the same for rewards, each side's return; and, to tell Playground's model from
    MJX's numerics, MJX's physics states against MuJoCo's C library stepping Playground's model
    (`rollout_reference`): the first step beyond TOLERANCE and the largest difference. With
    `onestep` (`make_onestep`), also one MJX step from each host state (`onestep_check`)."""
    if not 0 < steps <= min(mjx.episode_length, host.episode_length):
        raise ValueError(f"steps={steps}: give 1 to {min(mjx.episode_length, host.episode_length)} (an episode)")
    start_obs = host.reset()
    start = host_state(host)
    state = transplant(mjx, start, _key(seed))
    start_host = np.concatenate(list(host_observation(host).values()))
    start_mjx = np.asarray(mjx.observe(state), np.float64)
    chosen, states = policy or random_policy(steps, host.action_dim, seed), []

    def policy(obs: np.ndarray, t: int) -> np.ndarray:
        if onestep is not None:
            states.append(host_state(host))
        return chosen(obs, t)

    host_obs, host_rewards, actions = rollout_host(host, start_obs, policy, steps)
    mjx_obs, mjx_rewards, mjx_physics = rollout_mjx(mjx, state, actions, rollout)
    reference = rollout_reference(mjx, start, actions)
    h, m, names = matched_indices(layout)
    a = np.concatenate([start_host[None, h], host_obs[:, h]])  # [steps + 1, matched]
    b = np.concatenate([start_mjx[None, m], mjx_obs[:, m]])
    first, numerics_first = first_beyond(a, b), first_beyond(reference, mjx_physics)
    entry = None if first is None else names[int(np.argmax(~close(b[first], a[first], TOLERANCE)))]
    diff = np.abs(a - b)
    reward_diff = np.abs(host_rewards - mjx_rewards)
    return dict(steps=steps, first_divergent_step=first,
                first_divergent_entry=entry,
                step1_obs_diff_max=float(diff[1].max()),
                obs_diff_mean=float(diff.mean()), obs_diff_max=float(diff.max()),
                reward_diff_mean=float(reward_diff.mean()), reward_diff_max=float(reward_diff.max()),
                host_return=float(host_rewards.sum()), mjx_return=float(mjx_rewards.sum()),
                numerics_first_divergent_step=None if numerics_first is None else numerics_first + 1,
                numerics_step1_diff_max=float(np.abs(reference[0] - mjx_physics[0]).max()),
                numerics_diff_max=float(np.abs(reference - mjx_physics).max()),
                **(onestep_check(onestep, states, actions, host_obs, host_rewards, h, m) if onestep else {}))


# ------------------------------------------------------------------------------------------ output


def summary_row(static: dict[str, Any], dynamic: dict[str, Any] | None, actions: str) -> dict[str, Any]:
    """One summary row: the static figures, and the dynamic check with `actions` ("random", "agent")."""
    model_kinds = {"option", "count", "names", *ELEMENTS}
    row = dict(task=static["task"], playground=static["playground"], actions=actions,
               model_differences=sum(d.kind in model_kinds for d in static["differences"]),
               host_obs_dim=static["host_obs_dim"], mjx_obs_dim=static["mjx_obs_dim"],
               obs_layout=static["obs_layout"], obs_unmatched=" ".join(static["obs_unmatched"]),
               **{k: v for k, v in static["figures"].items() if k in SUMMARY_COLUMNS})
    row.update({k: "" for k in SUMMARY_COLUMNS if k not in row})
    if dynamic is not None:
        row.update({k: "" if v is None else v for k, v in dynamic.items()})
    return row


def number(x: Any) -> str:
    if isinstance(x, float):
        return "" if math.isnan(x) else f"{x:.4g}"
    return str(x)


def write_csv(path: pathlib.Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows({c: number(r[c]) for c in columns} for r in rows)


def machine() -> str:
    import jax

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, JAX {jax.__version__} on {jax.default_backend()}"


def markdown_table(rows: list[dict], columns: tuple[str, ...]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(number(r[c]).replace("|", "/") for c in columns) + " |" for r in rows]
    return lines


def readme(command: str, rows: list[dict], statics: list[dict], variant: str = "playground") -> str:
    """README.md of a run: command, machine, tolerance, the summary table, each task's differences."""
    import jax
    import mujoco

    side = ("dm_control's own models on MJX (tdmpc2_jax/envs/mjx_dmc.py)" if variant == "exact"
            else "MuJoCo Playground's ports")
    precision = "float64 (jax_enable_x64)" if jax.config.jax_enable_x64 else "float32"
    lines = [f"# MJX DM Control tasks against host dm_control: {side}, MJX in {precision}", "",
             "Made by `experiments/mjx_fidelity.py` (its docstring says what is measured):", "",
             f"    {command}", "",
             f"Machine: {machine()}; MuJoCo {mujoco.__version__}; {datetime.date.today().isoformat()}. "
             f"Observation tolerance: |mjx - host| <= {TOLERANCE[1]:g} + {TOLERANCE[0]:g} |host| "
             "(float32 noise, see `TOLERANCE`). Step 0 is the copied start state; an empty divergent step: "
             "none within the steps run. Actions: uniform random (`random`), or those a committed host-trained "
             "agent plans on the host observations (`agent`), replayed on MJX. `numerics_*`: MJX's qpos and "
             "qvel against MuJoCo's C library stepping the MJX side's own model in float64 from the same "
             "state.", "",
             "[summary.csv](summary.csv), [differences.csv](differences.csv).", ""]
    static_end = SUMMARY_COLUMNS.index("actions")
    first_rows = list({row["task"]: row for row in reversed(rows)}.values())[::-1]
    lines += markdown_table(first_rows, SUMMARY_COLUMNS[:static_end])
    lines += [""] + markdown_table(rows, ("task",) + SUMMARY_COLUMNS[static_end:])
    for static in statics:
        files = static["sources"]
        lines += ["", f"## {static['task']} ({static['playground']})", "",
                  f"Reward: dm_control `{files['host_task']}`, MJX `{files['mjx_task']}` "
                  f"(Playground's terms: {', '.join(static['reward_terms']) or 'none named'}). Observation layout: "
                  + ", ".join(f"{e['key']} host[{e['host'][0]}:{e['host'][1]}] -> "
                              + ("none" if e["mjx"] is None else f"mjx[{e['mjx'][0]}:{e['mjx'][1]}]")
                              for e in static["layout"]) + ".", ""]
        lines += markdown_table([d._asdict() for d in static["differences"]], DIFFERENCE_COLUMNS[1:])
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ docs


def owner_of(source: str) -> str:
    """Whose a difference is, from its source: "Playground", "adapter" (this project) or "MJX"."""
    if source.startswith("Playground"):
        return "Playground"
    return "adapter" if source.startswith("the adapter") else "MJX"


def read_csv(path: pathlib.Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def owners(directory: pathlib.Path) -> dict[str, str]:
    """task -> its differences counted by owner ("Playground 5, adapter 0") from differences.csv."""
    counts: dict[str, dict[str, int]] = {}
    for row in read_csv(directory / "differences.csv"):
        task = counts.setdefault(row["task"], {})
        task[owner_of(row["source"])] = task.get(owner_of(row["source"]), 0) + 1
    return {task: ", ".join(f"{k} {v}" for k, v in sorted(c.items())) for task, c in counts.items()}


def docs_table(directory: pathlib.Path = OUT) -> str:
    """The headline columns of a committed run (its summary.csv and differences.csv), one row per
    task and action source, for the docs."""
    name = directory.relative_to(OUT.parent).as_posix()
    link = f"../experiments/results/{name}"
    found = owners(directory)
    lines = [f"From [{name}/summary.csv]({link}/summary.csv) (every column and difference: "
             f"[README.md]({link}/README.md)). Differences: per owner, the model, protocol and observation "
             "differences listed; first divergent: the first agent step whose observation differs beyond "
             "float32 noise (entry); obs and reward diff: mean / largest absolute difference over the steps; "
             "numerics: the first agent step at which MJX's joint state differs from MuJoCo's C library "
             "stepping the MJX side's own model (empty: none).", "",
             "| task | actions | steps | differences | obs layout | first divergent | obs diff | reward diff | "
             "return host | return MJX | numerics |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in read_csv(directory / "summary.csv"):
        first = f"{r['first_divergent_step']} ({r['first_divergent_entry']})" if r["first_divergent_step"] else "none"
        lines.append(f"| {r['task']} | {r['actions']} | {r['steps']} | {found.get(r['task'], 'none')} | "
                     f"{r['obs_layout']}{' (' + r['obs_unmatched'] + ' missing)' if r['obs_unmatched'] else ''} | "
                     f"{first} | {r['obs_diff_mean']} / {r['obs_diff_max']} | {r['reward_diff_mean']} / "
                     f"{r['reward_diff_max']} | {r['host_return']} | {r['mjx_return']} | "
                     f"{r['numerics_first_divergent_step']} |")
    return "\n".join(lines)


def speed_table(paths: list[pathlib.Path]) -> str:
    """The figures of `benchmarks/mjx_exact_speed.py` results files (float32 and float64 runs), one
    row per task, variant, precision and batch size, for the docs, under a line naming each file,
    its command and its machine (a CPU that other jobs shared while it ran)."""
    benches = [json.loads(path.read_text()) for path in paths]
    files = [f"[{path.name}](../experiments/results/mjx_exact/{path.name}) ("
             + (f"`{bench['command']}`" if "command" in bench else "command not recorded")
             + f"; {bench.get('machine', 'machine not recorded')})" for path, bench in zip(paths, benches)]
    lines = ["From " + ", ".join(files) + ": timed while other jobs shared the CPU, so each figure holds for "
             "that load only; set beside each other, they compare the two models under the same load.", "",
             "| task | model | precision | envs | physics steps per agent step | solver iterations | "
             "env steps/s | first call (compile) s |", "|---|---|---|---|---|---|---|---|"]
    rows = [r for bench in benches for r in bench["rows"]]
    lines += [f"| {r['task'].removesuffix('-exact')} | {r['variant']} | {r['dtype']} | {r['num_envs']} | "
              f"{r['physics_steps_per_agent_step']} | {r['solver_iterations']} | {r['env_steps_per_s']:.0f} | "
              f"{r['first_call_s']:.0f} |" for r in rows]
    return "\n".join(lines + float64_cost(rows))


def float64_cost(rows: list[dict]) -> list[str]:
    """A line giving float64's env steps/s as a fraction of float32's, per task, model and batch
    size timed in both, the float32 figure from the last file (in name order) that has it; none
    where no such pair was timed."""
    speed = {(r["task"].removesuffix("-exact"), r["variant"], r["num_envs"], r["dtype"]): r["env_steps_per_s"]
             for r in rows}
    pairs = [(key[:3], speed[key] / speed[key[:3] + ("float32",)])
             for key in speed if key[3] == "float64" and key[:3] + ("float32",) in speed]
    if not pairs:
        return []
    return ["", "Float64 against float32, env steps/s: " + ", ".join(
        f"{task} {variant} at {n} envs {ratio:.2f}x" for (task, variant, n), ratio in pairs) + "."]


def match_table(directories: dict[str, pathlib.Path]) -> str:
    """Over how many agent steps each task and action source matches host (every observation entry
    within float32 noise), per precision: {precision: committed run directory}, for the docs."""
    found = {name: {(r["task"], r["actions"]): r for r in read_csv(d / "summary.csv")} for name, d in directories.items()}
    keys = list(dict.fromkeys(key for rows in found.values() for key in rows))
    lines = ["| task | actions | " + " | ".join(f"matches host, {name}" for name in found) + " |",
             "|---|---|" + "---|" * len(found)]
    for key in keys:
        cells = []
        for rows in found.values():
            r = rows.get(key)
            cells.append("not run" if r is None else f"all {r['steps']} steps" if not r["first_divergent_step"]
                         else f"{int(r['first_divergent_step']) - 1} of {r['steps']} steps")
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def diagnosis_table(directory: pathlib.Path) -> str:
    """The committed per-physics-step comparison of MJX with MuJoCo's C library
    (experiments/mjx_step_diagnosis.py) in `directory`, for the docs."""
    from experiments import mjx_step_diagnosis

    return mjx_step_diagnosis.docs_table(directory)


def check_task(task: str, steps: int, seed: int, variant: str, agent: str | None, onestep: bool = False
               ) -> tuple[dict, list[dict]]:
    """One task's static comparison and its summary rows: random actions, and the agent's at
    checkpoint `agent` (None: none); with `onestep`, one MJX step from every host state too."""
    host, mjx = load_pair(task, seed, variant)
    static = static_comparison(host, mjx, seed)
    if not steps:
        return static, [summary_row(static, None, "")]
    rollout, one = make_rollout(mjx), make_onestep(mjx) if onestep else None
    rows = [summary_row(static, dynamic_check(host, mjx, static["layout"], steps, seed, None, rollout, one), "random")]
    if agent:
        policy = agent_policy(task, agent, host.obs_dim, host.action_dim, seed)
        dynamic = dynamic_check(host, mjx, static["layout"], steps, seed, policy, rollout, one)
        rows.append(summary_row(static, dynamic, "agent"))
    return static, rows


def run(tasks: list[str], steps: int, seed: int, out: pathlib.Path, command: str, variant: str = "playground",
        agents: dict[str, str] | None = None, onestep: bool = False, resume: bool = False) -> list[dict]:
    """Compares every task, prints one line per summary row, and writes summary.csv,
    differences.csv and README.md after each task. `agents`: task -> checkpoint whose actions are
    checked too; `onestep`: one MJX step from every host state too (`make_onestep`). `resume`: the tasks already in out's summary.csv keep their rows
    (only their static comparison, for README.md, is made again)."""
    out.mkdir(parents=True, exist_ok=True)
    rows, statics, differences = [], [], []
    kept = read_csv(out / "summary.csv") if resume and (out / "summary.csv").exists() else []
    kept_differences = read_csv(out / "differences.csv") if kept else []
    for task in tasks:
        if task in {row["task"] for row in kept}:
            rows += [{c: row.get(c, "") for c in SUMMARY_COLUMNS} for row in kept if row["task"] == task]
            statics.append(static_comparison(*load_pair(task, seed, variant), seed))
            differences += [row for row in kept_differences if row["task"] == task]
            continue
        began = time.monotonic()
        static, task_rows = check_task(task, steps, seed, variant, (agents or {}).get(task), onestep)
        rows += task_rows
        statics.append(static)
        differences += [dict(task=task, **d._asdict()) for d in static["differences"]]
        for row in task_rows:
            print(f"{task} ({row['actions'] or 'static'}): {len(static['differences'])} differences, layout "
                  f"{static['obs_layout']}" + (f", first divergent step {row['first_divergent_step']}, returns host "
                                               f"{row['host_return']:.2f} MJX {row['mjx_return']:.2f}" if steps else "")
                  + f" ({time.monotonic() - began:.0f} s)", flush=True)
        write_csv(out / "summary.csv", rows, SUMMARY_COLUMNS)
        write_csv(out / "differences.csv", differences, DIFFERENCE_COLUMNS)
        (out / "README.md").write_text(readme(command, rows, statics, variant))
    return rows


def merge(parts: list[pathlib.Path], out: pathlib.Path, command: str) -> None:
    """One result folder from runs made in parts (each a folder this command wrote, on other
    tasks): their summary.csv and differences.csv rows in order, and a README.md with every part's
    command and its per-task sections under the merged tables."""
    rows = [{c: row.get(c, "") for c in SUMMARY_COLUMNS} for part in parts for row in read_csv(part / "summary.csv")]
    differences = [row for part in parts for row in read_csv(part / "differences.csv")]
    texts = [(part / "README.md").read_text() for part in parts]
    commands = [line.strip() for text in texts for line in text.splitlines() if line.startswith("    python -m")]
    head = texts[0].split("\n\n[summary.csv]")[0].split("\n\nMade by")
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "summary.csv", rows, SUMMARY_COLUMNS)
    write_csv(out / "differences.csv", differences, DIFFERENCE_COLUMNS)
    static_end = SUMMARY_COLUMNS.index("actions")
    first_rows = list({row["task"]: row for row in reversed(rows)}.values())[::-1]
    machine_line = head[1].split("\n\n", 2)[2]
    lines = [head[0], "", "Made by `experiments/mjx_fidelity.py` (its docstring says what is measured) in parts, one "
             "command each, on a scratch --out:", "", *[f"    {c}" for c in commands], "",
             f"and merged by `{command}`.", "", machine_line, "",
             "[summary.csv](summary.csv), [differences.csv](differences.csv).", ""]
    lines += markdown_table(first_rows, SUMMARY_COLUMNS[:static_end])
    lines += [""] + markdown_table(rows, ("task",) + SUMMARY_COLUMNS[static_end:])
    sections = ["## " + text.split("\n## ", 1)[1] if "\n## " in text else "" for text in texts]
    (out / "README.md").write_text("\n".join(lines) + "\n\n" + "\n".join(x.rstrip("\n") + "\n" for x in sections))


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    flags.DEFINE_list("tasks", None, "dash task names (default: every DM Control task with an MJX version, or "
                      "with --variant=exact every task with an exact model)")
    flags.DEFINE_integer("steps", 100, "agent steps of the dynamic check (0: static comparison only; an episode: 500)")
    flags.DEFINE_integer("seed", 0, "seed of the host task, the MJX reset key, the random actions and the agents' keys")
    flags.DEFINE_enum("variant", "playground", VARIANTS, "the MJX side: Playground's port, or dm_control's own "
                      "model on MJX (tdmpc2_jax/envs/mjx_dmc.py)")
    flags.DEFINE_multi_string("agent", [], "TASK=CHECKPOINT: also check that task with the actions this host-trained "
                              "agent takes on the host observations (repeatable)")
    flags.DEFINE_bool("x64", False, "MJX in float64 (jax_enable_x64)")
    flags.DEFINE_bool("resume", False, "keep the rows of the tasks already in --out's summary.csv")
    flags.DEFINE_list("merge", [], "instead of a check: merge these result folders (runs on other tasks) into --out")
    flags.DEFINE_bool("onestep", False, "also step MJX one agent step from every host state of the episode "
                      "(onestep_* columns: each step's difference without the divergence of earlier steps)")
    flags.DEFINE_string("out", None, "directory for summary.csv, differences.csv and README.md (default: "
                        "results/mjx_fidelity, results/mjx_exact with --variant=exact; their x64/ with --x64)")


def parse_agents(values: list[str], tasks: list[str]) -> dict[str, str]:
    """task -> checkpoint path of `--agent=TASK=PATH` values; a clear error for a bad one."""
    agents = {}
    for value in values:
        task, _, path = value.partition("=")
        if not path or task not in tasks:
            raise ValueError(f"--agent={value}: give TASK=CHECKPOINT with TASK one of the checked tasks")
        if not os.path.exists(path):
            raise ValueError(f"--agent={value}: no checkpoint at {path}")
        agents[task] = path
    return agents


def main(argv: list[str]) -> None:
    del argv
    import jax

    from tdmpc2_jax.cli import fail, setup_process
    from tdmpc2_jax.envs.dmc import EPISODE_LENGTH

    setup_process()
    command = "python -m experiments.mjx_fidelity " + " ".join(sys.argv[1:])
    if FLAGS.merge:
        merge([pathlib.Path(part) for part in FLAGS.merge], pathlib.Path(FLAGS.out or OUT), command.strip())
        return
    if FLAGS.x64:
        jax.config.update("jax_enable_x64", True)
    if not 0 <= FLAGS.steps <= EPISODE_LENGTH:
        fail(f"--steps={FLAGS.steps}: give 0 (static only) up to {EPISODE_LENGTH} (an episode) agent steps")
    available = exact_tasks() if FLAGS.variant == "exact" else dm_control_tasks()
    tasks = FLAGS.tasks or available
    unknown = [t for t in tasks if t not in available]
    if unknown:
        fail(f"no {FLAGS.variant} MJX version of {', '.join(unknown)}; the tasks are: {', '.join(available)}")
    try:
        agents = parse_agents(FLAGS.agent, tasks)
    except ValueError as err:
        fail(str(err))
    out = pathlib.Path(FLAGS.out or OUT.parent / ("mjx_exact" if FLAGS.variant == "exact" else "mjx_fidelity"))
    out = out / "x64" if FLAGS.x64 and not FLAGS.out else out
    run(tasks, FLAGS.steps, FLAGS.seed, out, command.strip(), FLAGS.variant, agents,
        FLAGS.onestep, FLAGS.resume)


if __name__ == "__main__":
    define_flags()
    app.run(main)
