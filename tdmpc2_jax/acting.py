"""Acting: one rollout of batched MJX environments and one episode runner on host MuJoCo, for
every policy (the planner in eval mode, a speculative controller, calibration, the corrector's
teacher), with episode totals that stop counting where an episode ends; and the evaluators every
loop and command uses: `evaluate` (host episodes), `evaluate_tasks` (each task of a multitask
agent on host) and `evaluate_batched` (episodes at once on MJX).

On MJX a policy is `policy(state, obs [N, obs_dim], keys [N], t0 [N]) -> (action [N, A], state,
info)`; on host the same for one observation. `info` is any pytree the caller wants per step
(stacked to leaves [T, N, ...] or [steps, ...]).
"""
from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tdmpc2_jax.planner import PlanState, init_plan_state, make_planner, plan_batch

if TYPE_CHECKING:
    from tdmpc2_jax.agent import Agent
    from tdmpc2_jax.envs.mjx import MJXEnv
    from tdmpc2_jax.envs.mjx_multitask import MultitaskMJXEnv
    from tdmpc2_jax.world_model import WorldModel

Policy = Callable[[Any, jax.Array, jax.Array, jax.Array], tuple[jax.Array, Any, Any]]


class Rollout(NamedTuple):
    returns: jax.Array  # [N] return of each environment's first episode
    lengths: jax.Array  # [N] int32 its length (the rollout's steps where it did not end)
    reward: jax.Array  # [T, N] every step's reward, episodes after an automatic reset included
    ended: jax.Array  # [T, N] bool
    info: Any  # the policy's info, leaves [T, N, ...]
    trace: Any = None  # what `trace` kept of each step's environment state, leaves [T, N, ...]


def first_episode_totals(reward: jax.Array, ended: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(returns [N], lengths [N]) of the first episode in per-step rewards and ends [T, N]: a step
    counts while no earlier step of its environment ended (the ending step itself counts)."""
    alive = first_episode_mask(ended)
    return jnp.sum(jnp.where(alive, reward, 0.0), axis=0), jnp.sum(alive, axis=0, dtype=jnp.int32)


def first_episode_mask(ended):
    """[T, N] bool: the steps of each environment's first episode in ends [T, N] (the ending step
    included); numpy or jax arrays."""
    ended = ended.astype(jnp.int32)
    return (ended.cumsum(axis=0) - ended) == 0


def rollout(env: MJXEnv | MultitaskMJXEnv, policy: Policy, policy_state: Any, key: jax.Array, num_envs: int, steps: int,
            trace: Callable[[Any], Any] | None = None,
            on_progress: Callable[[int], None] | None = None) -> Rollout:
    """`steps` steps of `num_envs` environments from a reset, as one `lax.scan` (automatic resets
    after an episode ends; its totals count the first episode only). `trace(env_state)`, where
    given, is kept for the state each step starts from (for example the physics, to draw it).
    `on_progress(steps_done)`, where given, is called from the running program after every tenth
    of the steps (a host callback, for progress lines)."""
    k_reset, k_steps = jax.random.split(key)
    env_state = env.reset_batch(jax.random.split(k_reset, num_envs))
    done = np.arange(steps + 1)
    reports = (done[1:] * 10 // max(steps, 1) > done[:-1] * 10 // max(steps, 1)) & (on_progress is not None)

    def step(carry, xs):
        env_state, state = carry
        k, t, report = xs
        kept = trace(env_state) if trace is not None else ()
        action, state, info = policy(state, env.observe(env_state), jax.random.split(k, num_envs), env_state.t == 0)
        env_state, out = env.step_batch(env_state, action)
        if on_progress is not None:
            jax.lax.cond(report, lambda: jax.debug.callback(on_progress, t + 1), lambda: None)
        return (env_state, state), (out.reward, out.ended, info, kept)

    xs = (jax.random.split(k_steps, steps), jnp.arange(steps), jnp.asarray(reports))
    _, (reward, ended, info, kept) = jax.lax.scan(step, (env_state, policy_state), xs)
    returns, lengths = first_episode_totals(reward, ended)
    return Rollout(returns, lengths, reward, ended, info, kept if trace is not None else None)


class HostEpisodes(NamedTuple):
    returns: np.ndarray  # [E]
    lengths: list[int]  # [E]
    info: Any  # the policy's info of every step, leaves [steps, ...] (episodes one after another)
    rewards: np.ndarray  # [steps] the reward of every step (episodes one after another)
    seconds: list[float]  # [steps] wall-clock of each step: the policy call and the environment's step
    successes: np.ndarray  # [E] the domain's success flag at each episode's last step (NaN where it has none)


def host_episodes(env, policy: Callable[[Any, jax.Array, jax.Array, jax.Array], tuple[jax.Array, Any, Any]],
                  initial_state: Callable[[], Any], key: jax.Array, episodes: int,
                  on_frame: Callable[[np.ndarray], None] | None = None,
                  on_episode: Callable[[int, float, int], None] | None = None) -> HostEpisodes:
    """`episodes` episodes of a host environment (`envs.dmc.DMCEnv`) one after another.

    `policy(state, obs [obs_dim], key, t0) -> (action [A], state, info)` is one jitted call per
    step; `initial_state()` starts each episode. `on_frame` receives the rendered frames of the
    first episode; `on_episode(index, return, length)` hears of each episode as it ends.
    """
    returns, lengths, infos, rewards, seconds, successes = [], [], [], [], [], []
    for e in range(episodes):
        obs, state, total, t, done, success = env.reset(), initial_state(), 0.0, 0, False, float("nan")
        while not done:
            key, k = jax.random.split(key)
            start = time.perf_counter()
            action, state, info = policy(state, jnp.asarray(obs), k, jnp.asarray(t == 0))
            step = env.step(np.asarray(action))
            seconds.append(time.perf_counter() - start)
            obs, total, t, done, success = step.obs, total + step.reward, t + 1, step.done, step.success
            infos.append(info)
            rewards.append(step.reward)
            if on_frame is not None and e == 0:
                on_frame(env.render())
        returns.append(total)
        lengths.append(t)
        successes.append(success)
        if on_episode is not None:
            on_episode(e, total, t)
    return HostEpisodes(np.asarray(returns), lengths, jax.tree.map(lambda *x: np.stack(x), *infos),
                        np.asarray(rewards, np.float64), seconds, np.asarray(successes, np.float64))


# ---------------------------------------------------------------------- evaluators
def episode_statistics(returns: Iterable[float], lengths: Iterable[int],
                       successes: Iterable[float] | None = None) -> dict[str, Any]:
    """Mean, spread and lengths of evaluation episodes, as logged to eval.csv (with the success rate
    where the domain defines success: `successes` holds NaN where it does not)."""
    returns, lengths = np.asarray(list(returns), np.float64), np.asarray(list(lengths))
    stats = dict(episode_reward=float(returns.mean()), episode_reward_std=float(returns.std()),
                 episode_reward_min=float(returns.min()), episode_length=float(lengths.mean()),
                 returns=returns.tolist(), lengths=lengths.tolist())
    successes = np.asarray([] if successes is None else list(successes), np.float64)
    if successes.size and not np.isnan(successes).all():
        stats["episode_success"] = float(np.nanmean(successes))
    return stats


class Planners:
    """Jitted MPPI planners of one agent on host: with training noise (acting) and in eval mode."""

    def __init__(self, agent: "Agent"):
        self.horizon, self.obs_dim, self.action_dim = agent.cfg.horizon, agent.cfg.obs_dim, agent.cfg.action_dim
        self.train_plan = make_planner(agent.model, eval_mode=False)
        self.eval_plan = make_planner(agent.model, eval_mode=True)

    def initial_state(self) -> PlanState:
        return init_plan_state(self.horizon, self.action_dim)

    def act(self, params, obs: np.ndarray, plan_state: PlanState, key: jax.Array, t0: bool, eval_mode: bool,
            task: int | None = None) -> tuple[np.ndarray, PlanState]:
        """(action [A], the next warm start) for one observation [obs_dim] (task: a multitask agent's index)."""
        plan = self.eval_plan if eval_mode else self.train_plan
        task = None if task is None else jnp.asarray(task, jnp.int32)
        result, plan_state = plan(params, jnp.asarray(obs), plan_state, key, jnp.asarray(t0), task)
        return np.asarray(result.action), plan_state


def evaluate(env, planners: Planners, params, key: jax.Array, episodes: int,
             on_frame: Callable[[np.ndarray], None] | None = None, task: int | None = None) -> dict[str, Any]:
    """`episodes` host episodes with the planner in eval mode: returns, lengths and their statistics.

    `on_frame` receives the rendered frames of the first episode; `task` is the task index of a
    multitask agent.
    """
    task = None if task is None else jnp.asarray(task, jnp.int32)

    def policy(plan_state, obs, k, t0):
        result, plan_state = planners.eval_plan(params, obs, plan_state, k, t0, task)
        return result.action, plan_state, ()

    run = host_episodes(env, policy, planners.initial_state, key, episodes, on_frame)
    return episode_statistics(run.returns, run.lengths, run.successes)


def evaluate_tasks(envs: list, tasks: tuple[str, ...], planners: Planners, params, key: jax.Array,
                   episodes: int) -> dict[str, Any]:
    """`evaluate` on each env of a multitask agent's set `tasks` (padded envs, each with its task's
    name): the mean over them and each one's return (and success rate where its domain has one)."""
    indices = [tasks.index(env.task) for env in envs]
    per_task = [evaluate(env, planners, params, jax.random.fold_in(key, i), episodes, task=i)
                for i, env in zip(indices, envs)]
    result = episode_statistics([r for one in per_task for r in one["returns"]],
                                [n for one in per_task for n in one["lengths"]])
    result["episode_reward"] = float(np.mean([r["episode_reward"] for r in per_task]))
    result.update({f"episode_reward+{env.task}": r["episode_reward"] for env, r in zip(envs, per_task)})
    successes = {f"episode_success+{env.task}": r["episode_success"] for env, r in zip(envs, per_task)
                 if "episode_success" in r}
    if successes:  # the mean over the tasks that define success, and each one's
        result["episode_success"] = float(np.mean(list(successes.values())))
        result.update(successes)
    return result


class EvalResult(NamedTuple):
    returns: jax.Array  # [E]
    lengths: jax.Array  # [E] int32
    trace: Any = None  # rollout's trace, leaves [T, E, ...]


def evaluate_batched(model: "WorldModel", env: "MJXEnv | MultitaskMJXEnv", params, key: jax.Array, episodes: int,
                     trace: Callable[[Any], Any] | None = None,
                     on_progress: Callable[[int], None] | None = None) -> EvalResult:
    """`episodes` MJX episodes at once with the planner in eval mode (one rollout of episode_length
    steps; jit it with `episodes` static); a multitask agent runs them task-major, episodes / T of
    each task. `trace`: what to keep of each step's environment state; `on_progress`: progress
    reports (`rollout`)."""
    cfg, task = model.cfg, env.task_index(episodes)
    plan_state = jax.tree.map(lambda x: jnp.broadcast_to(x, (episodes,) + x.shape),
                              init_plan_state(cfg.horizon, cfg.action_dim))
    plan = functools.partial(plan_batch, model, eval_mode=True)

    def policy(plan_state, obs, keys, t0):
        result, plan_state = plan(params, obs, plan_state, keys, t0, task)
        return result.action, plan_state, ()

    result = rollout(env, policy, plan_state, key, episodes, env.episode_length, trace, on_progress)
    return EvalResult(result.returns, result.lengths, result.trace)
