"""The flag the benchmarks share beyond absl's own: a comma-separated list of integers."""
from __future__ import annotations

from absl import flags


class _IntListParser(flags.ListParser):
    def parse(self, argument) -> list[int]:
        items = super().parse(argument)
        try:
            return [int(item) for item in items]
        except ValueError:
            raise ValueError(f"expected comma-separated integers, got {argument!r}") from None

    def flag_type(self) -> str:
        return "comma-separated list of integers"


def define_int_list(name: str, default: list[int], help_text: str) -> None:
    """--NAME=1,5,19: its value is a list of ints; anything else is one line and exit 2 (cli.parse_flags)."""
    flags.DEFINE(_IntListParser(), name, default, help_text, serializer=flags.CsvListSerializer(","))
