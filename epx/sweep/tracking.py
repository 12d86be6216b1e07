"""A sweep's W&B runs (one per trial, grouped by study and typed by method; one for the study)
and each worker's own statistics (`workers/<host>-<pid>.json`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from epx.sweep.space import COMPARE, trial_overrides


def loggable(record: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in record.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }


def wandb_trial_run(options: Any, trial: Any, params: dict[str, Any]) -> Any:
    """The trial's own W&B run (grouped by study, typed by method), or None when disabled."""
    if options.wandb_mode == "disabled":
        return None
    import wandb

    from epx.recipe import load_recipe

    recipe = load_recipe(options.recipe, trial_overrides(options.overrides, options.method, params))
    method = recipe.shaping.method  # a comparison's trial: its own
    return wandb.init(
        project=options.wandb_project,
        group=options.study_name,
        job_type=method,
        name=f"{options.study_name}-trial-{trial.number:04d}",
        config={
            "recipe": recipe.model_dump(mode="json", exclude={"source"}),
            "params": params,
            "trial": trial.number,
            "study": options.study_name,
        },
        tags=["epx-sweep", method, options.study_name],
        dir=str(options.output_dir),
        mode=options.wandb_mode,
        reinit="create_new",
        settings=wandb.Settings(console="off", silent=True),
    )


def study_attrs(options: Any) -> dict[str, Any]:
    """What a study records of its settings (user attributes; the study's W&B config)."""
    return {
        "kind": "comparison" if options.method == COMPARE else "sweep",
        "recipe": str(options.recipe),
        "method": options.method,
        "metric": options.metric,
        "space": options.space.path,
        "overrides": list(options.overrides),
        "repeats": options.repeats,
        "output_dir": str(options.output_dir),
    }


def log_study_to_wandb(study: Any, options: Any) -> None:
    """A study-level W&B run: best value, best params and the trials table."""
    if options.wandb_mode == "disabled":
        return
    import wandb

    from epx.sweep.report import trial_rows

    columns, rows = trial_rows(study)
    run = wandb.init(
        project=options.wandb_project,
        group=options.study_name,
        job_type="study",
        name=f"{options.study_name}-study",
        config={"study": options.study_name, **study_attrs(options)},
        tags=["epx-sweep", "study", options.method],
        dir=str(options.output_dir),
        mode=options.wandb_mode,
        reinit="create_new",
        settings=wandb.Settings(console="off", silent=True),
    )
    try:
        run.log({"trials": wandb.Table(columns=columns, data=[[str(c) for c in r] for r in rows])})
        try:
            run.summary["best_value"] = study.best_value
            run.summary["best_params"] = study.best_params
        except ValueError:  # no complete trial yet
            pass
    finally:
        run.finish()


def write_worker_stats(output_dir: Path, result: Any, calls: int) -> None:
    folder = output_dir / "workers"
    folder.mkdir(parents=True, exist_ok=True)
    stats = {
        "worker": result.worker,
        "trials_run": result.trials_run,
        "wall_seconds": result.wall_seconds,
        "storage_seconds": result.storage_seconds,
        "storage_calls": calls,
    }
    name = result.worker.replace(":", "-")
    (folder / f"{name}.json").write_text(json.dumps(stats, indent=2) + "\n")
