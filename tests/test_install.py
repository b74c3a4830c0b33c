"""The install: a task or logger whose extra is missing stops with one line naming the `pip install`
to run, commands find `configs/*.py` from any directory, the console scripts exist, and
constraints.txt (the versions CI tests) lies inside setup.cfg's bounds."""
import configparser
import importlib
import os
import pathlib
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import tdmpc2_jax.configs
from tdmpc2_jax.cli import resolve_config_path
from tdmpc2_jax.envs.maniskill import INSTALL as MANISKILL_INSTALL

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGED = os.path.dirname(tdmpc2_jax.configs.__file__)

# (module made unimportable, task, the line the command prints)
MISSING_EXTRAS = [
    ("metaworld", "mw-reach", "Meta-World tasks need the metaworld extra: pip install 'tdmpc2_jax[metaworld]'"),
    ("myosuite", "myo-reach", "MyoSuite tasks need the myosuite extra: pip install 'tdmpc2_jax[myosuite]'"),
    ("gymnasium", "mujoco-walker", "Gymnasium tasks need the gym extra: pip install 'tdmpc2_jax[gym]'"),
    ("Box2D", "lunarlander-continuous",
     "lunarlander-continuous needs Box2D and pygame, in the gym extra: pip install 'tdmpc2_jax[gym]'"),
    ("mani_skill", "pick-cube", "ManiSkill tasks need mani_skill 3.0.1 and SAPIEN 3, which pip's resolver cannot "
     f"install beside JAX (a dependency asks for numpy<2): {MANISKILL_INSTALL}"),
]


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def requirements(section: str, key: str) -> list[Requirement]:
    """setup.cfg's requirements under [section] key, without the package's own extras."""
    lines = [line.strip() for line in setup_cfg()[section][key].splitlines()]
    return [Requirement(line) for line in lines if line and not line.startswith("tdmpc2_jax")]


@pytest.mark.slow
@pytest.mark.parametrize("module, task, line", MISSING_EXTRAS, ids=[m[0] for m in MISSING_EXTRAS])
def test_a_task_whose_extra_is_missing_stops_train_with_one_line_naming_the_pip_install(tmp_path, module, task,
                                                                                         line):
    """tdmpc2-train run outside the repository (configs/dmc.py is the package's), `module` unimportable."""
    code = (f"import sys; sys.modules[{module!r}] = None; "
            f"sys.argv = ['tdmpc2-train', '--config=configs/dmc.py:{task}', '--config.steps=10']; "
            "from tdmpc2_jax.train import run; run()")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert (out.returncode, out.stderr.strip().splitlines()) == (2, [f"error: {line}"])


def test_wandb_logging_without_the_wandb_extra_is_one_line_naming_the_pip_install(tmp_path, monkeypatch):
    from tdmpc2_jax.logs import RunLogger

    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ValueError) as err:
        RunLogger(str(tmp_path), 10, 1, tensorboard=False, progress=False, csv=False, wandb={"project": "p"})
    assert str(err.value) == ("Weights & Biases logging (enable_wandb=True) needs the wandb extra: "
                              "pip install 'tdmpc2_jax[wandb]'")


def test_a_configs_path_missing_in_the_working_directory_is_read_from_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["prog", "--config=configs/dmc.py:walker-walk", "--config", "configs/mjx.py", "--config=configs/no.py:x",
            "--out=configs/dmc.py"]
    assert resolve_config_path(argv) == [
        "prog", f"--config={PACKAGED}/dmc.py:walker-walk", "--config", f"{PACKAGED}/mjx.py",
        "--config=configs/no.py:x", "--out=configs/dmc.py"]
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "dmc.py").write_text("")
    assert resolve_config_path(["prog", "--config=configs/dmc.py:cheetah-run"]) == [
        "prog", "--config=configs/dmc.py:cheetah-run"]  # a file of that name here is the one meant


def test_the_configs_exist_once_in_the_package():
    assert sorted(p.name for p in pathlib.Path(PACKAGED).glob("*.py")) == ["__init__.py", "dmc.py", "mjx.py"]
    assert not (ROOT / "configs").exists()


def test_every_console_script_names_a_function_of_the_package():
    scripts = [line.split("=") for line in setup_cfg()["options.entry_points"]["console_scripts"].split("\n") if line]
    assert sorted(name.strip() for name, _ in scripts) == ["tdmpc2-convert", "tdmpc2-evaluate", "tdmpc2-plot", "tdmpc2-train"]
    for _, target in scripts:
        module, function = target.strip().split(":")
        assert callable(getattr(importlib.import_module(module), function)), target


def test_constraints_pin_every_requirement_of_the_test_install_inside_setup_cfg_bounds():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    extras = ("metaworld", "myosuite", "gym", "torch", "wandb", "test")
    needed = requirements("options", "install_requires") + [
        r for extra in extras for r in requirements("options.extras_require", extra)]
    pinned = {r: pins.get(canonicalize_name(r.name)) for r in needed}
    outside = [f"{r} (constraints.txt: {pin})" for r, pin in pinned.items()
               if pin is None or not r.specifier.contains(pin, prereleases=True)]
    assert len(needed) > 20 and outside == []
