"""Where MJX's physics step and MuJoCo's C library part on dm_control's own model of a task: each
physics step compared from one shared state.

    python -m experiments.mjx_step_diagnosis [--task=walker-walk] [--agent_steps=12] [--seed=0]
        [--x64] [--mjx_option=tolerance=1e-12 ...] [--out=DIR]

The host dm_control task is reset (seed `--seed`) and MuJoCo's C library steps the `-exact` task's
model (envs/mjx_dmc.py) from that state through the random actions of the equivalence check
(experiments/mjx_fidelity.py, same seed), mapped to controls as the adapter maps them, with the
task's physics steps per agent step. Before every physics step MJX runs its forward pass from the C
library's state (time, qpos, qvel, act, ctrl, qacc_warmstart) and the two passes are compared:

- contacts: how many are within margin on each side, and for the contacts both have (matched by
  geom pair and position) the largest difference of distance, position and frame;
- constraint rows: how many are active on each side, and for the rows both have (matched by their
  Jacobian row) the largest difference of Jacobian, D and aref;
- the unconstrained acceleration qacc_smooth and the solver's qacc (the C library's iterations are
  listed; MJX's solver does not store its count in Data).

MJX's own trajectory (its steps chained from the start state) is compared with the C library's
too (`traj_diff`, qpos and qvel), and a second one whose controls are mapped from the actions in
float32 arithmetic, as the adapter mapped them before it computed them in the physics' dtype
(`traj_f32_ctrl_diff`): that rounding alone, 6e-8 on a control in [-1, 1], is what MJX in float64
did differently from the C library on dm_control's walker. `--mjx_option` sets a solver
option (`tolerance`, `ls_tolerance`, `iterations`, `ls_iterations`) on MJX's copy of the model
only, to test whether it brings MJX to the C library's result.

How far any difference of rounding carries: the C library alone steps the model over a whole
episode (500 agent steps) from the start state and from that state with every velocity moved by a
tiny amount (`PERTURBATIONS`); the first agent step at which the two differ beyond the equivalence
check's float32 noise is the horizon no simulator that rounds otherwise can match host beyond.

Writes steps.csv (one row per physics step), perturbation.csv (one row per perturbation) and
README.md (the command, the machine, the first physics step at which each quantity differs beyond
the tolerance, the horizons) under --out.
"""
from __future__ import annotations

import csv
import datetime
import pathlib
import sys

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
OUT = pathlib.Path(__file__).resolve().parent / "results" / "mjx_exact" / "diagnosis"
STATE = ("time", "qpos", "qvel", "act", "ctrl", "qacc_warmstart")
SOLVER_OPTIONS = {"tolerance": float, "ls_tolerance": float, "iterations": int, "ls_iterations": int}
# relative and absolute tolerance of a difference: float32 noise (the equivalence check's), and in
# float64 the same margin over float64's epsilon (2.2e-16 against float32's 1.2e-7)
TOLERANCES = {"float32": (1e-4, 1e-4), "float64": (1e-11, 1e-11)}
PERTURBATIONS = (1e-15, 1e-13, 1e-11, 1e-9, 6e-8)  # added to every qvel entry; 6e-8: a float32 rounding
COLUMNS = ("physics_step", "agent_step", "c_contacts", "mjx_contacts", "contact_dist_diff", "contact_pos_diff",
           "contact_frame_diff", "c_rows", "mjx_rows", "efc_J_diff", "efc_D_rel_diff", "efc_aref_diff",
           "qacc_smooth_diff", "qacc_diff", "qacc_max", "c_iterations", "traj_diff",
           "traj_f32_ctrl_diff")
INTEGERS = ("physics_step", "agent_step", "c_contacts", "mjx_contacts", "c_rows", "mjx_rows", "c_iterations")
COMPARED = ("contact_dist_diff", "contact_pos_diff", "contact_frame_diff", "efc_J_diff", "efc_D_rel_diff",
            "efc_aref_diff", "qacc_smooth_diff", "qacc_diff", "traj_diff", "traj_f32_ctrl_diff")


def parse_options(values: list[str]) -> dict[str, float]:
    """{name: value} of `--mjx_option=NAME=VALUE` values; a clear error for a bad one."""
    out = {}
    for value in values:
        name, _, number = value.partition("=")
        if name not in SOLVER_OPTIONS or not number:
            raise ValueError(f"--mjx_option={value}: give NAME=VALUE with NAME one of {', '.join(SOLVER_OPTIONS)}")
        out[name] = SOLVER_OPTIONS[name](number)
    return out


def c_contacts(data) -> list[tuple[tuple[int, int], np.ndarray, np.ndarray, float]]:
    """The C library's contacts within margin: (geom pair, pos [3], frame [9], dist)."""
    return [((int(c.geom[0]), int(c.geom[1])), np.array(c.pos), np.array(c.frame), float(c.dist))
            for c in data.contact[:data.ncon]]


def mjx_contacts(data) -> list[tuple[tuple[int, int], np.ndarray, np.ndarray, float]]:
    """MJX's contacts within margin (MJX keeps every candidate; those beyond margin make no rows)."""
    contact = data._impl.contact
    dist, margin = np.asarray(contact.dist), np.asarray(contact.includemargin)
    geom, pos, frame = np.asarray(contact.geom), np.asarray(contact.pos), np.asarray(contact.frame)
    return [((int(geom[i, 0]), int(geom[i, 1])), pos[i], frame[i].ravel(), float(dist[i]))
            for i in np.flatnonzero(dist < margin)]


def contact_diffs(c: list, m: list) -> tuple[float, float, float]:
    """Largest distance, position and frame differences of the contacts both sides have, each C
    contact matched to the nearest MJX contact of its geom pair (nan where none is shared)."""
    diffs = []
    for pair, pos, frame, dist in c:
        same = [x for x in m if x[0] == pair]
        if same:
            near = min(same, key=lambda x: np.abs(x[1] - pos).max())
            diffs.append((abs(near[3] - dist), np.abs(near[1] - pos).max(), np.abs(near[2] - frame).max()))
    return tuple(float(np.max(col)) for col in zip(*diffs)) if diffs else (np.nan, np.nan, np.nan)


def row_diffs(c_J: np.ndarray, c_D: np.ndarray, c_aref: np.ndarray, m_J: np.ndarray, m_D: np.ndarray,
              m_aref: np.ndarray) -> tuple[float, float, float]:
    """Largest Jacobian, relative D and aref differences of the constraint rows both sides have,
    each C row [nv] matched to the MJX row with the nearest Jacobian (nan where there are none)."""
    if not len(c_J) or not len(m_J):
        return np.nan, np.nan, np.nan
    nearest = np.abs(c_J[:, None, :] - m_J[None, :, :]).max(axis=2).argmin(axis=1)
    return (float(np.abs(c_J - m_J[nearest]).max()), float((np.abs(c_D - m_D[nearest]) / np.abs(c_D)).max()),
            float(np.abs(c_aref - m_aref[nearest]).max()))


def compare_forward(data, mjx_data) -> dict[str, float]:
    """The columns of one physics step: the C library's forward pass (`data`, after mj_forward)
    against MJX's from the same state."""
    nv = data.qvel.shape[0]
    c_J = np.asarray(data.efc_J[:data.nefc * nv]).reshape(data.nefc, nv)
    impl = mjx_data._impl
    m_J = np.asarray(impl.efc_J, np.float64)
    active = np.abs(m_J).max(axis=1) > 0
    c_con, m_con = c_contacts(data), mjx_contacts(mjx_data)
    qacc_c, qacc_m = np.asarray(data.qacc), np.asarray(mjx_data.qacc, np.float64)
    return dict(c_contacts=len(c_con), mjx_contacts=len(m_con),
                **dict(zip(("contact_dist_diff", "contact_pos_diff", "contact_frame_diff"),
                           contact_diffs(c_con, m_con))),
                c_rows=int(data.nefc), mjx_rows=int(active.sum()),
                **dict(zip(("efc_J_diff", "efc_D_rel_diff", "efc_aref_diff"),
                           row_diffs(c_J, np.asarray(data.efc_D[:data.nefc]), np.asarray(data.efc_aref[:data.nefc]),
                                     m_J[active], np.asarray(impl.efc_D, np.float64)[active],
                                     np.asarray(impl.efc_aref, np.float64)[active]))),
                qacc_smooth_diff=float(np.abs(data.qacc_smooth - np.asarray(mjx_data.qacc_smooth)).max()),
                qacc_diff=float(np.abs(qacc_c - qacc_m).max()), qacc_max=float(np.abs(qacc_c).max()),
                c_iterations=int(data.solver_niter[0]))


def diagnose(task: str, agent_steps: int, seed: int, options: dict[str, float]) -> list[dict]:
    """One row of COLUMNS per physics step of `agent_steps` agent steps (see the module docstring)."""
    import jax
    import mujoco
    from mujoco import mjx

    from experiments.mjx_fidelity import copied, host_state, load_pair, random_actions

    host, env = load_pair(task, seed, "exact")
    host.reset()
    start = host_state(host)
    model, per_agent_step = env.playground_env.mj_model, env.action_repeat * env.playground_env.n_substeps
    mjx_model = env.playground_env.mjx_model
    mjx_model = mjx_model.replace(opt=mjx_model.opt.replace(**options)) if options else mjx_model
    data = mujoco.MjData(model)
    data.time = float(start["time"])
    for name, value in start.items():
        if name != "time" and copied(name, value, getattr(data, name).shape):
            getattr(data, name)[...] = value
    base = mjx.make_data(mjx_model)
    dtypes = {f: (getattr(base, f).dtype, getattr(base, f).shape) for f in STATE}

    def shared(d) -> dict[str, np.ndarray]:
        """The state fields of a MjData or an MJX output, as numpy arrays of MJX's dtypes and shapes
        (fixed, so that each jitted function compiles once), copied out of MjData's buffers."""
        return {f: np.array(getattr(d, f) if not isinstance(d, dict) else d[f], dtype).reshape(shape)
                for f, (dtype, shape) in dtypes.items()}

    forward = jax.jit(lambda fields: mjx.forward(mjx_model, base.replace(**fields)))
    step = jax.jit(lambda fields: {f: getattr(mjx.step(mjx_model, base.replace(**fields)), f) for f in STATE})
    low, high = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    actions = np.clip(random_actions(agent_steps, host.action_dim, seed).astype(np.float64), -1.0, 1.0)
    ctrl_f32 = float32_controls(actions, low, high)
    trajectory, rounded, rows = shared(data), shared(data), []
    for k in range(agent_steps * per_agent_step):
        data.ctrl[:] = low + (actions[k // per_agent_step] + 1.0) * 0.5 * (high - low)
        mujoco.mj_forward(model, data)
        row = dict(physics_step=k + 1, agent_step=k // per_agent_step + 1,
                   **compare_forward(data, forward(shared(data))))
        mujoco.mj_step(model, data)
        trajectory = shared(step(dict(trajectory, ctrl=shared(data)["ctrl"])))
        rounded = shared(step(dict(rounded, ctrl=ctrl_f32[k // per_agent_step].astype(dtypes["ctrl"][0]))))
        reference = np.concatenate([data.qpos, data.qvel])
        rows.append(dict(row, **{column: float(np.abs(np.concatenate([x["qpos"], x["qvel"]]) - reference).max())
                                 for column, x in (("traj_diff", trajectory), ("traj_f32_ctrl_diff", rounded))}))
    return rows


def perturbation_horizons(task: str, seed: int, steps: int = 500) -> list[dict]:
    """Per size in PERTURBATIONS, the first agent step (of `steps`, the check's random actions) at
    which the C library stepping from the host's start state with every qvel entry moved by that
    size leaves the unmoved run beyond the equivalence check's TOLERANCE (None: never)."""
    import mujoco

    from experiments.mjx_fidelity import copied, first_beyond, host_state, load_pair, random_actions

    host, env = load_pair(task, seed, "exact")
    host.reset()
    start, model = host_state(host), env.playground_env.mj_model
    low, high = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    controls = low + (np.clip(random_actions(steps, host.action_dim, seed).astype(np.float64), -1, 1) + 1) * 0.5 * (
        high - low)

    def states(moved: float) -> np.ndarray:
        data = mujoco.MjData(model)
        data.time = float(start["time"])
        for name, value in start.items():
            if name != "time" and copied(name, value, getattr(data, name).shape):
                getattr(data, name)[...] = value
        data.qvel[:] += moved
        out = []
        for ctrl in controls:
            data.ctrl[:] = ctrl
            mujoco.mj_step(model, data, nstep=env.action_repeat * env.playground_env.n_substeps)
            out.append(np.concatenate([data.qpos, data.qvel]))
        return np.asarray(out)

    reference = states(0.0)
    rows = []
    for size in PERTURBATIONS:
        first = first_beyond(reference, states(size))
        rows.append(dict(perturbation=size, steps=steps, first_divergent_agent_step=None if first is None else first + 1))
    return rows


def float32_controls(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """[T, nu] controls of actions [T, nu] mapped to [low, high] in float32 arithmetic (as the
    adapter mapped them before it computed them in the physics' dtype), as float64."""
    low, high, actions = (np.asarray(x, np.float32) for x in (low, high, actions))
    return (low + (actions + np.float32(1.0)) * np.float32(0.5) * (high - low)).astype(np.float64)


def first_beyond(rows: list[dict], column: str, tolerance: tuple[float, float]) -> dict | None:
    """The first row whose `column` exceeds abs + rel * (the step's largest |qacc|, or 1 for
    positions and frames); None where none does."""
    rel, abs_ = tolerance
    for row in rows:
        scale = row["qacc_max"] if column.startswith("qacc") or column == "efc_aref_diff" else 1.0
        if np.isfinite(row[column]) and row[column] > abs_ + rel * scale:
            return row
    return None


def summary(rows: list[dict], tolerance: tuple[float, float]) -> list[str]:
    """Markdown lines: per compared quantity the first physics step beyond `tolerance` and its size,
    then the first step at which the two sides count contacts or rows differently."""
    lines = ["| quantity | first physics step beyond tolerance (agent step) | difference there | largest |",
             "|---|---|---|---|"]
    for column in COMPARED:
        row = first_beyond(rows, column, tolerance)
        largest = np.nanmax([r[column] for r in rows]) if any(np.isfinite(r[column]) for r in rows) else np.nan
        lines.append(f"| {column} | " + ("none" if row is None else f"{row['physics_step']} ({row['agent_step']})")
                     + f" | {'' if row is None else f'{row[column]:.3g}'} | {largest:.3g} |")
    for c, m in (("c_contacts", "mjx_contacts"), ("c_rows", "mjx_rows")):
        row = next((r for r in rows if r[c] != r[m]), None)
        lines.append(f"| {c} != {m} | " + ("none" if row is None else f"{row['physics_step']} ({row['agent_step']})")
                     + " | " + ("" if row is None else f"{row[c]} vs {row[m]}") + " | |")
    return lines


def read_steps(path: pathlib.Path) -> list[dict]:
    """The rows of a steps.csv, as numbers (nan where empty)."""
    with open(path, newline="") as f:
        return [{k: float(v) if v else np.nan for k, v in row.items()} for row in csv.DictReader(f)]


def horizon_lines(horizons: list[dict]) -> list[str]:
    """Markdown lines: per perturbation the agent step at which the C library leaves its own run."""
    lines = ["| every qvel entry moved by | C library against itself: first agent step beyond float32 noise |",
             "|---|---|"]
    return lines + [f"| {float(h['perturbation']):g} | " + (f"{int(float(h['first_divergent_agent_step']))}"
                    if h["first_divergent_agent_step"] not in (None, "") else f"none in {h['steps']}") + " |"
                    for h in horizons]


def docs_table(directory: pathlib.Path = OUT) -> str:
    """A committed run's summary (its steps.csv and perturbation.csv) for the docs, with links."""
    from experiments.mjx_fidelity import read_csv

    precision = "float64" if directory.name == "x64" else "float32"
    rel, abs_ = TOLERANCES[precision]
    name = directory.relative_to(OUT.parent.parent).as_posix()
    link = f"../experiments/results/{name}"
    rows = [{k: int(v) if k in INTEGERS else v for k, v in row.items()} for row in read_steps(directory / "steps.csv")]
    return "\n".join([f"From [{name}/steps.csv]({link}/steps.csv) and [perturbation.csv]({link}/perturbation.csv) "
                      f"(command: [README.md]({link}/README.md)), MJX in {precision}: a quantity differs where "
                      f"|MJX - C| > {abs_:g} + {rel:g} s (s: the step's largest |qacc| for accelerations and aref, "
                      "else 1).", ""] + summary(rows, TOLERANCES[precision]) + [""]
                     + horizon_lines(read_csv(directory / "perturbation.csv")))


def write(out: pathlib.Path, rows: list[dict], horizons: list[dict], command: str, precision: str) -> None:
    """steps.csv, perturbation.csv and README.md under `out`."""
    from experiments.mjx_fidelity import machine, number, write_csv

    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "steps.csv", rows, COLUMNS)
    write_csv(out / "perturbation.csv", [{k: "" if v is None else v for k, v in h.items()} for h in horizons],
              ("perturbation", "steps", "first_divergent_agent_step"))
    rel, abs_ = TOLERANCES[precision]
    lines = [f"# MJX against MuJoCo's C library on one physics step from the same state, MJX in {precision}", "",
             "Made by `experiments/mjx_step_diagnosis.py` (its docstring says what is measured):", "",
             f"    {command}", "", f"Machine: {machine()}; {datetime.date.today().isoformat()}. A quantity differs "
             f"where |MJX - C| > {abs_:g} + {rel:g} s (s: the step's largest |qacc| for accelerations and aref, "
             "else 1).", "", "[steps.csv](steps.csv): every physics step; [perturbation.csv](perturbation.csv).", ""]
    lines += summary(rows, TOLERANCES[precision]) + [""] + horizon_lines(horizons)
    (out / "README.md").write_text("\n".join(lines) + "\n")


def define_flags() -> None:
    """This command line's flags; defined when it runs, so that importing the module defines none."""
    flags.DEFINE_string("task", "walker-walk", "a dash task name with an exact model (envs/mjx_dmc.py)")
    flags.DEFINE_integer("agent_steps", 12, "agent steps compared (each the task's physics steps x 2)")
    flags.DEFINE_integer("seed", 0, "seed of the host reset and the random actions (the equivalence check's)")
    flags.DEFINE_bool("x64", False, "MJX in float64 (jax_enable_x64)")
    flags.DEFINE_multi_string("mjx_option", [], "NAME=VALUE: a solver option set on MJX's model only")
    flags.DEFINE_string("out", None, "directory for steps.csv and README.md (default: results/mjx_exact/diagnosis, "
                        "its x64/ with --x64)")


def main(argv: list[str]) -> None:
    del argv
    import jax

    from experiments.mjx_fidelity import exact_tasks
    from tdmpc2_jax.cli import fail, setup_process

    setup_process()
    if FLAGS.x64:
        jax.config.update("jax_enable_x64", True)
    if FLAGS.task not in exact_tasks():
        fail(f"--task={FLAGS.task}: no exact model; the tasks are: {', '.join(exact_tasks())}")
    if FLAGS.agent_steps < 1:
        fail(f"--agent_steps={FLAGS.agent_steps}: give at least 1")
    try:
        options = parse_options(FLAGS.mjx_option)
    except ValueError as err:
        fail(str(err))
    rows = diagnose(FLAGS.task, FLAGS.agent_steps, FLAGS.seed, options)
    horizons = perturbation_horizons(FLAGS.task, FLAGS.seed)
    precision = "float64" if FLAGS.x64 else "float32"
    out = pathlib.Path(FLAGS.out or (OUT / "x64" if FLAGS.x64 else OUT))
    write(out, rows, horizons, "python -m experiments.mjx_step_diagnosis " + " ".join(sys.argv[1:]), precision)
    print((out / "README.md").read_text())


if __name__ == "__main__":
    define_flags()
    app.run(main)
