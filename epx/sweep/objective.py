"""A trial's value from its run's `metrics.jsonl`: pure functions over the records.

The objective is one metric of the run: by default the held-out accuracy of the recipe's first
eval benchmark at the last evaluation (`eval/<bench>/acc`), never the training reward, which a
policy can game. Intermediate values (each record that holds the metric) feed the pruner. A
metric that is missing, null (metrics.jsonl writes NaN as null) or not finite has no value:
the trial fails rather than ranking a number that is not one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from epx.errors import RecipeError
from epx.records import parse_records


def default_metric(recipe: Any) -> str:
    """`eval/<first bench>/acc` of the recipe; RecipeError when it evaluates nothing."""
    if not recipe.eval.benches:
        raise RecipeError(
            f"{recipe.source}: no eval section: a sweep ranks trials by held-out accuracy "
            "(eval/<bench>/acc); add eval.benches to the recipe, or pass --metric reward to "
            "rank by the training reward"
        )
    return f"eval/{recipe.eval.benches[0]}/acc"


def metric_points(records: Iterable[dict[str, Any]], metric: str) -> list[tuple[int, Any]]:
    """(step, value) of every record that holds `metric` (value as written: a number or None)."""
    return [(int(r.get("step", 0)), r[metric]) for r in records if metric in r]


def finite(value: Any) -> float | None:
    """The value as a finite float, or None (missing, null, NaN, infinite, not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def final_value(records: list[dict[str, Any]], metric: str) -> float:
    """The metric at the last record holding it; ValueError (with the reason) when none is a
    finite number."""
    points = metric_points(records, metric)
    if not points:
        known = sorted({k for r in records for k in r if k != "step"})
        hint = f"; the run logged {', '.join(known[:8])}, ..." if known else ""
        raise ValueError(f"metric {metric!r} never logged{hint}")
    step, value = points[-1]
    number = finite(value)
    if number is None:
        raise ValueError(f"metric {metric!r} is {value!r} (not a number) at step {step}")
    return number


class MetricsTail:
    """Reads a growing metrics.jsonl: each call returns the records completed since the last."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.records: list[dict[str, Any]] = []

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return []
        complete = data.rfind(b"\n") + 1  # a line without its newline is still being written
        self.offset += complete
        new = parse_records(data[:complete].decode("utf-8", errors="replace").splitlines())
        self.records += new
        return new
