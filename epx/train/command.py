"""`epx train RECIPE`: options only; the work is `epx.train.run_training`."""

from __future__ import annotations

from pathlib import Path

import typer


def train_command(
    recipe_path: Path = typer.Argument(..., help="Recipe YAML (see recipes/)."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a key: --set grpo.learning_rate=1e-5 (repeatable)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the resolved recipe and GRPOConfig, then exit."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the last usable checkpoint of the output_dir."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="With --resume: accept a recipe that differs from the checkpoint's in what changes "
        "training, or a checkpoint without optimizer state (recorded in resumes.jsonl).",
    ),
) -> None:
    """Train with GRPO and PPL-/position-based advantage shaping, from a YAML recipe."""
    from epx.errors import RecipeError
    from epx.recipe import load_recipe

    if force and not resume:
        raise RecipeError("--force only applies with --resume")
    recipe = load_recipe(recipe_path, overrides)
    if dry_run:
        _print_dry_run(recipe)
        return
    from epx.train import run_training

    run_training(recipe, resume=resume, force=force)


def _print_dry_run(recipe) -> None:
    """The resolved recipe, its GRPOConfig and batch geometry for the machine it is meant for,
    what was checked, and in one line what this machine lacks to launch it."""
    import yaml
    from rich.console import Console
    from rich.syntax import Syntax

    from epx.grpo_args import (
        batch_geometry,
        describe_geometry,
        grpo_config,
        launch_processes,
        missing_here,
    )
    from epx.launch_checks import check_launch_inputs, position_warning
    from epx.models import has_gpu
    from epx.recipe import recipe_to_yaml

    config = grpo_config(recipe, dry_run=True)
    checked = check_launch_inputs(recipe, dry_run=True)
    geometry = batch_geometry(config, launch_processes(recipe, dry_run=True))
    shown = {key: value for key, value in config.to_dict().items() if key in _SHOWN}
    shown["generation_batch_size"] = geometry["generation_batch"]  # for the target's processes
    console = Console()
    console.rule(f"resolved recipe ({recipe.source})")
    console.print(Syntax(recipe_to_yaml(recipe), "yaml"))
    console.rule("GRPOConfig (main fields; TRL's defaults for the rest)")
    console.print(Syntax(yaml.safe_dump(shown, sort_keys=True), "yaml"))
    console.rule("checked (no model weights loaded)")
    console.print(
        describe_geometry(geometry, config.num_generations), highlight=False, soft_wrap=True
    )
    for line in checked:
        console.print(f"ok  {line}", highlight=False, soft_wrap=True)
    warning = position_warning(recipe, config, launch_processes(recipe, dry_run=True))
    if warning:
        console.print(f"warning: {warning}", highlight=False, soft_wrap=True)
    missing = missing_here(recipe, has_gpu())
    if missing:
        console.print(
            f"this machine lacks what the recipe needs to launch: {'; '.join(missing)}",
            highlight=False,
            soft_wrap=True,
        )


_SHOWN = {
    "beta", "bf16", "epsilon", "epsilon_high", "fp16", "generation_batch_size",
    "gradient_accumulation_steps", "gradient_checkpointing", "learning_rate", "logging_steps",
    "loss_type", "lr_scheduler_type", "max_completion_length", "max_grad_norm", "max_steps",
    "num_generations", "num_iterations", "num_train_epochs", "output_dir", "per_device_train_batch_size",
    "report_to", "run_name", "save_steps", "scale_rewards", "seed", "steps_per_generation",
    "temperature", "top_p", "use_cpu", "use_vllm", "warmup_steps", "weight_decay",
}  # fmt: skip
