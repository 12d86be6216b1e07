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

from epx.errors import RecipeError, did_you_mean
from epx.records import parse_records

# What `epx train` logs besides evaluations (TRL's metrics and epx's own): whole names, and
# namespaces whose members depend on the recipe (reward functions, shaping method, loss type).
TRAINING_METRICS = (
    "loss", "grad_norm", "learning_rate", "epoch", "num_tokens", "step_time", "reward",
    "reward_std", "frac_reward_zero_std", "entropy", "kl", "accuracy", "stage", "policy_loss",
    "aux_loss", "entropy_coef", "cispo_clip_ratio",
)  # fmt: skip
TRAINING_NAMESPACES = ("completions/", "clip_ratio/", "rewards/", "reward/", "shaping/",
                       "entropy/", "log_ppl/", "sampling/", "vespo/", "tools/")  # fmt: skip


def default_metric(recipe: Any) -> str:
    """`eval/<first bench>/acc` of the recipe; RecipeError when it evaluates nothing."""
    from epx.benchmarks import logged_name

    if not recipe.eval.benches:
        raise RecipeError(
            f"{recipe.source}: no eval section: a sweep ranks trials by held-out accuracy "
            "(eval/<bench>/acc); add eval.benches to the recipe, or pass --metric reward to "
            "rank by the training reward"
        )
    return f"eval/{logged_name(recipe.eval.benches[0])}/acc"


def check_metric(metric: str, recipe: Any) -> None:
    """RecipeError unless a run of `recipe` logs `metric`: an evaluation metric of one of its
    benchmarks, a reward function's, or one of the training metrics above."""

    from epx.benchmarks import logged_name
    from epx.metrics import eval_metric_names

    benches = [logged_name(spec) for spec in recipe.eval.benches]
    names = [*benches, "avg"] if len(benches) > 1 else benches
    stats = eval_metric_names(recipe.eval.n)
    evaluated = [f"eval/{bench}/{stat}" for bench in names for stat in stats]
    functions = [spec.name for spec in recipe.reward.functions]
    if metric in evaluated:
        return
    if metric.startswith("eval/"):
        parts = metric.split("/")
        if len(parts) != 3 or parts[1] not in names:
            where = ", ".join(names) if names else "nothing (no eval.benches)"
            raise RecipeError(f"--metric {metric}: the recipe ({recipe.source}) evaluates "
                              f"{where}; a run logs eval/<bench>/<name> for those only")  # fmt: skip
        raise RecipeError(f"--metric {metric}: an evaluation logs {', '.join(stats)} of each "
                          "benchmark")  # fmt: skip
    if metric.startswith(("rewards/", "reward/")) and metric.count("/") == 2:
        function = metric.split("/")[1]
        if function not in functions:
            raise RecipeError(f"--metric {metric}: the recipe's reward functions are "
                              f"{', '.join(functions)}")  # fmt: skip
        return
    if metric in TRAINING_METRICS or metric.startswith(TRAINING_NAMESPACES):
        return
    hint = did_you_mean(metric, [*TRAINING_METRICS, *evaluated])
    raise RecipeError(
        f"--metric {metric}: not a metric epx train logs (eval/<bench>/<name> of the recipe's "
        f"benchmarks, reward, loss, entropy/positive, ...){hint}"
    )


def metric_points(records: Iterable[dict[str, Any]], metric: str) -> list[tuple[int, Any]]:
    """(step, value) of every record that holds `metric` (value as written: a number or None)."""
    return [(int(r.get("step", 0)), r[metric]) for r in records if metric in r]


def finite(value: Any) -> float | None:
    """The value as a finite float, or None (missing, null, NaN, infinite, not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class MetricNeverLogged(ValueError):
    """A run's records hold no value of the metric at all."""


def final_value(records: list[dict[str, Any]], metric: str) -> float:
    """The metric at the last record holding it; ValueError (with the reason) when none is a
    finite number (`MetricNeverLogged` when none holds it at all)."""
    points = metric_points(records, metric)
    if not points:
        known = sorted({k for r in records for k in r if k != "step"})
        hint = f"; the run logged {', '.join(known[:8])}, ..." if known else ""
        raise MetricNeverLogged(f"metric {metric!r} never logged{hint}")
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
