"""Helpers shared by the end-to-end tests."""
import csv
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_config(config_file: str, task: str):
    """get_config(task) of configs/<config_file>, as the command lines load it."""
    spec = importlib.util.spec_from_file_location(config_file.removesuffix(".py") + "_config",
                                                  ROOT / "configs" / config_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(task)


def rows(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))
