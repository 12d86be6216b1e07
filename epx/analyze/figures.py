"""The analysis figures (PNG): one colour per run, its detected plateau start marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from epx.analyze.core import BUCKETS, DECILES, STAGES, series

STAGE_STYLES = {"rising": "-", "plateau": "--"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(count: int) -> list[Any]:
    plt = _pyplot()
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return [cycle[i % len(cycle)] for i in range(count)]


def _mark_plateau(axis: Any, boundary: int | None, colour: Any) -> None:
    if boundary is not None:
        axis.axvline(boundary, color=colour, linestyle=":", linewidth=1.2, alpha=0.9)


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    _pyplot().close(figure)
    return path


def _legend(axis: Any) -> None:
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7, loc="best")


def accuracy_entropy(runs: list[Any], analyses: list[dict[str, Any]], path: Path) -> Path:
    """1. accuracy (train; held-out when evaluated) and entropy over steps, plateau marked."""
    plt = _pyplot()
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    for run, analysis, colour in zip(runs, analyses, _colours(len(runs)), strict=True):
        steps, values = series(run.records, "accuracy")
        top.plot(steps, values, color=colour, linewidth=1.2, label=f"{run.label} train")
        if run.eval_key:
            steps, values = series(run.records, run.eval_key)
            top.plot(steps, values, color=colour, marker="o", markersize=3, linestyle="--",
                     linewidth=1, label=f"{run.label} held-out")  # fmt: skip
        steps, values = series(run.records, "entropy")
        bottom.plot(steps, values, color=colour, linewidth=1.2, label=run.label)
        for axis in (top, bottom):
            _mark_plateau(axis, analysis["boundary"], colour)
    top.set_title("accuracy (dotted line: plateau starts)", fontsize=9, loc="left")
    bottom.set_title("token entropy", fontsize=9, loc="left")
    bottom.set_xlabel("global step")
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
        _legend(axis)
    return _save(figure, path)


def entropy_by_sign(runs: list[Any], analyses: list[dict[str, Any]], path: Path) -> Path:
    """2. mean token entropy of positive (solid) and negative (dashed) samples over steps."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4))
    for run, analysis, colour in zip(runs, analyses, _colours(len(runs)), strict=True):
        for key, style in (("entropy/positive", "-"), ("entropy/negative", "--")):
            steps, values = series(run.records, key)
            axis.plot(steps, values, color=colour, linestyle=style, linewidth=1.2,
                      label=f"{run.label} {key.split('/')[1]}")  # fmt: skip
        _mark_plateau(axis, analysis["boundary"], colour)
    axis.set_title(
        "entropy of positive (solid) and negative (dashed) samples", fontsize=9, loc="left"
    )
    axis.set_xlabel("global step")
    axis.grid(alpha=0.3)
    _legend(axis)
    return _save(figure, path)


def _by_stage(axis: Any, runs: list[Any], tables: list[list[dict[str, Any]]], x: str, y: str,
              count: int) -> None:  # fmt: skip
    for run, rows, colour in zip(runs, tables, _colours(len(runs)), strict=True):
        for stage in STAGES:
            points = sorted((r[x], r[y]) for r in rows if r["stage"] == stage)
            if points:
                axis.plot([p[0] for p in points], [p[1] for p in points], color=colour, marker="o",
                          markersize=3, linestyle=STAGE_STYLES[stage], label=f"{run.label} {stage}")  # fmt: skip
    axis.set_xticks(range(count))
    axis.grid(alpha=0.3)


def _stage_panels(runs: list[Any], tables: list[list[dict[str, Any]]], path: Path, x: str,
                  count: int, xlabel: str, panels: tuple[tuple[str, str], ...]) -> Path:  # fmt: skip
    """One panel per (key, title): each run's value per x (bucket, decile), a line per stage."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels) + 0.5, 3.8))
    for axis, (key, title) in zip(axes, panels, strict=True):
        _by_stage(axis, runs, tables, x, key, count)
        axis.set_title(title, fontsize=9, loc="left")
        axis.set_xlabel(xlabel)
    _legend(axes[0])
    return _save(figure, path)


def ppl_buckets(runs: list[Any], analyses: list[dict[str, Any]], path: Path) -> Path:
    """3. by log-PPL quartile and stage: accuracy, entropy, token log-prob change."""
    panels = (("accuracy", "accuracy"), ("entropy", "mean entropy"),
              ("logprob_change", "token log-prob change / saved step"))  # fmt: skip
    tables = [a["ppl_buckets"] for a in analyses]
    return _stage_panels(runs, tables, path, "bucket", BUCKETS, "log-PPL quartile (0 lowest)", panels)


def position_deciles(runs: list[Any], analyses: list[dict[str, Any]], path: Path) -> Path:
    """4. by relative-position decile and stage: token entropy, high-entropy share."""
    panels = (("entropy", "mean token entropy"), ("high_share", "share of top-20% entropy tokens"))
    tables = [a["position"] for a in analyses]
    return _stage_panels(runs, tables, path, "decile", DECILES, "relative position decile", panels)


def covariance(runs: list[Any], analyses: list[dict[str, Any]], path: Path) -> Path:
    """5. per saved step: Cov(log-prob, advantage), all tokens (solid) and high-entropy (dashed)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4))
    for run, analysis, colour in zip(runs, analyses, _colours(len(runs)), strict=True):
        rows = analysis["covariance"]
        steps = [r["step"] for r in rows]
        axis.plot(steps, [r["cov"] for r in rows], color=colour, marker="o", markersize=3,
                  label=f"{run.label} all tokens")  # fmt: skip
        axis.plot(steps, [r["cov_high_entropy"] for r in rows], color=colour, linestyle="--",
                  marker="x", markersize=3, label=f"{run.label} top-20% entropy")  # fmt: skip
        _mark_plateau(axis, analysis["boundary"], colour)
    axis.axhline(0, color="grey", linewidth=0.8)
    axis.set_title("covariance of token log-prob and advantage (drives entropy change)",
                   fontsize=9, loc="left")  # fmt: skip
    axis.set_xlabel("global step")
    axis.grid(alpha=0.3)
    _legend(axis)
    return _save(figure, path)


FIGURES = (
    ("accuracy_entropy", accuracy_entropy),
    ("entropy_by_sign", entropy_by_sign),
    ("ppl_buckets", ppl_buckets),
    ("position_deciles", position_deciles),
    ("covariance", covariance),
)
