"""Playground's reacher on the installed MuJoCo: built through the adapter's `MjSpec.find_body` step
(tdmpc2_jax/envs/mjx.py), with dm_control's target sizes, and stepped under the TD-MPC2 protocol."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdmpc2_jax.envs.mjx import MJXEnv


@pytest.mark.parametrize("task, target_size", [("reacher-easy", 0.05), ("reacher-hard", 0.015)])
def test_reacher_builds_with_dm_controls_target_size(task, target_size):
    """The spec step finds the target body: its geom has the size dm_control gives the task."""
    model = MJXEnv(task).playground_env.mj_model
    assert model.geom_size[model.geom("target").id, 0] == pytest.approx(target_size)


def test_reacher_easy_resets_and_steps_on_mjx():
    """A reset and one agent step: the arm moves under the action, the reward is two physics steps'."""
    env = MJXEnv("reacher-easy")
    assert (env.obs_dim, env.action_dim) == (6, 2)
    state = env.reset(jax.random.key(0))
    next_state, out = jax.jit(env.step)(state, jnp.ones(2))
    qpos, next_qpos = np.asarray(state.inner.data.qpos), np.asarray(next_state.inner.data.qpos)
    assert np.all(np.isfinite(np.asarray(out.obs)))
    assert np.all(next_qpos[:2] > qpos[:2]), "positive torques turn both joints forward from rest"
    assert 0.0 <= float(out.reward) <= 2.0 and int(next_state.t) == 1
