"""Search spaces: `sweeps/<method>.yaml` -> typed parameters mapped onto recipe keys (parsing is
pure; `check_against_recipe` loads the recipe to check every value against it).

A space file::

    method: position                    # shaping.method of every trial
    params:
      shaping.position.alpha: {type: float, low: 0.02, high: 0.5, log: true, paper: 0.1}
      shaping.position.k: {type: int, low: 5, high: 30, paper: 15}
      shaping.position.schedule: {type: categorical, choices: [always, plateau], paper: plateau}

`paper` is the reference value: the paper's values form the first trial of every study. `grid`
lists the values a float or int parameter takes under the grid sampler (categoricals use their
choices). Every problem is a `RecipeError` naming the file and the key, raised before any trial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epx.errors import RecipeError

TYPES = ("float", "int", "categorical")
FIELDS = {"type", "low", "high", "log", "step", "choices", "paper", "grid"}
METHODS = ("ppl", "position", "both")
COMPARED = ("none", "ppl", "position", "both")  # what a comparison may run (none: plain GRPO)
COMPARE = "compare"  # the method of a comparison's space: the methods are one of its parameters
SEED_PARAM = "seed"  # a comparison's seed: grpo.seed and data.seed (sampling and data order)
METHOD_PARAM = "shaping.method"


@dataclass(frozen=True)
class Param:
    """One searched recipe key: its type, bounds or choices, the paper's value, grid values."""

    key: str  # dotted recipe key, e.g. shaping.ppl.alpha
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    paper: Any = None
    grid: tuple[Any, ...] = ()

    def contains(self, value: Any) -> bool:
        """Whether `value` lies in the parameter's range or choices."""
        if self.type == "categorical":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.type == "int" and int(value) != value:
            return False
        return self.low <= value <= self.high  # type: ignore[operator]

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial draws for this parameter."""
        if self.type == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            step = int(self.step) if self.step else 1
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=step, log=self.log
            )
        return trial.suggest_categorical(self.key, list(self.choices))

    def grid_values(self) -> list[Any]:
        return list(self.grid or self.choices)


@dataclass(frozen=True)
class SearchSpace:
    """A space file's method and parameters, in file order."""

    path: str
    method: str
    params: tuple[Param, ...]

    def paper_values(self) -> dict[str, Any]:
        return {p.key: p.paper for p in self.params if p.paper is not None}

    def suggest(self, trial: Any) -> dict[str, Any]:
        return {param.key: param.suggest(trial) for param in self.params}

    def grid(self) -> dict[str, list[Any]]:
        """The grid sampler's search space; RecipeError for a parameter without grid values."""
        missing = [p.key for p in self.params if not p.grid_values()]
        if missing:
            raise RecipeError(
                f"{self.path}: params.{missing[0]}: the grid sampler needs `grid: [...]` values "
                "for float and int parameters"
            )
        return {p.key: p.grid_values() for p in self.params}


def _number(where: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RecipeError(f"{where}: {name} must be a number, got {value!r}")
    return float(value)


def parse_param(path: str, key: str, spec: Any) -> Param:
    """One `params:` entry, checked (see the module docstring)."""
    where = f"{path}: params.{key}"
    if not isinstance(spec, dict):
        raise RecipeError(
            f"{where}: expected a mapping with type, low/high or choices, got {spec!r}"
        )
    unknown = sorted(set(spec) - FIELDS)
    if unknown:
        raise RecipeError(
            f"{where}: unknown field '{unknown[0]}'; known are {', '.join(sorted(FIELDS))}"
        )
    kind = spec.get("type")
    if kind not in TYPES:
        raise RecipeError(f"{where}: type must be one of {', '.join(TYPES)}, got {kind!r}")
    grid = spec.get("grid") or ()
    if not isinstance(grid, list | tuple):
        raise RecipeError(f"{where}: grid must be a list of values, got {grid!r}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise RecipeError(f"{where}: a categorical parameter needs a non-empty choices list")
        param = Param(key, kind, choices=tuple(choices), paper=spec.get("paper"))
    else:
        if "low" not in spec or "high" not in spec:
            raise RecipeError(f"{where}: a {kind} parameter needs low and high")
        low, high = _number(where, "low", spec["low"]), _number(where, "high", spec["high"])
        if kind == "int" and (low != int(low) or high != int(high)):
            raise RecipeError(f"{where}: an int parameter needs integer low and high")
        if low > high:
            raise RecipeError(f"{where}: low ({spec['low']}) must be <= high ({spec['high']})")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise RecipeError(f"{where}: log must be true or false, got {log!r}")
        if log and low <= 0:
            raise RecipeError(f"{where}: a log-scaled parameter needs low > 0, got {spec['low']}")
        step = spec.get("step")
        if step is not None and (_number(where, "step", step) <= 0 or log):
            raise RecipeError(f"{where}: step must be > 0 and cannot be combined with log")
        param = Param(key, kind, low, high, log, step, paper=spec.get("paper"), grid=tuple(grid))
    if param.paper is not None and not param.contains(param.paper):
        raise RecipeError(
            f"{where}: paper value {param.paper!r} lies outside the parameter's range"
        )
    for value in param.grid:
        if not param.contains(value):
            raise RecipeError(f"{where}: grid value {value!r} lies outside the parameter's range")
    return param


def parse_space(data: Any, path: str) -> SearchSpace:
    """A space file's contents as a `SearchSpace` (keys not yet checked against a recipe)."""
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: expected a mapping with method and params")
    unknown = sorted(set(data) - {"method", "params"})
    if unknown:
        raise RecipeError(f"{path}: unknown key '{unknown[0]}'; known are method, params")
    method = data.get("method")
    if method not in METHODS:
        raise RecipeError(f"{path}: method must be one of {', '.join(METHODS)}, got {method!r}")
    params = data.get("params")
    if not isinstance(params, dict) or not params:
        raise RecipeError(f"{path}: params must map recipe keys to parameters")
    return SearchSpace(path, method, tuple(parse_param(path, str(k), v) for k, v in params.items()))


def load_space(path: str | Path) -> SearchSpace:
    """Read and parse a space file (RecipeError naming the file on any problem)."""
    from epx.recipe import read_yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: search space file not found")
    return parse_space(read_yaml(path), str(path))


def trial_overrides(
    base: Sequence[str], method: str, params: dict[str, Any], seed: int | None = None
) -> list[str]:
    """A trial's `--set` values: the sweep's own, its method, the trial's parameters and seed.

    A comparison's trial carries its method and seed as parameters: `shaping.method`, and
    `seed`, which sets `grpo.seed` and `data.seed` (sampling and data order; the held-out
    problems never depend on it)."""
    params = dict(params)
    method = params.pop(METHOD_PARAM, method)
    if SEED_PARAM in params:
        seed = params.pop(SEED_PARAM)
        seeded = [f"grpo.seed={seed}", f"data.seed={seed}"]
    else:
        seeded = [f"grpo.seed={seed}"] if seed is not None else []
    shaping = [f"{METHOD_PARAM}={method}"] if method != COMPARE else []
    return [*base, *shaping, *as_overrides(params), *seeded]


def comparison_space(methods: Sequence[str], seeds: Sequence[int]) -> SearchSpace:
    """The grid of a comparison: every method with every seed (seed-major, so that each seed's
    methods finish together and pair early)."""
    unknown = [m for m in methods if m not in COMPARED]
    if unknown or not methods:
        raise RecipeError(f"--method: a comparison runs methods of {', '.join(COMPARED)}, "
                          f"got {','.join(methods) or 'none'}")  # fmt: skip
    if len(set(methods)) != len(methods) or len(set(seeds)) != len(seeds) or not seeds:
        raise RecipeError("--method and --seeds: each method and seed once, at least one of each")
    return SearchSpace("<comparison>", COMPARE, (
        Param(SEED_PARAM, "categorical", choices=tuple(seeds)),
        Param(METHOD_PARAM, "categorical", choices=tuple(methods)),
    ))  # fmt: skip


def as_overrides(values: dict[str, Any]) -> list[str]:
    """`--set key=value` strings for the sampled values (YAML-typed, as `--set` parses them)."""
    import yaml

    return [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
            for key, value in values.items()]  # fmt: skip


def check_against_recipe(
    space: SearchSpace, recipe_path: str | Path, overrides: list[str], *, launch: bool = False
) -> None:
    """Every key is a recipe key and every bound, grid and paper value makes a valid recipe
    (with `launch`, one that passes every check of a launch too, e.g. the reward parameters)."""
    from epx.errors import EpxError
    from epx.recipe import load_recipe

    for param in space.params:
        for value in _probe_values(param):
            try:
                trial = trial_overrides(overrides, space.method, {param.key: value})
                recipe = load_recipe(recipe_path, trial)
                if launch:
                    from epx.launch_checks import check_launch_inputs

                    check_launch_inputs(recipe)
            except EpxError as error:
                detail = str(error).split(": ", 1)[-1]
                raise RecipeError(
                    f"{space.path}: params.{param.key} = {value!r}: {detail}"
                ) from None


def _probe_values(param: Param) -> list[Any]:
    if param.type == "categorical":
        return list(param.choices)
    values = [param.low, param.high, *param.grid]
    if param.type == "int":
        values = [int(v) for v in values]  # type: ignore[arg-type]
    return values + ([param.paper] if param.paper is not None else [])
