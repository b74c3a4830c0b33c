"""A tiny pure-JAX environment with Playground's interface, so on-device loop tests compile in seconds.

A point mass on a line: obs [x, v, sin x, cos x, 1], action = force, reward in [0, 1] for staying
near 0, terminal when |x| > `limit` (only with `terminates`).
"""
from types import SimpleNamespace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class ToyState(NamedTuple):
    obs: jax.Array
    reward: jax.Array
    done: jax.Array
    x: jax.Array
    v: jax.Array


class PointMass:
    observation_size = 5
    action_size = 1
    mjx_model = SimpleNamespace(actuator_ctrlrange=np.array([[-2.0, 2.0]], np.float32))

    def __init__(self, terminates: bool = False, limit: float = 3.0):
        self.terminates, self.limit = terminates, limit

    @staticmethod
    def _obs(x, v):
        return jnp.stack([x, v, jnp.sin(x), jnp.cos(x), jnp.ones_like(x)])

    def reset(self, key):
        x, v = jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0)
        return ToyState(self._obs(x, v), jnp.zeros(()), jnp.zeros(()), x, v)

    def step(self, state, ctrl):
        v = 0.9 * state.v + 0.1 * ctrl[0]
        x = state.x + 0.1 * v
        done = (jnp.abs(x) > self.limit).astype(jnp.float32) if self.terminates else jnp.zeros(())
        return ToyState(self._obs(x, v), jnp.exp(-x * x), done, x, v)


class PlanarPointMass:
    """A point mass on a plane: obs [x, y, vx, vy, sin x, cos x, 1], action = force [2], reward for
    staying near the origin (another size than PointMass, for multitask batches)."""

    observation_size = 7
    action_size = 2
    mjx_model = SimpleNamespace(actuator_ctrlrange=np.array([[-1.0, 1.0], [-1.0, 1.0]], np.float32))

    @staticmethod
    def _obs(p, v):
        return jnp.concatenate([p, v, jnp.sin(p[:1]), jnp.cos(p[:1]), jnp.ones(1)])

    def reset(self, key):
        p, v = jnp.split(jax.random.uniform(key, (4,), minval=-1.0, maxval=1.0), 2)
        return ToyState(self._obs(p, v), jnp.zeros(()), jnp.zeros(()), p, v)

    def step(self, state, ctrl):
        v = 0.9 * state.v + 0.1 * ctrl
        p = state.x + 0.1 * v
        return ToyState(self._obs(p, v), jnp.exp(-jnp.sum(p * p)), jnp.zeros(()), p, v)


class RobotPointMass(PointMass):
    """A point mass with a robot suite's interface: a dictionary observation (the agent's `state`
    and a larger `privileged_state`), actions taken as they are (x10 here, the task's own scale),
    and episodes that end at a terminal state (|x| > `limit`)."""

    observation_size = {"state": (5,), "privileged_state": (7,)}

    def __init__(self, limit: float = 1.5):
        super().__init__(terminates=True, limit=limit)

    def _obs(self, x, v):
        state = PointMass._obs(x, v)
        return {"state": state, "privileged_state": jnp.concatenate([state, jnp.stack([x * x, v * v])])}

    def step(self, state, ctrl):
        return super().step(state, 10.0 * ctrl)


def point_mass_physics(mjx_env_init):
    """An MJXEnv.__init__ that builds every task on PointMass instead of its Playground physics
    (cartpole's observation and action sizes), for tests of what runs around the physics."""
    def init(self, task, *args, **kwargs):
        mjx_env_init(self, task, *args, **dict(kwargs, playground_env=PointMass()))
    return init
