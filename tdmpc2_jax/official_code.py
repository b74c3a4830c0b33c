"""The official PyTorch TD-MPC2 (github.com/nicklashansen/tdmpc2), imported from a checkout and
patched for CPU.

The one loader of the official code for the parity fixture generators (tests/fixtures/make_*.py)
and benchmarks/versus_official.py. The checkout's `tdmpc2/tdmpc2.py` and `tdmpc2/common/` are
copied to a temporary directory with CPU_PATCHES applied ('cuda:0' -> 'cpu', Adam(capturable=False))
and imported from there; the checkout itself is left as it is. Needs torch and tensordict
(`pip install torch==2.13.0 tensordict==0.8.3`); nothing in this package imports this module.
"""
from __future__ import annotations

import importlib
import pathlib
import shutil
import sys
import tempfile
from typing import Any

# (file under tdmpc2/, text, replacement, how many times the text must occur)
CPU_PATCHES = (
    ("tdmpc2.py", "'cuda:0'", "'cpu'", 2),
    ("tdmpc2.py", "capturable=True", "capturable=False", 2),
    ("common/scale.py", "'cuda:0'", "'cpu'", 2),
)


class OfficialConfig(dict):
    """A dict with the attribute access the official code expects of its OmegaConf config."""

    __getattr__ = dict.__getitem__

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value


def load_official(repo: str | pathlib.Path) -> tuple[type, dict, dict]:
    """(TDMPC2 class, MODEL_SIZE presets, config.yaml defaults) of a patched copy of the checkout
    `repo`; a ValueError or ImportError in one line when it cannot be loaded."""
    source = pathlib.Path(repo) / "tdmpc2"
    if not (source / "tdmpc2.py").is_file():
        raise ValueError(f"{repo} is not a checkout of nicklashansen/tdmpc2 (no tdmpc2/tdmpc2.py)")
    try:
        import tensordict  # noqa: F401
        import torch  # noqa: F401
    except ImportError as err:
        raise ImportError(f"the official code needs torch and tensordict ({err}); "
                          "pip install torch==2.13.0 tensordict==0.8.3") from err
    import yaml

    copy = pathlib.Path(tempfile.mkdtemp(prefix="tdmpc2_official_"))
    shutil.copytree(source / "common", copy / "common")
    shutil.copy(source / "tdmpc2.py", copy / "tdmpc2.py")
    for name, text, replacement, count in CPU_PATCHES:
        path = copy / name
        content = path.read_text()
        if content.count(text) != count:
            raise ValueError(f"{name}: expected {count} x {text!r} to patch for CPU, found {content.count(text)} "
                             "(the official code changed; update CPU_PATCHES)")
        path.write_text(content.replace(text, replacement))
    sys.path.insert(0, str(copy))
    official = importlib.import_module("tdmpc2")
    presets = importlib.import_module("common").MODEL_SIZE
    defaults = yaml.safe_load((source / "config.yaml").read_text())
    return official.TDMPC2, presets, defaults


def default_config(defaults: dict) -> OfficialConfig:
    """The official config.yaml's keys (its hydra `defaults` list left out), numbers read as the
    official parser reads them."""
    return OfficialConfig({key: _number(value) for key, value in defaults.items() if key != "defaults"})


def _number(value: Any) -> Any:
    """YAML 1.1 reads '3e-4' as a string; OmegaConf reads it as a float."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
