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
