"""Training on batched MJX environments: the host side of the on-device loop.

A run is a *population* of M members (seeds x learning rates; M = 1 for a plain run) trained by
one compiled program: the DeviceLoop carry gets a leading member axis and every program is
vmapped over it. The host only logs (eval.csv / train.csv / TensorBoard per member, a progress
bar), evaluates, and checkpoints with orbax (the whole carry, device buffer included).

Counting: `steps`, `eval_freq`, `checkpoint_every`, `seed_steps` and `buffer_size` count
transitions over all N environments (agent steps, as on host); logs use env steps = transitions x
action repeat, like the host loop. Work happens in the seed phase and then in chunks of
`chunk_steps` batched steps; an evaluation is due at every multiple of eval_freq (from 0) and runs
at the first boundary (the seed phase's end or a chunk's) at or after it, logged at that exact
step, so the i-th evaluation falls in [i x eval_freq, (i + 1) x eval_freq) like the host loop's;
checkpoints land the same way.
"""
from __future__ import annotations

import itertools
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tdmpc2_jax import acting, loading, sharding, xla
from tdmpc2_jax.agent import Agent
from tdmpc2_jax.buffers import device as device_buffer
from tdmpc2_jax.environments import make_envs
from tdmpc2_jax.logs import RunLogger
from tdmpc2_jax.loops import resume
from tdmpc2_jax.loops.device import Carry, DeviceLoop, carry_shardings
from tdmpc2_jax.loops.schedule import check_finite, next_multiple
from tdmpc2_jax.run_record import Run, member_wandb

# beside resume.MUST_MATCH
MUST_MATCH_ON_RESUME = ("buffer_size", "num_envs", "impl", "updates_per_step", "episode_length")
# Keys a CompiledRun never reads: runs whose configs differ only in these can share one CompiledRun.
RUN_ONLY_KEYS = ("work_dir", "exp_name", "resume", "init_from", "save_buffer", "tensorboard", "progress",
                 "checkpoint_every", "compilation_cache", "save_csv", "save_agent", "save_video", "coordinator_address",
                 "process_id", "enable_wandb", "wandb_project", "wandb_entity", "wandb_silent")


class Member(NamedTuple):
    seed: int
    lr: float

    @property
    def name(self) -> str:
        return f"lr{self.lr:g}/seed{self.seed}"


def population(seeds: list[int], lrs: list[float]) -> list[Member]:
    return [Member(s, lr) for lr, s in itertools.product(lrs, seeds)]


def member_dirs(run: Run, members: list[Member]) -> list[str]:
    """Where each member logs: the run's work dir for a single run, a sub-directory per member else
    (on several hosts, processes other than the first log under process<i>/)."""
    work_dir = run.work_dir
    if jax.process_index():
        work_dir = os.path.join(work_dir, f"process{jax.process_index()}")
    if len(members) == 1:
        return [work_dir]
    return [os.path.join(work_dir, m.name) for m in members]


class CompiledRun:
    """The compiled pieces for one config: env, agent, loop and their vmapped, jitted programs."""

    def __init__(self, run: Run, members: list[Member]):
        self.members, self.settings = list(members), settings_of(run)
        env, _, self.agent_cfg = make_envs(run)
        self.env = env
        self.agent = Agent(self.agent_cfg)
        n = run.num_envs
        self.eval_episodes = run.eval_episodes * self.agent_cfg.num_tasks  # eval_episodes of each task
        self.seed_steps = run.seed_steps_for(env.episode_length)
        capacity = device_buffer.rows_per_env(run.kept_transitions, n, env.episode_length, self.agent_cfg.horizon)
        self.mesh = sharding.make_mesh(run.num_devices)
        self.mode = sharding.split_mode(self.mesh, len(members), n)
        devices = 1 if self.mesh is None else self.mesh.devices.size
        buffer_bytes = device_buffer.bytes_needed(capacity, n, self.env.obs_dim, self.env.action_dim) * len(members)
        sharding.check_fits(buffer_bytes // devices, f"the replay buffer ({capacity:,} rows x {n} envs x "
                                                     f"{len(members)} members)")
        self.buffer_bytes = buffer_bytes
        self.updates_per_step = run.updates_per_step
        self.loop = DeviceLoop(self.agent, self.env, n, self.seed_steps, self.updates_per_step, capacity,
                               mesh=self.mesh if self.mode == "envs" else None)
        self.chunk_steps = run.chunk_steps or max(1, min(run.eval_freq // n, 500))
        self.total_batches = -(-run.steps // n)
        donate = dict(donate_argnums=0)
        self.seed_chunk = xla.jit(jax.vmap(self.loop.seed_chunk), **donate)
        self.chunk = xla.jit(jax.vmap(self.loop.chunk, in_axes=(0, None)), static_argnums=1, **donate)
        self.pretrain = xla.jit(jax.vmap(self.loop.pretrain, in_axes=(0, None)), static_argnums=1, **donate)
        self.evaluate = xla.jit(jax.vmap(self.loop.evaluate, in_axes=(0, 0, None)), static_argnums=2)

    def serves(self, run: Run, members: list[Member]) -> bool:
        """Whether this CompiledRun computes `run` with `members` (runs whose configs differ only in
        RUN_ONLY_KEYS, such as a resume into another work dir, share one)."""
        return settings_of(run) == self.settings and list(members) == self.members

    def initial_carry(self) -> Carry:
        keys = jnp.stack([jax.random.key_data(jax.random.key(m.seed)) for m in self.members])
        lrs = jnp.asarray([m.lr for m in self.members], jnp.float32)
        init = lambda k, lr: self.loop.init(jax.random.wrap_key_data(k), lr)
        shardings = self.shardings()
        placement = {} if shardings is None else dict(out_shardings=shardings)
        return xla.jit(jax.vmap(init), **placement)(keys, lrs)

    def warm_started(self, carry: Carry, params, target_qs) -> Carry:
        """`carry` with every member's learner starting from the given weights (fresh optimizer states,
        each member's own learning rate)."""
        lrs = jnp.asarray([m.lr for m in self.members], jnp.float32)
        start = lambda lr: self.agent.with_learning_rate(self.agent.state_from_params(params, target_qs), lr)
        return self.place(carry._replace(train_state=xla.jit(jax.vmap(start))(lrs)))

    def abstract_carry(self) -> Carry:
        """Shapes and dtypes of the population carry (nothing allocated)."""
        return jax.eval_shape(jax.vmap(self.loop.init), jax.random.split(jax.random.key(0), len(self.members)),
                              jnp.zeros(len(self.members)))

    def shardings(self):
        if self.mesh is None:
            return None
        return carry_shardings(self.abstract_carry(), self.mesh, self.mode)

    def place(self, carry: Carry) -> Carry:
        """The carry on the mesh; over several processes, each holds the whole values and makes its own shards."""
        shardings = self.shardings()
        if shardings is None:
            return carry
        if jax.process_count() == 1:
            return jax.device_put(carry, shardings)

        def shard(x: jax.Array, sharding) -> jax.Array:
            if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
                return jax.random.wrap_key_data(shard(jax.random.key_data(x), sharding), impl=jax.random.key_impl(x))
            values = np.asarray(x)
            return jax.make_array_from_callback(values.shape, sharding, lambda index: values[index])

        return jax.tree.map(shard, carry, shardings)


def settings_of(run: Run) -> dict[str, Any]:
    return {k: v for k, v in run.config.items() if k not in RUN_ONLY_KEYS}


class PopulationLog:
    """One RunLogger per member (the first shows the progress bar and the messages), and each
    member's count of finished training episodes."""

    def __init__(self, run: Run, members: list[Member], action_repeat: int, transitions: int,
                 episodes: np.ndarray, tasks: tuple[str, ...] = ()):
        """`tasks`: a multitask run's set, whose evaluations log each task's return."""
        self.members, self.episodes, self.single, self.tasks = members, episodes, len(members) == 1, tasks
        wandb = lambda work_dir, m: (None if jax.process_index() else  # the first process reports, a run per member
                                     run.wandb if self.single else member_wandb(run, work_dir, m.name))
        self.loggers = [RunLogger(d, run.steps, action_repeat, start_step=transitions,
                                  tensorboard=run.tensorboard, progress=run.progress and i == 0,
                                  echo=self.single, csv=run.save_csv, wandb=wandb(d, m), tasks=tasks,
                                  config={**run.config, "seed": m.seed, "lr": m.lr})
                        for i, (d, m) in enumerate(zip(member_dirs(run, members), members))]

    def message(self, text: str) -> None:
        self.loggers[0].message(text)

    def evaluation(self, transitions: int, returns: np.ndarray, lengths: np.ndarray) -> list[dict[str, Any]]:
        """Logs an evaluation of every member ([M, episodes] returns and lengths, task-major for a
        multitask run: the mean over tasks and each task's return); their statistics."""
        results = []
        for logger, member_returns, member_lengths in zip(self.loggers, returns, lengths):
            result = acting.episode_statistics(member_returns, member_lengths)
            if self.tasks:
                per_task = np.asarray(member_returns).reshape(len(self.tasks), -1).mean(axis=1)
                result["episode_reward"] = float(per_task.mean())
                result.update({f"episode_reward+{task}": float(r) for task, r in zip(self.tasks, per_task)})
            logger.log("eval", transitions, {k: v for k, v in result.items() if k not in ("returns", "lengths")})
            results.append(dict(result, transitions=transitions))
        if not self.single:
            means = np.asarray([r["episode_reward"] for r in results])
            self.message(f"eval at {transitions:,} transitions: return {means.mean():.1f} +- {means.std():.1f} "
                         f"over {len(self.members)} members (min {means.min():.1f}, max {means.max():.1f})")
        return results

    def chunk(self, transitions: int, logs, new_transitions: int, ckpt_dir: str) -> None:
        """Logs a chunk's training metrics and finished episodes, stopping on a non-finite metric."""
        logs = sharding.fetch(logs)
        metrics = {k: np.asarray(v) for k, v in logs.metrics.items()}
        check_finite(metrics, f"before transition {transitions:,}", ckpt_dir, [m.name for m in self.members])
        for i, logger in enumerate(self.loggers):
            ended = logs.ended[i]
            self.episodes[i] += int(ended.sum())
            row: dict[str, Any] = dict(episode=int(self.episodes[i]),
                                       steps_per_second=transitions / max(logger.elapsed(), 1e-9))
            if ended.any():
                row.update(episode_reward=float(logs.episode_return[i][ended].mean()),
                           episode_length=float(logs.episode_length[i][ended].mean()))
            row.update({k: float(v[i].mean()) for k, v in metrics.items()})
            logger.log("train", transitions, row)
        self.loggers[0].advance(new_transitions)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


def train(run: Run, seeds: list[int] | None = None, lrs: list[float] | None = None,
          program: CompiledRun | None = None) -> list[dict[str, Any]]:
    """Trains (or resumes) a population on one MJX task; returns each member's last evaluation
    (with its `transitions`). `program`: a CompiledRun built earlier for this run, to skip tracing and
    compiling again (a resume in the same process)."""
    members = population(seeds or [run.seed], lrs or [run.lr])
    if program is None:
        program = CompiledRun(run, members)
    elif not program.serves(run, members):
        raise ValueError("the CompiledRun given was built for another config or population")
    n = run.num_envs
    eval_key = jax.random.split(jax.random.key(run.eval_seed), len(members))
    carry, episodes = None, np.zeros(len(members), np.int64)
    if resume.wants_resume(run):
        carry, eval_key, episodes = restore_run(run, program)
    if carry is None:
        carry = program.initial_carry()
        if run.init_from:
            carry = program.warm_started(carry, *loading.starting_weights(run.init_from, program.agent_cfg))
    batched_steps = int(carry.batched_steps[0])
    log = PopulationLog(run, members, program.env.action_repeat, batched_steps * n, episodes,
                        program.agent_cfg.tasks if program.agent_cfg.multitask else ())
    log.message(describe(run, program, batched_steps * n))
    last_eval: list[dict[str, Any]] = [{} for _ in members]
    next_eval = 0 if batched_steps == 0 else next_multiple(batched_steps * n, run.eval_freq)
    next_checkpoint = next_multiple(batched_steps * n, run.checkpoint_every)
    try:
        if batched_steps * n >= next_eval:
            last_eval, eval_key = evaluate(program, carry, eval_key, program.eval_episodes, log, batched_steps * n)
            next_eval += run.eval_freq
        if batched_steps < program.loop.seed_batches:
            log.message(f"seed phase: {program.loop.seed_batches} steps x {n} envs of random actions, then "
                        f"{program.seed_steps:,} pretraining updates ...")
            carry, logs = program.seed_chunk(carry)
            batched_steps = program.loop.seed_batches
            if batched_steps * n >= next_eval:  # as on host, an evaluation due in the seed phase sees no update
                last_eval, eval_key = evaluate(program, carry, eval_key, program.eval_episodes, log, batched_steps * n)
                next_eval = next_multiple(batched_steps * n, run.eval_freq)
            carry, _ = program.pretrain(carry, program.seed_steps)
            log.chunk(batched_steps * n, logs, batched_steps * n, run.ckpt_dir)
        while batched_steps < program.total_batches:
            length = min(program.chunk_steps, program.total_batches - batched_steps)
            carry, logs = program.chunk(carry, length)
            batched_steps += length
            log.chunk(batched_steps * n, logs, length * n, run.ckpt_dir)
            if batched_steps * n >= next_eval or batched_steps == program.total_batches:
                last_eval, eval_key = evaluate(program, carry, eval_key, program.eval_episodes, log, batched_steps * n)
                next_eval = next_multiple(batched_steps * n, run.eval_freq)
            if batched_steps * n >= next_checkpoint and batched_steps < program.total_batches:  # the end saves below
                save_run(run, program, carry, eval_key, log.episodes)
                next_checkpoint = next_multiple(batched_steps * n, run.checkpoint_every)
        save_run(run, program, carry, eval_key, log.episodes, final=True)
    finally:
        log.close()
    return last_eval


def describe(run: Run, program: CompiledRun, transitions: int) -> str:
    """The run's opening line: task, sizes, placement, schedule and where it writes."""
    env, n = program.env, run.num_envs
    placement = "" if program.mesh is None else f" on {program.mesh.devices.size} devices split by {program.mode}"
    return (f"{run.task} on MJX ({run.impl}): obs {env.obs_dim}, action {env.action_dim}, {n} envs x "
            f"{len(program.members)} member(s){placement}, {run.steps:,} transitions (from {transitions:,}), "
            f"buffer {program.loop.capacity:,} rows/env = {program.buffer_bytes / 2**20:.1f} MiB, "
            f"{program.updates_per_step} updates per batched step, chunks of {program.chunk_steps} steps, "
            f"work dir {run.work_dir}")


def evaluate(program: CompiledRun, carry: Carry, eval_key: jax.Array, episodes: int, log: PopulationLog,
             transitions: int) -> tuple[list[dict[str, Any]], jax.Array]:
    """Evaluates every member ([M] eval keys, split for the next evaluation) and logs the results."""
    keys = jax.vmap(jax.random.split)(eval_key)
    result = sharding.fetch(program.evaluate(carry.train_state.params, keys[:, 1], episodes))
    return log.evaluation(transitions, result.returns, result.lengths), keys[:, 0]


# ---------------------------------------------------------------------- checkpoints
def _storable(x: jax.Array) -> jax.Array:
    return jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x


def run_tree(carry: Carry, eval_key: jax.Array, with_buffer: bool = True) -> dict:
    """What an MJX run checkpoint stores. `params` and `target_qs` sit at the top like in every model
    checkpoint (without the member axis for a single run, so `evaluate` reads it directly); the
    rest of the carry is stored leaf by leaf."""
    ts = carry.train_state
    single = ts.step.shape[0] == 1
    squeeze = (lambda tree: jax.tree.map(lambda x: x[0], tree)) if single else (lambda tree: tree)
    rest = carry._replace(train_state=ts._replace(params=None, target_qs=None))
    if not with_buffer:
        rest = rest._replace(buffer=None)
    leaves = jax.tree.leaves(rest)
    return {"params": squeeze(ts.params), "target_qs": squeeze(ts.target_qs),
            "loop": {f"{i:04d}": _storable(x) for i, x in enumerate(leaves) if x.size},  # orbax skips empty arrays
            "eval_key": _storable(eval_key)}


def save_run(run: Run, program: CompiledRun, carry: Carry, eval_key: jax.Array, episodes: np.ndarray,
             final: bool = False) -> None:
    """Writes the run checkpoint at the carry's transition count (nothing with save_agent off)."""
    batched_steps = int(carry.batched_steps[0])
    transitions = batched_steps * run.num_envs
    meta = dict(agent_step=transitions, batched_steps=batched_steps, members=[m._asdict() for m in program.members],
                episodes=episodes.tolist(), final=final, has_buffer=bool(run.save_buffer))
    resume.save(run, transitions, run_tree(carry, eval_key, run.save_buffer), program.agent_cfg, meta)


def restore_run(run: Run, program: CompiledRun) -> tuple[Carry, jax.Array, np.ndarray]:
    """The carry, eval keys and members' episode counts of the latest checkpoint, refused with the
    differing keys when it is another run's."""
    def other_members(meta) -> list[str]:
        if "members" not in meta or [tuple(m.values()) for m in meta["members"]] == [tuple(m) for m in program.members]:
            return []
        return [f"members: run has {[m.name for m in program.members]}, checkpoint has "
                f"{[Member(**m).name for m in meta['members']]}"]

    step, meta = resume.read(run, program.agent_cfg, MUST_MATCH_ON_RESUME, other_members)
    if not meta.get("has_buffer", False):
        raise ValueError(f"{run.ckpt_dir} was saved without its replay buffer (save_buffer=False): it can be "
                         "evaluated but not resumed")
    like_carry = program.abstract_carry()
    like_key = jax.eval_shape(lambda: jax.random.split(jax.random.key(0), len(program.members)))
    like = jax.eval_shape(run_tree, like_carry, like_key)
    tree = resume.restore(run, step, like)
    return (program.place(_rebuild(like_carry, tree)), jax.random.wrap_key_data(jnp.asarray(tree["eval_key"])),
            np.asarray(meta["episodes"], np.int64))


def _rebuild(like: Carry, tree: dict) -> Carry:
    """A carry from a restored run tree (the inverse of run_tree with the buffer)."""
    single = like.train_state.step.shape[0] == 1
    add_axis = (lambda t: jax.tree.map(lambda x: jnp.asarray(x)[None], t)) if single else \
        (lambda t: jax.tree.map(jnp.asarray, t))
    rest_like = like._replace(train_state=like.train_state._replace(params=None, target_qs=None))
    leaves_like, treedef = jax.tree.flatten(rest_like)
    leaves = []
    for i, ref in enumerate(leaves_like):
        value = jnp.asarray(tree["loop"][f"{i:04d}"]) if ref.size else jnp.zeros(ref.shape, ref.dtype)
        leaves.append(jax.random.wrap_key_data(value) if jnp.issubdtype(ref.dtype, jax.dtypes.prng_key) else value)
    rest = jax.tree.unflatten(treedef, leaves)
    train_state = rest.train_state._replace(params=add_axis(tree["params"]), target_qs=add_axis(tree["target_qs"]))
    return rest._replace(train_state=train_state)
