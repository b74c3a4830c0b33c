"""TD-MPC2 in JAX: the world model, update and MPPI planner as pure functions, the training loops
and their command lines. Importing it changes nothing in the process; the command lines set
up memory reuse, logging and the compilation cache (`cli.setup_process`)."""


def _version() -> str:
    """The installed distribution's version, else setup.cfg's (a source checkout), else "unknown"."""
    import configparser
    import importlib.metadata
    import pathlib

    try:
        return importlib.metadata.version("tdmpc2_jax")
    except importlib.metadata.PackageNotFoundError:
        setup = configparser.ConfigParser()
        setup.read(pathlib.Path(__file__).resolve().parents[1] / "setup.cfg")
        return setup.get("metadata", "version", fallback="unknown")


__version__ = _version()
