"""A Python loop over the jitted speculative step, and observations to feed it."""
import jax
import jax.numpy as jnp

from tdmpc2_jax import xla


def observations(n, seed=1):
    return jax.random.normal(jax.random.key(seed), (n, 5))


def run_steps(speculator, params, obs, t0, corrector_params=None, seed=2):
    """A Python loop of the jitted step over given observations: actions [T, A] and infos."""
    step = xla.jit(speculator.step)
    state, actions, infos = speculator.init_state(), [], []
    for t, key in enumerate(jax.random.split(jax.random.key(seed), len(obs))):
        action, state, info = step(params, corrector_params, state, obs[t], key, jnp.asarray(t0[t]))
        actions.append(action)
        infos.append(info)
    return jnp.stack(actions), jax.tree.map(lambda *x: jnp.stack(x), *infos)
