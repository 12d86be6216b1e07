"""The checks a launch runs before any model weights load; `--dry-run` runs the same ones.

Each raises an `EpxError` with one line (which file or option, which key, what was expected):
the output dir can be created and written, the training data source exists and its first rows
have a problem and an answer, the built-in task and every eval benchmark name is known.
"""

from __future__ import annotations

import os
from pathlib import Path

from epx.errors import DataError, RecipeError
from epx.recipe import Recipe


def check_output_dir(path: str | os.PathLike[str], option: str = "output_dir") -> Path:
    """`path` is (or can become) a writable folder; RecipeError naming `option` otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RecipeError(f"{option}: {path} is a file, not a folder")
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise RecipeError(f"{option}: {path} cannot be created: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise RecipeError(f"{option}: {path} cannot be created: {ancestor} is not writable")
    return path


def make_output_dir(path: str | os.PathLike[str], option: str = "output_dir") -> Path:
    """Create the folder (checked first); an OS refusal is one line too."""
    path = check_output_dir(path, option)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RecipeError(f"{option}: cannot create {path} ({error.strerror})") from None
    return path


def check_launch_inputs(recipe: Recipe) -> list[str]:
    """Every check of a launch that needs no model weights; returns what was checked."""
    from epx.data import BUILTIN_PREFIX, check_data_source
    from epx.eval.benchmarks import REGISTRY, load_benchmark, resolve_data_dir
    from epx.grpo_args import grpo_config

    where = recipe.source or "<recipe>"
    grpo_config(recipe)  # the values no run can use, GRPO's batch rules, TRL's own checks
    check_output_dir(recipe.output_dir)
    try:
        checked = [check_data_source(recipe.data)]
    except DataError as error:
        raise DataError(f"{where}: {error}") from None
    task = recipe.data.task if recipe.data.source == BUILTIN_PREFIX + "arithmetic" else None
    for name in recipe.eval.benches:
        try:
            if name in REGISTRY and resolve_data_dir(recipe.eval.data_dir) is None:
                checked.append(f"eval {name}: from the hub ({REGISTRY[name].hub_id}) at launch")
                continue
            bench = load_benchmark(name, recipe.eval.data_dir, task=task)
        except DataError as error:
            raise DataError(f"{where}: eval.benches: {error}") from None
        checked.append(f"eval {name}: {len(bench.problems)} problems ({bench.source})")
    return checked
