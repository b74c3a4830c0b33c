"""The TD-MPC2 custom DMControl variants, defined here.

New rewards on the standard suite models: cheetah-run-backwards, cheetah-run-front, cheetah-run-back,
cheetah-jump, walker-walk-backwards, walker-run-backwards, hopper-hop-backwards, pendulum-spin,
cup-spin (the ball starts in the cup in 90% of episodes and is rewarded for circling it fast).
reacher-three-easy/hard: the suite's Reacher task on a three-link arm described below.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from dm_control.rl import control
from dm_control.suite import ball_in_cup, cheetah, common, hopper, pendulum, reacher, walker
from dm_control.utils import rewards

INF = float("inf")
JUMP_HEIGHT = 1.2  # cheetah torso/foot height for the one-foot and jump variants
HOP_SPEED = 2.0
SPIN_SPEED = 9.0  # pendulum angular speed


def _speed_at_most(speed: float, target: float, margin: float, value_at_margin: float = 0.0) -> float:
    """1 when moving backwards at least `target`, linear to value_at_margin over `margin`."""
    return rewards.tolerance(speed, bounds=(-INF, -target), margin=margin, value_at_margin=value_at_margin,
                             sigmoid="linear")


class CheetahVariant(cheetah.Cheetah):
    def __init__(self, goal: str, random=None):
        super().__init__(random)
        self._goal = goal

    def _up(self, physics, lifted_foot: str) -> float:
        data = physics.named.data.xpos
        torso = rewards.tolerance(data["torso", "z"], bounds=(JUMP_HEIGHT, INF), margin=JUMP_HEIGHT / 2)
        foot = rewards.tolerance(data[lifted_foot, "z"], bounds=(JUMP_HEIGHT, INF), margin=JUMP_HEIGHT / 2)
        return (3 * foot + 2 * torso) / 5

    def _stand_on_one_foot(self, physics, lifted_foot: str) -> float:
        data = physics.named.data.xpos
        height = rewards.tolerance((data["torso", "z"] + data[lifted_foot, "z"]) / 2, bounds=(JUMP_HEIGHT, INF),
                                   margin=JUMP_HEIGHT / 2)
        still = rewards.tolerance(physics.speed(), bounds=(-0.5, 0.5), margin=0.5, value_at_margin=0.0,
                                  sigmoid="linear")
        return (5 * height + still) / 6

    def get_reward(self, physics) -> float:
        if self._goal == "run-backwards":
            speed = cheetah._RUN_SPEED * 0.8
            return _speed_at_most(physics.speed(), speed, speed)
        if self._goal in ("run-front", "run-back"):
            speed = cheetah._RUN_SPEED * 0.6
            moving = rewards.tolerance(physics.speed(), bounds=(speed, INF), margin=speed, value_at_margin=0.0,
                                       sigmoid="linear")
            lifted = "bfoot" if self._goal == "run-front" else "ffoot"
            return self._up(physics, lifted) * (5 * moving + 1) / 6
        if self._goal == "jump":
            return (self._stand_on_one_foot(physics, "bfoot") + self._stand_on_one_foot(physics, "ffoot")) / 2
        raise ValueError(self._goal)


class BackwardsWalker(walker.PlanarWalker):
    def get_reward(self, physics) -> float:
        standing = rewards.tolerance(physics.torso_height(), bounds=(walker._STAND_HEIGHT, INF),
                                     margin=walker._STAND_HEIGHT / 2)
        stand = (3 * standing + (1 + physics.torso_upright()) / 2) / 4
        move = _speed_at_most(physics.horizontal_velocity(), self._move_speed, self._move_speed / 2, 0.5)
        return stand * (5 * move + 1) / 6


class BackwardsHopper(hopper.Hopper):
    def __init__(self, random=None):
        super().__init__(hopping=True, random=random)

    def get_reward(self, physics) -> float:
        standing = rewards.tolerance(physics.height(), (hopper._STAND_HEIGHT, 2))
        return standing * _speed_at_most(physics.speed(), HOP_SPEED / 2, HOP_SPEED / 4, 0.5)


class PendulumSpin(pendulum.SwingUp):
    def get_reward(self, physics) -> float:
        return rewards.tolerance(np.linalg.norm(physics.angular_velocity()), bounds=(SPIN_SPEED, INF),
                                 margin=SPIN_SPEED / 2, value_at_margin=0.5, sigmoid="linear")


class CupSpin(ball_in_cup.BallInCup):
    """Swing the ball around the cup: far from the target (>= 0.5) and fast (>= 6), never inside."""

    def initialize_episode(self, physics):
        start_outside = self.random.uniform() < 0.1
        while True:
            physics.named.data.qpos["ball_x"] = self.random.uniform(-0.2, 0.2)
            physics.named.data.qpos["ball_z"] = self.random.uniform(0.2, 0.5)
            physics.after_reset()
            if physics.data.ncon == 0 and (start_outside or physics.in_target()):
                break
        super(ball_in_cup.BallInCup, self).initialize_episode(physics)

    def get_reward(self, physics) -> float:
        distance = np.linalg.norm(physics.ball_to_target())
        speed = np.linalg.norm(physics.named.data.qvel[["ball_x", "ball_z"]])
        far = rewards.tolerance(distance, bounds=(0.5, INF), margin=0.25, value_at_margin=0.5, sigmoid="linear")
        fast = rewards.tolerance(speed, bounds=(6.0, INF), margin=3.0, value_at_margin=0.5, sigmoid="linear")
        return (1.0 - physics.in_target()) * (far + 2 * fast) / 3


# A planar arm of three hinged links (0.09, 0.09 and 0.10 long) reaching for a target on a 0.6 x 0.6
# arena; the outer joints are limited to +-80 degrees. Geom names follow the suite's reacher so its
# Reacher task (observations, target placement, sparse reward) runs on it unchanged.
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
    <body name="link0" pos="0 0 .01">
      <joint name="joint0"/>
      <geom name="link0" type="capsule" fromto="0 0 0 .09 0 0" size=".01" material="self"/>
      <body name="link1" pos=".09 0 0">
        <joint name="joint1" limited="true" range="-80 80"/>
        <geom name="link1" type="capsule" fromto="0 0 0 .09 0 0" size=".01" material="self"/>
        <body name="link2" pos=".09 0 0">
          <joint name="joint2" limited="true" range="-80 80"/>
          <geom name="link2" type="capsule" fromto="0 0 0 .1 0 0" size=".01" material="self"/>
          <body name="finger" pos=".1 0 0">
            <camera name="hand" pos="0 0 .2" mode="track"/>
            <geom name="finger" type="sphere" size=".01" material="effector"/>
          </body>
        </body>
      </body>
    </body>
    <geom name="target" pos="0 0 .01" material="target" type="sphere" size=".05"/>
  </worldbody>
  <actuator>
    <motor name="joint0" joint="joint0"/>
    <motor name="joint1" joint="joint1"/>
    <motor name="joint2" joint="joint2"/>
  </actuator>
</mujoco>
"""


def _three_link_reacher(target_size: float, random) -> control.Environment:
    physics = reacher.Physics.from_xml_string(THREE_LINK_REACHER, common.ASSETS)
    return control.Environment(physics, reacher.Reacher(target_size=target_size, random=random),
                               time_limit=reacher._DEFAULT_TIME_LIMIT)


def _environment(module, task, time_limit: float, **kwargs) -> control.Environment:
    physics = module.Physics.from_xml_string(*module.get_model_and_assets())
    return control.Environment(physics, task, time_limit=time_limit, **kwargs)


TASKS: dict[str, Callable[[np.random.RandomState], control.Environment]] = {
    **{f"cheetah-{goal}": (lambda goal: lambda random: _environment(
        cheetah, CheetahVariant(goal, random=random), cheetah._DEFAULT_TIME_LIMIT))(goal)
       for goal in ("run-backwards", "run-front", "run-back", "jump")},
    "walker-walk-backwards": lambda random: _environment(
        walker, BackwardsWalker(walker._WALK_SPEED, random=random), walker._DEFAULT_TIME_LIMIT,
        control_timestep=walker._CONTROL_TIMESTEP),
    "walker-run-backwards": lambda random: _environment(
        walker, BackwardsWalker(walker._RUN_SPEED, random=random), walker._DEFAULT_TIME_LIMIT,
        control_timestep=walker._CONTROL_TIMESTEP),
    "hopper-hop-backwards": lambda random: _environment(
        hopper, BackwardsHopper(random=random), hopper._DEFAULT_TIME_LIMIT, control_timestep=hopper._CONTROL_TIMESTEP),
    "pendulum-spin": lambda random: _environment(pendulum, PendulumSpin(random=random), pendulum._DEFAULT_TIME_LIMIT),
    "cup-spin": lambda random: _environment(ball_in_cup, CupSpin(random=random), ball_in_cup._DEFAULT_TIME_LIMIT,
                                            control_timestep=ball_in_cup._CONTROL_TIMESTEP),
    "reacher-three-easy": lambda random: _three_link_reacher(reacher._BIG_TARGET, random),
    "reacher-three-hard": lambda random: _three_link_reacher(reacher._SMALL_TARGET, random),
}


def load(name: str, seed: int) -> control.Environment:
    return TASKS[name](np.random.RandomState(seed))
