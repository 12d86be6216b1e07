"""From a recipe to GRPOConfig arguments: epx's defaults for the hardware at hand, and GRPO's batch rules.

Pure (no torch): `--dry-run` and the tests use it without loading anything heavy.
"""

from __future__ import annotations

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
}
# TRL's defaults assume a GPU (STACK.md): on a CPU they fail (bf16) or only slow things down.
CPU_DEFAULTS: dict[str, Any] = {
    "use_cpu": True,
    "bf16": False,
    "fp16": False,
    "gradient_checkpointing": False,
}
GPU_ONLY = ("bf16", "fp16", "use_vllm")


def grpo_kwargs(recipe: Recipe, *, has_gpu: bool, num_processes: int = 1) -> dict[str, Any]:
    """Keyword arguments for `trl.GRPOConfig`: recipe values over epx's defaults over TRL's."""
    kwargs: dict[str, Any] = dict(EPX_DEFAULTS)
    if not has_gpu:
        kwargs.update(CPU_DEFAULTS)
    kwargs.update(recipe.grpo)
    kwargs["output_dir"] = recipe.output_dir
    kwargs["run_name"] = recipe.logging.run_name or Path(recipe.source or "run").stem
    kwargs["report_to"] = ["wandb"] if recipe.logging.mode != "disabled" else "none"
    check_batch_rules(kwargs, has_gpu=has_gpu, num_processes=num_processes)
    return kwargs


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
