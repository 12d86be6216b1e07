"""`epx analyze RUN_DIR [RUN_DIR ...]`: the Typer command; the work is
`epx.analyze.report.analyze_runs`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def analyze_command(
    runs: Annotated[list[Path], typer.Argument(help="One or more `epx train` output dirs.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Report folder (default: <first run>/analysis)."),
    ] = None,
    html: Annotated[
        bool, typer.Option("--html", help="Also write one self-contained report.html.")
    ] = False,
    stage_window: Annotated[
        int | None, typer.Option("--stage-window", help="Stage detector: slope window.")
    ] = None,
    stage_patience: Annotated[
        int | None, typer.Option("--stage-patience", help="Stage detector: steps to confirm.")
    ] = None,
    stage_min_steps: Annotated[
        int | None, typer.Option("--stage-min-steps", help="Stage detector: earliest plateau.")
    ] = None,
    stage_reward_fraction: Annotated[
        float | None,
        typer.Option("--stage-reward-fraction", help="Stage detector: reward slope / its peak."),
    ] = None,
    stage_entropy_fraction: Annotated[
        float | None,
        typer.Option("--stage-entropy-fraction", help="Stage detector: entropy drop / its peak."),
    ] = None,
) -> None:
    """The paper's analysis of runs: stages, positive/negative entropy, PPL buckets, token
    positions, the log-prob/advantage covariance; several runs overlay."""
    from rich.console import Console

    from epx.analyze.report import analyze_runs, summary_table
    from epx.console import table_console
    from epx.errors import RecipeError
    from epx.stage import StageParams

    params = {
        key: value
        for key, value in (
            ("window", stage_window), ("patience", stage_patience), ("min_steps", stage_min_steps),
            ("reward_slope_frac", stage_reward_fraction),
            ("entropy_slope_frac", stage_entropy_fraction),
        )
        if value is not None
    }  # fmt: skip
    try:
        StageParams(**params)  # the detector's own checks, before anything is read
    except ValueError as error:
        raise RecipeError(f"--stage-*: {error}") from None
    result = analyze_runs(runs, out or runs[0] / "analysis", params=params, write_html=html)
    err = Console(stderr=True, soft_wrap=True)
    for run in result["runs"]:
        for note in run.skipped:
            err.print(f"[yellow]{note}[/]", highlight=False)
    console = table_console()
    console.print(summary_table(result["runs"], result["analyses"]))
    for run, analysis in zip(result["runs"], result["analyses"], strict=True):
        boundary = analysis["boundary"]
        stages = "rising only" if boundary is None else f"plateau from step {boundary}"
        note = " (stage parameters differ from the run's)" if analysis["params_differ"] else ""
        console.print(f"{run.label}: {stages}{note}", highlight=False)
        for finding in analysis["findings"]:
            shows = f": {finding.shows}" if finding.shows else ""
            console.print(f"  {finding.observation}: {finding.verdict}{shows}", highlight=False,
                          soft_wrap=True)
    files = result["files"]
    err.print(f"report: {files['markdown']}", highlight=False)
    if "html" in files:
        err.print(f"html: {files['html']}", highlight=False)
