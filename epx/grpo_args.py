"""From a recipe to GRPOConfig arguments: epx's defaults for the hardware at hand, the values no
run can use, and GRPO's batch rules.

`grpo_kwargs` is pure (no torch): the tests use it without loading anything heavy; `grpo_config`
builds TRL's GRPOConfig for this machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from epx.errors import RecipeError
from epx.grpo_fields import GRPO_DEFAULTS
from epx.recipe import Recipe

# What epx sets when the recipe does not: the stage detector wants every step logged, a crash must
# lose few steps, and the callbacks' state (the stage detector) must come back on resume.
EPX_DEFAULTS: dict[str, Any] = {
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 50,
    "save_total_limit": 3,
    "restore_callback_states_from_checkpoint": True,
    "disable_tqdm": True,  # epx shows a rich progress bar instead
    "log_completions": False,
    # every parameter of a causal LM takes part in its loss: DDP need not search for unused ones
    # (the search costs a pass over the graph each step and warns on every rank)
    "ddp_find_unused_parameters": False,
}
# TRL's defaults assume a GPU: on a CPU bf16 fails (or silently autocasts with use_cpu) and
# gradient checkpointing only slows things down.
CPU_DEFAULTS: dict[str, Any] = {
    "use_cpu": True,
    "bf16": False,
    "fp16": False,
    "gradient_checkpointing": False,
}
GPU_ONLY = ("bf16", "fp16", "use_vllm")


# GRPOConfig values no run can use, checked before launch (TRL accepts several of them, then
# fails mid-run or trains wrongly: a negative epsilon inverts the clip range).
# name: (lowest allowed, whether the bound itself is allowed, what is expected)
VALUE_BOUNDS: dict[str, tuple[float, bool, str]] = {
    "learning_rate": (0.0, True, "a number >= 0"),
    "temperature": (0.0, False, "a number > 0 (sampling needs a temperature; no greedy rollouts)"),
    "top_p": (0.0, False, "a number in (0, 1]"),
    "per_device_train_batch_size": (1, True, "an integer >= 1"),
    "gradient_accumulation_steps": (1, True, "an integer >= 1"),
    "steps_per_generation": (1, True, "an integer >= 1"),
    "generation_batch_size": (1, True, "an integer >= 1"),
    "num_iterations": (1, True, "an integer >= 1"),
    "max_completion_length": (1, True, "an integer >= 1 (tokens per completion)"),
    "epsilon": (0.0, True, "a number >= 0 (the lower clip range)"),
    "epsilon_high": (0.0, True, "a number >= 0 (the upper clip range)"),
    "beta": (0.0, True, "a number >= 0 (the KL coefficient)"),
    "weight_decay": (0.0, True, "a number >= 0"),
    "max_grad_norm": (0.0, True, "a number >= 0"),
    "warmup_steps": (0.0, True, "a number >= 0"),
    "save_steps": (0.0, False, "a number > 0"),
    "logging_steps": (0.0, False, "a number > 0"),
    "num_train_epochs": (0.0, False, "a number > 0"),
}


def grpo_kwargs(recipe: Recipe, *, has_gpu: bool, num_processes: int = 1) -> dict[str, Any]:
    """Keyword arguments for `trl.GRPOConfig`: recipe values over epx's defaults over TRL's."""
    kwargs: dict[str, Any] = dict(EPX_DEFAULTS)
    if not has_gpu:
        kwargs.update(CPU_DEFAULTS)
    kwargs.update(recipe.grpo)
    quantile = recipe.shaping.entropy_quantile
    if quantile is not None:  # TRL's own high-entropy token mask does this job
        if (
            "top_entropy_quantile" in recipe.grpo
            and recipe.grpo["top_entropy_quantile"] != quantile
        ):
            raise RecipeError(
                f"{recipe.source}: shaping.entropy_quantile ({quantile}) and "
                f"grpo.top_entropy_quantile ({recipe.grpo['top_entropy_quantile']}) disagree; "
                "set one of them"
            )
        kwargs["top_entropy_quantile"] = quantile
    kwargs["output_dir"] = recipe.output_dir
    kwargs["run_name"] = recipe.logging.run_name or Path(recipe.source or "run").stem
    kwargs["report_to"] = ["wandb"] if recipe.logging.mode != "disabled" else "none"
    try:
        check_values(kwargs, explicit=set(recipe.grpo))
        check_batch_rules(kwargs, has_gpu=has_gpu, num_processes=num_processes)
    except RecipeError as error:
        raise RecipeError(f"{recipe.source}: {error}") from None
    return kwargs


def check_values(kwargs: dict[str, Any], explicit: set[str]) -> None:
    """Values TRL would reject, fail on mid-run, or silently misuse (see `VALUE_BOUNDS`)."""
    for name, (low, inclusive, expected) in VALUE_BOUNDS.items():
        value = kwargs.get(name)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if value < low or (value == low and not inclusive) or (name == "top_p" and value > 1):
            raise RecipeError(f"grpo.{name}: expected {expected}, got {value}")
    max_steps = _value(kwargs, "max_steps")
    if max_steps is not None and max_steps < 1 and "num_train_epochs" not in explicit:
        raise RecipeError(
            f"grpo.max_steps: expected an integer >= 1, got {max_steps} (or give "
            "grpo.num_train_epochs and max_steps: -1 to train by epochs)"
        )
    low, high = _value(kwargs, "epsilon"), kwargs.get("epsilon_high")
    if high is not None and low is not None and high < low:
        raise RecipeError(f"grpo.epsilon_high: expected >= epsilon ({low}), got {high}")


def _value(kwargs: dict[str, Any], name: str) -> Any:
    return kwargs.get(name, GRPO_DEFAULTS.get(name))


def check_batch_rules(kwargs: dict[str, Any], *, has_gpu: bool, num_processes: int) -> None:
    """GRPO's batch rules, checked before launch, with the valid choices in the message."""
    generations = _value(kwargs, "num_generations")
    if generations is None or generations < 2:
        raise RecipeError(
            f"grpo.num_generations: GRPO needs at least 2 generations per prompt, got {generations}"
        )
    per_device = _value(kwargs, "per_device_train_batch_size")
    accumulation = _value(kwargs, "gradient_accumulation_steps")
    steps_per_generation = _value(kwargs, "steps_per_generation") or accumulation
    generation_batch = _value(kwargs, "generation_batch_size")
    if generation_batch is None:
        generation_batch = per_device * num_processes * steps_per_generation
        origin = (
            f"per_device_train_batch_size {per_device} x {num_processes} process(es) x "
            f"steps_per_generation {steps_per_generation}"
        )
    else:
        origin = "grpo.generation_batch_size"
    if generation_batch % generations:
        divisors = [d for d in range(2, generation_batch + 1) if generation_batch % d == 0]
        multiples = [generations * m for m in range(1, 5)]
        raise RecipeError(
            f"grpo.num_generations: the generation batch ({origin} = {generation_batch}) must be "
            f"divisible by num_generations {generations}; valid num_generations: "
            f"{', '.join(map(str, divisors)) or 'none'}, or make the generation batch one of "
            f"{', '.join(map(str, multiples))}"
        )
    if not has_gpu:
        for name in GPU_ONLY:
            if kwargs.get(name):
                raise RecipeError(f"grpo.{name}: needs a GPU and none is present; set it to false")


def wants_gpu(recipe: Recipe) -> list[str]:
    """The recipe keys that need a CUDA GPU (empty for a recipe any machine runs)."""
    keys = [f"grpo.{name}" for name in GPU_ONLY if recipe.grpo.get(name)]
    if recipe.model.dtype in ("bfloat16", "float16"):
        keys.append(f"model.dtype {recipe.model.dtype}")
    return keys


def missing_here(recipe: Recipe, gpu: bool) -> list[str]:
    """What this machine lacks to launch the recipe (a GPU, vLLM), one phrase each."""
    import importlib.util

    missing = []
    needs = wants_gpu(recipe)
    if needs and not gpu:
        missing.append(f"a CUDA GPU ({', '.join(needs)})")
    if recipe.grpo.get("use_vllm") and importlib.util.find_spec("vllm") is None:
        missing.append("vLLM (grpo.use_vllm; pip install vllm)")
    return missing


def launch_processes(recipe: Recipe, dry_run: bool) -> int:
    """Processes the batch rules are checked for: this launch's (WORLD_SIZE), or in a dry run
    the ones the recipe is meant for (`launch.num_processes`)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return recipe.launch.num_processes or world if dry_run else world


def grpo_config(recipe: Recipe, *, dry_run: bool = False) -> Any:
    """The recipe's `trl.GRPOConfig`; TRL's own checks become one-line errors.

    For a launch, for this machine: a recipe that needs a GPU on a machine without one is a
    RecipeError. For a dry run, for the machine the recipe is meant for (its GPU settings, its
    `launch.num_processes`), whatever this one is: `missing_here` says what this one lacks.
    """
    from epx.quiet import quiet_libraries

    quiet_libraries()  # before TRL's first import
    from trl import GRPOConfig

    from epx.models import has_gpu

    gpu = has_gpu()
    target_gpu = gpu or (dry_run and bool(wants_gpu(recipe)))
    kwargs = grpo_kwargs(
        recipe, has_gpu=target_gpu, num_processes=launch_processes(recipe, dry_run)
    )
    if target_gpu and not gpu:  # the target's settings, checked by TRL on this CPU machine
        kwargs = {**kwargs, "use_cpu": True}
    try:
        config = GRPOConfig(**kwargs)
    except (ValueError, TypeError) as error:
        first = str(error).strip().splitlines()[0]
        raise RecipeError(f"{recipe.source}: grpo: {first}") from None
    if target_gpu and not gpu:
        config.use_cpu = False
    return config


def batch_geometry(config: Any, processes: int) -> dict[str, int]:
    """Completions per generation batch and per optimizer step, and the updates in between."""
    per_device = config.per_device_train_batch_size
    accumulation = config.gradient_accumulation_steps
    micro_steps = config.steps_per_generation
    generation = per_device * processes * micro_steps
    step = per_device * processes * accumulation
    return {
        "per_device": per_device,
        "processes": processes,
        "steps_per_generation": micro_steps,
        "accumulation": accumulation,
        "generation_batch": generation,
        "prompts": generation // config.num_generations,
        "step_batch": step,
        "updates_per_generation": max(1, micro_steps // accumulation) * config.num_iterations,
    }


def describe_geometry(geometry: dict[str, int], generations: int) -> str:
    g = geometry
    return (
        f"generation batch: {g['generation_batch']:,} completions ({g['prompts']:,} prompts x "
        f"{generations}) = {g['per_device']} per device x {g['processes']} process(es) x "
        f"{g['steps_per_generation']} micro-batches; an optimizer step: {g['step_batch']:,} "
        f"completions ({g['accumulation']} accumulation), {g['updates_per_generation']} "
        "optimizer step(s) per generation batch"
    )
