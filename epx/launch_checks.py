"""The checks a launch runs before any model weights load; `--dry-run` runs the same ones.

Each raises an `EpxError` with one line (which file or option, which key, what was expected):
the GRPO values and batch rules, the reward functions' parameters, the output dir can be created
and written, the training data source exists and its first rows have a problem and an answer,
the built-in task and every eval benchmark name is known.
"""

from __future__ import annotations

from epx.errors import DataError
from epx.paths import check_output_dir
from epx.recipe import Recipe


def check_launch_inputs(recipe: Recipe, *, dry_run: bool = False) -> list[str]:
    """Every check of a launch that needs no model weights; returns what was checked.

    `dry_run`: check the recipe for the machine it is meant for (see `grpo_config`)."""
    from epx.benchmarks import REGISTRY, load_benchmark, resolve_data_dir
    from epx.data import BUILTIN_PREFIX, check_data_source
    from epx.grpo_args import grpo_config
    from epx.rewards import recipe_rewards

    where = recipe.source or "<recipe>"
    args = grpo_config(recipe, dry_run=dry_run)  # values no run can use, batch rules, TRL's checks
    recipe_rewards(recipe, args.max_completion_length)  # their parameters, e.g. a buffer
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


def position_warning(recipe: Recipe, config: object, processes: int) -> str | None:
    """One line when the recipe's position bonus cannot be on within `grpo.max_steps`."""
    from epx.grpo_args import batch_geometry
    from epx.schedule import position_reach

    max_steps = getattr(config, "max_steps", -1)
    if max_steps is None or max_steps <= 0:
        return None  # a budget in epochs: the step count is known only with the data
    updates = batch_geometry(config, processes)["updates_per_generation"]
    return position_reach(recipe.shaping, recipe.stage, max_steps, updates)
