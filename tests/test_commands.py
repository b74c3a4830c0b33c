"""Commands describe themselves: --help lists each command's flags, --config_keys every config key
with its meaning, Hydra-style arguments and the official keys this project lacks are refused in
one line, --config.task=X loads X's config, and a run directory holds its config.json."""
import json
import pathlib
import re
import struct
import subprocess
import sys

import pytest

from tdmpc2_jax.run_config import KEY_MEANINGS, UNSUPPORTED_KEYS, base_config, mjx_config

import tiny
from tiny import ROOT

DMC = f"--config={ROOT / 'tdmpc2_jax' / 'configs' / 'dmc.py'}"
ABSL_COMMANDS = ("train", "evaluate", "sweep", "parity", "speculative.collect", "speculative.evaluate",
                 "speculative.train_corrector")
CONSOLE_SCRIPTS = {"tdmpc2-train": "train", "tdmpc2-evaluate": "evaluate"}
FLAG_LINE = re.compile(r"^\s+(?:-\S,)?--(?:\[no\])?([\w.-]+):")


def command(*args: str, module: str = "train") -> subprocess.CompletedProcess:
    """python -m tdmpc2_jax.<module> ARGS, run from a directory other than the repository."""
    return subprocess.run([sys.executable, "-m", f"tdmpc2_jax.{module}", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT / "tests")


def console_script(name: str, *args: str) -> subprocess.CompletedProcess:
    """What the installed console script `name` runs: its function, with argv[0] the script's path."""
    program = (f"import sys; from tdmpc2_jax.{CONSOLE_SCRIPTS[name]} import run; "
               f"sys.argv[0] = '/usr/local/bin/{name}'; sys.exit(run())")
    return subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True, timeout=300)


def listed_flags(help_text: str, module_part: str | None = None) -> set[str]:
    """The flags a help text lists; with `module_part`, only those of the sections (absl lists
    flags under their module's name) whose module name contains it."""
    names, section = set(), ""
    for line in help_text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            section = line
        match = FLAG_LINE.match(line)
        if match and (module_part is None or module_part in section):
            names.add(match.group(1))
    return names


def helped(module: str):
    """A parameter of the help test: the command (parity loads JAX before it parses: slow)."""
    marks = [pytest.mark.slow] if module == "parity" else []
    return pytest.param(lambda args: command(*args, module=module), marks=marks, id=module)


@pytest.mark.parametrize("run", [*map(helped, ABSL_COMMANDS),
                                 *(pytest.param(lambda args, s=s: console_script(s, *args), id=s)
                                   for s in CONSOLE_SCRIPTS)])
def test_help_lists_the_command_s_own_flags_and_helpfull_every_flag(run):
    full = run(["--helpfull"])
    own = listed_flags(full.stdout, "tdmpc2_jax")  # the flags this package's modules define for the command
    assert own and "verbosity" in listed_flags(full.stdout)  # absl's flags too
    short = run(["--help"])
    assert listed_flags(short.stdout) == own, short.stdout
    assert "verbosity" not in short.stdout


@pytest.mark.slow
def test_convert_help_lists_its_arguments():
    out = command("--help", module="convert")
    assert out.returncode == 1  # absl's --help status, as for every command
    assert all(name in out.stdout for name in ("OFFICIAL.pt OUT_DIR", "--tasks", "--episode_lengths",
                                               "--episode_length", "--[no]force"))


def test_every_key_has_a_meaning_and_every_meaning_a_key():
    keys = set(base_config("cartpole-balance")) | set(mjx_config("cartpole-balance"))
    assert set(KEY_MEANINGS) == keys
    assert all(meaning and "\n" not in meaning for meaning in KEY_MEANINGS.values())


def test_official_keys_are_keys_here_or_refused_with_a_reason(parity_dir):
    official = set(json.loads((parity_dir / "README.json").read_text())["config"])  # made by the official code
    assert not set(UNSUPPORTED_KEYS) & set(KEY_MEANINGS)
    assert set(UNSUPPORTED_KEYS) == official - set(KEY_MEANINGS)
    assert {"compile", "multitask"} <= set(UNSUPPORTED_KEYS)


def test_config_keys_prints_every_key_with_its_value_and_meaning():
    out = command(f"{DMC}:mw-reach", "--config.steps=7", "--config_keys")
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith("--config.")}
    config = base_config("mw-reach")
    assert set(lines) == {f"--config.{key}" for key in config}
    for key in config:
        assert lines[f"--config.{key}"].endswith(KEY_MEANINGS[key])
    assert lines["--config.steps"].split()[1] == "7" and lines["--config.episode_length"].split()[1] == "100"
    assert "  compile: XLA compiles every program already" in out.stdout
    out = command("--config_keys")
    assert out.returncode == 2 and out.stderr.count("\n") == 1


def test_hydra_style_arguments_are_refused_with_their_flag_form():
    out = command("task=dog-run", "steps=1000")
    assert out.returncode == 2
    assert out.stderr == ("error: key=value arguments are not read here: write task=dog-run steps=1000 as "
                          "--config=configs/dmc.py:dog-run --config.steps=1000\n")
    out = command(f"{DMC}:cartpole-balance", "--config.steps=5", "seed=2")
    assert out.returncode == 2 and out.stderr.endswith("write seed=2 as --config.seed=2\n")
    out = command("data=x.npz", module="speculative.train_corrector")
    assert out.returncode == 2 and out.stderr.endswith("as --data=x.npz\n")
    out = command(f"{DMC}:cartpole-balance", "cartpole-swingup")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "'cartpole-swingup'" in out.stderr


def test_the_fixture_generators_read_official_key_value_overrides(tmp_path):
    """make_parity and make_rgb take the official config's own key=value pairs (action_dim among
    them, which the training command refuses); here they get as far as loading the checkout."""
    for generator in ("make_parity", "make_rgb"):
        out = subprocess.run([sys.executable, "-m", f"tests.fixtures.{generator}", f"--official_repo={tmp_path}",
                              f"--out={tmp_path / 'fixture'}", "action_dim=2", "num_bins=51"],
                             capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert out.returncode == 2
        assert out.stderr == f"error: {tmp_path} is not a checkout of nicklashansen/tdmpc2 (no tdmpc2/tdmpc2.py)\n"


def test_unsupported_official_keys_say_why():
    for args in ([f"{DMC}:cartpole-balance", "--config.compile=true"], [f"{DMC}:cartpole-balance", "compile=true"]):
        out = command(*args)
        assert out.returncode == 2
        assert out.stderr == "error: --config.compile: not supported: XLA compiles every program already\n"
    out = command(f"{DMC}:cartpole-balance", "--config.multitask=true")
    assert out.returncode == 2 and out.stderr.startswith("error: --config.multitask: not supported: a task set")


def test_config_task_loads_the_task_s_config_with_the_other_overrides_over_it():
    loaded = command(f"{DMC}:mujoco-walker", "--config.seed=3", "--config_keys")
    switched = command(f"{DMC}:cartpole-balance", "--config.task=mujoco-walker", "--config.seed=3", "--config_keys")
    assert switched.returncode == 0 and switched.stdout == loaded.stdout
    assert "--config.episodic           True" in switched.stdout  # mujoco-walker's domain default
    kept = command(f"{DMC}:cartpole-balance", "--config.episode_length=200", "--config.task=mujoco-walker",
                   "--config_keys")
    assert "--config.episode_length     200 " in kept.stdout
    out = command("--config.task=mujoco-walker")
    assert out.returncode == 2
    assert out.stderr == ("error: --config.task needs a config file: use --config=configs/dmc.py:mujoco-walker "
                          "(or configs/mjx.py:mujoco-walker)\n")


def tensorboard_summaries(directory: pathlib.Path) -> dict[str, object]:
    """{tag: summary value} of every summary in the TensorBoard event files under `directory`."""
    from tensorboardX.proto.event_pb2 import Event

    values = {}
    for path in directory.glob("events.out.tfevents.*"):
        data, offset = path.read_bytes(), 0
        while offset < len(data):  # TFRecord: length, its CRC, the record, its CRC
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            event = Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 16 + length
            values.update({value.tag: value for value in event.summary.value})
    return values


@pytest.mark.slow
def test_a_run_prints_its_config_and_writes_config_json_and_tensorboard_config(tmp_path):
    run = tiny.flags(tiny.AGENT, tiny.HOST_RUN, steps=20, eval_freq=1000, work_dir=tmp_path)
    out = command(f"{DMC}:cartpole-balance", *run)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "config: backend=dmc batch_size=8 " in out.stdout
    record = json.loads((tmp_path / "config.json").read_text())
    import tdmpc2_jax

    assert record["version"] == tdmpc2_jax.__version__
    assert record["command"].endswith(" ".join(run[-3:]))
    expected = tiny.run_config("dmc.py", "cartpole-balance", tmp_path, steps=20, eval_freq=1000).to_dict()
    assert record["config"] == json.loads(json.dumps(expected))
    summaries = tensorboard_summaries(tmp_path / "tb")
    assert "| steps | 20 |" in summaries["config/text_summary"].tensor.string_val[0].decode()
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(summaries)


def test_the_version_is_setup_cfg_s_without_package_metadata(monkeypatch):
    import configparser
    import importlib.metadata

    import tdmpc2_jax

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert tdmpc2_jax._version() == setup["metadata"]["version"]


def test_each_member_of_an_mjx_population_writes_its_own_seed_and_lr_to_config_json(tmp_path):
    import numpy as np

    from tdmpc2_jax.loops import mjx_run
    from tdmpc2_jax.run_record import resolve

    run = resolve(tiny.run_config("mjx.py", "cartpole-balance", tmp_path))
    members = mjx_run.population([1, 2], [1e-3])
    mjx_run.PopulationLog(run, members, 1, 0, np.zeros(2, int))
    for member, directory in zip(members, mjx_run.member_dirs(run, members)):
        config = json.loads((pathlib.Path(directory) / "config.json").read_text())["config"]
        assert (config["seed"], config["lr"]) == (member.seed, member.lr)
        assert {k: v for k, v in config.items() if k not in ("seed", "lr")} == \
            {k: v for k, v in json.loads(json.dumps(dict(run.config))).items() if k not in ("seed", "lr")}
