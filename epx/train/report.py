"""What a training run shows at its end: a summary table and `curves.png`, both from metrics.jsonl."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from epx.records import read_records
from epx.run_dir import RunDir

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
    return [record for record in read_records(path) if "reward" in record]


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
        if axis.get_legend_handles_labels()[0]:
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


# ---------------------------------------------------------------- before / after training

SAMPLES_SHOWN = 3


def eval_summary(records: list[dict[str, Any]]) -> dict[str, float]:
    """Accuracy, the share of completions that ended within the token limit, mean length."""
    count = len(records)
    return {
        "accuracy": sum(bool(r.get("correct")) for r in records) / count,
        "ended": sum(bool(r.get("finished", True)) for r in records) / count,
        "tokens": sum(int(r.get("tokens", 0)) for r in records) / count,
    }


def before_after(output_dir: str | Path, bench: str) -> dict[str, Any] | None:
    """The held-out check of a run: its first and last in-training evaluations of `bench`.

    None unless two evaluations of it exist. Returns the steps, each one's `eval_summary`, the
    problem count, and the first `SAMPLES_SHOWN` problems' completions before and after
    (problem, gold, completion, answer, status).
    """
    from epx.benchmarks import records_file_of

    run_dir, records_file = RunDir(output_dir), records_file_of(bench)
    steps = [
        step
        for step in run_dir.evaluation_steps()
        if run_dir.evaluation(step).records(records_file).is_file()
    ]
    if len(steps) < 2:
        return None
    first, last = (run_dir.evaluation(s).read_records(records_file) for s in (steps[0], steps[-1]))
    if not first or not last:
        return None
    after_by_id = {(r["problem_id"], r["sample"]): r for r in last}
    samples = []
    for record in first[:SAMPLES_SHOWN]:
        later = after_by_id.get((record["problem_id"], record["sample"]))
        if later is not None:
            samples.append({"before": record, "after": later})
    return {
        "bench": bench,
        "steps": (steps[0], steps[-1]),
        "problems": len({r["problem_id"] for r in first}),
        "before": eval_summary(first),
        "after": eval_summary(last),
        "samples": samples,
    }


_ROWS = (("accuracy", "accuracy", "{:.3f}"), ("ended", "ended within the limit", "{:.0%}"),
         ("tokens", "mean length (tokens)", "{:.1f}"))  # fmt: skip


def before_after_rows(check: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, before, after, change) rows of the held-out check."""
    rows = []
    for key, label, fmt in _ROWS:
        before, after = check["before"][key], check["after"][key]
        change = f"{after - before:+.0%}" if "%" in fmt else f"{after - before:+.3f}"
        if key == "tokens":
            change = f"{after - before:+.1f}"
        rows.append((label, fmt.format(before), fmt.format(after), change))
    return rows


def render_before_after(check: dict[str, Any]) -> list[Any]:
    """A rich table of the held-out check, and panels with sample completions before/after."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    first, last = check["steps"]
    table = Table(
        title=f"held-out {check['bench']}: {check['problems']} problems the run never trained on"
    )
    for column in ("", f"before (step {first})", f"after (step {last})", "change"):
        table.add_column(column, justify="left" if not column else "right")
    for row in before_after_rows(check):
        table.add_row(*row)
    panels: list[Any] = [table]
    for sample in check["samples"]:
        text = Text()
        text.append(f"{sample['before'].get('problem', sample['before']['problem_id'])}", "bold")
        text.append(f"  (gold {sample['before'].get('gold')})\n")
        for when in ("before", "after"):
            record = sample[when]
            verdict = record.get("status", "?") + (
                "" if record.get("finished", True) else ", cut off"
            )
            text.append(f"{when:>6}: ", "dim")
            text.append(repr(record.get("completion", "")))
            text.append(f"\n        answer {record.get('answer')!r}: ")
            text.append(verdict, "green" if record.get("correct") else "red")
            text.append("\n")
        panels.append(Panel(text, expand=False))
    return panels


def before_after_markdown(check: dict[str, Any]) -> str:
    """The held-out check as Markdown (the model card's table and samples)."""
    first, last = check["steps"]
    lines = [
        f"Held-out `{check['bench']}` ({check['problems']} problems never trained on):",
        "",
        f"| | before (step {first}) | after (step {last}) | change |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in before_after_rows(check)]
    for sample in check["samples"]:
        lines += [
            "",
            f"- {sample['before'].get('problem', '')} (gold {sample['before'].get('gold')})",
        ]
        for when in ("before", "after"):
            record = sample[when]
            lines.append(
                f"  - {when}: `{record.get('completion', '')!r}` -> answer "
                f"`{record.get('answer')}`, {record.get('status')}"
            )
    return "\n".join(lines) + "\n"


def write_model_card(
    folder: str | Path, *, base_model: str, method: str, steps: int, recipe_yaml: str,
    check: dict[str, Any] | None,
) -> Path:  # fmt: skip
    """epx's model card in `folder`/README.md: base model, method, the held-out check, recipe."""
    path = Path(folder) / "README.md"
    parts = [
        f"# {Path(folder).parent.name}: {base_model} trained with epx\n",
        f"- base model: `{base_model}`",
        f"- method: GRPO with advantage shaping `{method}` (epx, arXiv 2508.02260)",
        f"- steps: {steps}\n",
    ]
    if check is not None:
        parts.append("## Held-out check\n\n" + before_after_markdown(check))
    parts.append("## Recipe\n\n```yaml\n" + recipe_yaml.rstrip() + "\n```\n")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
