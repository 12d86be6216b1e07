"""`epx sweep`: the Typer command. Imports only typer and the standard library at the top; the
work is `epx.sweep.runner.run_sweep` (and `epx.sweep.report.show_study` for `--show`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def sweep_command(
    method: Annotated[
        str | None,
        typer.Option(
            help="Shaping method to search: ppl, position or both; or several of none, ppl, "
            "position, both (comma-separated) to compare them over --seeds."
        ),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="A comparison's seeds, comma-separated (each sets grpo.seed and data.seed): "
            "every method trains once per seed."
        ),
    ] = None,
    recipe: Annotated[
        Path | None,
        typer.Option(help="Recipe every trial trains (default: recipes/smollm2-135m-cpu.yaml)."),
    ] = None,
    space: Annotated[
        Path | None, typer.Option(help="Search space file (default: sweeps/<method>.yaml).")
    ] = None,
    n_trials: Annotated[
        int, typer.Option("--n-trials", help="The study's total of finished trials.")
    ] = 20,
    study_name: Annotated[
        str | None,
        typer.Option("--study-name", help="Study name (default: <recipe>-<method>)."),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="sqlite:///file.db (default: runs/sweep/<study>/study.db), a journal file "
            "(.log), or postgresql+psycopg://user@host/db for workers on several machines."
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(help="Objective (default: eval/<first bench>/acc at the last evaluation)."),
    ] = None,
    direction: Annotated[str, typer.Option(help="maximize or minimize.")] = "maximize",
    sampler: Annotated[str, typer.Option(help="tpe, random or grid.")] = "tpe",
    pruner: Annotated[str, typer.Option(help="median, hyperband or none.")] = "median",
    repeats: Annotated[
        int, typer.Option(help="Seeds per parameter set; the trial's value is their mean.")
    ] = 1,
    launcher: Annotated[
        str | None,
        typer.Option(
            help="Prefix of each trial's command instead of python, e.g. \"accelerate launch "
            '--config_file recipes/accelerate/zero3.yaml".'
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe key in every trial (repeatable)."),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", "-o", help="Trials and plots (default: runs/sweep/<study>)."),
    ] = None,
    heartbeat: Annotated[
        float,
        typer.Option(
            help="Seconds between a worker's heartbeats; a trial silent for twice as long (or "
            "whose worker on this host is gone) is failed and retried."
        ),
    ] = 60.0,
    max_failed: Annotated[
        int,
        typer.Option("--max-failed", help="Stop this worker after so many trials in a row failed."),
    ] = 5,
    new_study: Annotated[
        bool,
        typer.Option(
            "--new-study",
            help="When the study exists with other settings (recipe, method, search space, "
            "metric, direction, sampler), start a study of its own beside it (its name is "
            "printed) instead of refusing.",
        ),
    ] = False,
    storage_retry: Annotated[
        float,
        typer.Option(
            "--storage-retry",
            help="Seconds a lost database connection is retried (with backoff) before this "
            "worker stops.",
        ),
    ] = 120.0,
    show: Annotated[
        str | None,
        typer.Option(help="Show study STUDY (trials, best params, plots) instead of running."),
    ] = None,
) -> None:
    """Optuna sweeps over the shaping scales: each trial a real `epx train` run, logged to W&B."""
    from rich.console import Console

    from epx.errors import RecipeError

    console = Console(stderr=True, soft_wrap=True)
    if show is not None:
        _show(show, storage, output_dir)
        return
    if method is None:
        raise RecipeError(
            "--method is required: ppl, position or both, or several of none, ppl, position, "
            "both with --seeds (or --show STUDY)"
        )
    seed_list = None
    if seeds is not None:
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise RecipeError(f"--seeds must be integers, comma-separated, got {seeds!r}") from None
    from epx.console import table_console
    from epx.sweep.options import build_options
    from epx.sweep.report import show_study
    from epx.sweep.runner import run_sweep

    options = build_options(
        method=method,
        recipe=recipe,
        space=space,
        n_trials=n_trials,
        study_name=study_name,
        storage=storage,
        metric=metric,
        direction=direction,
        sampler=sampler,
        pruner=pruner,
        repeats=repeats,
        launcher=launcher,
        overrides=list(overrides or []),
        output_dir=output_dir,
        heartbeat=heartbeat,
        max_failed=max_failed,
        new_study=new_study,
        storage_retry=storage_retry,
        seeds=seed_list,
    )
    if options.replaces is not None:
        console.print(
            f"study {options.replaces} was made with other settings: --new-study: this is "
            f"study [bold]{options.study_name}[/]", highlight=False,
        )  # fmt: skip
    result = run_sweep(options, console)
    share = result.storage_seconds / result.wall_seconds if result.wall_seconds else 0.0
    console.print(
        f"this worker ran {result.trials_run} trials; the study has {result.finished} finished; "
        f"storage {result.storage_seconds:.2f} s of {result.wall_seconds:.0f} s ({share:.2%})",
        highlight=False,
    )
    show_study(result.study, options.output_dir, table_console())
    if result.failed_out:
        raise typer.Exit(1)


def _show(name: str, storage: str | None, output_dir: Path | None) -> None:
    """The study's table and plots; the plots go to --output-dir, else beside the study's file
    (a SQLite file or a journal), else to its default folder. Creates no storage."""
    import optuna

    from epx.console import table_console
    from epx.errors import RecipeError
    from epx.sweep.options import STUDY_FILE, default_storage, sweep_dir
    from epx.sweep.report import show_study
    from epx.sweep.storage import open_storage, shown_url, storage_file, storage_url

    folder = sweep_dir(name, output_dir)
    if storage is None and not (folder / STUDY_FILE).is_file():
        raise RecipeError(f"--show {name}: no {folder / STUDY_FILE}; pass --storage URL")
    url = storage_url(storage) if storage else default_storage(folder)
    file = storage_file(url)
    if file is not None and not file.is_file():
        raise RecipeError(f"--show {name}: --storage {url}: {file} does not exist")
    if storage is not None and output_dir is None and file is not None:
        folder = file.parent
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=None))
    except KeyError:
        raise RecipeError(f"--show {name}: no such study in {shown_url(url)}") from None
    show_study(study, folder, table_console())
