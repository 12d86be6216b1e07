"""The samplers and pruners a sweep can use, and the trials a new study queues first."""

from __future__ import annotations

from typing import Any

from epx.errors import RecipeError
from epx.sweep.space import SearchSpace

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")


def make_sampler(name: str, space: SearchSpace) -> Any:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler()
    if name == "random":
        return optuna.samplers.RandomSampler()
    if name == "grid":  # the grid points are enqueued in order (`grid_points`); nothing is drawn
        space.grid()
        return optuna.samplers.RandomSampler()
    raise RecipeError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")


def make_pruner(name: str, max_steps: int | None) -> Any:
    """median: a trial worse than the median of earlier trials at the same step is stopped
    (from the first report, after one finished trial); hyperband: successive halving over the
    step budget; none: every trial runs to its end."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_steps or "auto")
    if name == "none":
        return optuna.pruners.NopPruner()
    raise RecipeError(f"--pruner must be one of {', '.join(PRUNERS)}, got {name!r}")


def grid_points(space: SearchSpace) -> list[dict[str, Any]]:
    """Every combination of the parameters' grid values, the paper's values first if they are
    one of them, then in the space file's order."""
    import itertools

    grid = space.grid()
    points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    paper = space.paper_values()
    return sorted(points, key=lambda point: point != paper)


def initial_trials(space: SearchSpace, sampler: str) -> list[dict[str, Any]]:
    """What a new study queues: the paper's values (every study's reference point); under the
    grid sampler, every grid point in order (so any number of workers shares one grid)."""
    if sampler == "grid":
        return grid_points(space)
    paper = space.paper_values()  # parameters without a paper value are drawn
    return [paper] if paper else []


