"""Multi-device runs on 4 forced CPU devices equal the unsharded run (in a subprocess: the device
count is fixed when JAX starts)."""
import os
import pathlib
import subprocess
import sys

import pytest

from tdmpc2_jax import sharding

TESTS = pathlib.Path(__file__).resolve().parent

SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[1])
import jax, jax.numpy as jnp, numpy as np
import chex
import tiny
from toy_env import PointMass
from tdmpc2_jax import sharding, xla
from tdmpc2_jax.agent import Agent
from tdmpc2_jax.envs.mjx import MJXEnv
from tdmpc2_jax.loops.device import DeviceLoop, carry_shardings

assert jax.device_count() == 4, jax.devices()
cfg = tiny.agent_config(horizon=2, mpc=False, episode_length=5)
env = MJXEnv("toy", episode_length=5, playground_env=PointMass())
mesh = sharding.make_mesh()
results, runs = {}, {}
for name, loop_mesh in (("unsharded", None), ("sharded", mesh)):
    loop = DeviceLoop(Agent(cfg), env, num_envs=8, seed_steps=16, buffer_capacity=12, mesh=loop_mesh)
    carry = jax.vmap(loop.init)(jax.random.split(jax.random.key(0), 1))
    if loop_mesh is not None:
        shardings = carry_shardings(carry, mesh, sharding.split_mode(mesh, 1, 8))
        carry = jax.device_put(carry, shardings)
        assert len(carry.buffer.obs.sharding.device_set) == 4
    runs[name] = xla.jit(lambda c, loop=loop: jax.vmap(lambda c: loop.chunk(loop.seed_chunk(c)[0], 3))(c))
    carry, logs = runs[name](carry)
    if loop_mesh is not None:
        assert carry.buffer.obs.sharding.spec == jax.sharding.PartitionSpec(None, None, "data"), carry.buffer.obs.sharding
        assert carry.obs.addressable_shards[0].data.shape == (1, 2, 5)  # 2 of the 8 envs per device
    results[name] = jax.device_get((carry.train_state.params, carry.obs, carry.buffer.reward, logs.metrics))
chex.assert_trees_all_close(results["sharded"], results["unsharded"], rtol=1e-5, atol=1e-6)

# a population of 4 seeds split over the devices, one member each (the loop without a mesh, as the
# run builds it for a split by members), against each member run alone
carries = [jax.vmap(loop.init)(jax.random.split(key, 1)) for key in jax.random.split(jax.random.key(1), 4)]
population = jax.tree.map(lambda *xs: jnp.concatenate(xs), *carries)
split = jax.device_put(population, carry_shardings(population, mesh, sharding.split_mode(mesh, 4, 8)))
split = runs["unsharded"](split)[0]
assert split.train_state.step.addressable_shards[0].data.shape == (1,)
alone = [jax.device_get(runs["unsharded"](carry)[0].train_state.params) for carry in carries]
chex.assert_trees_all_close(jax.device_get(split.train_state.params),
                            jax.tree.map(lambda *xs: np.concatenate(xs), *alone), rtol=1e-5, atol=1e-6)
print("sharded == unsharded")
"""


@pytest.mark.slow
def test_a_sharded_run_on_four_devices_equals_the_unsharded_run():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(TESTS)], env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sharded == unsharded" in result.stdout


def test_env_counts_that_do_not_divide_over_the_devices_are_refused():
    class FakeMesh:
        class devices:
            size = 4

    with pytest.raises(ValueError, match="num_envs=6 is not divisible by the 4 devices"):
        sharding.split_mode(FakeMesh, 1, 6)
    assert sharding.split_mode(FakeMesh, 8, 6) == "members"
    assert sharding.split_mode(FakeMesh, 1, 8) == "envs"
    assert sharding.split_mode(None, 3, 5) is None


def test_a_buffer_larger_than_free_memory_is_refused_before_allocation():
    with pytest.raises(ValueError, match="needs .* GiB per device but only"):
        sharding.check_fits(10 * 2**50, "the replay buffer")
    sharding.check_fits(1024, "a small buffer")
