"""Shared pieces of the command-line entry points (absl + ml_collections)."""
from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import platform
import sys
import tempfile
import time
import traceback
from typing import Callable, Iterator

from absl import flags, logging


def parse_flags(argv: list[str], arguments: bool = False) -> list[str]:
    """absl parsing with a one-line message (and exit 2) for a bad flag, config override or argument.

    Around absl's own parsing: --help lists the command's flags (`list_command_flags_in_help`);
    `--config.task=X` loads X's config (`with_task_config`); an official key this project does not
    have is refused with the reason; a positional argument (absl would hand it to main unread) is
    refused, a Hydra-style `key=value` with its flag form (`refuse_arguments`), unless the command
    reads arguments (`arguments=True`: they are returned after the program name); `--config_keys`
    prints the config's keys and exits.
    """
    list_command_flags_in_help()
    _refuse_overrides_without_config(argv[1:])
    _refuse_unsupported_keys(argv[1:])
    argv = with_task_config(resolve_config_path(argv))
    refuse_missing_config_file(argv)
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as err:
        fail(str(err))
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        message = str(err.args[0]) if err.args else str(err)
        if message[:1] in "'\"":  # ml_collections wraps a KeyError's repr
            try:
                message = ast.literal_eval(message)
            except (ValueError, SyntaxError):
                pass
        fail(f"invalid config override: {message} (--config_keys lists the keys)".replace("\n", " "))
    if not arguments:
        refuse_arguments(rest[1:])
    if "config_keys" in flags.FLAGS and flags.FLAGS.config_keys:
        if flags.FLAGS.config is None:
            fail("--config_keys lists the keys of a config: give one, e.g. --config=configs/dmc.py:cartpole-balance")
        print(describe_keys(flags.FLAGS.config))
        sys.exit(0)
    return rest


def list_command_flags_in_help() -> None:
    """Makes every flag defined by this package a key flag of the main program, which is what
    absl's --help lists: it lists only flags defined by the `__main__` module, so neither
    --config (defined here) nor a console script's flags (defined in its module) would show.
    --helpfull lists every flag as before."""
    for module, defined in flags.FLAGS.flags_by_module_dict().items():
        if module.split(".")[0] == __name__.split(".")[0]:
            for flag in defined:
                flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def with_task_config(argv: list[str]) -> list[str]:
    """argv with `--config=FILE[:TASK]` made `--config=FILE:X` when `--config.task=X` is given, so
    that X's config is loaded (its domain's defaults: episode length, episodic, ...) exactly as
    `--config=FILE:X` loads it, the other --config.key overrides applied over it."""
    task = None
    for i, arg in enumerate(argv):
        if arg.startswith("--config.task="):
            task = arg.removeprefix("--config.task=")
        elif arg == "--config.task" and i + 1 < len(argv):
            task = argv[i + 1]
    if task is None:
        return argv
    out = list(argv)
    for i, arg in enumerate(out):
        if arg.startswith("--config="):
            out[i] = "--config=" + arg.removeprefix("--config=").partition(":")[0] + ":" + task
        elif arg == "--config" and i + 1 < len(out):
            out[i + 1] = out[i + 1].partition(":")[0] + ":" + task
    return out


def _refuse_overrides_without_config(args: list[str]) -> None:
    """One line for a --config.KEY override with no --config to apply it to."""
    overrides = [arg.removeprefix("--config.").partition("=") for arg in args if arg.startswith("--config.")]
    if not overrides or any(arg == "--config" or arg.startswith("--config=") for arg in args):
        return
    task = next((value for key, _, value in overrides if key == "task" and value), None)
    if task:
        fail(f"--config.task needs a config file: use --config=configs/dmc.py:{task} (or configs/mjx.py:{task})")
    fail(f"--config.{overrides[0][0]} needs a config file, e.g. --config=configs/dmc.py:cartpole-balance")


def _refuse_unsupported_keys(args: list[str]) -> None:
    """One line with the reason for a --config.KEY override of an official key this project lacks."""
    from tdmpc2_jax.run_config import UNSUPPORTED_KEYS

    for arg in args:
        key = arg.removeprefix("--config.").partition("=")[0] if arg.startswith("--config.") else None
        if key in UNSUPPORTED_KEYS:
            fail(f"--config.{key}: not supported: {UNSUPPORTED_KEYS[key]}")


def refuse_arguments(args: list[str]) -> None:
    """Nothing for no arguments; else one line, exit 2: commands here read flags only, and a
    Hydra-style `key=value` (the official code's way) is shown in its flag form."""
    if not args:
        return
    from tdmpc2_jax.run_config import UNSUPPORTED_KEYS

    pairs = [arg.partition("=") for arg in args]
    if not all(key and sep for key, sep, _ in pairs):
        fail(f"unexpected argument {next(a for a, (k, s, _) in zip(args, pairs) if not (k and s))!r}: "
             "this command reads flags only (see --help)")
    for key, _, _ in pairs:
        if key in UNSUPPORTED_KEYS and key not in flags.FLAGS:
            fail(f"--config.{key}: not supported: {UNSUPPORTED_KEYS[key]}")
    fail(f"key=value arguments are not read here: write {' '.join(args)} as "
         + " ".join(_flag_form(key, value) for key, _, value in pairs))


def _flag_form(key: str, value: str) -> str:
    """The flag that sets what the Hydra-style argument `key=value` sets: the command's own flag
    `key`, else the config key; `task` without --config names the config to load."""
    if key in flags.FLAGS and key != "config":
        return f"--{key}={value}"
    if "config" not in flags.FLAGS:
        return f"--{key}={value}"
    if key == "task" and flags.FLAGS.config is None:
        return f"--config=configs/dmc.py:{value}"
    return f"--config.{key}={value}"


def describe_keys(config) -> str:
    """One line per key of `config`: `--config.KEY`, its value, and what it means
    (`run_config.KEY_MEANINGS`), in the order of KEY_MEANINGS; then the official keys that have
    none here, with the reason."""
    from tdmpc2_jax.run_config import KEY_MEANINGS, UNSUPPORTED_KEYS

    keys = [k for k in KEY_MEANINGS if k in config] + sorted(k for k in config if k not in KEY_MEANINGS)
    names = [f"--config.{k}" for k in keys]
    values = [_show(config[k]) for k in keys]
    name_width, value_width = max(map(len, names)), min(max(map(len, values)), 24)
    lines = [f"{n:<{name_width}}  {v:<{value_width}}  {KEY_MEANINGS.get(k, '')}".rstrip()
             for n, v, k in zip(names, values, keys)]
    lines += ["", "official keys not supported here:"]
    lines += [f"  {k}: {reason}" for k, reason in UNSUPPORTED_KEYS.items()]
    return "\n".join(lines)


def _show(value) -> str:
    """A config value as typed after --config.KEY= (unset placeholders as `unset`)."""
    if value is None:
        return "unset"
    return f"{value!r}" if value == "" else str(value)


def print_run_config(config) -> None:
    """The resolved config of a run, `key=value` wrapped at 100 columns, before the run starts."""
    import textwrap

    text = " ".join(f"{k}={_show(v)}" for k, v in sorted(config.items()))
    print(textwrap.fill(text, width=100, initial_indent="config: ", subsequent_indent="  ",
                        break_long_words=False, break_on_hyphens=False), flush=True)


def resolve_config_path(argv: list[str]) -> list[str]:
    """argv with a --config file under `configs/` that does not exist in the working directory
    taken from the package's copy (tdmpc2_jax/configs), so `--config=configs/dmc.py:TASK` works
    from any directory."""
    def resolved(value: str) -> str:
        path, colon, task = value.partition(":")
        parts = os.path.normpath(path).split(os.sep)
        packaged = os.path.join(os.path.dirname(os.path.abspath(__file__)), *parts)
        if parts[0] == "configs" and not os.path.exists(path) and os.path.isfile(packaged):
            return packaged + colon + task
        return value

    out = list(argv)
    for i, arg in enumerate(out):
        if arg.startswith("--config="):
            out[i] = "--config=" + resolved(arg.removeprefix("--config="))
        elif arg == "--config" and i + 1 < len(out):
            out[i + 1] = resolved(out[i + 1])
    return out


def refuse_missing_config_file(argv: list[str]) -> None:
    """One line (exit 2) for a --config file that does not exist, which ml_collections would
    report only at the config's first use, as a traceback."""
    for i, arg in enumerate(argv):
        value = arg.removeprefix("--config=") if arg.startswith("--config=") else (
            argv[i + 1] if arg == "--config" and i + 1 < len(argv) else None)
        path = value.partition(":")[0] if value is not None else None
        if path is not None and not os.path.isfile(path):
            fail(f"--config file {path or '(empty)'} does not exist")


def define_config_flags(config_help: str, checkpoint_help: str | None = None) -> None:
    """--config (a configs/*.py:TASK file, official keys overridable as --config.key=value; its
    value is `flags.FLAGS.config`) and, for a command that reads a trained agent, --checkpoint."""
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", None, config_help + "; override a key with --config.KEY=VALUE",
                                    lock_config=True)
    flags.DEFINE_bool("config_keys", False, "print every --config.KEY of --config, its value and meaning, and exit")
    if checkpoint_help:
        flags.DEFINE_string("checkpoint", None, checkpoint_help)


def start_command(*required: str):
    """The --config value of a command, once --config and the flags named in `required` are all given
    (else one line naming the missing ones, exit 2), with the process set up for it (`setup_process`)."""
    given = {"config": flags.FLAGS.config, **{name: flags.FLAGS[name].value for name in required}}
    missing = [f"--{name}" for name, value in given.items() if value is None]
    if missing:
        names = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
        example = ", e.g. --config=configs/dmc.py:cartpole-balance" if given["config"] is None else ""
        fail(f"{names} {'is' if len(missing) == 1 else 'are'} required{example}")
    setup_process(flags.FLAGS.config)
    return flags.FLAGS.config


def setup_process(config=None) -> None:
    """What a command line sets for its whole process before any JAX work: freed memory kept in
    the process (malloc.py), headless rendering (MUJOCO_GL=egl unless the user chose a backend),
    libraries' logging at WARNING, and the compilation cache of `config`."""
    from tdmpc2_jax.envs.pixels import DEFAULTED
    from tdmpc2_jax.malloc import reuse_freed_memory

    if "MUJOCO_GL" not in os.environ:  # before dm_control loads MuJoCo's renderer
        os.environ.update({"MUJOCO_GL": "egl", DEFAULTED: "1"})
    reuse_freed_memory()
    logging.set_verbosity(logging.WARNING)  # orbax reports every file it writes at INFO
    if config is not None:
        use_compilation_cache(config)


def use_compilation_cache(config) -> None:
    """Keep compiled programs under config.compilation_cache (a directory; "" or absent: off).

    JAX stores every program that took over a second to compile there and loads it in later runs
    (a second's load instead of many seconds of compiling). Each kind of machine gets
    its own subdirectory, so a home directory shared by hosts with other CPUs never hands one of
    them code built for another's instruction set.
    """
    path = config.get("compilation_cache")
    if not path:
        return
    directory = os.path.join(os.path.expanduser(str(path)), _machine_tag())
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        print(f"warning: compilation_cache {path} cannot be used ({err}); compiling every program", file=sys.stderr)
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", directory)


def _machine_tag() -> str:
    """A short hash of the processor's architecture and feature flags."""
    try:
        with open("/proc/cpuinfo") as f:
            features = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        features = ""
    text = " ".join([platform.machine(), platform.processor(), features])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def step_progress(steps: int):
    """An `on_progress(steps_done)` (`acting.rollout`) that prints one line per report, with the
    minutes since it was made."""
    start = time.perf_counter()
    return lambda done: print(f"  step {int(done)}/{steps} ({(time.perf_counter() - start) / 60:.1f} min since start)",
                              flush=True)


def episode_progress(episodes: int):
    """An `on_episode(index, return, length)` that prints one line per finished host episode."""
    return lambda e, total, length: print(f"  episode {e + 1}/{episodes}: return {total:.1f} ({length} steps)",
                                          flush=True)


def input_errors() -> tuple[type[Exception], ...]:
    """The errors that mean the input cannot work (a bad key, task, file or missing extra): one
    line, exit 2, at every command's error edge."""
    from tdmpc2_jax.envs.maniskill import ManiSkillUnavailable
    from tdmpc2_jax.envs.pixels import RendererUnavailable

    return ValueError, FileNotFoundError, ImportError, RendererUnavailable, ManiSkillUnavailable


@contextlib.contextmanager
def error_edge(run_dir: str | Callable[[], str | None] | None = None,
               usage_errors: tuple[type[Exception], ...] | None = None) -> Iterator[None]:
    """The error edge of a command: whatever exception escapes the block becomes one line on
    stderr and an exit status, never a traceback.

    - an instance of `usage_errors` (bad input; default absl's UsageError): "error: MESSAGE", exit 2;
    - any other exception: "error: MESSAGE (details in RUN_DIR/error.log)", exit 1, the full
      traceback appended to `error.log` in the run directory (`run_dir`, or what it returns when
      called at the time of the error; a temporary file when it is None or cannot be written).

    Entering it also silences, for the rest of the process, the "Event loop is closed" reports
    of orbax's background writers and readers torn down in the wrong order, at interpreter
    shutdown too (`checkpoints.is_async_teardown_noise`); every other unraisable exception is
    still printed. SystemExit (e.g. `fail`) and KeyboardInterrupt pass through. A main uses it as

        def main(argv):
            config = start_command()
            with error_edge(lambda: config.work_dir, usage_errors=(ValueError, FileNotFoundError)):
                _train(config)
    """
    from absl import app

    usage_errors = usage_errors or (app.UsageError,)
    _silence_async_teardown_noise()
    try:
        yield
    except usage_errors as err:  # its message says what to change: no type name, no log
        from tdmpc2_jax.checkpoints import error_summary

        print(f"error: {error_summary(err)}", file=sys.stderr)
        _end(2)
    except Exception as err:
        print(f"error: {_one_line(err, run_dir)} ({_write_error_log(err, run_dir)})", file=sys.stderr)
        _end(1)


def _end(status: int) -> None:
    """sys.exit(status); in a process of a multi-process run, `sharding.end_process`."""
    if "jax" in sys.modules:
        from tdmpc2_jax.sharding import end_process

        end_process(status)
    sys.exit(status)


def _one_line(err: BaseException, run_dir: str | Callable[[], str | None] | None = None) -> str:
    """The error's message on one line; the exception's type leads it unless it is a ValueError
    or OSError, whose messages here are sentences of their own. A process of a multi-process run
    that lost another process says so, and where the run resumes from (`sharding.peer_loss_line`)."""
    from tdmpc2_jax.checkpoints import error_summary

    if "jax" in sys.modules:
        from tdmpc2_jax import sharding

        if sharding.lost_a_process(err):
            directory = _run_directory(run_dir)
            return sharding.peer_loss_line(err, directory and os.path.join(directory, "checkpoints"))
    message = error_summary(err)
    return message if isinstance(err, (ValueError, OSError)) else f"{type(err).__name__}: {message}"


def _run_directory(run_dir: str | Callable[[], str | None] | None) -> str | None:
    """The run directory that `run_dir` names now (None when what names it failed)."""
    try:
        return run_dir() if callable(run_dir) else run_dir
    except Exception:
        return None


def _write_error_log(err: BaseException, run_dir: str | Callable[[], str | None] | None) -> str:
    """Appends the command line and the traceback of `err` to RUN_DIR/error.log (else a temporary
    file) and says where, or why nothing could be written."""
    text = (f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)}\n"
            + "".join(traceback.format_exception(err)))
    directory = _run_directory(run_dir)
    reasons = []
    for path in ([os.path.join(str(directory), "error.log")] if directory else []) + [None]:
        try:
            if path is None:
                fd, path = tempfile.mkstemp(prefix="tdmpc2_jax-error-", suffix=".log")
                os.close(fd)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "a") as f:
                f.write(text)
            return f"details in {path}"
        except OSError as failure:
            reasons.append(failure.strerror or str(failure))
    return f"no details written: {'; '.join(reasons)}"


def _silence_async_teardown_noise() -> None:
    """Drops `checkpoints.is_async_teardown_noise` from sys.unraisablehook for the rest of the process."""
    from tdmpc2_jax.checkpoints import is_async_teardown_noise

    previous = sys.unraisablehook
    if getattr(previous, "drops_async_teardown_noise", False):
        return

    def hook(unraisable):
        if not is_async_teardown_noise(unraisable):
            previous(unraisable)

    hook.drops_async_teardown_noise = True
    sys.unraisablehook = hook
