"""The report of a comparison study (`epx sweep --method none,ppl,position,both --seeds 0,1,2`):
is each method better than GRPO (`none`), by how much, and is the difference larger than seed
noise? Written by `--show` beside the study: `comparison.md`, `comparison.html`, two figures.

Every number comes from the trials' run dirs (`RunDir`): the last in-training evaluation of
each run (`eval/<bench>/acc|maj|pass@n`), its per-step metrics and `summary.json`. The seeds are
the units: a cell is the mean over seeds with its 95% interval (Student t with seeds - 1 degrees
of freedom, `epx.stats`); a method is compared with GRPO seed by seed (paired differences), and
its verdict is "within seed noise" when the paired interval holds 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from epx.console import cell
from epx.records import read_records
from epx.reports import html_report, markdown_table
from epx.run_dir import RunDir
from epx.stats import Interval, mean_interval, paired_difference, verdict

BASELINE = "none"
LABELS = {"none": "GRPO", "ppl": "GRPO+PPL", "position": "GRPO+Position", "both": "GRPO+PPL+Position"}
AVERAGE = "avg"
TIMINGS = ("generation", "scoring", "optimization", "evaluation")


@dataclass
class ComparedRun:
    """One trial's run: its method and seed, what it logged, its final evaluation."""

    method: str
    seed: int
    folder: Path
    records: list[dict[str, Any]] = field(repr=False)
    final: dict[str, float]  # eval/<bench>/<stat> of its last evaluation
    wall: float | None  # training wall time (summary.json)


def final_evaluation(records: list[dict[str, Any]]) -> dict[str, float]:
    """The `eval/...` values of the last record that holds any (the run's last evaluation)."""
    for record in reversed(records):
        values = {k: float(v) for k, v in record.items()
                  if k.startswith("eval/") and isinstance(v, int | float)}  # fmt: skip
        if values:
            return values
    return {}


def load_run(method: str, seed: int, folder: Path) -> ComparedRun:
    run_dir = RunDir(folder)
    records = read_records(run_dir.metrics)
    summary = run_dir.read_summary() or {}
    wall = summary.get("train_runtime")
    return ComparedRun(method, seed, folder, records, final_evaluation(records),
                       float(wall) if isinstance(wall, int | float) else None)  # fmt: skip


def collect_runs(study: Any, output_dir: Path) -> list[ComparedRun]:
    """The COMPLETE trials of a comparison study, as runs (method, seed, run dir); where a
    method and seed completed twice (a study re-run), the later trial."""
    from optuna.trial import TrialState

    from epx.sweep.space import METHOD_PARAM, SEED_PARAM

    latest: dict[tuple[str, int], int] = {}  # a (method, seed) run twice: its latest trial
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        latest[(trial.params[METHOD_PARAM], int(trial.params[SEED_PARAM]))] = trial.number
    return [load_run(method, seed, output_dir / f"trial-{number:04d}" / f"seed-{seed}")
            for (method, seed), number in sorted(latest.items(), key=lambda item: item[1])]  # fmt: skip


def benchmarks_of(runs: list[ComparedRun]) -> tuple[list[str], int]:
    """The benchmarks evaluated (in first-seen order, the average last) and n (samples)."""
    benches: list[str] = []
    n = 1
    for run in runs:
        for key in run.final:
            _, bench, stat = key.split("/", 2)
            if bench not in benches and bench != AVERAGE:
                benches.append(bench)
            if stat.startswith("pass@"):
                n = max(n, int(stat.removeprefix("pass@")))
    return benches + ([AVERAGE] if len(benches) > 1 else []), n


def value(run: ComparedRun, bench: str, stat: str, benches: list[str]) -> float:
    """A run's final `stat` on `bench` (the average over the benchmarks: `eval/avg/...`)."""
    key = f"eval/{bench}/{stat}"
    if key in run.final:
        return run.final[key]
    if bench == AVERAGE:  # a single benchmark: its own value
        real = [b for b in benches if b != AVERAGE]
        return run.final.get(f"eval/{real[0]}/{stat}", math.nan) if len(real) == 1 else math.nan
    return math.nan


def methods_of(runs: list[ComparedRun]) -> list[str]:
    order = list(LABELS)
    return sorted({r.method for r in runs}, key=lambda m: order.index(m) if m in order else 99)


def result_table(runs: list[ComparedRun], benches: list[str], stat: str) -> dict[str, dict[str, Interval]]:
    """method -> bench -> the mean over seeds of the final `stat` with its 95% t interval."""
    return {
        method: {
            bench: mean_interval([value(r, bench, stat, benches) for r in runs if r.method == method])
            for bench in benches
        }
        for method in methods_of(runs)
    }


def paired_table(runs: list[ComparedRun], benches: list[str], stat: str) -> dict[str, dict[str, Interval]]:
    """method -> bench -> the mean paired difference from GRPO (same seed) with its interval."""
    def by_seed(method: str, bench: str) -> dict[int, float]:
        return {r.seed: value(r, bench, stat, benches) for r in runs if r.method == method}

    return {
        method: {bench: paired_difference(by_seed(method, bench), by_seed(BASELINE, bench))
                 for bench in benches}
        for method in methods_of(runs)
        if method != BASELINE and any(r.method == BASELINE for r in runs)
    }


def stage_rows(runs: list[ComparedRun]) -> list[dict[str, Any]]:
    """Per run: the step the stage detector reported the plateau at, the first and last logged
    steps the position bonus was on, and whether it switched on at the first step decided after
    the report (a plateau schedule; with several optimizer steps per generation batch the bonus
    is decided, and logged, at generation steps)."""
    rows = []
    for run in sorted(runs, key=lambda r: (methods_of(runs).index(r.method), r.seed)):
        plateau = next((r["step"] for r in run.records if _positive(r.get("stage"))), None)
        logged = [r for r in run.records if "shaping/position/active" in r]
        on = [r["step"] for r in logged if _positive(r["shaping/position/active"])]
        has_position = run.method in ("position", "both")
        schedule = _schedule(run.folder)
        if not has_position:
            switched = "-"
        elif not on:
            switched = "never on"
        elif schedule != "plateau":
            switched = f"on from step {on[0]} (schedule {schedule})"
        elif plateau is None:
            switched = f"no: on from step {on[0]} without a plateau"
        else:  # on at the first step it decided after the report, and never before
            after = [r for r in logged if r["step"] > plateau]
            switched = ("yes" if after and after[0]["step"] == on[0] else
                        f"no: on from step {on[0]}")  # fmt: skip
        rows.append({
            "method": LABELS.get(run.method, run.method), "seed": run.seed,
            "plateau reported at": plateau if plateau is not None else "never",
            "position on": f"{on[0]}-{on[-1]}" if on else ("-" if not has_position else "never"),
            "switched on at the plateau": switched,
        })  # fmt: skip
    return rows


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and value > 0


def _schedule(folder: Path) -> str:
    """The position schedule of a run's recipe (`plateau`, the paper's, when unreadable)."""
    import yaml

    try:
        recipe = yaml.safe_load(RunDir(folder).recipe.read_text(encoding="utf-8")) or {}
        return str(recipe["shaping"]["position"]["schedule"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return "plateau"


def cost_rows(runs: list[ComparedRun]) -> list[dict[str, Any]]:
    """Per method, the mean over seeds of the training wall time and its split (seconds: the
    sum of the per-step `timing/*`, as epx logs every step)."""
    rows = []
    for method in methods_of(runs):
        chosen = [r for r in runs if r.method == method]
        walls = [r.wall for r in chosen if r.wall is not None]
        row: dict[str, Any] = {"method": LABELS.get(method, method), "runs": len(chosen),
                               "wall s": sum(walls) / len(walls) if walls else math.nan}  # fmt: skip
        for phase in TIMINGS:
            totals = [sum(float(r.get(f"timing/{phase}", 0.0) or 0.0) for r in run.records) for run in chosen]
            row[f"{phase} s"] = sum(totals) / len(totals) if totals else math.nan
        rows.append(row)
    return rows


def interval_text(
    interval: Interval, scale: float = 100.0, signed: bool = False, seeds: int | None = None
) -> str:
    """`mean [low, high]`, with the count of seeds when it is not the study's `seeds`."""
    if interval.n == 0 or math.isnan(interval.mean):
        return "-"
    sign = "+" if signed else ""
    mean = f"{interval.mean * scale:{sign}.1f}"
    if interval.n < 2:
        return f"{mean} (1 seed)"
    shown = f"{mean} [{interval.low * scale:{sign}.1f}, {interval.high * scale:{sign}.1f}]"
    return shown if seeds is None or interval.n == seeds else f"{shown} ({interval.n} seeds)"


def comparison_markdown(study: Any, runs: list[ComparedRun], figures: list[Path]) -> str:
    benches, n = benchmarks_of(runs)
    seeds = sorted({r.seed for r in runs})
    stats = [("acc", f"Acc@{n}")] + ([("maj", f"Maj@{n}"), (f"pass@{n}", f"Pass@{n}")] if n > 1 else [])
    attrs = study.user_attrs
    parts = [
        f"# Comparison: {study.study_name}", "",
        f"- recipe: `{attrs.get('recipe', '?')}`, overrides: {attrs.get('overrides') or 'none'}",
        f"- methods: {', '.join(LABELS.get(m, m) for m in methods_of(runs))}; seeds: "
        f"{', '.join(map(str, seeds))} ({len(runs)} complete runs)",
        "- values: the last in-training evaluation of each run, in percent; a cell is the mean "
        "over seeds with its 95% interval (Student t, n - 1 degrees of freedom for the n seeds "
        "in the cell; a cell with fewer seeds than the study says how many)", "",
    ]  # fmt: skip
    if not benches:
        return "\n".join([*parts, "_no run has an evaluation yet_", ""])
    for stat, title in stats:
        table = result_table(runs, benches, stat)
        rows = [[LABELS.get(m, m), *(interval_text(table[m][b], seeds=len(seeds)) for b in benches)]
                for m in table]  # fmt: skip
        parts += [f"## {title}", "", markdown_table(["method", *benches], rows), ""]
    paired = paired_table(runs, benches, "acc")
    if paired:
        parts += [f"## Paired differences from GRPO (Acc@{n}, percentage points, same seed)", ""]
        rows = [[LABELS.get(m, m), *(interval_text(paired[m][b], signed=True, seeds=len(seeds))
                                     for b in benches)] for m in paired]  # fmt: skip
        parts += [markdown_table(["method", *benches], rows), ""]
        target = benches[-1]
        for method, cells in paired.items():
            difference = cells[target]
            scaled = Interval(difference.mean * 100, difference.low * 100, difference.high * 100, difference.n)
            parts.append(f"- {LABELS.get(method, method)} vs GRPO on {target}: "
                         f"{verdict(scaled, unit=' points')}")  # fmt: skip
        parts.append("")
    stage = stage_rows(runs)
    parts += ["## Stages: the plateau and the position bonus", "",
              markdown_table(list(stage[0]), [[cell(v) for v in row.values()] for row in stage]), ""]  # fmt: skip
    cost = cost_rows(runs)
    parts += ["## Cost per method (mean over seeds)", "",
              markdown_table(list(cost[0]), [[cell(v) for v in row.values()] for row in cost]), ""]  # fmt: skip
    parts += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures]
    return "\n".join(parts) + "\n"


def _series_by_step(runs: list[ComparedRun], key: str) -> dict[int, list[float]]:
    points: dict[int, list[float]] = {}
    for run in runs:
        for record in run.records:
            v = record.get(key)
            if isinstance(v, int | float) and math.isfinite(v):
                points.setdefault(int(record["step"]), []).append(float(v))
    return dict(sorted(points.items()))


def band(intervals: list[Interval], bounds: tuple[float, float]) -> tuple[list[float], list[float]]:
    """The 95% band to draw, clipped to the quantity's range (an accuracy is never below 0);
    NaN where one seed logged the step (no band, not a thin one)."""
    low, high = bounds
    return ([min(max(i.low, low), high) if math.isfinite(i.low) else math.nan for i in intervals],
            [max(min(i.high, high), low) if math.isfinite(i.high) else math.nan for i in intervals])  # fmt: skip


def overlay(runs: list[ComparedRun], keys: list[tuple[str, str]], path: Path, ylabel: str,
            bounds: tuple[float, float]) -> Path:  # fmt: skip
    """One panel per key: per method, the mean over seeds against step with a 95% band
    (clipped to `bounds`, the quantity's range)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4), squeeze=False)
    for axis, (key, title) in zip(axes[0], keys, strict=True):
        for index, method in enumerate(methods_of(runs)):
            points = _series_by_step([r for r in runs if r.method == method], key)
            if not points:
                continue
            steps = list(points)
            intervals = [mean_interval(v) for v in points.values()]
            colour = f"C{index}"
            axis.plot(steps, [i.mean for i in intervals], color=colour, label=LABELS.get(method, method))
            axis.fill_between(steps, *band(intervals, bounds), color=colour, alpha=0.15)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.set_ylabel(ylabel)
        axis.legend(fontsize=8)
    figure.suptitle("mean over seeds; band: 95% t interval, clipped to the range", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_comparison(study: Any, output_dir: Path) -> dict[str, Path]:
    """comparison.md, comparison.html and the two figures in `output_dir`; their paths."""
    runs = collect_runs(study, output_dir)
    figures = []
    if runs:
        figures = [
            overlay(runs, [(key, f"held-out {key.split('/')[1]}") for key in _accuracy_keys(runs)],
                    output_dir / "comparison-accuracy.png", "accuracy", (0.0, 1.0)),
            overlay(runs, [("entropy/positive", "entropy of positive samples (H+)"),
                           ("entropy/negative", "entropy of negative samples (H-)")],
                    output_dir / "comparison-entropy.png", "token entropy", (0.0, math.inf)),
        ]  # fmt: skip
    markdown = comparison_markdown(study, runs, figures)
    written = {"markdown": output_dir / "comparison.md", "html": output_dir / "comparison.html"}
    written["markdown"].write_text(markdown, encoding="utf-8")
    written["html"].write_text(html_report(markdown, figures, f"epx comparison: {study.study_name}"),
                               encoding="utf-8")  # fmt: skip
    return {**written, **{p.stem: p for p in figures}}


def _accuracy_keys(runs: list[ComparedRun]) -> list[str]:
    """The held-out accuracy to plot: the average over benchmarks, or the one benchmark."""
    benches, _ = benchmarks_of(runs)
    return [f"eval/{benches[-1]}/acc"] if benches else ["eval/avg/acc"]
