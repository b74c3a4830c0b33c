"""The environments of a run, built in one place for every backend: host MuJoCo (one task or a
task set) and batched MJX (one task or a task set), with one seed rule: training environments
take the run's seed, evaluation environments `run.eval_seed`."""
from __future__ import annotations

from typing import Any, NamedTuple

from tdmpc2_jax.config import Config
from tdmpc2_jax.run_record import Run


class Envs(NamedTuple):
    train: Any  # a host env, a MultitaskEnv, an MJXEnv or a MultitaskMJXEnv
    eval: Any  # its evaluation twin (on MJX the same object: keys seed its episodes)
    agent_cfg: Config  # the agent for their observation and action shapes


def make_env(run: Run, seed: int):
    """One environment of the run's tasks and backend; a host one seeded `seed` (MJX episodes are
    seeded by the keys that reset them)."""
    if run.backend == "mjx":
        from tdmpc2_jax.envs.mjx import MJXEnv
        from tdmpc2_jax.envs.mjx_multitask import MultitaskMJXEnv

        if run.task_set is None:
            return MJXEnv(run.task, impl=run.impl, episode_length=run.episode_length)
        env = MultitaskMJXEnv.of_tasks(run.task_set.tasks, impl=run.impl, episode_length=run.episode_length)
        env.group_size(run.num_envs)
        return env
    if run.task_set is None:
        from tdmpc2_jax.envs.registry import make_host_env

        if run.obs == "rgb":
            from tdmpc2_jax.envs.pixels import select_renderer

            select_renderer()
        return make_host_env(run.task, seed, run.episode_length, run.obs)
    from tdmpc2_jax.envs.multitask import MultitaskEnv

    return MultitaskEnv(run.task_set.tasks, seed, run.set_episode_length)


def make_task_env(run: Run, task: str, seed: int):
    """The host environment of one task of the run's set, seeded `seed` (each task at its own
    episode length unless the run sets one for all: `Run.set_episode_length`)."""
    from tdmpc2_jax.envs.registry import make_host_env

    return make_host_env(task, seed, run.set_episode_length)


def agent_config_for(run: Run, env) -> Config:
    """The run's agent for `env`'s shapes: single-task, or one agent for every task of the set."""
    if run.task_set is None:
        obs_shape = env.obs_shape if run.backend != "mjx" else env.obs_dim
        return run.agent_config(obs_shape, env.action_dim, env.episode_length)
    return run.multitask_agent_config(run.task_set, env.obs_dim, tuple(env.action_dims), tuple(env.episode_lengths))


def make_envs(run: Run) -> Envs:
    """The training and evaluation environments of a run, and its agent's Config."""
    env = make_env(run, run.seed)
    eval_env = env if run.backend == "mjx" else make_env(run, run.eval_seed)
    return Envs(env, eval_env, agent_config_for(run, env))
