"""The eleven custom DMControl tasks of the TD-MPC2 mt30 task set.

Models. cheetah-* and walker-* run on the suite models with a longer ground plane (cheetah half-length
200 instead of 100, walker 500 instead of 250; planes collide as infinite planes, so only rendering
changes). hopper, pendulum and cup tasks use the suite models unchanged. reacher-three-* uses the
three-link arm of `THREE_LINK_REACHER`.

Tasks (initialisation, observations and control timestep are the suite domain's unless stated):
- cheetah-run-backwards: 1 at speed <= -8, linear to 0 at speed 0.
- cheetah-run-front / cheetah-run-back: run forward on the front (back) foot, the other foot and the
  torso lifted: up = (3 foot + 2 torso) / 5 with heights >= 1.2 (gaussian margin 0.6), run = speed >= 6
  (linear margin 6, 0 at the margin); reward up * (5 run + 1) / 6.
- cheetah-jump: the mean of standing on the front foot and on the back foot, each
  (5 height + still) / 6 with height = mean of torso and lifted foot >= 1.2 (gaussian margin 0.6) and
  still = |speed| <= 0.5 (linear margin 0.5, 0 at the margin).
- walker-walk-backwards / walker-run-backwards: the suite's stand reward (3 standing + upright) / 4 times
  (5 move + 1) / 6, move = horizontal velocity <= -1 (-8), linear margin 0.5 (4), 0.5 at the margin.
- hopper-hop-backwards: the suite's standing term (height in [0.6, 2]) times hop = speed <= -1, linear
  margin 0.5, 0.5 at the margin.
- pendulum-spin: pendulum-swingup with reward |angular velocity| >= 9, linear margin 4.5, 0.5 at the margin.
- cup-spin: one episode in ten starts the ball at any collision-free position, the others inside the
  cup; reward (1 - ball in cup) (far + 2 fast) / 3 with far = ball-to-target distance >= 0.5 and
  fast = ball speed >= 6, both linear with margin half the bound and 0.5 at the margin.
- reacher-three-easy / reacher-three-hard: the suite's Reacher task (target radius 0.05 / 0.015 placed
  0.05-0.20 from the centre, sparse reward, observations position, to_target, velocity) on the
  three-link arm.

Time limits (seconds) / control timesteps: cheetah 10 / 0.01, walker 25 / 0.025, hopper 20 / 0.02,
pendulum 20 / 0.02, cup 20 / 0.02, reacher 20 / 0.02: 1000 control steps each.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from dm_control.rl import control
from dm_control.suite import base, ball_in_cup, cheetah, common, hopper, pendulum, reacher, walker
from dm_control.utils import rewards

INF = float("inf")
CHEETAH_HEIGHT = 1.2  # torso / lifted-foot height of the one-foot and jump cheetah tasks
CHEETAH_STILL_SPEED = 0.5  # jump: horizontal speed tolerated while standing on one foot
HOP_SPEED = 2.0
PENDULUM_SPIN_SPEED = 9.0  # angular speed
CUP_SPIN_DISTANCE = 0.5  # ball-to-target distance
CUP_SPIN_SPEED = 6.0  # ball speed
CUP_START_OUTSIDE = 0.1  # fraction of cup-spin episodes whose ball may start outside the cup


def _at_least(value: float, bound: float, margin: float, value_at_margin: float) -> float:
    """1 at `value` >= `bound`, linear down to `value_at_margin` at `bound - margin`."""
    return rewards.tolerance(value, bounds=(bound, INF), margin=margin, value_at_margin=value_at_margin,
                             sigmoid="linear")


def _at_most(value: float, bound: float, margin: float, value_at_margin: float) -> float:
    """1 at `value` <= `bound`, linear down to `value_at_margin` at `bound + margin`."""
    return rewards.tolerance(value, bounds=(-INF, bound), margin=margin, value_at_margin=value_at_margin,
                             sigmoid="linear")


def _lifted(height: float) -> float:
    return rewards.tolerance(height, bounds=(CHEETAH_HEIGHT, INF), margin=CHEETAH_HEIGHT / 2)


class CustomCheetah(cheetah.Cheetah):
    """Cheetah goals: run-backwards, run-front, run-back, jump."""

    def __init__(self, goal: str, random=None):
        if goal not in ("run-backwards", "run-front", "run-back", "jump"):
            raise ValueError(f"unknown cheetah goal {goal!r}")
        super().__init__(random)
        self._goal = goal

    def _run_on_one_foot(self, physics, lifted_foot: str) -> float:
        xpos = physics.named.data.xpos
        up = (3 * _lifted(xpos[lifted_foot, "z"]) + 2 * _lifted(xpos["torso", "z"])) / 5
        speed = cheetah._RUN_SPEED * 0.6
        run = _at_least(physics.speed(), speed, speed, 0.0)
        return up * (5 * run + 1) / 6

    def _stand_on_one_foot(self, physics, lifted_foot: str) -> float:
        xpos = physics.named.data.xpos
        height = _lifted((xpos["torso", "z"] + xpos[lifted_foot, "z"]) / 2)
        still = rewards.tolerance(physics.speed(), bounds=(-CHEETAH_STILL_SPEED, CHEETAH_STILL_SPEED),
                                  margin=CHEETAH_STILL_SPEED, value_at_margin=0.0, sigmoid="linear")
        return (5 * height + still) / 6

    def get_reward(self, physics) -> float:
        if self._goal == "run-backwards":
            speed = cheetah._RUN_SPEED * 0.8
            return _at_most(physics.speed(), -speed, speed, 0.0)
        if self._goal == "run-front":
            return self._run_on_one_foot(physics, "bfoot")
        if self._goal == "run-back":
            return self._run_on_one_foot(physics, "ffoot")
        return (self._stand_on_one_foot(physics, "bfoot") + self._stand_on_one_foot(physics, "ffoot")) / 2


class BackwardsWalker(walker.PlanarWalker):
    """The suite walker moving backwards at `move_speed`."""

    def get_reward(self, physics) -> float:
        standing = rewards.tolerance(physics.torso_height(), bounds=(walker._STAND_HEIGHT, INF),
                                     margin=walker._STAND_HEIGHT / 2)
        stand = (3 * standing + (1 + physics.torso_upright()) / 2) / 4
        move = _at_most(physics.horizontal_velocity(), -self._move_speed, self._move_speed / 2, 0.5)
        return stand * (5 * move + 1) / 6


class BackwardsHopper(hopper.Hopper):
    """The suite hopper hopping backwards."""

    def __init__(self, random=None):
        super().__init__(hopping=True, random=random)

    def get_reward(self, physics) -> float:
        standing = rewards.tolerance(physics.height(), (hopper._STAND_HEIGHT, 2))
        return standing * _at_most(physics.speed(), -HOP_SPEED / 2, HOP_SPEED / 4, 0.5)


class PendulumSpin(pendulum.SwingUp):
    """Spin the pendulum as fast as possible, either way."""

    def get_reward(self, physics) -> float:
        return _at_least(np.linalg.norm(physics.angular_velocity()), PENDULUM_SPIN_SPEED, PENDULUM_SPIN_SPEED / 2, 0.5)


class CupSpin(ball_in_cup.BallInCup):
    """Swing the ball around the cup: far from its target and fast, never inside."""

    def initialize_episode(self, physics):
        """Collision-free ball position, inside the cup unless this episode may start anywhere."""
        anywhere = self.random.uniform() < CUP_START_OUTSIDE
        while True:
            physics.named.data.qpos["ball_x"] = self.random.uniform(-0.2, 0.2)
            physics.named.data.qpos["ball_z"] = self.random.uniform(0.2, 0.5)
            physics.after_reset()
            if physics.data.ncon == 0 and (anywhere or physics.in_target()):
                break
        base.Task.initialize_episode(self, physics)

    def get_reward(self, physics) -> float:
        distance = np.linalg.norm(physics.ball_to_target())
        speed = np.linalg.norm(physics.named.data.qvel[["ball_x", "ball_z"]])
        far = _at_least(distance, CUP_SPIN_DISTANCE, CUP_SPIN_DISTANCE / 2, 0.5)
        fast = _at_least(speed, CUP_SPIN_SPEED, CUP_SPIN_SPEED / 2, 0.5)
        return (1.0 - physics.in_target()) * (far + 2 * fast) / 3


# A planar arm of three hinged links on the suite reacher's 0.6 x 0.6 arena: capsules 0.09, 0.09 and
# 0.10 long, the fingertip 0.09 along the last one; elbow and wrist limited to +-80 degrees. The target
# and finger geoms keep the suite's names, so its Reacher task runs on the arm unchanged.
THREE_LINK_REACHER = """
<mujoco model="three-link planar reacher">
  <include file="./common/skybox.xml"/>
  <include file="./common/visual.xml"/>
  <include file="./common/materials.xml"/>
  <option timestep="0.02"><flag contact="disable"/></option>
  <default>
    <joint type="hinge" axis="0 0 1" damping="0.01"/>
    <motor gear=".05" ctrlrange="-1 1" ctrllimited="true"/>
  </default>
  <worldbody>
    <light name="light" pos="0 0 1"/>
    <camera name="fixed" pos="0 0 .75" quat="1 0 0 0"/>
    <geom name="ground" type="plane" pos="0 0 0" size=".3 .3 10" material="grid"/>
    <geom name="wall_x" type="plane" pos="-.3 0 .02" zaxis="1 0 0" size=".02 .3 .02" material="decoration"/>
    <geom name="wall_y" type="plane" pos="0 -.3 .02" zaxis="0 1 0" size=".3 .02 .02" material="decoration"/>
    <geom name="wall_neg_x" type="plane" pos=".3 0 .02" zaxis="-1 0 0" size=".02 .3 .02" material="decoration"/>
    <geom name="wall_neg_y" type="plane" pos="0 .3 .02" zaxis="0 -1 0" size=".3 .02 .02" material="decoration"/>
    <geom name="root" type="cylinder" fromto="0 0 0 0 0 0.02" size=".011" material="decoration"/>
    <body name="arm0" pos="0 0 .01">
      <geom name="arm0" type="capsule" fromto="0 0 0 0.09 0 0" size=".01" material="self"/>
      <joint name="shoulder0"/>
      <body name="arm1" pos=".09 0 0">
        <geom name="arm1" type="capsule" fromto="0 0 0 0.09 0 0" size=".01" material="self"/>
        <joint name="shoulder1" limited="true" range="-80 80"/>
        <body name="hand" pos=".09 0 0">
          <geom name="hand" type="capsule" fromto="0 0 0 0.1 0 0" size=".01" material="self"/>
          <joint name="wrist" limited="true" range="-80 80"/>
          <body name="finger" pos=".09 0 0">
            <camera name="hand" pos="0 0 .2" mode="track"/>
            <geom name="finger" type="sphere" size=".01" material="effector"/>
          </body>
        </body>
      </body>
    </body>
    <geom name="target" pos="0 0 .01" material="target" type="sphere" size=".05"/>
  </worldbody>
  <actuator>
    <motor name="shoulder0" joint="shoulder0"/>
    <motor name="shoulder1" joint="shoulder1"/>
    <motor name="wrist" joint="wrist"/>
  </actuator>
</mujoco>
"""

# The suite models with a longer ground plane: (file, suite ground geom, custom ground geom).
LONG_GROUND = {
    "cheetah": ("cheetah.xml", b'size="100 .8 .5"', b'size="200 .8 .5"'),
    "walker": ("walker.xml", b'size="250 .8 .2"', b'size="500 .8 .2"'),
}


def _long_ground_model(domain: str) -> bytes:
    """The suite's `domain` model with its ground plane lengthened."""
    filename, old, new = LONG_GROUND[domain]
    xml = common.read_model(filename)
    if xml.count(old) != 1:
        raise ValueError(f"the suite's {filename} no longer has one ground plane of {old.decode()}")
    return xml.replace(old, new)


def _cheetah(goal: str, random) -> control.Environment:
    physics = cheetah.Physics.from_xml_string(_long_ground_model("cheetah"), common.ASSETS)
    return control.Environment(physics, CustomCheetah(goal, random=random), time_limit=cheetah._DEFAULT_TIME_LIMIT)


def _walker(move_speed: float, random) -> control.Environment:
    physics = walker.Physics.from_xml_string(_long_ground_model("walker"), common.ASSETS)
    return control.Environment(physics, BackwardsWalker(move_speed, random=random),
                               time_limit=walker._DEFAULT_TIME_LIMIT, control_timestep=walker._CONTROL_TIMESTEP)


def _hopper(random) -> control.Environment:
    physics = hopper.Physics.from_xml_string(*hopper.get_model_and_assets())
    return control.Environment(physics, BackwardsHopper(random=random), time_limit=hopper._DEFAULT_TIME_LIMIT,
                               control_timestep=hopper._CONTROL_TIMESTEP)


def _pendulum(random) -> control.Environment:
    physics = pendulum.Physics.from_xml_string(*pendulum.get_model_and_assets())
    return control.Environment(physics, PendulumSpin(random=random), time_limit=pendulum._DEFAULT_TIME_LIMIT)


def _cup(random) -> control.Environment:
    physics = ball_in_cup.Physics.from_xml_string(*ball_in_cup.get_model_and_assets())
    return control.Environment(physics, CupSpin(random=random), time_limit=ball_in_cup._DEFAULT_TIME_LIMIT,
                               control_timestep=ball_in_cup._CONTROL_TIMESTEP)


def _three_link_reacher(target_size: float, random) -> control.Environment:
    physics = reacher.Physics.from_xml_string(THREE_LINK_REACHER, common.ASSETS)
    return control.Environment(physics, reacher.Reacher(target_size=target_size, random=random),
                               time_limit=reacher._DEFAULT_TIME_LIMIT)


TASKS: dict[str, Callable[[np.random.RandomState], control.Environment]] = {
    "walker-walk-backwards": lambda random: _walker(walker._WALK_SPEED, random),
    "walker-run-backwards": lambda random: _walker(walker._RUN_SPEED, random),
    "cheetah-run-backwards": lambda random: _cheetah("run-backwards", random),
    "cheetah-run-front": lambda random: _cheetah("run-front", random),
    "cheetah-run-back": lambda random: _cheetah("run-back", random),
    "cheetah-jump": lambda random: _cheetah("jump", random),
    "hopper-hop-backwards": _hopper,
    "reacher-three-easy": lambda random: _three_link_reacher(reacher._BIG_TARGET, random),
    "reacher-three-hard": lambda random: _three_link_reacher(reacher._SMALL_TARGET, random),
    "cup-spin": _cup,
    "pendulum-spin": _pendulum,
}


def load(name: str, seed: int) -> control.Environment:
    """The custom task `name`, its episodes drawn from `seed`."""
    return TASKS[name](np.random.RandomState(seed))
