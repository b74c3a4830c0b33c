"""MuJoCo Playground tasks on MJX: its DM Control Suite with the same protocol as the host adapter,
and its locomotion and manipulation suites.

DM Control Suite (dash task names; with the suffix `-exact`, dm_control's own model and task
definition on MJX, envs/mjx_dmc.py): action repeat 2 (rewards summed), 500 agent steps per episode,
actions in [-1, 1] mapped to the actuators' control range. Locomotion and manipulation (Playground's
own names, e.g. `Go1JoystickFlatTerrain`, `PandaPickCube`): one Playground step (its `ctrl_dt`) per
agent step, the task's own episode length, actions in [-1, 1] passed to the task (which scales them
itself), the `state` entry of a dictionary observation, and episodes that end where the task says
(a fall, a cube out of reach), which are terminations. These tasks build their robots from MuJoCo
Menagerie, which Playground clones from GitHub on first use. Every function is pure and works on one
environment; vmap it for a batch. `step` resets an environment whose episode ended (time limit or
termination) and reports the finished episode's last observation, return and length, so the
caller can store the true last transition (a time-limit end is a truncation, never a terminal).
"""
from __future__ import annotations

import contextlib
import importlib
import io
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tdmpc2_jax.names import close_matches
from tdmpc2_jax.envs.dmc import ACTION_REPEAT, EPISODE_LENGTH

# dash name -> Playground name where the CamelCase rule does not give it
SPECIAL_NAMES = {"cup-catch": "BallInCup", "pointmass-easy": "PointMass", "swimmer-swimmer6": "SwimmerSwimmer6"}
HOST_ONLY_DOMAINS = ("dog", "quadruped", "manipulator")
DM_CONTROL = "dm_control_suite"
ROBOT_SUITES = ("locomotion", "manipulation")  # Playground's own task names, robots from Menagerie


def _registry(impl: str | None = None) -> Any:
    """Playground's task registry, imported for MJX implementation `impl` (None: not known yet).

    Importing Playground imports MJX, which spends seconds building the kernels of its Warp backend
    whenever warp-lang is installed (Playground requires it), and only impl "warp" runs them: a first
    import for impl "jax" leaves Warp out (MJX then reports on stdout that it is missing, which is
    dropped here)."""
    if impl == "jax" and "mujoco.mjx" not in sys.modules and "warp" not in sys.modules:
        sys.modules["warp"] = None  # makes `import warp` fail at once
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                importlib.import_module("mujoco_playground")
        finally:
            del sys.modules["warp"]
    from mujoco_playground import registry

    if impl == "warp" and not _mjx_has_warp():
        raise ValueError("impl='warp' needs MJX's Warp backend, which this process imported without "
                         "(or warp-lang is missing: pip install warp-lang)")
    return registry


def _mjx_has_warp() -> bool:
    from mujoco.mjx import warp

    return bool(warp.WARP_INSTALLED) and warp.mujoco_warp is not None


def robot_suite_of(task: str) -> str | None:
    """"locomotion" or "manipulation" for a Playground task name of those suites, else None (dash
    names, DM Control's, without importing Playground)."""
    if "-" in task:
        return None
    registry = _registry()
    return next((suite for suite in ROBOT_SUITES if task in getattr(registry, suite).ALL_ENVS), None)


def playground_name(task: str, impl: str | None = None) -> str:
    """The Playground registry name of a task: a dash DM Control name, or a locomotion or
    manipulation task's own name; a dm_control model task (`-exact`, envs/mjx_dmc.py) is its own
    name; clear errors otherwise."""
    from tdmpc2_jax.envs import mjx_dmc

    if mjx_dmc.is_exact(task):
        if task not in mjx_dmc.EXACT_TASKS:
            raise ValueError(f"no exact dm_control model on MJX for {task!r}{close_matches(task, mjx_dmc.EXACT_TASKS)}")
        return task
    registry = _registry(impl)
    if robot_suite_of(task):
        return task
    available = set(registry.dm_control_suite.ALL_ENVS)
    name = SPECIAL_NAMES.get(task, "".join(part.capitalize() for part in task.split("-")))
    if name in available:
        return name
    if task.split("-")[0] in HOST_ONLY_DOMAINS:
        raise ValueError(f"task {task!r} has no MJX version in MuJoCo Playground; train it on host MuJoCo "
                         f"with --config=configs/dmc.py:{task}")
    dash = {**{v: k for k, v in SPECIAL_NAMES.items()}}
    names = [dash.get(n, "-".join(_split_camel(n))) for n in sorted(available)]
    names += [n for suite in ROBOT_SUITES for n in getattr(registry, suite).ALL_ENVS]
    raise ValueError(f"unknown MJX task {task!r}{close_matches(task, names)}")


def playground_defaults(task: str) -> dict:
    """Run config keys a locomotion or manipulation task sets: its episode length (agent steps) and
    `episodic` (its episodes end at terminal states). Nothing for other names."""
    if not robot_suite_of(task):
        return {}
    return dict(episode_length=int(_registry().get_default_config(task).episode_length), episodic=True)


MENAGERIE_DIR = "MUJOCO_MENAGERIE_DIR"  # environment variable: a Menagerie checkout to use instead of Playground's


def _load(task: str, impl: str) -> Any:
    """The Playground environment of a task; a robot task whose models cannot be fetched is one error.

    Robot tasks read MuJoCo Menagerie from the checkout named by $MUJOCO_MENAGERIE_DIR when it is set
    (machines without GitHub), else from where Playground clones it on first use."""
    from tdmpc2_jax.envs import mjx_dmc

    registry = _registry(impl)
    if mjx_dmc.is_exact(task):
        playground_name(task)
        return mjx_dmc.ExactTask(task, impl)
    name = playground_name(task)
    if not robot_suite_of(name):
        _spec_find_body()
        return registry.load(name, config_overrides={"impl": impl})
    import os
    import subprocess

    from etils import epath
    from mujoco_playground._src import mjx_env

    if os.environ.get(MENAGERIE_DIR):
        checkout = epath.Path(os.environ[MENAGERIE_DIR]).expanduser()
        if not checkout.is_dir():
            raise ValueError(f"{MENAGERIE_DIR}={os.environ[MENAGERIE_DIR]} is not a directory: point it at a "
                             f"checkout of https://github.com/google-deepmind/mujoco_menagerie")
        mjx_env.MENAGERIE_PATH = checkout
    try:
        return registry.load(name, config_overrides={"impl": impl})
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        raise ValueError(f"{task} builds its robot from MuJoCo Menagerie, which Playground clones from GitHub "
                         f"into {mjx_env.MENAGERIE_PATH} on first use, and that failed ({str(err).rstrip('.')}): clone "
                         f"https://github.com/google-deepmind/mujoco_menagerie (commit "
                         f"{mjx_env.MENAGERIE_COMMIT_SHA}) there, or anywhere and set {MENAGERIE_DIR} to it") from err


def _spec_find_body() -> None:
    """Gives `mujoco.MjSpec` the `find_body(name)` of MuJoCo before 3.3 where it lacks it.

    Playground's reacher picks its spec API by comparing version strings as text, and "3.17.0" sorts
    before "3.3.0", so on MuJoCo 3.10 and later it calls `find_body`, which newer releases renamed
    `MjSpec.body(name)`. The alias is that method; it is set only where the attribute is missing."""
    import mujoco

    if not hasattr(mujoco.MjSpec, "find_body"):
        mujoco.MjSpec.find_body = mujoco.MjSpec.body


def _split_camel(name: str) -> list[str]:
    parts, word = [], ""
    for ch in name:
        if ch.isupper() and word:
            parts.append(word.lower())
            word = ch
        else:
            word += ch
    return parts + [word.lower()]


class EnvState(NamedTuple):
    inner: Any  # Playground State
    t: jax.Array  # [] int32 agent steps into the episode
    episode: jax.Array  # [] int32 episodes started so far (index of the current one)
    episode_return: jax.Array  # [] float32
    key: jax.Array  # PRNG key for the next reset


class StepOutput(NamedTuple):
    obs: jax.Array  # [obs_dim] observation to act on next (after an automatic reset)
    final_obs: jax.Array  # [obs_dim] observation the action led to (the episode's last when it ended)
    reward: jax.Array  # [] summed over the repeated physics steps
    terminated: jax.Array  # [] true termination (not a time limit)
    ended: jax.Array  # [] bool: the episode ended with this step
    episode_return: jax.Array  # [] return of the episode that ended (0 otherwise)
    episode_length: jax.Array  # [] length of the episode that ended (0 otherwise)


def _strong(tree):
    """Fixed dtypes for every leaf (Playground returns some weakly typed scalars), so a scanned step
    compiles once; float32 and int32, unless the process runs in float64 (`jax_enable_x64`), where
    the physics keeps its float64 state."""
    narrow = {} if jax.config.jax_enable_x64 else {jnp.dtype(jnp.float64): jnp.float32, jnp.dtype(jnp.int64): jnp.int32}

    def fix(x):
        x = jnp.asarray(x)
        return jnp.array(x, dtype=narrow.get(x.dtype, x.dtype))
    return jax.tree.map(fix, tree)


def _place_locally(env: Any, impl: str) -> None:
    """Puts a Playground environment's mjx.Model on this process's first device.

    MJX puts a model on `jax.devices()[0]`, the first device of the whole cluster: in a run over
    several processes that device belongs to process 0, and the other processes cannot read it.
    Every Playground environment keeps its model in `_mjx_model`, made from `mj_model`.
    """
    if jax.process_count() == 1:
        return
    from mujoco import mjx

    env._mjx_model = mjx.put_model(env.mj_model, impl=impl, device=jax.local_devices()[0])
    if not all(x.is_fully_addressable for x in jax.tree.leaves(vars(env)) if isinstance(x, jax.Array)):
        raise RuntimeError(f"{type(env).__name__} holds arrays on another process's device")


class MJXEnv:
    """One Playground task under the TD-MPC2 protocol (pure functions over EnvState)."""

    def __init__(self, task: str, impl: str = "jax", episode_length: int = EPISODE_LENGTH,
                 action_repeat: int | None = None, playground_env: Any = None, suite: str | None = None):
        """`playground_env`: any object with Playground's environment interface to use instead of
        the registry's task (reset, step, observation_size, action_size, mjx_model), treated as a
        task of `suite` (default: DM Control). `action_repeat` defaults to the suite's."""
        if playground_env is None:
            suite = robot_suite_of(task) or DM_CONTROL
            playground_env = _load(task, impl)
            _place_locally(playground_env, impl)
        self.suite = suite or DM_CONTROL
        default_repeat = ACTION_REPEAT if self.suite == DM_CONTROL else 1
        self.task, self.episode_length = task, episode_length
        self.action_repeat = default_repeat if action_repeat is None else action_repeat
        self.playground_env = playground_env
        # Tracing MJX physics is slow Python; as nested jits, each of these is traced once per
        # process and reused by every program that steps or resets this environment.
        self._physics_step = jax.jit(lambda inner, ctrl: _strong(playground_env.step(inner, ctrl)))
        self._fresh = jax.jit(lambda key: _strong(playground_env.reset(key)))
        ctrl = np.asarray(self.playground_env.mjx_model.actuator_ctrlrange, np.float64)
        self._low, self._high = ctrl[:, 0], ctrl[:, 1]  # cast to the physics' dtype where used
        size = self.playground_env.observation_size
        self.obs_dim = int(np.prod(size["state"]) if isinstance(size, Mapping) else size)
        self.action_dim = int(self.playground_env.action_size)

    def reset_batch(self, keys: jax.Array) -> EnvState:
        """N fresh environments from keys [N]: EnvState leaves [N, ...]."""
        return jax.vmap(self.reset)(keys)

    def task_index(self, num_envs: int) -> None:
        """A single task has no task index."""
        return None

    @staticmethod
    def observe(state: EnvState) -> jax.Array:
        """[..., obs_dim] observations of (a batch of) environments."""
        return _state_of(state.inner.obs)

    @staticmethod
    def physics(state: EnvState) -> dict[str, jax.Array]:
        """What drawing (a batch of) states needs: joint positions and velocities and mocap poses."""
        data = state.inner.data
        return dict(qpos=data.qpos, qvel=data.qvel, mocap_pos=data.mocap_pos, mocap_quat=data.mocap_quat)

    def draw(self, physics: Mapping[str, Any], width: int = 384, height: int = 384) -> list[np.ndarray]:
        """RGB frames [height, width, 3] uint8 of states as `physics` keeps them (leaves [T, ...]),
        drawn on host MuJoCo from the task's first camera (its free camera where it has none)."""
        import mujoco

        model = self.playground_env.mj_model
        data = mujoco.MjData(model)
        renderer = mujoco.Renderer(model, min(height, model.vis.global_.offheight),
                                   min(width, model.vis.global_.offwidth))
        frames = []
        try:
            for t in range(len(physics["qpos"])):
                for name, value in physics.items():
                    getattr(data, name)[:] = np.asarray(value[t])
                mujoco.mj_forward(model, data)
                renderer.update_scene(data, camera=0 if model.ncam else -1)
                frames.append(renderer.render().copy())
        finally:
            renderer.close()
        return frames

    def reset(self, key: jax.Array) -> EnvState:
        key, reset_key = jax.random.split(key)
        inner = self._fresh(reset_key)
        return EnvState(inner, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32), key)

    def step(self, state: EnvState, action: jax.Array) -> tuple[EnvState, StepOutput]:
        """One agent step; an ended episode is replaced by a fresh one in the returned state."""
        inner, out, keys = self._advance(state, action)
        return self._finish(state, inner, out, keys, self._fresh(keys[1]))

    def step_batch(self, states: EnvState, actions: jax.Array) -> tuple[EnvState, StepOutput]:
        """`step` for N environments ([N] states, [N, A] actions), equal to vmap(step), but the
        resets (a full forward pass each) are computed only when some episode ended."""
        inner, out, keys = jax.vmap(self._advance)(states, actions)

        def fresh():
            return jax.vmap(self._fresh)(keys[:, 1])

        fresh_inner = jax.lax.cond(jnp.any(out.ended), fresh, lambda: inner)
        return jax.vmap(self._finish)(states, inner, out, keys, fresh_inner)

    def advance(self, state: EnvState, action: jax.Array) -> tuple[EnvState, StepOutput]:
        """One agent step without the automatic reset (the time limit still reported in `ended`):
        the physics alone, as a side-by-side check with another simulator steps it."""
        inner, out, keys = self._advance(state, action)
        return EnvState(inner, state.t + 1, state.episode, state.episode_return + out.reward, keys[0]), out

    def _advance(self, state: EnvState, action: jax.Array) -> tuple[Any, StepOutput, jax.Array]:
        """The physics of one agent step: (inner state, output before any reset, [next key, reset key])."""
        data = getattr(state.inner, "data", None)  # a Playground state's mjx.Data (stand-in physics have none)
        dtype = jnp.float32 if data is None else data.ctrl.dtype  # float64 under jax_enable_x64
        if self.suite == DM_CONTROL:
            ctrl = to_control(action, self._low, self._high, dtype)
        else:  # the task scales its actions itself
            ctrl = jnp.clip(action, -1.0, 1.0).astype(dtype)

        def physics_step(inner, _):
            inner = self._physics_step(inner, ctrl)
            return inner, inner.reward

        inner, rewards = jax.lax.scan(physics_step, state.inner, None, length=self.action_repeat)
        reward = jnp.sum(rewards).astype(jnp.float32)
        t = state.t + 1
        terminated = inner.done > 0
        ended = terminated | (t >= self.episode_length)
        episode_return = state.episode_return + reward
        obs = _state_of(inner.obs)
        out = StepOutput(obs=obs, final_obs=obs, reward=reward, terminated=terminated.astype(jnp.float32),
                         ended=ended, episode_return=jnp.where(ended, episode_return, 0.0),
                         episode_length=jnp.where(ended, t, 0))
        return inner, out, jax.random.split(state.key)

    def _finish(self, state: EnvState, inner: Any, out: StepOutput, keys: jax.Array,
                fresh: Any) -> tuple[EnvState, StepOutput]:
        """Swaps in the fresh episode where this step ended one (obs becomes its first observation)."""
        ended = out.ended
        next_inner = jax.tree.map(lambda new, old: jnp.where(ended, new, old), fresh, inner)
        next_state = EnvState(next_inner, jnp.where(ended, 0, state.t + 1), state.episode + ended.astype(jnp.int32),
                              jnp.where(ended, 0.0, state.episode_return + out.reward), keys[0])
        return next_state, out._replace(obs=_state_of(next_inner.obs))


def to_control(action: jax.Array, low: np.ndarray, high: np.ndarray, dtype: Any) -> jax.Array:
    """Controls [nu] in [low, high] of an action [nu] in [-1, 1] (clipped), computed in `dtype`, the
    physics' dtype: a float32 mapping in float64 physics rounds a control by up to 6e-8, which
    dm_control's walker grows past float32 noise within ten agent steps."""
    action = jnp.clip(action, -1.0, 1.0).astype(dtype)
    low, high = jnp.asarray(low, dtype), jnp.asarray(high, dtype)
    return low + (action + 1.0) * 0.5 * (high - low)


def _state_of(obs: Any) -> jax.Array:
    """The observation the agent sees: the `state` entry of a dictionary observation (locomotion
    tasks also give a privileged one, for critics that see more than the policy)."""
    return obs["state"] if isinstance(obs, Mapping) else obs
