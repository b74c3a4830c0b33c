"""Every host task by name, whatever its domain: DMControl (dash names and the custom tasks; state or
pixels), Meta-World (`mw-*`), MyoSuite (`myo-*`), ManiSkill (the official five, on ManiSkill3),
Gymnasium (`mujoco-*`, `bipedal-walker`, `lunarlander-continuous`).
A domain's package is imported only when one of its tasks is made."""
from __future__ import annotations

from tdmpc2_jax.envs.gym import GYM_TASKS
from tdmpc2_jax.envs.maniskill import MANISKILL_TASKS


def domain_of(task: str) -> str:
    """"gym", "metaworld", "myosuite", "maniskill" or "dmc" (the default: its own errors name close
    matches)."""
    if task in GYM_TASKS:
        return "gym"
    if task in MANISKILL_TASKS:
        return "maniskill"
    if task.startswith("mw-"):
        return "metaworld"
    if task.startswith("myo-"):
        return "myosuite"
    return "dmc"


def check_task(task: str) -> None:
    """A clear error for a task no domain here runs (before anything is built)."""
    domain = domain_of(task)
    if domain == "metaworld":
        from tdmpc2_jax.envs.metaworld import task_names

        if task not in task_names():
            from tdmpc2_jax.names import close_matches

            raise ValueError(f"unknown Meta-World task {task!r}{close_matches(task, task_names())}")
    if domain == "myosuite":
        from tdmpc2_jax.envs.myosuite import check_task as check_myosuite_task

        check_myosuite_task(task)
    if domain == "dmc":
        from tdmpc2_jax.envs.dmc import resolve

        resolve(task)


def check_obs(task: str, obs: str) -> None:
    """A clear error for an observation kind the task's domain does not give (pixels: DMControl only,
    as in the official code)."""
    if obs not in ("state", "rgb"):
        raise ValueError(f"obs={obs!r}: choose 'state' or 'rgb'")
    if obs == "rgb" and domain_of(task) != "dmc":
        raise ValueError(f"obs=rgb: {task} is a {domain_of(task)} task, and only DMControl tasks have pixel "
                         "observations (as in the official code)")


def make_host_env(task: str, seed: int, episode_length: int | None = None, obs: str = "state"):
    """The host environment of one task; `episode_length` (agent steps) defaults to its domain's.

    obs="rgb" observes a DMControl task through its camera (envs/pixels.py).
    """
    check_task(task)
    check_obs(task, obs)
    if obs == "rgb":
        from tdmpc2_jax.envs.pixels import PixelEnv

        return PixelEnv(make_host_env(task, seed, episode_length))
    if domain_of(task) == "gym":
        from tdmpc2_jax.envs.gym import GymEnv

        return GymEnv(task, seed, episode_length)
    if domain_of(task) == "metaworld":
        from tdmpc2_jax.envs.metaworld import MetaWorldEnv

        return MetaWorldEnv(task, seed, episode_length)
    if domain_of(task) == "myosuite":
        from tdmpc2_jax.envs.myosuite import MyoSuiteEnv

        return MyoSuiteEnv(task, seed, episode_length)
    if domain_of(task) == "maniskill":
        from tdmpc2_jax.envs.maniskill import ManiSkillEnv

        return ManiSkillEnv(task, seed, episode_length)
    from tdmpc2_jax.envs.dmc import EPISODE_LENGTH, DMCEnv

    return DMCEnv(task, seed, episode_length=episode_length or EPISODE_LENGTH)


def action_repeat_of(task: str) -> int:
    """Environment steps per agent step (env steps = agent steps x this): 1 on Gymnasium and MyoSuite
    (whose steps are the task's own), else 2."""
    from tdmpc2_jax.envs.dmc import ACTION_REPEAT

    return 1 if domain_of(task) in ("gym", "myosuite") else ACTION_REPEAT


def task_defaults(task: str) -> dict:
    """The official settings a task's domain changes (run config keys), for `configs/*.py`.

    Gymnasium: its episode length, a discount of at most 0.99 and rho 0.7 (the official values for
    these tasks), and `episodic` for the tasks that terminate. Meta-World, MyoSuite and ManiSkill:
    100-step episodes.
    """
    if domain_of(task) in ("metaworld", "myosuite", "maniskill"):
        return dict(episode_length=100)
    if domain_of(task) != "gym":
        return {}
    from tdmpc2_jax.envs.gym import NEVER_TERMINATE, episode_length_of

    return dict(episode_length=episode_length_of(task), discount_max=0.99, rho=0.7,
                episodic=task not in NEVER_TERMINATE)
