"""Run logs: eval.csv and train.csv (official column names), config.json (the resolved run config,
the package version and the command line), TensorBoard scalars, config and hyperparameters,
Weights & Biases (optional, like the official code), evaluation videos, a progress bar.

`step` counts environment steps like the official result CSVs (agent steps x action repeat);
`agent_step` counts agent steps. On resume, rows past the checkpoint are dropped so a resumed run
logs every step once.
"""
from __future__ import annotations

import csv
import json
import os
import shlex
import sys
import time
from typing import Any, Mapping

EVAL_COLUMNS = ("step", "agent_step", "episode_reward", "episode_reward_std", "episode_reward_min",
                "episode_length", "episode_success", "elapsed_time")
TRAIN_COLUMNS = ("step", "agent_step", "episode", "episode_reward", "episode_length", "elapsed_time",
                 "steps_per_second", "consistency_loss", "reward_loss", "value_loss", "termination_loss",
                 "total_loss", "grad_norm", "pi_loss", "pi_grad_norm", "pi_entropy", "pi_scaled_entropy", "pi_scale")


class CsvLog:
    """Append-only CSV with a fixed header; `truncate_after(step)` drops rows logged past `step`."""

    def __init__(self, path: str, columns: tuple[str, ...]):
        self.path, self.columns = path, columns
        if not os.path.exists(path):
            with open(path, "w", newline="") as f:
                csv.writer(f).writerow(columns)

    def write(self, row: Mapping[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(c, "")) for c in self.columns])
            f.flush()
            os.fsync(f.fileno())

    def truncate_after(self, agent_step: int) -> None:
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        kept = [r for r in rows if r.get("agent_step") and int(float(r["agent_step"])) <= agent_step]
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns)
            writer.writeheader()
            writer.writerows({c: r.get(c, "") for c in self.columns} for r in kept)
        os.replace(tmp, self.path)


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


class RunLogger:
    """Everything a run reports: CSVs, TensorBoard, the progress bar."""

    def __init__(self, work_dir: str, total_steps: int, action_repeat: int, start_step: int = 0,
                 step_name: str = "agent steps",
                 tensorboard: bool = True, progress: bool = True, echo: bool = True, csv: bool = True,
                 wandb: Mapping[str, Any] | None = None, tasks: tuple[str, ...] = (),
                 config: Mapping[str, Any] | None = None):
        """`tasks` (a multitask run's) adds eval.csv columns per task: `episode_reward+TASK` and
        `episode_success+TASK` (empty for a task without success). `config` (the run's resolved
        keys) is written to config.json and, with tensorboard on, as TensorBoard text and hparams."""
        os.makedirs(work_dir, exist_ok=True)
        if config is not None:
            write_run_config(work_dir, config)
        self.work_dir, self.action_repeat, self.echo, self.step_name = work_dir, action_repeat, echo, step_name
        self.eval = self.train = None
        if csv:
            per_task = tuple(f"episode_{kind}+{task}" for kind in ("reward", "success") for task in tasks)
            self.eval = CsvLog(os.path.join(work_dir, "eval.csv"), EVAL_COLUMNS + per_task)
            self.train = CsvLog(os.path.join(work_dir, "train.csv"), TRAIN_COLUMNS)
            # a resumed run keeps the rows up to its checkpoint, a fresh one none of an earlier run's
            self.eval.truncate_after(start_step if start_step else -1)
            self.train.truncate_after(start_step if start_step else -1)
        self._writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(os.path.join(work_dir, "tb"), purge_step=start_step * action_repeat or None)
            if config is not None:
                _describe_run(self._writer, config, start_step * action_repeat)
        self._wandb = _start_wandb(work_dir, wandb) if wandb else None
        self._bar = None
        if progress:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, smoothing=0.05)
        self.last_eval: float | None = None
        self._start = time.time()

    def elapsed(self) -> float:
        return time.time() - self._start

    def log(self, category: str, agent_step: int, values: Mapping[str, Any]) -> None:
        row = {"step": agent_step * self.action_repeat, "agent_step": agent_step,
               "elapsed_time": self.elapsed(), **values}
        table = self.eval if category == "eval" else self.train
        if table is not None:
            table.write(row)
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self._writer.add_scalar(f"{category}/{key}", value, row["step"])
            self._writer.flush()
        if self._wandb is not None:
            numbers = {f"{category}/{k}": v for k, v in values.items() if isinstance(v, (int, float))}
            self._wandb.log(numbers, step=row["step"])
        if category == "eval":
            self.last_eval = float(values["episode_reward"])
        if category == "eval" and self.echo:
            self.message(f"eval at {agent_step:,} {self.step_name}: return {self.last_eval:.1f} "
                         f"(std {values.get('episode_reward_std', 0.0):.1f}, min {values.get('episode_reward_min', 0.0):.1f})")

    def video(self, agent_step: int, frames: list) -> str:
        """Writes the frames [T][H, W, 3] of an evaluation episode to eval_video/<env step>.mp4."""
        import imageio

        directory = os.path.join(self.work_dir, "eval_video")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{agent_step * self.action_repeat}.mp4")
        imageio.mimsave(path, frames, fps=30)
        if self._wandb is not None:
            self._wandb.log({"eval/video": self._wandb.Video(path, format="mp4")}, step=agent_step * self.action_repeat)
        return path

    def advance(self, agent_steps: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(agent_steps)
            if self.last_eval is not None:
                self._bar.set_postfix(eval_return=f"{self.last_eval:.1f}", refresh=False)

    def message(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._writer is not None:
            self._writer.close()
        if self._wandb is not None:
            self._wandb.finish()


def write_run_config(work_dir: str, config: Mapping[str, Any]) -> str:
    """Writes WORK_DIR/config.json: {"version": the package's, "command": the command line,
    "config": {key: value}}; returns its path. A resumed run rewrites it with its own command."""
    from tdmpc2_jax import __version__

    path = os.path.join(work_dir, "config.json")
    record = {"version": __version__, "command": shlex.join(sys.argv), "config": dict(config)}
    with open(path, "w") as f:
        json.dump(record, f, indent=1, default=str)
        f.write("\n")
    return path


def _describe_run(writer, config: Mapping[str, Any], step: int) -> None:
    """The run's config as a TensorBoard text summary (a key | value table, with the package
    version and command line) and as hyperparameters (the HParams dashboard, set against the
    evaluation return)."""
    from tensorboardX.summary import hparams

    from tdmpc2_jax import __version__

    table = "\n".join(["| key | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in sorted(config.items())])
    writer.add_text("config", f"tdmpc2_jax {__version__}: `{shlex.join(sys.argv)}`\n\n{table}", step)
    values = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in config.items() if v is not None}
    for summary in hparams(values, {"eval/episode_reward": 0.0})[:2]:  # the experiment, and this run's values
        writer.file_writer.add_summary(summary, step)
    writer.flush()


def _start_wandb(work_dir: str, settings: Mapping[str, Any]):
    """A Weights & Biases run (`settings`: project, entity, name, group, config, silent). WANDB_MODE=offline
    keeps it on disk under work_dir/wandb (`wandb sync` uploads it later)."""
    try:
        import wandb
    except ImportError as err:
        raise ValueError("Weights & Biases logging (enable_wandb=True) needs the wandb extra: "
                         "pip install 'tdmpc2_jax[wandb]'") from err
    os.environ["WANDB_SILENT"] = "true" if settings.get("silent") else "false"
    wandb.init(project=settings["project"], entity=settings.get("entity"), name=settings.get("name"),
               group=settings.get("group"), config=dict(settings.get("config", {})), dir=work_dir,
               resume="allow", id=settings.get("id"))
    return wandb
