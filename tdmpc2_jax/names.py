"""Hints for a mistyped name: the closest known names, for one-line errors."""
from __future__ import annotations

import difflib
from typing import Iterable


def close_matches(name: str, options: Iterable[str]) -> str:
    """A ' (did you mean ...?)' hint, or ''."""
    matches = difflib.get_close_matches(name, list(options), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(m) for m in matches)}?)" if matches else ""
