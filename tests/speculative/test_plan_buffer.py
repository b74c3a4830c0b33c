"""The plan buffer: beyond the planning horizon it follows the policy prior through the dynamics."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdmpc2_jax.planner import init_plan_state, plan
from tdmpc2_jax.speculative import plan_buffer

from speculative_helpers import observations


@pytest.mark.slow
def test_the_buffer_beyond_the_horizon_follows_the_prior_and_the_dynamics(model, params):
    result, _ = plan(model, params, observations(1)[0], init_plan_state(3, 1), jax.random.key(3), jnp.asarray(True),
                     eval_mode=False)
    buf = plan_buffer.build(model, params, result, 6, source="elite")
    chex.assert_shape((buf.actions, buf.latents, buf.std), ((6, 1), (6, 16), (6, 1)))
    np.testing.assert_array_equal(np.asarray(buf.actions[0]), np.asarray(result.action))
    np.testing.assert_allclose(np.asarray(buf.actions[1:3]), np.asarray(result.sequence[1:3]))
    prior = model.pi(params, buf.latents[3:], jnp.zeros((3, 1))).action
    np.testing.assert_allclose(np.asarray(buf.actions[3:]), np.asarray(prior), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(buf.latents[1:]), np.asarray(model.next(params, buf.latents[:-1], buf.actions[:-1])),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(buf.latents[0]), np.asarray(result.z))
    assert int(buf.k) == 1
