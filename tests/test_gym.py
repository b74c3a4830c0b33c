"""Gymnasium tasks: every registered task resets and steps with its shapes and bounds, terminal
states are told apart from time limits, the host loop stores terminations and trains the
termination head on them, and success is reported where the task defines it."""
import chex
import numpy as np
import pytest

import tiny
from helpers import rows

from tdmpc2_jax.envs.gym import GYM_TASKS, GymEnv, episode_length_of
from tdmpc2_jax.envs.registry import make_host_env
from tdmpc2_jax.run_record import resolve


@pytest.mark.parametrize("task, obs_dim, action_dim", [
    ("mujoco-walker", 17, 6), ("mujoco-halfcheetah", 17, 6), ("mujoco-hopper", 11, 3), ("mujoco-ant", 27, 8),
    ("mujoco-humanoid", 376, 17), ("bipedal-walker", 24, 4), ("lunarlander-continuous", 8, 2)])
def test_every_task_resets_and_steps_with_its_shapes(task, obs_dim, action_dim):
    env = make_host_env(task, seed=0)
    assert isinstance(env, GymEnv) and (env.obs_dim, env.action_dim, env.action_repeat) == (obs_dim, action_dim, 1)
    assert env.episode_length == {"lunarlander-continuous": 500, "bipedal-walker": 1600}.get(task, 1000)
    obs = env.reset()
    chex.assert_shape(obs, (obs_dim,))
    chex.assert_type(obs, np.float32)
    rng = np.random.default_rng(0)
    for _ in range(3):
        action = env.random_action(rng)
        assert action.shape == (action_dim,) and np.all(np.abs(action) <= 1)
        step = env.step(action * 5)  # clipped to the bounds
        chex.assert_shape(step.obs, (obs_dim,))
        assert np.isfinite(step.reward) and not step.physics_error
    assert set(GYM_TASKS) == {"mujoco-walker", "mujoco-halfcheetah", "mujoco-hopper", "mujoco-ant",
                              "mujoco-humanoid", "bipedal-walker", "lunarlander-continuous"}


def test_a_time_limit_is_not_a_terminal_state_and_a_fall_is():
    env = GymEnv("mujoco-halfcheetah", seed=0, episode_length=5)
    env.reset()
    steps = [env.step(np.zeros(6)) for _ in range(5)]
    assert [s.done for s in steps] == [False] * 4 + [True] and not any(s.terminated for s in steps)
    env, rng = GymEnv("mujoco-hopper", seed=0), np.random.default_rng(0)
    env.reset()
    for t in range(1000):
        step = env.step(env.random_action(rng))
        if step.done:
            break
    assert step.terminated and t < 999  # a random hopper falls long before its time limit


def test_the_random_state_resumes_the_same_episodes():
    env = GymEnv("mujoco-walker", seed=3)
    first = env.reset()
    state = env.get_rng_state()
    second = env.reset()
    other = GymEnv("mujoco-walker", seed=99)
    other.set_rng_state(state)
    np.testing.assert_array_equal(other.reset(), second)
    fresh = GymEnv("mujoco-walker", seed=3)
    fresh.set_rng_state({"seed": 3})
    np.testing.assert_array_equal(fresh.reset(), first)


def test_lunar_landing_success_is_a_return_above_200():
    env, rng = GymEnv("lunarlander-continuous", seed=0, episode_length=50), np.random.default_rng(0)
    env.reset()
    total = 0.0
    for _ in range(50):
        step = env.step(env.random_action(rng))
        total += step.reward
        assert step.success == float(total > 200)
        if step.done:
            break
    walker = GymEnv("mujoco-walker", seed=0)
    walker.reset()
    assert np.isnan(walker.step(np.zeros(6)).success)


def test_domain_defaults_follow_the_official_settings_for_these_tasks():
    walker, cheetah = tiny.load_config("dmc.py", "mujoco-walker"), tiny.load_config("dmc.py", "mujoco-halfcheetah")
    assert (walker.episodic, walker.discount_max, walker.rho, walker.episode_length) == (True, 0.99, 0.7, 1000)
    assert (cheetah.episodic, tiny.load_config("dmc.py", "bipedal-walker").episode_length) == (False, 1600)
    assert tiny.load_config("dmc.py", "walker-walk").episodic is False
    assert episode_length_of("lunarlander-continuous") == 500


@pytest.mark.slow
def test_the_host_loop_stores_terminations_and_trains_the_termination_head(tmp_path):
    from tdmpc2_jax.loops import host

    config = tiny.run_config("dmc.py", "mujoco-hopper", tmp_path, steps=300, seed_steps=150, episode_length=100,
                             eval_freq=300, checkpoint_every=1000)
    assert config.episodic
    host.train(resolve(config))
    from tdmpc2_jax import checkpoints

    step = checkpoints.latest_step(str(tmp_path / "checkpoints"))
    _, meta = checkpoints.read_meta(str(tmp_path / "checkpoints"))
    assert meta["has_buffer"]
    import orbax.checkpoint as ocp

    tree = ocp.PyTreeCheckpointer().restore(str(tmp_path / "checkpoints" / str(step) / "state"))
    terminated = np.asarray(tree["buffer"]["terminated"])
    episodes = int(np.asarray(tree["buffer"]["counters"])[1])
    assert episodes > 3 and 0 < terminated.sum() <= episodes  # random hoppers fall: one terminal row per fall
    # experiments/termination_head reads the buffer as transitions: each one's observation is the row
    # before its next observation, in the same episode, and every terminal row is a transition's
    from experiments.termination_head import buffer_transitions

    data = buffer_transitions(str(tmp_path / "checkpoints"))
    inside = np.flatnonzero(data["step"][1:] >= 0) + 1
    np.testing.assert_array_equal(data["obs"][inside], data["next_obs"][inside - 1])
    assert data["terminal"].sum() == terminated.sum() and (data["step"][data["terminal"] == 1] >= 0).all()
    episode_ids = np.asarray(tree["buffer"]["episode"])
    assert (data["step"][episode_ids != np.roll(episode_ids, 1)] == -1).all()  # first rows: no transition
    train = rows(tmp_path / "train.csv")
    losses = [float(r["termination_loss"]) for r in train if r["termination_loss"]]
    assert losses and all(np.isfinite(losses))
    evals = rows(tmp_path / "eval.csv")
    assert "episode_success" in evals[0] and evals[0]["episode_success"] == ""
