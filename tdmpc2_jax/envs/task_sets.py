"""The official multitask task sets and the facts that go with them.

A set's order is the order of the rows of a multitask agent's task-embedding table: task index i
is `TASK_SETS[name][i]`. A run names a set by `task` (`mt30`, `mt80`) or lists its own tasks with
`--config.tasks=a,b,...` (a custom set, in that order).
"""
from __future__ import annotations

from typing import NamedTuple

_DMC_ORIGINAL = (
    "walker-stand", "walker-walk", "walker-run", "cheetah-run", "reacher-easy", "reacher-hard", "acrobot-swingup",
    "pendulum-swingup", "cartpole-balance", "cartpole-balance-sparse", "cartpole-swingup", "cartpole-swingup-sparse",
    "cup-catch", "finger-spin", "finger-turn-easy", "finger-turn-hard", "fish-swim", "hopper-stand", "hopper-hop",
)
_DMC_CUSTOM = (
    "walker-walk-backwards", "walker-run-backwards", "cheetah-run-backwards", "cheetah-run-front", "cheetah-run-back",
    "cheetah-jump", "hopper-hop-backwards", "reacher-three-easy", "reacher-three-hard", "cup-spin", "pendulum-spin",
)
_METAWORLD_MT50 = tuple("mw-" + name for name in (
    "assembly", "basketball", "button-press-topdown", "button-press-topdown-wall", "button-press",
    "button-press-wall", "coffee-button", "coffee-pull", "coffee-push", "dial-turn", "disassemble", "door-open",
    "door-close", "drawer-close", "drawer-open", "faucet-open", "faucet-close", "hammer", "handle-press-side",
    "handle-press", "handle-pull-side", "handle-pull", "lever-pull", "peg-insert-side", "peg-unplug-side",
    "pick-out-of-hole", "pick-place", "pick-place-wall", "plate-slide", "plate-slide-side", "plate-slide-back",
    "plate-slide-back-side", "push-back", "push", "push-wall", "reach", "reach-wall", "shelf-place", "soccer",
    "stick-push", "stick-pull", "sweep-into", "sweep", "window-open", "window-close", "bin-picking", "box-close",
    "door-lock", "door-unlock", "hand-insert",
))

TASK_SETS: dict[str, tuple[str, ...]] = {
    "mt30": _DMC_ORIGINAL + _DMC_CUSTOM,
    "mt80": _DMC_ORIGINAL + _DMC_CUSTOM + _METAWORLD_MT50,
}


class TaskSet(NamedTuple):
    name: str  # "mt30", "mt80", or "custom-mtN" for a list given with --config.tasks
    tasks: tuple[str, ...]


def task_set_of(config) -> TaskSet | None:
    """The run's task set, or None for a single-task run.

    `task` naming an official set selects it; `tasks` (comma-separated) lists a custom one.
    """
    listed = getattr(config, "tasks", None)
    if config.task in TASK_SETS:
        if listed:
            raise ValueError(f"task={config.task} already names a task set: drop --config.tasks or the set name")
        return TaskSet(config.task, TASK_SETS[config.task])
    if not listed:
        return None
    tasks = tuple(t.strip() for t in str(listed).split(",") if t.strip())
    repeated = sorted({t for t in tasks if tasks.count(t) > 1})
    if repeated:
        raise ValueError(f"--config.tasks lists {', '.join(repeated)} more than once")
    return TaskSet(f"custom-mt{len(tasks)}", tasks)


def known_set_of_size(num_tasks: int) -> TaskSet | None:
    """The official set with this many tasks (the set of an official checkpoint that names none)."""
    for name, tasks in TASK_SETS.items():
        if len(tasks) == num_tasks:
            return TaskSet(name, tasks)
    return None


def episode_length_of(task: str) -> int:
    """Agent steps per episode under the official protocol (sets the task's discount)."""
    return 100 if task.startswith("mw-") else 500


def known_dims(task: str) -> tuple[int, int]:
    """(obs dim, action dim) of a task of a domain that does not run here (every Meta-World task: 39, 4)."""
    if task.startswith("mw-"):
        return 39, 4
    raise ValueError(f"{task}: its observation and action sizes are known only from its environment")


def task_dim_of(set_name: str, model_size: int | None) -> int:
    """The official task-embedding width: 96 for mt80 and for the 1M and 317M mt30 models, else 64."""
    return 96 if set_name != "mt30" or model_size in (1, 317) else 64
