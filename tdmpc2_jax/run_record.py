"""The run record: a run config (official key names, `run_config.base_config`) resolved once, at the
command line, into the frozen facts every loop, evaluation and experiment reads.

    run = resolve(config)         # checks the keys, the task (or task set) and the backend
    run.backend                   # "host", "mjx" or "offline"
    run.agent_config(obs_shape, action_dim, episode_length)
    run.eval_seed, run.ckpt_dir, run.seed_steps_for(episode_length)

Nothing below the command lines reads a `ConfigDict` or absl flags: they take a `Run`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any, Mapping

from tdmpc2_jax.config import FIELD_NAMES, Config, make_config
from tdmpc2_jax.envs.task_sets import TaskSet, task_dim_of, task_set_of

# Config fields a run derives instead of reading them (from the environment, or from the task set)
DERIVED = ("obs_dim", "image_shape", "action_dim", "multitask", "tasks", "obs_dims", "action_dims", "episode_lengths",
           "task_dim")
# evaluation environments and keys are seeded apart from training's
EVAL_SEED_OFFSET = 1_000_003
BACKENDS = {"dmc": "host", "mjx": "mjx"}


def eval_seed(seed: int) -> int:
    """The seed of evaluation environments and keys of a run (or an evaluation) seeded `seed`."""
    return seed + EVAL_SEED_OFFSET


@dataclasses.dataclass(frozen=True)
class Run:
    """A resolved run. Counts (steps, eval_freq, checkpoint_every, seed_steps, buffer_size) are agent
    steps on host, transitions over all environments on MJX, and updates offline."""

    config: Mapping[str, Any]  # every key of the run config, as written to checkpoints and config.json
    task: str  # a task, or the name of a task set
    task_set: TaskSet | None  # None for a single-task run
    backend: str  # "host" (dm_control and the other host domains), "mjx", or "offline" (a dataset)
    obs: str  # "state" or "rgb"
    seed: int
    work_dir: str
    episode_length: int | None  # agent steps per episode, where set; None: each task's own
    steps: int
    eval_freq: int
    eval_episodes: int
    checkpoint_every: int
    seed_steps: int | None  # None: the official max(1000, 5 x episode length)
    buffer_size: int
    resume: bool
    init_from: str | None
    save_agent: bool
    save_buffer: bool
    save_video: bool
    tensorboard: bool
    progress: bool
    save_csv: bool
    wandb: Mapping[str, Any] | None  # RunLogger's Weights & Biases settings; None: off
    data_dir: str | None = None  # offline: the dataset's directory
    max_episodes: int | None = None
    log_every: int = 1000  # offline: updates between train.csv rows
    num_envs: int | None = None  # MJX: environments stepped together
    impl: str | None = None  # MJX implementation
    updates_per_step: int | None = None  # MJX: updates per batched step
    chunk_steps: int | None = None  # MJX: batched steps per compiled chunk; None: from eval_freq
    num_devices: int | None = None  # MJX: devices to split over; None: all

    @property
    def ckpt_dir(self) -> str:
        return os.path.join(self.work_dir, "checkpoints")

    @property
    def eval_seed(self) -> int:
        return eval_seed(self.seed)

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks the run trains on: its set's, or its one task."""
        return self.task_set.tasks if self.task_set else (self.task,)

    @property
    def set_episode_length(self) -> int | None:
        """Agent steps per episode of a task set's tasks: each one's own (None), unless
        `episode_length` is set to another value than the default, which all then use."""
        return None if self.episode_length == Config.episode_length else self.episode_length

    @property
    def step_unit(self) -> str:
        """What the run's counts count."""
        return {"host": "agent steps", "mjx": "transitions", "offline": "updates"}[self.backend]

    @property
    def kept_transitions(self) -> int:
        """Transitions the replay buffer keeps: buffer_size, or the whole run where that is fewer."""
        return min(self.buffer_size, self.steps)

    @property
    def lr(self) -> float:
        return self.config["lr"]

    def seed_steps_for(self, episode_length: int) -> int:
        """Steps of uniformly random actions before planning: the official max(1000, 5 x episode length)."""
        return self.seed_steps or max(1000, 5 * episode_length)

    def agent_config(self, obs_shape: int | tuple[int, ...], action_dim: int, episode_length: int) -> Config:
        """The agent's Config from the run's keys and an environment's dimensions: obs_shape is
        obs_dim, or the image shape [C, H, W] of pixel observations."""
        values = {k: v for k, v in self.config.items() if k in FIELD_NAMES and k not in DERIVED}
        if self.obs == "rgb":
            values.update(obs_dim=0, image_shape=tuple(obs_shape))
        else:
            values.update(obs_dim=obs_shape if isinstance(obs_shape, int) else int(obs_shape[0]))
        values.update(action_dim=action_dim, episode_length=episode_length, model_size=self.config["model_size"])
        if self.task == "mt30" and values["model_size"] == 19 and values.get("latent_dim") is None:
            values["latent_dim"] = 512  # the official mt30 19M model is narrower than the 19M preset
        return make_config(values)

    def multitask_agent_config(self, task_set: TaskSet, obs_dim: int, action_dims: tuple[int, ...],
                               episode_lengths: tuple[int, ...], task_dim: int | None = None) -> Config:
        """The Config of one agent for every task of a set: observations padded to obs_dim, actions
        to max(action_dims), a discount per task from its episode length; task_dim defaults to the
        set's official embedding size at the run's model size."""
        single = self.agent_config(obs_dim, max(action_dims), max(episode_lengths))
        if task_dim is None:
            task_dim = task_dim_of(task_set.name, self.config["model_size"])
        return single.replace(multitask=True, tasks=task_set.tasks, action_dims=tuple(action_dims),
                              episode_lengths=tuple(episode_lengths), task_dim=task_dim)

    def replace(self, **changes) -> "Run":
        """This run with some keys changed (the config mapping follows the fields of the same name)."""
        config = {**self.config, **{k: v for k, v in changes.items() if k in self.config}}
        return dataclasses.replace(self, config=config, **changes)


def resolve(config) -> Run:
    """The run record of a run config (a ConfigDict or a mapping with its keys), after refusing
    combinations that cannot work with one line that says what to change."""
    values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    task_set = task_set_of(config)
    backend = _backend(values)
    _check_keys(values, task_set, backend)
    _check_tasks(task_set.tasks if task_set else (values["task"],), backend, values.get("impl"))
    work_dir = values.get("work_dir") or os.path.join("runs", task_set.name if task_set else values["task"],
                                                      str(values["seed"]), values["exp_name"])
    mjx = {k: values.get(k) for k in ("num_envs", "impl", "updates_per_step", "chunk_steps", "num_devices")}
    if backend == "mjx":
        if mjx["num_envs"] < 1:
            raise ValueError(f"num_envs must be positive, got {mjx['num_envs']}")
        if mjx["updates_per_step"] is None:  # the official ratio: one update per transition
            mjx["updates_per_step"] = mjx["num_envs"]
        if mjx["updates_per_step"] < 0:
            raise ValueError(f"updates_per_step must be >= 0, got {mjx['updates_per_step']}")
    return Run(config=values, task=values["task"], task_set=task_set, backend=backend, obs=values["obs"],
               seed=values["seed"], work_dir=work_dir, episode_length=values["episode_length"],
               steps=values["steps"], eval_freq=values["eval_freq"], eval_episodes=values["eval_episodes"],
               checkpoint_every=values["checkpoint_every"], seed_steps=values["seed_steps"],
               buffer_size=values["buffer_size"], resume=values["resume"], init_from=values["init_from"],
               save_agent=values["save_agent"], save_buffer=values["save_buffer"], save_video=values["save_video"],
               tensorboard=values["tensorboard"], progress=values["progress"], save_csv=values["save_csv"],
               wandb=_wandb_settings(values, work_dir), data_dir=values.get("data_dir"),
               max_episodes=values.get("max_episodes"), log_every=values.get("log_every", 1000), **mjx)


def _backend(values: Mapping[str, Any]) -> str:
    if values.get("backend") not in BACKENDS:
        raise ValueError(f"backend={values.get('backend')!r}: use --config=configs/dmc.py:TASK (host MuJoCo) or "
                         "--config=configs/mjx.py:TASK (MJX)")
    backend = BACKENDS[values["backend"]]
    if backend == "host" and values.get("data_dir"):
        return "offline"
    return backend


def _check_keys(values: Mapping[str, Any], task_set: TaskSet | None, backend: str) -> None:
    """Refuses combinations of the official run keys that cannot work, with what to change."""
    if values["resume"] and not values["save_agent"]:
        raise ValueError("resume=True needs the checkpoints that save_agent=False turns off")
    if values["obs"] not in ("state", "rgb"):
        raise ValueError(f"obs={values['obs']!r}: choose 'state' or 'rgb'")
    if values["obs"] == "rgb":
        if backend == "mjx":
            raise ValueError("obs=rgb runs on host MuJoCo (--config=configs/dmc.py:TASK): MJX environments render "
                             "pixels only through Madrona on NVIDIA GPUs, which this project does not drive")
        if task_set is not None or values.get("data_dir"):
            raise ValueError("obs=rgb is single-task and online (the official code has no multitask pixel agent)")
    if values["save_video"] and backend == "mjx":
        raise ValueError("save_video records evaluation episodes rendered on host MuJoCo: train with "
                         f"--config=configs/dmc.py:{values['task']}, or evaluate an MJX checkpoint there with --video")
    if backend == "offline" and task_set is None:
        raise ValueError("offline training is multitask: name a task set (configs/dmc.py:mt30, mt80) or "
                         "list tasks with --config.tasks")


def _check_tasks(tasks: tuple[str, ...], backend: str, impl: str | None) -> None:
    """Refuses a task the backend does not have, with the closest names."""
    if backend == "mjx":
        from tdmpc2_jax.envs.mjx import playground_name

        for task in tasks:
            playground_name(task, impl)
    else:
        from tdmpc2_jax.envs.registry import check_task

        for task in tasks:
            check_task(task)


def _wandb_settings(values: Mapping[str, Any], work_dir: str) -> dict[str, Any] | None:
    """What RunLogger needs for a Weights & Biases run (None with enable_wandb off): one run per
    work dir (a resume continues it), named by seed, grouped by task and experiment like the
    official runs."""
    if not values.get("enable_wandb"):
        return None
    if not values.get("wandb_project"):
        raise ValueError("enable_wandb=True needs --config.wandb_project (and usually --config.wandb_entity)")
    run_id = hashlib.sha256(os.path.abspath(work_dir).encode()).hexdigest()[:16]
    return dict(project=values["wandb_project"], entity=values.get("wandb_entity"), name=str(values["seed"]),
                group=f"{values['task']}-{values['exp_name']}", config=dict(values), silent=values["wandb_silent"],
                id=run_id)


def member_wandb(run: Run, work_dir: str, name: str) -> dict[str, Any] | None:
    """The Weights & Biases settings of one member of a population, logging under `work_dir`."""
    if run.wandb is None:
        return None
    run_id = hashlib.sha256(os.path.abspath(work_dir).encode()).hexdigest()[:16]
    return {**run.wandb, "name": name, "id": run_id}
