"""Shared pieces of the command-line entry points (absl + ml_collections)."""
from __future__ import annotations

import ast
import sys

from absl import flags, logging


def parse_flags(argv: list[str]) -> list[str]:
    """absl parsing with a one-line message (and exit 2) for a bad flag or config override."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        message = str(err.args[0]) if err.args else str(err)
        if message[:1] in "'\"":  # ml_collections wraps a KeyError's repr
            try:
                message = ast.literal_eval(message)
            except (ValueError, SyntaxError):
                pass
        print(f"error: invalid config override: {message}".replace("\n", " "), file=sys.stderr)
        sys.exit(2)


def quiet_libraries() -> None:
    """Only warnings from absl-logging libraries (orbax reports every file it writes at INFO)."""
    logging.set_verbosity(logging.WARNING)


def fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)
