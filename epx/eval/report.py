"""What an eval reports: namespaced metrics, the summary JSON, the terminal table and W&B.

Rates are fractions in the summary and in W&B (`eval/aime24/acc` = 0.125) and percentages in the
table. The average row is the unweighted mean over benchmarks (each benchmark counts once, as
papers report it); problem, sample and timeout counts are summed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from epx.console import cell
from epx.evaluation import AVERAGE, average_metrics, flat_metrics


def build_summary(
    settings: Mapping[str, Any],
    per_bench: Mapping[str, Mapping[str, float]],
    records: Mapping[str, str | None],
    n: int,
) -> dict[str, Any]:
    """The summary: settings, per-benchmark metrics (and their JSONL), average, flat metrics."""
    return {
        "settings": dict(settings),
        "benches": {
            name: {**metrics, "records": records.get(name)} for name, metrics in per_bench.items()
        },
        "average": average_metrics(per_bench, n),
        "metrics": flat_metrics(per_bench, n),
    }


def write_json(path: Path, data: Any) -> None:
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(path)


def table_rows(summary: Mapping[str, Any], n: int) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows (one per benchmark, then the average): shared by the terminal and W&B."""
    passes = sorted({1, n})  # n = 1: one Pass@1 column
    columns = ["bench", "problems", "samples", f"Acc@{n}", f"Maj@{n}"]
    columns += [f"Pass@{k}" for k in passes] + ["unparsed %", "truncated %", "timeouts"]
    rows = []
    entries = list(summary["benches"].items())
    if len(entries) > 1:
        entries.append((AVERAGE, summary["average"]))
    percent = ["acc", "maj", *(f"pass@{k}" for k in passes), "unparsed", "truncated"]
    for name, m in entries:
        counts = [int(m["problems"]), int(m["samples"])]
        rows.append(
            [name, *counts, *(round(100 * m[key], 2) for key in percent), int(m["timeouts"])]
        )
    return columns, rows


def _percent(rate: float) -> str:
    return "n/a" if math.isnan(rate) else f"{100 * rate:.1f}"


def paper_table(summaries: Sequence[tuple[str, Mapping[str, Any]]], n: int) -> tuple[list[str], list[list[str]]]:
    """The paper's layout for several models: one row per model, one column per benchmark and
    the average, each cell Acc@n in percent (with Maj@n and Pass@n when n > 1)."""
    benches: list[str] = []
    for _, summary in summaries:
        benches += [name for name in summary["benches"] if name not in benches]
    columns = ["model", *benches, AVERAGE]
    rows = []
    for label, summary in summaries:
        cells = [label]
        for name in [*benches, AVERAGE]:
            m = summary["average"] if name == AVERAGE else summary["benches"].get(name)
            if not m:
                cells.append("-")
                continue
            text = f"{100 * m['acc']:.1f}"
            if n > 1:
                text += f" ({_percent(m['maj'])} / {_percent(m[f'pass@{n}'])})"
            cells.append(text)
        rows.append(cells)
    return columns, rows


def render_paper_table(summaries: Sequence[tuple[str, Mapping[str, Any]]], n: int) -> Any:
    from rich.table import Table

    columns, rows = paper_table(summaries, n)
    note = f"Acc@{n} % (Maj@{n} / Pass@{n})" if n > 1 else "Acc@1 %"
    table = Table(title=f"epx eval: {len(rows)} models, {note}")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def paper_table_markdown(summaries: Sequence[tuple[str, Mapping[str, Any]]], n: int) -> str:
    columns, rows = paper_table(summaries, n)
    note = f"Acc@{n} in percent (Maj@{n} / Pass@{n})" if n > 1 else "Acc@1 in percent"
    lines = [f"Each cell: {note}.", "", "| " + " | ".join(columns) + " |",
             "|" + "---|" * len(columns)] + ["| " + " | ".join(row) + " |" for row in rows]  # fmt: skip
    return "\n".join(lines) + "\n"


def render_table(summary: Mapping[str, Any], n: int, title: str | None = None) -> Any:
    """A rich Table: one row per benchmark and the average; rates in percent ("n/a" where a
    metric does not apply: Maj@n of code, which has no answer to vote on)."""
    from rich.table import Table

    columns, rows = table_rows(summary, n)
    table = Table(title=title)
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right", no_wrap=True)
    for index, row in enumerate(rows):
        is_average = len(rows) > 1 and index == len(rows) - 1
        cells = [cell(value, nan="n/a") if isinstance(value, float) and math.isnan(value)
                 else f"{value:.1f}" if isinstance(value, float) else str(value) for value in row]  # fmt: skip
        table.add_row(
            *cells, style="bold" if is_average else None, end_section=index == len(rows) - 2
        )
    return table


def log_to_wandb(
    summary: Mapping[str, Any],
    n: int,
    output_dir: Path,
    mode: str,
    *,
    project: str = "epx",
    name: str | None = None,
) -> str | None:
    """Log the table and the flat metrics to one W&B run (files under `output_dir/wandb`).

    Returns the run's local directory, or None when mode is "disabled".
    """
    if mode == "disabled":
        return None
    import wandb

    wandb_dir = output_dir / "wandb"
    wandb_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=project,
        name=name or output_dir.name,
        job_type="eval",
        dir=str(output_dir),
        mode=mode,
        config=dict(summary["settings"]),
        reinit="create_new",
        settings=wandb.Settings(console="off", silent=True),
    )
    try:
        columns, rows = table_rows(summary, n)
        run.log({"eval/table": wandb.Table(columns=columns, data=rows), **summary["metrics"]})
        for key, value in summary["metrics"].items():
            run.summary[key] = value
        return str(Path(run.dir).parent)
    finally:
        run.finish()
