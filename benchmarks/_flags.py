"""The flags the benchmarks share beyond absl's own: a comma-separated list of integers, and the
model sizes and shapes that the per-call timings (plan_latency, update_throughput) take."""
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


def define_model_flags() -> None:
    """--sizes, --repeats, --obs_dim and --action_dim: which presets to time, how often, on which shapes."""
    define_int_list("sizes", [1, 5], "model-size presets")
    flags.DEFINE_integer("repeats", 20, "warm calls per figure")
    flags.DEFINE_integer("obs_dim", 24, "observation size")
    flags.DEFINE_integer("action_dim", 6, "action size")
