"""dm_control's own models on MJX (tdmpc2_jax/envs/mjx_dmc.py): the suite's reward shaping, the task
names, the model changes MJX needs, and rollouts that match host dm_control from a copied state."""
import numpy as np
import pytest

from tdmpc2_jax.envs import mjx_dmc


@pytest.mark.parametrize("sigmoid, value_at_margin", [("gaussian", 0.1), ("linear", 0.5), ("linear", 0.0),
                                                      ("quadratic", 0.0)])
@pytest.mark.parametrize("bounds, margin", [((1.2, np.inf), 0.6), ((0.0, 0.0), 2.0), ((-0.25, 0.25), 0.0),
                                            ((10.0, np.inf), 10.0)])
def test_tolerance_is_dm_controls_reward_shaping(sigmoid, value_at_margin, bounds, margin):
    from dm_control.utils import rewards

    x = np.linspace(-25.0, 25.0, 1001)
    ours = np.asarray(mjx_dmc.tolerance(x, bounds, margin, sigmoid, value_at_margin))
    theirs = rewards.tolerance(x, bounds, margin, sigmoid, value_at_margin)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_every_exact_task_is_a_suite_task_under_its_dash_name_with_the_suffix():
    from tdmpc2_jax.envs.dmc import task_names
    from tdmpc2_jax.envs.mjx import playground_name

    assert {"walker-walk-exact", "cheetah-run-exact", "cartpole-balance-exact", "cartpole-swingup-exact"} <= set(
        mjx_dmc.EXACT_TASKS)
    for task in mjx_dmc.EXACT_TASKS:
        assert task.removesuffix(mjx_dmc.EXACT_SUFFIX) in task_names()
        assert playground_name(task) == task


def test_a_task_without_an_exact_model_is_one_error_naming_the_closest():
    from tdmpc2_jax.envs.mjx import playground_name

    with pytest.raises(ValueError, match="no exact dm_control model on MJX for 'walker-wlak-exact'.*walker-walk-exact"):
        playground_name("walker-wlak-exact")
    with pytest.raises(ValueError, match="hopper-hop-exact.*the tasks are: walker-stand-exact"):
        mjx_dmc.ExactTask("hopper-hop-exact")


def test_the_mjx_run_config_accepts_an_exact_task():
    from tdmpc2_jax.configs.mjx import get_config
    from tdmpc2_jax.run_record import resolve

    assert resolve(get_config("walker-walk-exact")).task == "walker-walk-exact"


def test_models_are_the_suites_xml_with_only_the_energy_computation_turned_off_for_mjx():
    import mujoco
    from dm_control import suite

    for domain, task, changed in (("walker", "walk", False), ("cheetah", "run", False), ("cartpole", "swingup", True)):
        model, changes = mjx_dmc.load_model(domain)
        host = suite.load(domain, task).physics.model.ptr
        assert bool(changes) == changed
        assert model.opt.integrator == host.opt.integrator and model.opt.iterations == host.opt.iterations
        assert model.opt.disableflags == host.opt.disableflags and model.opt.timestep == host.opt.timestep
        assert model.opt.enableflags == host.opt.enableflags & ~int(mujoco.mjtEnableBit.mjENBL_ENERGY)
        np.testing.assert_array_equal(model.geom_friction, host.geom_friction)
        np.testing.assert_array_equal(model.actuator_gear, host.actuator_gear)


@pytest.mark.slow  # compiles MJX physics (about a minute a task on a 2-core CPU)
# walker: 8 agent steps, because MJX's numerics leave float32 noise at step 9 on this model, as they do against
# MuJoCo's C library stepping the same model (experiments/results/mjx_exact)
@pytest.mark.parametrize("task, steps", [("walker-walk", 8), ("cheetah-run", 20), ("cartpole-swingup", 20)])
def test_a_short_rollout_from_a_copied_state_matches_host_dm_control_to_float32_precision(task, steps):
    from experiments import mjx_fidelity as fidelity

    host, mjx = fidelity.load_pair(task, seed=3, variant="exact")
    assert (mjx.obs_dim, mjx.action_dim, mjx.playground_env.dt) == (
        host.obs_dim, host.action_dim, host._env.control_timestep())
    start_obs = host.reset()
    state = fidelity.transplant(mjx, fidelity.host_state(host), fidelity._key(0))
    np.testing.assert_allclose(np.asarray(mjx.observe(state)), start_obs, rtol=1e-5, atol=1e-5)
    policy = fidelity.random_policy(steps, host.action_dim, seed=1)
    host_obs, host_rewards, actions = fidelity.rollout_host(host, start_obs, policy, steps)
    mjx_obs, mjx_rewards, _ = fidelity.rollout_mjx(mjx, state, actions)
    assert fidelity.close(mjx_obs, host_obs, fidelity.TOLERANCE).all(), np.abs(mjx_obs - host_obs).max()
    np.testing.assert_allclose(mjx_rewards, host_rewards, rtol=1e-4, atol=1e-4)
    assert host_rewards.sum() > 0


def test_the_cheetah_starts_upright_and_the_walker_at_any_pitch_as_in_dm_control():
    """dm_control's cheetah draws only its limited joints (its root stays at 0: upright); the walker
    also draws its unlimited hinge, the torso's pitch, in [-pi, pi]."""
    import jax
    import jax.numpy as jnp

    for domain, rotational in (("cheetah", False), ("walker", True)):
        model, _ = mjx_dmc.load_model(domain)
        qpos = jnp.zeros(model.nq)
        draws = np.stack([np.asarray(mjx_dmc.random_joints(model, qpos, key, rotational))
                          for key in jax.random.split(jax.random.key(0), 32)])
        limited = model.jnt_limited.astype(bool)
        low, high = model.jnt_range[limited].T
        assert ((draws[:, limited] >= low - 1e-6) & (draws[:, limited] <= high + 1e-6)).all()
        assert (draws[:, limited].std(axis=0) > 0).all()
        hinge = ~limited & (model.jnt_type == 3)
        if rotational:
            assert (np.abs(draws[:, hinge]) <= np.pi).all() and np.abs(draws[:, hinge]).max() > 2.0
        else:
            np.testing.assert_array_equal(draws[:, ~limited], 0.0)


@pytest.mark.slow  # compiles an MJX reset
def test_a_cartpole_balance_reset_draws_dm_controls_start_ranges():
    import jax

    task = mjx_dmc.ExactTask("cartpole-balance-exact")
    states = jax.jit(jax.vmap(task.reset))(jax.random.split(jax.random.key(0), 64))
    qpos, qvel = np.asarray(states.data.qpos), np.asarray(states.data.qvel)
    assert (np.abs(qpos[:, 0]) <= 0.1).all() and (np.abs(qpos[:, 1]) <= 0.034).all()
    assert qpos[:, 0].std() > 0.03 and 0 < np.abs(qvel).max() < 0.1
    np.testing.assert_allclose(np.asarray(states.obs[:, 1]), np.cos(qpos[:, 1]), atol=1e-6)


def test_controls_are_computed_in_the_physics_dtype():
    """In float64 physics the control is the host's float64 mapping of the float32 action, exactly;
    a float32 mapping rounds it (by up to 6e-8 on [-1, 1])."""
    import jax
    import jax.numpy as jnp

    from tdmpc2_jax.envs.mjx import to_control

    action = np.random.default_rng(0).uniform(-1.0, 1.0, 1000).astype(np.float32)
    low, high = np.full(1000, -1.0), np.full(1000, 1.0)
    host = low + (action.astype(np.float64) + 1.0) * 0.5 * (high - low)
    with jax.enable_x64(True):
        np.testing.assert_array_equal(np.asarray(to_control(action, low, high, jnp.float64)), host)
    rounded = np.asarray(to_control(action, low, high, jnp.float32), np.float64)
    assert 0 < np.abs(rounded - host).max() <= 6e-8
    assert np.asarray(to_control(np.float32([3.0, -3.0]), low[:2], np.float64([1.0, 2.0]), jnp.float32)).tolist() == [1.0, -1.0]
