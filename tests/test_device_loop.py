"""The on-device loop: seed phase, planning, buffer inserts and updates in one scanned program;
populations (seeds x learning rates) vmapped in one program equal separate runs.

The tests use a tiny pure-JAX environment with Playground's interface (tests/toy_env.py) so they
compile in seconds; MJX physics inside the loop is covered by test_mjx_train.py."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdmpc2_jax import xla
from tdmpc2_jax.agent import Agent
from tdmpc2_jax.buffers import device as device_buffer
from tdmpc2_jax.envs.mjx import MJXEnv
from tdmpc2_jax.loops.device import DeviceLoop
from tdmpc2_jax.types import Transition

import tiny
from toy_env import PointMass

def make_loop(**overrides):
    """A loop of 2 toy envs with 5-step episodes (a 2-step horizon fits in them)."""
    env = MJXEnv("toy", episode_length=5, playground_env=PointMass())
    cfg = tiny.agent_config(batch_size=4, horizon=2, episode_length=5, **overrides)
    return DeviceLoop(Agent(cfg), env, num_envs=2, seed_steps=4, buffer_capacity=12)


@pytest.mark.slow
def test_seed_phase_burst_and_training_chunk():
    loop = make_loop()
    assert loop.seed_batches == 2
    carry = loop.init(jax.random.key(0))
    carry, seed_logs = xla.jit(loop.seed_chunk)(carry)
    assert int(carry.batched_steps) == 2 and int(carry.buffer.size) == 2 and int(carry.train_state.step) == 0
    assert seed_logs.metrics == {}
    carry, _ = xla.jit(loop.pretrain, static_argnums=1)(carry, 3)
    assert int(carry.train_state.step) == 3
    carry, logs = xla.jit(loop.chunk, static_argnums=1)(carry, 4)
    assert int(carry.batched_steps) == 6 and int(carry.train_state.step) == 7  # one update per batched step
    # episodes are 5 agent steps: the 5th step (index 4 overall, index 2 in this chunk) ends them
    np.testing.assert_array_equal(np.asarray(logs.ended)[:, 0], [0, 0, 1, 0])
    assert np.all(np.asarray(logs.episode_length)[2] == 5)
    assert np.isfinite(np.asarray(logs.metrics["total_loss"])).all()
    chex.assert_shape(carry.obs, (2, 5))
    chex.assert_shape(logs.episode_return, (4, 2))


@pytest.mark.slow
def test_one_device_step_is_the_host_computation_on_the_same_inputs():
    """Acting, inserting and updating inside the scanned step equal the same calls made one by one."""
    loop = make_loop()
    carry = loop.init(jax.random.key(1))
    carry, _ = xla.jit(loop.seed_chunk)(carry)
    stepped, _ = xla.jit(loop.step)(carry)

    _, k_act, k_update = jax.random.split(carry.key, 3)
    # each call compiled on its own
    action, plan_state = xla.jit(loop.act, static_argnames="seeding")(carry, k_act, seeding=False)
    _, out = xla.jit(jax.vmap(loop.env.step))(carry.env_state, action)
    buffer = xla.jit(device_buffer.insert)(carry.buffer, Transition(
        carry.obs, action, out.reward, out.final_obs, out.terminated, carry.env_state.episode, carry.env_state.t))
    k_sample, k_one = jax.random.split(jax.random.split(k_update, 1)[0])
    batch = xla.jit(device_buffer.sample, static_argnums=(2, 3))(buffer, k_sample, 4, 2)
    train_state, _ = xla.jit(loop.agent.update)(carry.train_state, batch, k_one)
    chex.assert_trees_all_close(stepped.train_state.params, train_state.params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(stepped.plan_state, plan_state, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(stepped.obs, out.obs, rtol=1e-6)


@pytest.mark.slow
def test_evaluation_runs_every_episode_to_its_end_deterministically():
    loop = make_loop()
    params = loop.agent.init(jax.random.key(2)).params
    evaluate = xla.jit(loop.evaluate, static_argnums=2)
    result = evaluate(params, jax.random.key(3), 3)
    chex.assert_shape(result.returns, (3,))
    np.testing.assert_array_equal(np.asarray(result.lengths), [5, 5, 5])
    assert np.all(np.asarray(result.returns) > 0)
    chex.assert_trees_all_equal(result, evaluate(params, jax.random.key(3), 3))


@pytest.mark.slow
def test_a_population_of_seeds_and_learning_rates_equals_separate_runs():
    """Two members (seed, lr) trained by one vmapped program equal two runs of one member each.

    The members act with the policy prior (mpc=False): with a barely trained model nearly all MPPI
    values tie, so the float rounding differences between a batched and an unbatched program
    (1e-7) would flip elite choices; the vmapped planner itself is tested in test_planner.py.
    """
    loop = make_loop(mpc=False)
    keys = jax.random.split(jax.random.key(4), 2)
    lrs = jnp.asarray([3e-4, 1e-3], jnp.float32)

    def run(keys, lrs):
        carry = jax.vmap(loop.init)(keys, lrs)
        carry, _ = jax.vmap(loop.seed_chunk)(carry)
        carry, logs = jax.vmap(loop.chunk, in_axes=(0, None))(carry, 4)
        return carry, logs

    run = xla.jit(run)
    together, logs = run(keys, lrs)
    chex.assert_trees_all_equal((together.train_state.model_opt_state.learning_rate,
                                 together.train_state.pi_opt_state.learning_rate), (lrs, lrs))
    for i in range(2):
        alone, alone_logs = run(keys[i:i + 1], lrs[i:i + 1])
        member = jax.tree.map(lambda x: x[i:i + 1], together)
        chex.assert_trees_all_close(member.train_state.params, alone.train_state.params, rtol=1e-5, atol=1e-6)
        chex.assert_trees_all_close(member.obs, alone.obs, rtol=1e-5, atol=1e-6)
        chex.assert_trees_all_close(logs.metrics["total_loss"][i], alone_logs.metrics["total_loss"][0], rtol=1e-5)
    # the learning rate reaches the optimizer: the same seed at the default rate ends elsewhere
    default_lr, _ = run(keys[1:], lrs[:1])
    assert not np.allclose(np.asarray(default_lr.train_state.params["pi"]["layers_2"]["kernel"]),
                           np.asarray(together.train_state.params["pi"]["layers_2"]["kernel"][1:]))


@pytest.mark.slow
def test_a_multitask_batch_steps_each_task_with_its_own_physics_and_shapes():
    from tdmpc2_jax.envs.mjx_multitask import MultitaskMJXEnv
    from toy_env import PlanarPointMass

    env = MultitaskMJXEnv([MJXEnv("line", episode_length=5, playground_env=PointMass()),
                           MJXEnv("plane", episode_length=5, playground_env=PlanarPointMass())])
    assert (env.obs_dim, env.action_dim, env.action_dims) == (7, 2, (1, 2))
    cfg = tiny.agent_config(obs_dim=7, action_dim=2, batch_size=8, horizon=2, episode_length=5, multitask=True,
                            tasks=env.tasks, action_dims=env.action_dims, episode_lengths=(5, 5), task_dim=4)
    loop = DeviceLoop(Agent(cfg), env, num_envs=4, seed_steps=8, buffer_capacity=12)
    np.testing.assert_array_equal(loop.task, [0, 0, 1, 1])
    carry = loop.init(jax.random.key(0))
    carry, _ = xla.jit(loop.seed_chunk)(carry)
    buffer = carry.buffer
    # the line's rows: observations padded with zeros, random actions zero beyond its one dimension
    written = np.asarray(buffer.obs)[:2]
    assert np.all(written[:, :2, 5:] == 0) and np.all(np.abs(written[:, 2:, 5]) > 0)
    actions = np.asarray(buffer.action)[:2]
    assert np.all(actions[:, :2, 1] == 0) and np.all(actions[:, 2:] != 0)
    # each task ran its own physics: the line's x moves by 0.1 v, the plane's by its own force
    batch = device_buffer.sample(buffer, jax.random.key(1), 16, 1)
    chex.assert_shape(batch.obs, (2, 16, 7))
    line = np.asarray(batch.task) == 0
    assert line.any() and (~line).any()
    obs = np.asarray(batch.obs)
    assert np.all(obs[:, line, 5:] == 0) and np.all(obs[:, ~line, 6] == 1)
    carry, _ = xla.jit(loop.pretrain, static_argnums=1)(carry, 2)
    carry, logs = xla.jit(loop.chunk, static_argnums=1)(carry, 3)
    assert np.isfinite(np.asarray(logs.metrics["total_loss"])).all()
    actions = np.asarray(carry.buffer.action)[2:5]
    assert np.all(actions[:, :2, 1] == 0)  # the planner masks the line's second action dimension
    result = xla.jit(loop.evaluate, static_argnums=2)(carry.train_state.params, jax.random.key(2), 4)
    chex.assert_shape(result.returns, (4,))
    np.testing.assert_array_equal(np.asarray(result.lengths), [5, 5, 5, 5])


@pytest.mark.slow
def test_a_robot_task_with_dictionary_observations_and_falls_trains_its_termination_head():
    from toy_env import RobotPointMass

    env = MJXEnv("robot", episode_length=30, playground_env=RobotPointMass(limit=1.05), suite="locomotion")
    cfg = tiny.agent_config(batch_size=4, horizon=2, episode_length=30, episodic=True)
    loop = DeviceLoop(Agent(cfg), env, num_envs=4, seed_steps=20, buffer_capacity=40)
    carry = loop.init(jax.random.key(3))
    carry, _ = xla.jit(loop.seed_chunk)(carry)
    carry, _ = xla.jit(loop.pretrain, static_argnums=1)(carry, 2)
    carry, logs = xla.jit(loop.chunk, static_argnums=1)(carry, 25)
    chex.assert_shape(carry.obs, (4, 5))  # the state entry of the dictionary observation
    assert float(carry.buffer.terminated.sum()) > 0  # falls stored as terminal transitions
    assert np.isfinite(np.asarray(logs.metrics["termination_loss"])).all()
