"""What a training run shows at its end: a summary table and `curves.png`, both from metrics.jsonl."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

PANELS = (
    ("reward and accuracy", (("reward", "reward"), ("accuracy", "accuracy"))),
    (
        "token entropy",
        (("entropy/positive", "positive samples"), ("entropy/negative", "negative samples")),
    ),
    ("stage", (("stage", "0 rising, 1 plateau"),)),
)
SMOOTHING = 5  # steps of the moving average drawn over each series
SUMMARY_KEYS = (
    "reward",
    "accuracy",
    "entropy",
    "entropy/positive",
    "entropy/negative",
    "log_ppl/positive",
    "log_ppl/negative",
    "completions/mean_length",
    "stage",
)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The training steps' records of metrics.jsonl (those with a reward), in order."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line after a crash
        if "reward" in record:
            records.append(record)
    return records


def window_mean(records: list[dict[str, Any]], key: str, first: bool, size: int = 5) -> float:
    """Mean of `key` over the first (or last) `size` records that have it; NaN if none."""
    values = [r[key] for r in records if isinstance(r.get(key), int | float)]
    chosen = values[:size] if first else values[-size:]
    return sum(chosen) / len(chosen) if chosen else math.nan


def summary_table(path: str | Path) -> Any:
    """A rich table: each key's mean over the first 5 and the last 5 logged steps, and the change."""
    from rich.table import Table

    records = read_metrics(path)
    table = Table(title=f"{len(records)} logged steps ({Path(path).parent.name})")
    for column in ("metric", "first 5", "last 5", "change"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key in SUMMARY_KEYS:
        first, last = window_mean(records, key, True), window_mean(records, key, False)
        if math.isnan(first) and math.isnan(last):
            continue
        table.add_row(key, f"{first:.4f}", f"{last:.4f}", f"{last - first:+.4f}")
    return table


def moving_average(values: list[float], size: int) -> list[float]:
    """Trailing mean over up to `size` values (the first points average what exists so far)."""
    return [
        sum(values[max(0, i + 1 - size) : i + 1]) / len(values[max(0, i + 1 - size) : i + 1])
        for i in range(len(values))
    ]


def plot_curves(path: str | Path, out_png: str | Path) -> Path | None:
    """Reward and accuracy, entropy of positive/negative samples, and stage against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(path)
    if not records:
        return None
    fig, axes = plt.subplots(len(PANELS), 1, figsize=(7.5, 7), sharex=True,
                             gridspec_kw={"height_ratios": [3, 3, 1]})  # fmt: skip
    for axis, (title, series) in zip(axes, PANELS, strict=True):
        for key, label in series:
            points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), int | float)]
            if not points:
                continue
            steps, values = zip(*points, strict=True)
            line = axis.plot(steps, values, marker="o", markersize=2.5, linewidth=0.8, alpha=0.45)
            if key != "stage":
                smooth = moving_average(list(values), SMOOTHING)
                axis.plot(steps, smooth, color=line[0].get_color(), linewidth=2, label=label)
            else:
                line[0].set_label(label)
        axis.set_title(title, fontsize=9, loc="left")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="best")
    axes[-1].set_ylim(-0.15, 1.15)
    axes[-1].set_yticks([0, 1])
    axes[-1].set_xlabel("global step")
    fig.suptitle(
        f"{Path(path).parent.name} (thin: per step; thick: {SMOOTHING}-step mean)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return Path(out_png)
