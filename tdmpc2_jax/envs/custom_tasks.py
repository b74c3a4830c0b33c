"""The TD-MPC2 custom DMControl variants that are new rewards on the standard suite models.

Each is a dm_control task whose reward follows the published definition: cheetah-run-backwards,
cheetah-run-front, cheetah-run-back, cheetah-jump, walker-walk-backwards, walker-run-backwards,
hopper-hop-backwards, pendulum-spin. Variants that need models of their own (cup-spin,
reacher-three-easy/hard) are listed in UNAVAILABLE and refused with that reason.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from dm_control.rl import control
from dm_control.suite import cheetah, hopper, pendulum, walker
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
}

UNAVAILABLE = {
    "cup-spin": "needs a ball-in-cup model with a spinning target, which dm_control does not ship",
    "reacher-three-easy": "needs a three-link reacher model, which dm_control does not ship",
    "reacher-three-hard": "needs a three-link reacher model, which dm_control does not ship",
}


def load(name: str, seed: int) -> control.Environment:
    return TASKS[name](np.random.RandomState(seed))
