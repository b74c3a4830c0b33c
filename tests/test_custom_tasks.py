"""The custom mt30 tasks: models, rewards, starts, observations and time limits of the TD-MPC2 tasks."""
import numpy as np
import pytest
from dm_control import suite
from dm_control.mujoco.wrapper.mjbindings import enums
from dm_control.utils import rewards

from tdmpc2_jax.envs import custom_tasks

INF = float("inf")


def make(task, seed=0):
    return custom_tasks.load(task, seed)


def reward_at(env, qpos=None, qvel=None):
    """The task's reward in the model's default state with the {joint: value} `qpos` / `qvel` set."""
    physics = env.physics
    with physics.reset_context():
        for joint, value in (qpos or {}).items():
            physics.named.data.qpos[joint] = value
        for joint, value in (qvel or {}).items():
            physics.named.data.qvel[joint] = value
    return env.task.get_reward(physics)


def test_the_eleven_mt30_custom_tasks():
    assert sorted(custom_tasks.TASKS) == sorted([
        "walker-walk-backwards", "walker-run-backwards", "cheetah-run-backwards", "cheetah-run-front",
        "cheetah-run-back", "cheetah-jump", "hopper-hop-backwards", "reacher-three-easy", "reacher-three-hard",
        "cup-spin", "pendulum-spin"])


@pytest.mark.parametrize("task, control_timestep, time_limit", [
    ("walker-walk-backwards", 0.025, 25), ("walker-run-backwards", 0.025, 25),
    ("cheetah-run-backwards", 0.01, 10), ("cheetah-run-front", 0.01, 10), ("cheetah-run-back", 0.01, 10),
    ("cheetah-jump", 0.01, 10), ("hopper-hop-backwards", 0.02, 20), ("reacher-three-easy", 0.02, 20),
    ("reacher-three-hard", 0.02, 20), ("cup-spin", 0.02, 20), ("pendulum-spin", 0.02, 20)])
def test_control_timestep_and_time_limit(task, control_timestep, time_limit):
    env = make(task)
    assert env.control_timestep() == pytest.approx(control_timestep)
    assert env._step_limit * env.control_timestep() == pytest.approx(time_limit)


@pytest.mark.parametrize("task, shapes", [
    ("walker-run-backwards", {"orientations": (14,), "height": (), "velocity": (9,)}),
    ("cheetah-jump", {"position": (8,), "velocity": (9,)}),
    ("hopper-hop-backwards", {"position": (6,), "velocity": (7,), "touch": (2,)}),
    ("reacher-three-hard", {"position": (3,), "to_target": (2,), "velocity": (3,)}),
    ("cup-spin", {"position": (4,), "velocity": (4,)}),
    ("pendulum-spin", {"orientation": (2,), "velocity": (1,)})])
def test_observation_keys_order_and_shapes(task, shapes):
    observation = make(task).reset().observation
    assert [(k, np.shape(v)) for k, v in observation.items()] == list(shapes.items())


@pytest.mark.parametrize("task, ground, size", [("cheetah-jump", "ground", [200, 0.8, 0.5]),
                                                ("walker-walk-backwards", "floor", [500, 0.8, 0.2])])
def test_cheetah_and_walker_ground_is_lengthened_and_nothing_else(task, ground, size):
    model = make(task).physics.model
    domain, name = task.split("-")[0], {"cheetah": "run", "walker": "walk"}[task.split("-")[0]]
    reference = suite.load(domain, name).physics.model
    np.testing.assert_allclose(model.geom_size[model.name2id(ground, "geom")], size)
    others = np.arange(model.ngeom) != model.name2id(ground, "geom")
    np.testing.assert_array_equal(model.geom_size[others], reference.geom_size[others])
    for field in ("body_pos", "body_mass", "geom_pos", "jnt_range", "dof_damping", "actuator_gear"):
        np.testing.assert_array_equal(getattr(model, field), getattr(reference, field))


def test_three_link_reacher_model():
    physics = make("reacher-three-easy").physics
    named = physics.named.model
    joints = [physics.model.id2name(i, "joint") for i in range(physics.model.njnt)]
    assert joints == ["shoulder0", "shoulder1", "wrist"]
    np.testing.assert_allclose(named.body_pos[["arm0", "arm1", "hand", "finger"]],
                               [[0, 0, 0.01], [0.09, 0, 0], [0.09, 0, 0], [0.09, 0, 0]])
    np.testing.assert_allclose(named.geom_size[["arm0", "arm1", "hand"], :2], [[0.01, 0.045], [0.01, 0.045], [0.01, 0.05]])
    np.testing.assert_allclose(named.geom_pos[["arm0", "arm1", "hand"], 0], [0.045, 0.045, 0.05])
    np.testing.assert_allclose(named.geom_size[["finger", "root"], 0], [0.01, 0.011])
    np.testing.assert_array_equal(named.jnt_limited, [0, 1, 1])
    np.testing.assert_allclose(named.jnt_range[["shoulder1", "wrist"]], np.deg2rad([[-80, 80], [-80, 80]]))
    np.testing.assert_allclose(physics.model.dof_damping, [0.01, 0.01, 0.01])
    np.testing.assert_allclose(physics.model.actuator_gear[:, 0], [0.05, 0.05, 0.05])
    np.testing.assert_allclose(physics.model.actuator_ctrlrange, [[-1, 1]] * 3)
    assert physics.model.opt.timestep == pytest.approx(0.02)
    assert physics.model.opt.disableflags & enums.mjtDisableBit.mjDSBL_CONTACT
    with physics.reset_context():
        physics.named.data.qpos["wrist"] = np.pi / 2
    np.testing.assert_allclose(physics.named.data.geom_xpos["finger"], [0.18, 0.09, 0.01], atol=1e-12)


@pytest.mark.parametrize("task, target_size", [("reacher-three-easy", 0.05), ("reacher-three-hard", 0.015)])
def test_three_link_reacher_target_and_sparse_reward(task, target_size):
    env = make(task)
    env.reset()
    physics = env.physics
    assert physics.named.model.geom_size["target", 0] == pytest.approx(target_size)
    assert 0.05 <= np.linalg.norm(physics.named.model.geom_pos["target", :2]) <= 0.2
    for gap, reward in ((target_size + 0.01 - 1e-3, 1.0), (target_size + 0.01 + 1e-3, 0.0)):
        physics.named.model.geom_pos["target", :2] = [0.27 + gap, 0.0]  # fingertip at (0.27, 0) when straight
        assert reward_at(env) == pytest.approx(reward)


def test_cheetah_run_backwards_reward():
    env = make("cheetah-run-backwards")
    for speed, reward in ((-9, 1.0), (-8, 1.0), (-4, 0.5), (-2, 0.25), (0, 0.0), (3, 0.0)):
        assert reward_at(env, qvel={"rootx": speed}) == pytest.approx(reward)


def _lifted(height):
    return rewards.tolerance(height, bounds=(1.2, INF), margin=0.6)


# Default pose, raised, and pitched so that the back foot is up and the front foot down.
CHEETAH_POSES = [{}, {"rootz": 2.0}, {"rootz": 0.6, "rooty": 0.5}]


@pytest.mark.parametrize("task, lifted_foot", [("cheetah-run-front", "bfoot"), ("cheetah-run-back", "ffoot")])
def test_cheetah_run_on_one_foot_reward(task, lifted_foot):
    env = make(task)
    assert reward_at(env, {"rootz": 2.0}, {"rootx": 6}) == pytest.approx(1.0)
    assert reward_at(env, {"rootz": 2.0}, {"rootx": 3}) == pytest.approx(3.5 / 6)
    assert reward_at(env, {"rootz": 2.0}, {"rootx": -1}) == pytest.approx(1 / 6)
    for pose in CHEETAH_POSES:
        for speed in (0.0, 2.0, 7.0):
            reward = reward_at(env, pose, {"rootx": speed})
            xpos = env.physics.named.data.xpos
            up = (3 * _lifted(xpos[lifted_foot, "z"]) + 2 * _lifted(xpos["torso", "z"])) / 5
            run = min(1.0, max(0.0, speed / 6))
            assert reward == pytest.approx(up * (5 * run + 1) / 6)
    front_up = reward_at(env, CHEETAH_POSES[2], {"rootx": 6})
    assert (front_up == pytest.approx(1.0)) == (lifted_foot == "bfoot")


def test_cheetah_jump_reward():
    env = make("cheetah-jump")
    for speed, reward in ((0.0, 1.0), (0.5, 1.0), (0.75, 5.5 / 6), (-0.75, 5.5 / 6), (1.0, 5 / 6), (2.0, 5 / 6)):
        assert reward_at(env, {"rootz": 2.0}, {"rootx": speed}) == pytest.approx(reward)
    for pose in CHEETAH_POSES:
        reward = reward_at(env, pose, {"rootx": 0.6})
        xpos = env.physics.named.data.xpos
        still = 0.8  # 0.1 past the 0.5 bound with margin 0.5
        stand = [(5 * _lifted((xpos["torso", "z"] + xpos[foot, "z"]) / 2) + still) / 6 for foot in ("bfoot", "ffoot")]
        assert reward == pytest.approx(sum(stand) / 2)


@pytest.mark.parametrize("task, speeds", [("walker-walk-backwards", (-1.0, -0.75, -0.5, 0.0)),
                                          ("walker-run-backwards", (-8.0, -6.0, -4.0, 0.0))])
def test_walker_backwards_reward(task, speeds):
    env = make(task)  # default pose: torso 1.3 high, upright
    rewards_at_speeds = [reward_at(env, qvel={"rootx": speed}) for speed in speeds]
    np.testing.assert_allclose(rewards_at_speeds, [1.0, 4.75 / 6, 3.5 / 6, 1 / 6])
    assert reward_at(env, qvel={"rootx": -speeds[0]}) == pytest.approx(1 / 6)
    lowered = reward_at(env, {"rootz": -0.7}, {"rootx": speeds[0]})  # torso at 0.6: standing 0.1 at the margin
    assert lowered == pytest.approx((3 * 0.1 + 1) / 4)


def test_hopper_hop_backwards_reward():
    env = make("hopper-hop-backwards")  # default pose: torso 0.98 above the foot
    for speed, reward in ((-2.0, 1.0), (-1.0, 1.0), (-0.75, 0.75), (-0.5, 0.5), (0.0, 0.0), (1.0, 0.0)):
        assert reward_at(env, qvel={"rootx": speed}) == pytest.approx(reward)
    assert reward_at(env, {"knee": 2.0}, {"rootx": -1.0}) == 0.0  # torso 0.57 above the foot: under 0.6
    assert reward_at(env, {"knee": 1.5}, {"rootx": -1.0}) == pytest.approx(1.0)  # 0.73 above the foot


def test_pendulum_spin_reward():
    env = make("pendulum-spin")
    for speed, reward in ((9.0, 1.0), (-9.0, 1.0), (12.0, 1.0), (6.75, 0.75), (-4.5, 0.5), (0.0, 0.0)):
        assert reward_at(env, qvel={"hinge": speed}) == pytest.approx(reward)


def test_cup_spin_reward():
    env = make("cup-spin")  # ball_z = q puts the ball 0.35 - q below the cup's target
    for ball_z, far in ((-0.15, 1.0), (-0.025, 0.75), (0.1, 0.5), (0.9, 1.0)):
        for velocity, fast in (((3.6, 4.8), 1.0), ((4.5, 0.0), 0.75), ((0.0, -3.0), 0.5)):
            reward = reward_at(env, {"ball_z": ball_z}, {"ball_x": velocity[0], "ball_z": velocity[1]})
            assert reward == pytest.approx((far + 2 * fast) / 3)
    assert reward_at(env, {"ball_z": 0.35}, {"ball_x": 6.0}) == 0.0  # in the cup


class ScriptedRandom:
    """Stands in for the task's RandomState: uniform draws at scripted fractions of their range."""

    def __init__(self, fractions):
        self.fractions, self.ranges = list(fractions), []

    def uniform(self, low=0.0, high=1.0):
        self.ranges.append((low, high))
        return low + self.fractions.pop(0) * (high - low)


@pytest.mark.parametrize("first, may_start_outside", [(0.09, True), (0.11, False)])
def test_cup_spin_start(first, may_start_outside):
    env = make("cup-spin")
    outside, inside = (0.95, 0.05), (0.5, 0.5)  # ball at (0.18, 0.215): clear of the cup; (0, 0.35): in it
    env.task._random = ScriptedRandom([first, *outside, *inside])
    env.task.initialize_episode(env.physics)
    assert env.task.random.ranges[:3] == [(0.0, 1.0), (-0.2, 0.2), (0.2, 0.5)]
    assert env.physics.data.ncon == 0
    assert env.physics.in_target() == (0.0 if may_start_outside else 1.0)
    assert len(env.task.random.fractions) == (2 if may_start_outside else 0)


def test_cup_spin_starts_mostly_in_the_cup():
    env = make("cup-spin", seed=1)
    starts = [(env.reset(), env.physics.in_target(), env.physics.data.ncon)[1:] for _ in range(40)]
    assert all(ncon == 0 for _, ncon in starts)
    assert sum(in_cup for in_cup, _ in starts) >= 32  # cup-catch starts in the cup in ~2% of episodes
