"""`epx sweep --show`: the trials table, the best parameters as a recipe line, and the plots.

`trial_rows` is pure over a study's trials; `show_study` prints (rich) and writes the
optimisation history, parameter importance and parallel-coordinate plots as PNG.
"""

from __future__ import annotations

import shlex
import statistics
from pathlib import Path
from typing import Any

from rich.markup import escape

from epx.console import cell


def trial_rows(study: Any) -> tuple[list[str], list[list[Any]]]:
    """Columns and one row per trial: number, state, each parameter, value, seeds' spread,
    duration (seconds), and a note: its error, else that its position bonus was never on, else
    its worker."""
    trials = study.get_trials(deepcopy=False)
    keys = sorted({key for trial in trials for key in trial.params})
    columns = ["#", "state", *(k.removeprefix("shaping.") for k in keys), "value", "seeds ±",
               "seconds", "note"]  # fmt: skip
    rows = []
    for trial in trials:
        values = trial.user_attrs.get("values") or []
        spread = statistics.pstdev(values) if len(values) > 1 else None
        seconds = trial.duration.total_seconds() if trial.duration is not None else None
        attrs = trial.user_attrs
        never_on = "position bonus never on" if "position_warning" in attrs else None
        note = attrs.get("error") or never_on or attrs.get("worker") or ""
        rows.append(
            [trial.number, trial.state.name, *(trial.params.get(k) for k in keys), trial.value,
             spread, seconds, note]
        )  # fmt: skip
    return columns, rows


def best_trial(study: Any) -> Any | None:
    try:
        return study.best_trial
    except ValueError:
        return None


def recipe_line(study: Any, trial: Any) -> str:
    """The `epx train` command that reproduces a trial's setting (the study's recipe and
    overrides, its method, the trial's parameters)."""
    from epx.sweep.space import trial_overrides

    attrs = study.user_attrs
    parts = ["epx", "train", str(attrs.get("recipe", "RECIPE"))]
    method = attrs.get("method", "both")
    for override in trial_overrides(attrs.get("overrides", []), method, trial.params):
        parts += ["--set", override]
    return shlex.join(parts)


def render_trials(study: Any) -> Any:
    from rich.table import Table

    columns, rows = trial_rows(study)
    table = Table(title=f"study {study.study_name} ({study.direction.name.lower()} "
                        f"{study.user_attrs.get('metric', 'value')})")  # fmt: skip
    styles = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red", "RUNNING": "cyan"}
    for column in columns:
        table.add_column(column, justify="left" if column in ("state", "note") else "right",
                         overflow="fold")  # fmt: skip
    for row in rows:
        table.add_row(*(cell(value, nan="nan") for value in row), style=styles.get(row[1]))
    return table


def write_plots(study: Any, folder: Path) -> list[Path]:
    """Optimisation history, parameter importance, parallel coordinates (those that apply)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as optuna_plots

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    folder.mkdir(parents=True, exist_ok=True)
    plots = [("history", optuna_plots.plot_optimization_history)]
    varied = {k for t in complete for k in t.params if len({u.params.get(k) for u in complete}) > 1}
    if len(complete) >= 2 and varied:
        plots += [("importance", optuna_plots.plot_param_importances),
                  ("parallel", optuna_plots.plot_parallel_coordinate)]  # fmt: skip
    written = []
    for name, plot in plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
            try:
                axes = plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue  # e.g. importance of parameters that never varied
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        path = folder / f"{study.study_name}-{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def show_study(study: Any, folder: Path, console: Any) -> list[Path]:
    """Print the trials table and the best parameters with their recipe line; write the plots.
    A comparison study gets its report instead of a best trial (`epx.sweep.compare`)."""
    console.print(render_trials(study), soft_wrap=False)
    if study.user_attrs.get("kind") == "comparison":
        return show_comparison(study, folder, console)
    best = best_trial(study)
    if best is None:
        console.print("no complete trial yet", highlight=False)
    else:
        params = ", ".join(f"{k}={cell(v)}" for k, v in best.params.items())
        console.print(f"[bold]best[/]: trial {best.number}, value {best.value:.4g}: {params}",
                      highlight=False, soft_wrap=True)  # fmt: skip
        console.print(f"  {escape(recipe_line(study, best))}", highlight=False, soft_wrap=True)
    paths = write_plots(study, folder)
    for path in paths:
        console.print(f"plot: {path}", highlight=False)
    return paths


def show_comparison(study: Any, folder: Path, console: Any) -> list[Path]:
    """A comparison study's report (`epx.sweep.compare`): its tables on the terminal, and the
    Markdown, HTML and figures beside the study."""
    from rich.markdown import Markdown

    from epx.sweep.compare import write_comparison

    written = write_comparison(study, folder)
    console.print(Markdown(written["markdown"].read_text(encoding="utf-8")))
    for path in written.values():
        console.print(f"written: {path}", highlight=False)
    return list(written.values())
