"""`analyze_runs(paths, out, ...)`: the tables of `epx.analyze.core` per run, the figures, a
Markdown report (and a self-contained HTML one), and the summary table on the terminal."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from epx.analyze.core import (
    covariance_table,
    plateau_start,
    position_table,
    ppl_bucket_table,
    stage_summary,
)
from epx.analyze.findings import Finding, findings
from epx.analyze.load import Run, load_run
from epx.console import cell
from epx.reports import html_report, markdown_table
from epx.stage import StageParams

SUMMARY_COLUMNS = (
    ("stage", "stage"), ("steps", "steps"), ("entropy_drop", "entropy drop"),
    ("accuracy_gain", "accuracy gain"), ("held_out_gain", "held-out gain"),
    ("positive_entropy_change", "H+ change"), ("negative_entropy_change", "H- change"),
    ("last_decile_high_share", "high-H share, last decile"),
)  # fmt: skip


def analyze_run(run: Run, params: StageParams) -> dict[str, Any]:
    """Every table of one run, with the stage parameters used."""
    boundary = plateau_start(run.records, params)
    tables = {
        "ppl_buckets": ppl_bucket_table(run.rollouts, boundary),
        "position": position_table(run.rollouts, boundary),
        "covariance": covariance_table(run.rollouts),
    }
    return {
        "boundary": boundary,
        "params": params,
        "params_differ": params != run.stage_params,
        **tables,
        "summary": stage_summary(run.records, run.rollouts, boundary, run.eval_key),
        "findings": findings(run.records, boundary, tables),
    }


def findings_markdown(items: list[Finding]) -> str:
    """The findings as a table: what the paper found, what the run shows, the verdict."""
    rows = [[f.observation, f.shows or "-", f.verdict] for f in items]
    return markdown_table(["the paper", "this run", "verdict"], rows)


def _summary_cells(row: dict[str, Any]) -> list[str]:
    row = {**row, "steps": f"{row['first_step']}-{row['last_step']}"}
    return [cell(row.get(key)) for key, _ in SUMMARY_COLUMNS]


def _table(rows: list[dict[str, Any]], keys: list[str]) -> str:
    if not rows:
        return "_no rollout records (analysis.every_n_steps: 0, or none saved yet)_"
    return markdown_table(keys, [[cell(r.get(k)) for k in keys] for r in rows])


def _params_line(run: Run, analysis: dict[str, Any]) -> str:
    used = dataclasses.asdict(analysis["params"])
    text = ", ".join(f"{k}={v}" for k, v in used.items())
    if analysis["params_differ"]:
        theirs = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(run.stage_params).items())
        return f"stage detector: {text} (differs from the run's: {theirs})"
    return f"stage detector: {text} (the run's own)"


def markdown_report(runs: list[Run], analyses: list[dict[str, Any]], figures: list[Path]) -> str:
    parts = ["# epx analyze", ""]
    for run, analysis in zip(runs, analyses, strict=True):
        boundary = analysis["boundary"]
        stages = "rising only" if boundary is None else f"rising, then plateau from step {boundary}"
        parts += [
            f"## {run.label}", "", f"- run dir: `{run.path}`", f"- stages: {stages}",
            f"- {_params_line(run, analysis)}",
            f"- rollout records: {len(run.rollouts)} saved steps",
            *(f"- skipped: {note}" for note in run.skipped), "",
            "### The paper's findings on this run", "",
            findings_markdown(analysis["findings"]), "",
            "### Per stage", "",
            markdown_table([label for _, label in SUMMARY_COLUMNS],
                            [_summary_cells(r) for r in analysis["summary"]]),
            "", "### Samples by log-PPL quartile", "",
            _table(analysis["ppl_buckets"], ["stage", "bucket", "samples", "accuracy", "entropy",
                                             "logprob", "logprob_change"]),
            "", "### Tokens by relative-position decile", "",
            _table(analysis["position"], ["stage", "decile", "tokens", "entropy", "high_share"]),
            "", "### Covariance of token log-prob and advantage", "",
            _table(analysis["covariance"], ["step", "tokens", "cov", "cov_high_entropy"]), "",
        ]  # fmt: skip
    parts += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures]
    return "\n".join(parts) + "\n"


def summary_table(runs: list[Run], analyses: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="epx analyze: per stage")
    table.add_column("run")
    for _, label in SUMMARY_COLUMNS:
        table.add_column(label, justify="right")
    for run, analysis in zip(runs, analyses, strict=True):
        for row in analysis["summary"]:
            table.add_row(run.label, *_summary_cells(row))
    return table


def _distinct_names(runs: list[Run]) -> None:
    """Runs whose folders share a name are told apart by their parent folder."""
    names = [run.name for run in runs]
    for run in runs:
        if names.count(run.name) > 1:
            run.name = f"{run.path.parent.name}/{run.name}"


def analyze_runs(
    paths: list[Path], out: Path, *, params: dict[str, Any] | None = None, write_html: bool = False
) -> dict[str, Any]:
    """Analyse each run; write figures, report.md (report.html); return the runs and tables."""
    from epx.analyze.figures import FIGURES
    from epx.paths import check_output_dir, make_output_dir

    check_output_dir(out, "--out")
    runs = [load_run(path) for path in paths]
    _distinct_names(runs)
    analyses = []
    for run in runs:
        used = dataclasses.replace(run.stage_params, **(params or {}))
        analyses.append(analyze_run(run, used))
    make_output_dir(out, "--out")
    figures = [draw(runs, analyses, out / f"{name}.png") for name, draw in FIGURES]
    markdown = markdown_report(runs, analyses, figures)
    (out / "report.md").write_text(markdown, encoding="utf-8")
    written = {"markdown": out / "report.md", "figures": figures}
    if write_html:
        (out / "report.html").write_text(html_report(markdown, figures, "epx analyze"), encoding="utf-8")
        written["html"] = out / "report.html"
    return {"runs": runs, "analyses": analyses, "files": written}
