"""dm_control's own DM Control Suite tasks on MJX: the suite's XML put onto MJX, its observation and
reward written in JAX to the suite's definition, stepped as dm_control steps them.

Task names: the dash name with the suffix `-exact` (`walker-walk-exact`, `cheetah-run-exact`,
`cartpole-swingup-exact`, ...; `EXACT_TASKS`). `MJXEnv` runs them under the TD-MPC2 protocol like
Playground's tasks (action repeat 2, 500 agent steps, actions in [-1, 1] mapped to the actuators'
control range): `ExactTask` has the interface of a Playground environment.

What "as dm_control steps them" means: one control step sets the controls and runs the task's
`n_sub_steps` physics steps (dm_control's `control_timestep / timestep`), then recomputes the
position- and velocity-dependent quantities (MuJoCo's `mj_step1`: kinematics, subtree velocities,
position and velocity sensors), as dm_control's legacy step does; the observation and reward read
that state. MJX computes in float32 where the host computes in float64.

Where MJX lacks a model feature it is reported by `model_changes`: cartpole's XML enables MuJoCo's
energy computation, which MJX does not implement and which no observation or reward of the suite
reads; it is turned off.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

EXACT_SUFFIX = "-exact"
STAND_HEIGHT = 1.2  # walker.py _STAND_HEIGHT
WALKER_SPEEDS = {"stand": 0.0, "walk": 1.0, "run": 8.0}  # walker.py _WALK_SPEED, _RUN_SPEED
CHEETAH_SPEED = 10.0  # cheetah.py _RUN_SPEED
CART_RANGE, ANGLE_COSINE_RANGE = (-0.25, 0.25), (0.995, 1.0)  # cartpole.py Balance
DEFAULT_VALUE_AT_MARGIN = 0.1  # rewards.py _DEFAULT_VALUE_AT_MARGIN


@struct.dataclass
class PhysicsState:
    """One environment's state, with the fields of a Playground state."""
    data: Any  # mjx.Data after the last control step (positions and velocities up to date)
    obs: jax.Array  # [obs_dim] float32
    reward: jax.Array  # [] float32 reward of the last control step
    done: jax.Array  # [] float32, always 0: the suite's tasks end only at their time limit
    metrics: dict
    info: dict


# ------------------------------------------------------------------------------------------ rewards


def _sigmoid(x: jax.Array, value_at_1: float, sigmoid: str) -> jax.Array:
    """dm_control's `rewards._sigmoids` for the kinds the three domains use."""
    if sigmoid == "gaussian":
        scale = math.sqrt(-2.0 * math.log(value_at_1))
        return jnp.exp(-0.5 * (x * scale) ** 2)
    if sigmoid == "linear":
        scaled = x * (1.0 - value_at_1)
        return jnp.where(jnp.abs(scaled) < 1, 1.0 - scaled, 0.0)
    if sigmoid == "quadratic":
        scaled = x * math.sqrt(1.0 - value_at_1)
        return jnp.where(jnp.abs(scaled) < 1, 1.0 - scaled ** 2, 0.0)
    raise ValueError(f"sigmoid={sigmoid!r}: choose gaussian, linear or quadratic")


def tolerance(x: jax.Array, bounds: tuple[float, float] = (0.0, 0.0), margin: float = 0.0,
              sigmoid: str = "gaussian", value_at_margin: float = DEFAULT_VALUE_AT_MARGIN) -> jax.Array:
    """dm_control's `rewards.tolerance`: 1 inside [lower, upper], else the sigmoid of the distance
    to the nearest bound in units of `margin` (0 outside when margin is 0). x: any shape."""
    lower, upper = bounds
    inside = (lower <= x) & (x <= upper)
    if margin == 0:
        return jnp.where(inside, 1.0, 0.0)
    distance = jnp.where(x < lower, lower - x, x - upper) / margin
    return jnp.where(inside, 1.0, _sigmoid(distance, value_at_margin, sigmoid))


# ------------------------------------------------------------------------------------------ domains


class Domain(NamedTuple):
    """What a suite domain adds to its model: its module and one task's observation and reward."""
    module: str  # dm_control.suite module whose get_model_and_assets gives the XML
    observe: Callable[[Any, Any], jax.Array]  # (names, data) -> [obs_dim]
    reward: Callable[[Any, Any], jax.Array]  # (names, data) -> []
    reset: Callable[[Any, Any, jax.Array], Any]  # (task, data, key) -> data with the episode's start state


class Names(NamedTuple):
    """Indices the observations and rewards read, from the MjModel's names."""
    torso: int  # body id of the torso (walker, cheetah)
    subtreelinvel: int  # sensordata address of torso_subtreelinvel (walker, cheetah)


def _orientations(data) -> jax.Array:
    """walker.py Physics.orientations: xmat 'xx' and 'xz' of every body but the world: [2 (nbody-1)]."""
    return data.xmat[1:][:, 0, jnp.array([0, 2])].ravel()


def _walker_observe(names: Names, data) -> jax.Array:
    return jnp.concatenate([_orientations(data), data.xpos[names.torso, 2:3], data.qvel])


def _walker_reward(speed: float) -> Callable:
    def reward(names: Names, data) -> jax.Array:
        height = data.xpos[names.torso, 2]
        standing = tolerance(height, bounds=(STAND_HEIGHT, math.inf), margin=STAND_HEIGHT / 2)
        upright = (1.0 + data.xmat[names.torso, 2, 2]) / 2.0
        stand = (3.0 * standing + upright) / 4.0
        if speed == 0:
            return stand
        move = tolerance(data.sensordata[names.subtreelinvel], bounds=(speed, math.inf), margin=speed / 2,
                         value_at_margin=0.5, sigmoid="linear")
        return stand * (5.0 * move + 1.0) / 6.0
    return reward


def _cheetah_observe(names: Names, data) -> jax.Array:
    return jnp.concatenate([data.qpos[1:], data.qvel])


def _cheetah_reward(names: Names, data) -> jax.Array:
    return tolerance(data.sensordata[names.subtreelinvel], bounds=(CHEETAH_SPEED, math.inf),
                     margin=CHEETAH_SPEED, value_at_margin=0.0, sigmoid="linear")


def _cartpole_observe(names: Names, data) -> jax.Array:
    """cartpole.py bounded_position (cart position, each pole's xmat 'zz' and 'xz') and velocity."""
    poles = data.xmat[2:][:, jnp.array([2, 0]), jnp.array([2, 2])].ravel()
    return jnp.concatenate([data.qpos[:1], poles, data.qvel])


def _cartpole_reward(sparse: bool) -> Callable:
    def reward(names: Names, data) -> jax.Array:
        cosine, cart = data.xmat[2:, 2, 2], data.qpos[0]
        if sparse:
            return tolerance(cart, CART_RANGE) * jnp.prod(tolerance(cosine, ANGLE_COSINE_RANGE))
        upright = (cosine + 1.0) / 2.0
        centered = (1.0 + tolerance(cart, margin=2.0)) / 2.0
        small_control = tolerance(data.ctrl, margin=1.0, value_at_margin=0.0, sigmoid="quadratic")[0]
        small_control = (4.0 + small_control) / 5.0
        small_velocity = (1.0 + jnp.min(tolerance(data.qvel[1:], margin=5.0))) / 2.0
        return jnp.mean(upright) * small_control * small_velocity * centered
    return reward


def random_joints(model, qpos: jax.Array, key: jax.Array, rotational: bool) -> jax.Array:
    """qpos [nq] with every limited hinge or slide joint uniform in its range and, with `rotational`,
    every unlimited hinge uniform in [-pi, pi] (dm_control's
    randomizers.randomize_limited_and_rotational_joints for hinges and slides); the rest kept."""
    keys = jax.random.split(key, model.njnt)
    for j in range(model.njnt):
        adr = int(model.jnt_qposadr[j])
        if model.jnt_limited[j]:
            low, high = model.jnt_range[j]
        elif rotational and model.jnt_type[j] == 3:  # mjJNT_HINGE
            low, high = -math.pi, math.pi
        else:
            continue
        qpos = qpos.at[adr].set(jax.random.uniform(keys[j], (), jnp.float32, low, high))
    return qpos


def _walker_reset(task: "ExactTask", data, key: jax.Array):
    """walker.py initialize_episode: limited joints uniform in range, unlimited hinges (the torso's
    pitch) uniform in [-pi, pi]."""
    return data.replace(qpos=random_joints(task.mj_model, data.qpos, key, rotational=True))


def _cheetah_reset(task: "ExactTask", data, key: jax.Array):
    """cheetah.py initialize_episode: limited joints uniform in range (the root joints, unlimited,
    stay at 0: the cheetah starts upright), 200 physics steps to settle, time 0."""
    from mujoco import mjx

    data = data.replace(qpos=random_joints(task.mj_model, data.qpos, key, rotational=False))
    data = jax.lax.fori_loop(0, 200, lambda _, d: mjx.step(task.mjx_model, d), mjx.forward(task.mjx_model, data))
    return data.replace(time=jnp.zeros_like(data.time))


def _cartpole_reset(swing_up: bool) -> Callable:
    def reset(task: "ExactTask", data, key: jax.Array):
        """cartpole.py Balance.initialize_episode (one pole)."""
        k_cart, k_pole, k_vel = jax.random.split(key, 3)
        if swing_up:
            cart = 0.01 * jax.random.normal(k_cart)
            pole = math.pi + 0.01 * jax.random.normal(k_pole)
        else:
            cart = jax.random.uniform(k_cart, (), jnp.float32, -0.1, 0.1)
            pole = jax.random.uniform(k_pole, (), jnp.float32, -0.034, 0.034)
        qvel = 0.01 * jax.random.normal(k_vel, data.qvel.shape)
        return data.replace(qpos=jnp.stack([cart, pole]).astype(data.qpos.dtype), qvel=qvel.astype(data.qvel.dtype))
    return reset


def _domains() -> dict[str, Domain]:
    """Dash task name (without the suffix) -> its Domain."""
    walker = {f"walker-{t}": Domain("walker", _walker_observe, _walker_reward(s), _walker_reset)
              for t, s in WALKER_SPEEDS.items()}
    cartpole = {f"cartpole-{t}{'-sparse' * sparse}": Domain("cartpole", _cartpole_observe, _cartpole_reward(sparse),
                                                            _cartpole_reset(t == "swingup"))
                for t in ("balance", "swingup") for sparse in (False, True)}
    return {**walker, "cheetah-run": Domain("cheetah", _cheetah_observe, _cheetah_reward, _cheetah_reset), **cartpole}


EXACT_TASKS = tuple(f"{name}{EXACT_SUFFIX}" for name in _domains())


def is_exact(task: str) -> bool:
    """Whether a task name asks for dm_control's own model (the `-exact` suffix)."""
    return task.endswith(EXACT_SUFFIX)


# ------------------------------------------------------------------------------------------ task


def step1(model, data):
    """MuJoCo's mj_step1 on MJX: positions, position sensors, velocities, velocity sensors."""
    from mujoco import mjx

    data = mjx.fwd_position(model, data)
    data = mjx.sensor_pos(model, data)
    data = mjx.fwd_velocity(model, data)
    return mjx.sensor_vel(model, data)


def load_model(module: str):
    """(dm_control's MjModel of a suite domain, the model changes MJX needs: [(what, why)])."""
    import importlib

    import mujoco

    xml, assets = importlib.import_module(f"dm_control.suite.{module}").get_model_and_assets()
    model = mujoco.MjModel.from_xml_string(xml, assets)
    changes = []
    energy = int(mujoco.mjtEnableBit.mjENBL_ENERGY)
    if model.opt.enableflags & energy:
        model.opt.enableflags &= ~energy
        changes.append(("opt.enableflags mjENBL_ENERGY off", "MJX does not compute energy; no observation or "
                        "reward of the suite reads it"))
    return model, changes


class ExactTask:
    """One dm_control suite task on MJX, with a Playground environment's interface: `reset(key)`,
    `step(state, ctrl)` (one control step), `observation_size`, `action_size`, `mj_model`,
    `mjx_model` (kept in `_mjx_model`, as Playground keeps it), `n_substeps`, `dt` (the control timestep), `sim_dt`."""

    def __init__(self, task: str, impl: str = "jax"):
        """`task`: a name of EXACT_TASKS (the suffix optional); `impl`: MJX's implementation."""
        import mujoco
        from dm_control import suite
        from mujoco import mjx

        name = task.removesuffix(EXACT_SUFFIX)
        domains = _domains()
        if name not in domains:
            raise ValueError(f"no exact dm_control model on MJX for {task!r}; the tasks are: {', '.join(EXACT_TASKS)}")
        self.task, self.domain = name, domains[name]
        self.mj_model, self.model_changes = load_model(self.domain.module)
        self._mjx_model = mjx.put_model(self.mj_model, impl=impl)
        domain, task_name = name.split("-", 1)
        host = suite.load(domain, task_name.replace("-", "_"))
        self.n_substeps = int(host._n_sub_steps)
        self.sim_dt = float(self.mj_model.opt.timestep)
        self.dt = self.n_substeps * self.sim_dt
        self.time_limit_steps = int(host._step_limit)
        torso = mujoco.mj_name2id(self.mj_model, mujoco.mjtObj.mjOBJ_BODY, "torso")
        sensor = mujoco.mj_name2id(self.mj_model, mujoco.mjtObj.mjOBJ_SENSOR, "torso_subtreelinvel")
        self.names = Names(torso, int(self.mj_model.sensor_adr[sensor]) if sensor >= 0 else -1)
        self.action_size = int(self.mj_model.nu)
        self.observation_size = int(sum(np.prod(v.shape, dtype=int) for v in host.observation_spec().values()))

    @property
    def mjx_model(self):
        return self._mjx_model

    def observe(self, data) -> jax.Array:
        """[obs_dim] float32 observation of a state whose positions and velocities are up to date."""
        return self.domain.observe(self.names, data).astype(jnp.float32)

    def _state(self, data, reward: jax.Array) -> PhysicsState:
        zero = jnp.zeros((), jnp.float32)
        return PhysicsState(data=data, obs=self.observe(data), reward=jnp.asarray(reward, jnp.float32),
                            done=zero, metrics={}, info={})

    def reset(self, key: jax.Array) -> PhysicsState:
        """A fresh episode drawn as the suite's initialize_episode draws it (same distribution, JAX's
        random numbers), then a full forward pass as dm_control's reset ends with."""
        from mujoco import mjx

        data = self.domain.reset(self, mjx.make_data(self.mjx_model), key)
        return self._state(mjx.forward(self.mjx_model, data), 0.0)

    def step(self, state: PhysicsState, ctrl: jax.Array) -> PhysicsState:
        """One control step: `n_substeps` physics steps of `ctrl` [nu], then mj_step1; its reward."""
        from mujoco import mjx

        data = state.data.replace(ctrl=ctrl.astype(state.data.ctrl.dtype))
        data = jax.lax.fori_loop(0, self.n_substeps, lambda _, d: mjx.step(self.mjx_model, d), data)
        data = step1(self.mjx_model, data)
        return self._state(data, self.domain.reward(self.names, data))
