"""Meta-World tasks on MuJoCo 3.17: all 50 of MT50 reset and step with their shapes, an expert
policy's episode reports success, episodes last 100 agent steps without terminating, and a multitask run over two domains logs success where it is
defined (tests/test_success_logging.py trains on a Meta-World task alone; tests/test_envs.py checks
that goals resume from the saved random state)."""
import chex
import numpy as np
import pytest

import tiny
from helpers import rows

from tdmpc2_jax.envs.registry import make_host_env
from tdmpc2_jax.envs.task_sets import TASK_SETS
from tdmpc2_jax.run_record import resolve


@pytest.mark.slow
def test_every_mt50_task_resets_and_steps_with_its_shapes():
    from tdmpc2_jax.envs.metaworld import task_names

    assert task_names() == sorted(TASK_SETS["mt80"][30:])
    rng = np.random.default_rng(0)
    for task in task_names():
        env = make_host_env(task, seed=0)
        assert (env.obs_dim, env.action_dim, env.episode_length, env.action_repeat) == (39, 4, 100, 2), task
        obs = env.reset()
        chex.assert_shape(obs, (39,))
        chex.assert_type(obs, np.float32)
        step = env.step(env.random_action(rng) * 3)  # clipped to [-1, 1]
        chex.assert_shape(step.obs, (39,))
        assert np.isfinite(step.reward) and step.success in (0.0, 1.0) and not step.terminated, task


@pytest.mark.slow
def test_an_expert_reaches_and_the_episode_ends_at_100_steps_without_terminating():
    from metaworld.policies import ENV_POLICY_MAP

    env, policy = make_host_env("mw-reach", seed=1), ENV_POLICY_MAP["reach-v3"]()
    obs, successes = env.reset(), []
    for t in range(100):
        step = env.step(np.clip(policy.get_action(obs), -1, 1))
        obs = step.obs
        successes.append(step.success)
        assert step.done == (t == 99) and not step.terminated
    assert max(successes) == 1.0
    frame = env.render(64, 64)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0


@pytest.mark.slow
def test_a_multitask_run_over_two_domains_logs_success_where_it_is_defined(tmp_path):
    from tdmpc2_jax.loops import host

    config = tiny.run_config("dmc.py", "cartpole-balance", tmp_path, tasks="cartpole-balance,mw-reach", steps=40,
                             seed_steps=20, episode_length=20, eval_freq=40, checkpoint_every=1000)
    host.train(resolve(config))
    first = rows(tmp_path / "eval.csv")[0]
    assert first["episode_success+cartpole-balance"] == "" and first["episode_success+mw-reach"] in ("0", "1")
    assert first["episode_success"] == first["episode_success+mw-reach"]
    assert float(first["episode_reward+mw-reach"]) > 0
