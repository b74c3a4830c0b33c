"""Playground MJX adapter: protocol, automatic reset, time-limit truncation, episode statistics."""
import pathlib
import re
import struct

import chex
import jax
import numpy as np
import pytest

from tdmpc2_jax import xla
from tdmpc2_jax.envs.mjx import MJXEnv, playground_name


def test_names_map_to_playground_and_host_only_tasks_point_to_dmc():
    assert playground_name("cheetah-run") == "CheetahRun"
    assert playground_name("cup-catch") == "BallInCup"
    assert playground_name("cartpole-swingup-sparse") == "CartpoleSwingupSparse"
    with pytest.raises(ValueError, match="configs/dmc.py:dog-run"):
        playground_name("dog-run")
    with pytest.raises(ValueError, match="did you mean 'walker-walk'"):
        playground_name("walker-wakl")


@pytest.mark.slow
def test_a_dm_control_task_loads_without_mjx_warp_kernels_and_impl_warp_then_fails_clearly():
    import subprocess
    import sys

    script = """
import sys
from tdmpc2_jax.envs.mjx import MJXEnv, playground_name
from tdmpc2_jax.run_config import mjx_config
mjx_config("cheetah-run")
assert "mujoco_playground" not in sys.modules  # a dash name is DM Control's: nothing imported to configure it
env = MJXEnv("cartpole-balance", impl="jax")
assert "warp" not in sys.modules and (env.obs_dim, env.action_dim) == (5, 1)
try:
    playground_name("cartpole-balance", impl="warp")
except ValueError as err:
    print(err)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith("impl='warp' needs MJX's Warp backend"), out.stdout


@pytest.mark.slow
def test_batched_steps_reset_each_env_at_the_time_limit_and_equal_vmapped_steps():
    """vmap(step) resets each env at its time limit and reports the episode; step_batch (resets
    computed only when some episode ended) gives the same results."""
    env = MJXEnv("cartpole-balance", episode_length=3)
    assert (env.obs_dim, env.action_dim) == (5, 1)
    states = xla.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(2), 3))
    actions = jax.random.uniform(jax.random.key(3), (7, 3, 1), minval=-1, maxval=1)

    def rollout(step):
        return xla.jit(lambda s, a: jax.lax.scan(lambda s, a: step(s, a), s, a))(states, actions)

    vmapped = rollout(jax.vmap(env.step))
    states_after, outs = vmapped
    ended = np.asarray(outs.ended)
    np.testing.assert_array_equal(ended[:, 0], [0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(np.asarray(states_after.episode), [2, 2, 2])
    np.testing.assert_array_equal(np.asarray(states_after.t), [1, 1, 1])
    assert not np.asarray(outs.terminated).any(), "a time limit is a truncation, not a terminal"
    rewards = np.asarray(outs.reward)
    np.testing.assert_allclose(np.asarray(outs.episode_return)[2], rewards[:3].sum(0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(outs.episode_return)[5], rewards[3:6].sum(0), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(outs.episode_length)[[2, 5]], 3)
    # After a reset the next observation is a fresh start, not the episode's last observation.
    assert not np.allclose(outs.obs[2], outs.final_obs[2])
    np.testing.assert_allclose(outs.obs[1], outs.final_obs[1])
    assert np.all(rewards >= 0) and np.all(rewards <= 2.0)  # two physics steps of reward in [0, 1]

    batched = rollout(env.step_batch)
    as_arrays = lambda tree: jax.tree.map(
        lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x, tree)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 as_arrays(batched), as_arrays(vmapped))


@pytest.mark.slow
def test_locomotion_and_manipulation_tasks_take_their_own_names_lengths_and_terminations():
    import subprocess

    from mujoco_playground import registry

    from tdmpc2_jax.envs import mjx
    from tdmpc2_jax.envs.mjx import playground_defaults, robot_suite_of
    import tiny

    assert playground_name("Go1JoystickFlatTerrain") == "Go1JoystickFlatTerrain"
    assert (robot_suite_of("Go1JoystickFlatTerrain"), robot_suite_of("PandaPickCube")) == ("locomotion", "manipulation")
    assert robot_suite_of("cheetah-run") is None and playground_defaults("cheetah-run") == {}
    assert playground_defaults("Go1JoystickFlatTerrain") == {"episode_length": 1000, "episodic": True}
    config = tiny.load_config("mjx.py", "PandaPickCube")
    assert (config.episode_length, config.episodic) == (150, True)
    with pytest.raises(ValueError, match="did you mean 'Go1JoystickFlatTerrain'"):
        playground_name("Go1JoystickFlat")

    def clone_fails(*args, **kwargs):
        raise subprocess.CalledProcessError(128, ["git", "clone"])

    original = registry.load
    registry.load = clone_fails
    try:
        with pytest.raises(ValueError, match="MuJoCo Menagerie.*clone https://github.com/google-deepmind/mujoco_menagerie"):
            mjx.MJXEnv("PandaPickCube")
    finally:
        registry.load = original


@pytest.mark.slow
def test_a_robot_task_acts_on_its_state_observation_unscaled_and_terminates():
    from toy_env import RobotPointMass

    env = MJXEnv("robot", episode_length=50, playground_env=RobotPointMass(), suite="locomotion")
    assert (env.obs_dim, env.action_dim, env.action_repeat) == (5, 1, 1)
    state = env.reset(jax.random.key(0))
    assert env.observe(state).shape == (5,)
    x0, v0 = float(state.inner.x), float(state.inner.v)
    state, out = xla.jit(env.step)(state, np.asarray([0.5]))
    # one physics step of the action as it is (the task scales it by 10): v = 0.9 v0 + 0.1 * 10 * 0.5
    np.testing.assert_allclose(float(state.inner.x), x0 + 0.1 * (0.9 * v0 + 0.5), rtol=1e-5)
    assert out.obs.shape == (5,) and float(out.terminated) == 0.0
    step = xla.jit(env.step)
    for t in range(60):
        state, out = step(state, np.asarray([1.0]))
        if bool(out.ended):
            break
    assert float(out.terminated) == 1.0 and 0 < int(out.episode_length) < 50  # a fall, before the time limit
    assert int(state.t) == 0  # a fresh episode took its place


# Playground robot tasks whose Menagerie meshes are visual only: (task, Playground's XML folder, Menagerie robot)
ROBOTS = [("Go1JoystickFlatTerrain", "locomotion/go1/xmls", "unitree_go1"),
          ("LeapCubeRotateZAxis", "manipulation/leap_hand/xmls", "leap_hand")]


def write_stand_in_meshes(menagerie: pathlib.Path, xml_dir: str, robot: str, size: float = 0.01) -> None:
    """A tetrahedron of edge `size` in place of each Menagerie mesh that the Playground XMLs in
    xml_dir name (those not shipped with Playground)."""
    import mujoco_playground

    xmls = pathlib.Path(mujoco_playground.__file__).parent / "_src" / xml_dir
    own = {f.name for f in xmls.rglob("*") if f.is_file()}
    names = {pathlib.Path(m).name for xml in xmls.glob("*.xml") for m in re.findall(r'file="([^"]+\.(?:stl|obj))"', xml.read_text())}
    corners = [(0, 0, 0), (size, 0, 0), (0, size, 0), (0, 0, size)]
    faces = [(0, 2, 1), (0, 1, 3), (0, 3, 2), (1, 2, 3)]
    stl = bytes(80) + struct.pack("<I", len(faces)) + b"".join(
        struct.pack("<12fH", 0, 0, 0, *corners[a], *corners[b], *corners[c], 0) for a, b, c in faces)
    obj = "".join(f"v {x} {y} {z}\n" for x, y, z in corners) + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in faces)
    assets = menagerie / robot / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    for name in names - own:
        if name.endswith(".stl"):
            (assets / name).write_bytes(stl)
        else:
            (assets / name).write_text(obj)


@pytest.mark.parametrize("task, xml_dir, robot", ROBOTS)
@pytest.mark.slow
def test_a_robot_task_runs_from_the_menagerie_checkout_that_the_environment_names(tmp_path, monkeypatch, task, xml_dir,
                                                                                  robot):
    """The task's Menagerie meshes only draw: two sets of stand-ins of different sizes give the same
    masses, inertias and collision flags, so with stand-ins the task is Playground's, physics and all."""
    from mujoco_playground._src import mjx_env

    monkeypatch.setattr(mjx_env, "MENAGERIE_PATH", mjx_env.MENAGERIE_PATH)  # put back after the test
    monkeypatch.setenv("MUJOCO_MENAGERIE_DIR", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="MUJOCO_MENAGERIE_DIR=.*missing is not a directory"):
        MJXEnv(task)
    models = []
    for size in (0.01, 0.3):
        write_stand_in_meshes(tmp_path / str(size), xml_dir, robot, size)
        monkeypatch.setenv("MUJOCO_MENAGERIE_DIR", str(tmp_path / str(size)))
        env = MJXEnv(task)
        models.append(env.playground_env.mj_model)
    for field in ("body_mass", "body_inertia", "body_ipos", "geom_contype", "geom_conaffinity"):
        np.testing.assert_array_equal(getattr(models[0], field), getattr(models[1], field), err_msg=field)
    state = xla.jit(env.reset)(jax.random.key(0))
    state, out = xla.jit(env.step)(state, np.zeros(env.action_dim, np.float32))
    chex.assert_shape(out.obs, (env.obs_dim,))
    assert np.all(np.isfinite(np.asarray(out.obs))) and float(out.terminated) == 0.0
