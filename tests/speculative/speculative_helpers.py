"""The speculative tests' tiny agent settings and a Python loop over the jitted speculative step."""
import jax
import jax.numpy as jnp

from tdmpc2_jax import xla

CFG = dict(obs_dim=5, action_dim=1, enc_dim=16, mlp_dim=16, latent_dim=16, num_q=2, horizon=3, num_samples=16,
           num_pi_trajs=2, num_elites=4, iterations=2)


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
