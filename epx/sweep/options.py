"""From `epx sweep`'s options to a checked `SweepOptions`: every default resolved, the recipe and
the search space validated together before any trial starts."""

from __future__ import annotations

import re
from pathlib import Path

from epx.errors import RecipeError
from epx.sweep.runner import PRUNERS, SAMPLERS, SweepOptions
from epx.sweep.space import METHODS, check_against_recipe, load_space

DEFAULT_RECIPE = Path("recipes/smollm2-135m-cpu.yaml")
SWEEP_ROOT = Path("runs/sweep")
STUDY_FILE = "study.db"


def default_study_name(recipe: Path, method: str) -> str:
    return f"{recipe.stem}-{method}"


def default_storage(output_dir: Path) -> str:
    from epx.sweep.storage import sqlite_url

    return sqlite_url(output_dir / STUDY_FILE)


def sweep_dir(study_name: str, output_dir: Path | None) -> Path:
    """Where a study's trials, plots and (by default) SQLite file live."""
    return (
        output_dir if output_dir is not None else SWEEP_ROOT / re.sub(r"[^\w.-]+", "-", study_name)
    )


def build_options(
    *,
    method: str,
    recipe: Path | None,
    space: Path | None,
    n_trials: int,
    study_name: str | None,
    storage: str | None,
    metric: str | None,
    direction: str,
    sampler: str,
    pruner: str,
    repeats: int,
    launcher: str | None,
    overrides: list[str],
    output_dir: Path | None,
    heartbeat: float,
    max_failed: int = 5,
) -> SweepOptions:
    """Check everything a sweep needs before its first trial (one RecipeError line if not)."""
    from epx.recipe import load_recipe
    from epx.sweep.objective import default_metric

    if method not in METHODS:
        raise RecipeError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if direction not in ("maximize", "minimize"):
        raise RecipeError(f"--direction must be maximize or minimize, got {direction!r}")
    if sampler not in SAMPLERS:
        raise RecipeError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if pruner not in PRUNERS:
        raise RecipeError(f"--pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
    for name, value, low in (
        ("--n-trials", n_trials, 1),
        ("--repeats", repeats, 1),
        ("--max-failed", max_failed, 1),
    ):
        if value < low:
            raise RecipeError(f"{name} must be >= {low}, got {value}")
    if heartbeat < 1:
        raise RecipeError(f"--heartbeat must be >= 1 second, got {heartbeat}")
    recipe = recipe or DEFAULT_RECIPE
    space_path = space or Path("sweeps") / f"{method}.yaml"
    loaded_space = load_space(space_path)
    if loaded_space.method != method:
        raise RecipeError(
            f"{space_path}: method is {loaded_space.method}, but --method {method} was asked"
        )
    resolved = load_recipe(recipe, [*overrides, f"shaping.method={method}"])
    check_against_recipe(loaded_space, recipe, overrides, launch=True)
    if sampler == "grid":
        loaded_space.grid()  # every parameter has grid values
    name = study_name or default_study_name(recipe, method)
    folder = sweep_dir(name, output_dir)
    max_steps = resolved.grpo.get("max_steps")
    return SweepOptions(
        method=method,
        recipe=recipe,
        space=loaded_space,
        n_trials=n_trials,
        study_name=name,
        storage=storage or default_storage(folder),
        metric=metric or default_metric(resolved),
        direction=direction,
        sampler=sampler,
        pruner=pruner,
        repeats=repeats,
        launcher=launcher,
        overrides=tuple(overrides),
        output_dir=folder,
        heartbeat=heartbeat,
        max_failed=max_failed,
        wandb_mode=resolved.logging.mode,
        wandb_project=resolved.logging.project,
        max_steps=max_steps if isinstance(max_steps, int) and max_steps > 0 else None,
        seed=int(resolved.grpo.get("seed", 0)),
    )
