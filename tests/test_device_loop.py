"""The on-device loop: seed phase, planning, buffer inserts and updates in one scanned program."""
import chex
import jax
import numpy as np

from tdmpc2_jax.agent import Agent
from tdmpc2_jax.buffers import device as device_buffer
from tdmpc2_jax.config import make_config
from tdmpc2_jax.envs.mjx import MJXEnv
from tdmpc2_jax.loops.device import DeviceLoop

TINY = dict(obs_dim=5, action_dim=1, enc_dim=16, mlp_dim=16, latent_dim=16, num_q=2, batch_size=4, horizon=2,
            num_samples=16, num_pi_trajs=2, num_elites=4, iterations=2, episode_length=5)


def make_loop():
    env = MJXEnv("cartpole-balance", episode_length=5)
    return DeviceLoop(Agent(make_config(TINY)), env, num_envs=2, seed_steps=4, buffer_capacity=12)


def test_a_chunk_collects_resets_and_trains_on_device():
    loop = make_loop()
    carry = loop.init(jax.random.key(0))
    carry, logs = jax.jit(loop.chunk, static_argnums=1)(carry, 6)
    assert int(carry.agent_step) == 6 and int(carry.buffer.size) == 6
    # transitions collected after step k: 2 (k + 1); updates run once more than 4 were collected
    assert int(carry.train_state.step) == 4
    np.testing.assert_array_equal(np.asarray(logs.ended)[:, 0], [0, 0, 0, 0, 1, 0])
    assert np.all(np.asarray(logs.episode_length)[4] == 5)
    assert float(logs.metrics["total_loss"][1]) == 0.0 and np.isfinite(np.asarray(logs.metrics["total_loss"][2:])).all()
    chex.assert_shape(carry.obs, (2, 5))


def test_one_device_step_is_the_host_computation_on_the_same_inputs():
    """Acting, inserting and updating inside the scanned step equal the same calls made one by one."""
    loop = make_loop()
    carry = loop.init(jax.random.key(1))
    carry, _ = jax.jit(loop.chunk, static_argnums=1)(carry, 3)  # past the seed phase: the next step plans
    stepped, _ = jax.jit(loop.step)(carry)

    key, k_act, k_update = jax.random.split(carry.key, 3)
    action, plan_state = loop.act(carry, k_act)
    env_state, out = jax.vmap(loop.env.step)(carry.env_state, action)
    buffer = device_buffer.insert(carry.buffer, device_buffer.Transition(
        carry.obs, action, out.reward, out.final_obs, out.terminated, carry.env_state.episode, carry.env_state.t))
    k_sample, k_one = jax.random.split(jax.random.split(k_update, 1)[0])
    batch = device_buffer.sample(buffer, k_sample, 4, 2)
    train_state, _ = jax.jit(loop.agent.update)(carry.train_state, batch, k_one)
    chex.assert_trees_all_close(stepped.train_state.params, train_state.params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(stepped.plan_state, plan_state, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(stepped.obs, out.obs, rtol=1e-6)
