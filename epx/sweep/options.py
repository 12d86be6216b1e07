"""From `epx sweep`'s options to a checked `SweepOptions`: every default resolved, the recipe and
the search space validated together before any trial starts."""

from __future__ import annotations

import re
from pathlib import Path

from epx.errors import RecipeError
from epx.sweep.runner import SweepOptions
from epx.sweep.samplers import PRUNERS, SAMPLERS
from epx.sweep.space import (
    COMPARE,
    COMPARED,
    METHODS,
    check_against_recipe,
    comparison_space,
    load_space,
    trial_overrides,
)

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
    new_study: bool = False,
    storage_retry: float = 120.0,
    seeds: list[int] | None = None,
) -> SweepOptions:
    """Check everything a sweep needs before its first trial (one RecipeError line if not),
    including that the study, if it exists, was made with these settings (`settle_study`).

    Several methods (`none,ppl,position,both`) or `seeds` make a comparison: a grid of every
    method with every seed, each trial run to its end (no pruning), `n_trials` their count."""
    import shlex

    import yaml

    from epx.recipe import load_recipe, recipe_to_yaml
    from epx.sweep.identity import study_identity
    from epx.sweep.metric import check_metric, default_metric

    methods = [m.strip() for m in method.split(",") if m.strip()]
    comparison = len(methods) > 1 or seeds is not None or method == "none"
    if comparison:
        if space is not None or repeats != 1:
            raise RecipeError("a comparison (several methods or --seeds) takes no --space and no "
                              "--repeats: its trials are every method with every seed")  # fmt: skip
        recipe_seed = int(load_recipe(recipe or DEFAULT_RECIPE, overrides).grpo.get("seed", 0))
        seeds = seeds if seeds is not None else [recipe_seed]
        comparison_grid = comparison_space(methods, seeds)
        method, sampler, pruner = COMPARE, "grid", "none"
        n_trials = len(methods) * len(seeds)
    elif method not in METHODS:
        raise RecipeError(f"--method must be one of {', '.join(METHODS)} (or several of "
                          f"{', '.join(COMPARED)} for a comparison), got {method!r}")  # fmt: skip
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
    if storage_retry < 0:
        raise RecipeError(f"--storage-retry must be >= 0 seconds, got {storage_retry}")
    if launcher is not None:
        launcher = shlex.join(launcher_words(launcher))
    if storage is not None:
        from epx.sweep.storage import storage_url

        storage = storage_url(storage)
    recipe = recipe or DEFAULT_RECIPE
    if comparison:
        loaded_space = comparison_grid
    else:
        space_path = space or Path("sweeps") / f"{method}.yaml"
        loaded_space = load_space(space_path)
        if loaded_space.method != method:
            raise RecipeError(
                f"{space_path}: method is {loaded_space.method}, but --method {method} was asked"
            )
    resolved = load_recipe(recipe, trial_overrides(overrides, method, {}))
    check_against_recipe(loaded_space, recipe, overrides, launch=True)
    if sampler == "grid":
        loaded_space.grid()  # every parameter has grid values
    if metric is not None:
        check_metric(metric, resolved)
    metric = metric or default_metric(resolved)
    name = study_name or default_study_name(recipe, method)
    folder = sweep_dir(name, output_dir)
    max_steps = resolved.grpo.get("max_steps")
    identity = study_identity(
        yaml.safe_load(recipe_to_yaml(resolved)), loaded_space,
        method=method, metric=metric, direction=direction, sampler=sampler,
    )  # fmt: skip
    options = SweepOptions(
        method=method,
        recipe=recipe,
        space=loaded_space,
        n_trials=n_trials,
        study_name=name,
        storage=storage or default_storage(folder),
        metric=metric,
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
        identity=identity,
        storage_retry=storage_retry,
    )
    return settle_study(
        options, new_study=new_study, storage_given=storage is not None,
        output_given=output_dir is not None,
    )  # fmt: skip


def launcher_words(launcher: str) -> list[str]:
    """The launcher as words, its command found on PATH or else beside this Python (a
    virtualenv's `accelerate` when the env is not activated); RecipeError naming it if neither."""
    import shlex
    import shutil
    import sys

    try:
        words = shlex.split(launcher)
    except ValueError as error:
        raise RecipeError(f"--launcher {launcher!r}: {error}") from None
    if not words:
        raise RecipeError("--launcher is empty: give a command such as \"accelerate launch\"")
    if shutil.which(words[0]) is None:
        beside = shutil.which(words[0], path=str(Path(sys.executable).parent))
        if beside is None:
            raise RecipeError(f"--launcher {launcher!r}: {words[0]!r} is not a command on PATH")
        words[0] = beside
    return words


def existing_identity(storage: str, study_name: str) -> dict | None:
    """What the study `study_name` in `storage` was made with (`recorded_identity`); None when
    the storage or the study does not exist yet. Creates nothing."""
    import optuna

    from epx.sweep.runner import recorded_identity
    from epx.sweep.storage import open_storage, storage_file

    path = storage_file(storage)
    if path is not None and not path.is_file():
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage, None))
    except KeyError:
        return None
    return recorded_identity(study, wait=0.0)


def settle_study(
    options: SweepOptions, *, new_study: bool, storage_given: bool, output_given: bool
) -> SweepOptions:
    """The options unchanged when the study is new or was made with the same settings; with
    other settings a RecipeError naming what differs, or with `new_study` the options of the
    study beside it (`epx.sweep.identity.variant_name`, in a folder and default storage of its
    own)."""
    import dataclasses

    from epx.sweep.identity import identity_differences, refusal, variant_name

    stored = existing_identity(options.storage, options.study_name)
    differences = identity_differences(stored, options.identity) if stored else []
    if not differences:
        return options
    if not new_study:
        raise RecipeError(refusal(options.study_name, differences))
    name = variant_name(options.study_name, options.identity)
    if output_given:
        raise RecipeError(
            f"--new-study: {options.output_dir} holds the trials of study "
            f"{options.study_name!r}; pass another --output-dir for study {name!r}"
        )
    folder = sweep_dir(name, None)
    return dataclasses.replace(
        options, study_name=name, output_dir=folder, replaces=options.study_name,
        storage=options.storage if storage_given else default_storage(folder),
    )  # fmt: skip
