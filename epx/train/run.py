"""`run_training(recipe)`: wires recipe, model, data, rewards, trainer, tracking and the run dir."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epx.errors import RecipeError
from epx.recipe import Recipe, recipe_to_yaml

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.jsonl"
SAMPLES_PER_STEP = 8  # training completions kept per logged step (about 2 KB)


@dataclass
class TrainResult:
    output_dir: Path
    global_step: int
    metrics_path: Path
    curves_path: Path | None


def configure_wandb(recipe: Recipe, output_dir: Path) -> None:
    """W&B through environment variables only: offline by default, online only if asked and keyed.

    Nothing secret is written anywhere: the key stays in the user's environment or netrc.
    """
    mode = recipe.logging.mode
    if mode == "online" and not (os.environ.get("WANDB_API_KEY") or _has_netrc_key()):
        raise RecipeError(
            f"{recipe.source}: logging.mode: online needs WANDB_API_KEY or `wandb login`; "
            "use offline (then `wandb sync`) or disabled"
        )
    os.environ["WANDB_MODE"] = mode
    os.environ["WANDB_DIR"] = str(output_dir)  # the run's W&B files live with the run
    _reset_wandb()  # W&B keeps the first run's settings per process; the next run re-reads them
    os.environ["WANDB_PROJECT"] = recipe.logging.project
    if recipe.logging.entity:
        os.environ["WANDB_ENTITY"] = recipe.logging.entity
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")


def _has_netrc_key() -> bool:
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def build_reward_functions(recipe: Recipe, max_completion_length: int) -> tuple[list, list[float]]:
    """The recipe's reward functions (epx.rewards) and their weights."""
    from epx.rewards import SCORED_REWARDS, build_reward_function

    functions, weights = [], []
    for spec in recipe.reward.functions:
        params = dict(spec.params)
        if spec.name in SCORED_REWARDS:
            params.setdefault("strictness", recipe.reward.strictness)
        try:
            function = build_reward_function(spec.name, **params)
            if getattr(function, "max_length", 0) is None:  # overlong: the completion limit
                function.max_length = max_completion_length
        except RecipeError as error:
            raise RecipeError(f"{recipe.source}: reward.functions.{spec.name}: {error}") from None
        functions.append(function)
        weights.append(spec.weight)
    return functions, weights


def run_training(recipe: Recipe, *, resume: bool = False, force: bool = False) -> TrainResult:
    """Train the recipe's model with GRPO and its shaping; returns where everything went.

    `resume` continues from the newest usable checkpoint (`epx.train.resume.plan_start`); `force`
    accepts a recipe that differs from it, or a checkpoint without optimizer state. The main
    process holds the output dir's lock (`epx.locks`) throughout: a second run there is refused.
    """
    import contextlib

    from epx.locks import exclusive_lock

    main_process = int(os.environ.get("RANK", "0")) == 0  # torchrun / accelerate set RANK
    with (
        exclusive_lock(recipe.output_dir, "epx train", "output_dir")
        if main_process
        else contextlib.nullcontext()
    ):
        return _train(recipe, resume=resume, force=force)


def _train(recipe: Recipe, *, resume: bool, force: bool) -> TrainResult:
    from rich.console import Console

    from epx.paths import make_output_dir
    from epx.train.preflight import check_launch_inputs
    from epx.train.resume import plan_start, record_resume

    console = Console(stderr=True, soft_wrap=True)  # a line stays one line in logs and pipes
    output_dir = Path(recipe.output_dir)
    plan = plan_start(output_dir, recipe, resume=resume, force=force)
    for name, why in plan.passed:
        console.print(f"[yellow]{name} is unusable ({why}): passed over[/]", highlight=False)
    metrics_path = output_dir / METRICS_FILE
    if plan.finished:
        console.print(
            f"{output_dir} is finished (step {plan.finished_step} of grpo.max_steps "
            f"{recipe.grpo.get('max_steps')}): nothing to train; raise grpo.max_steps to go on",
            highlight=False,
        )
        curves = output_dir / "curves.png"
        return TrainResult(output_dir, plan.finished_step or 0, metrics_path, curves)
    check_launch_inputs(recipe)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    meant = recipe.launch.num_processes
    if meant and meant != world:
        console.print(
            f"[yellow]{recipe.source} is meant for {meant} processes (launch.num_processes); "
            f"this launch has {world}: its batches are {world}/{meant} of the recipe's[/]",
            highlight=False,
        )
    make_output_dir(output_dir)
    configure_wandb(recipe, output_dir)
    main_process = int(os.environ.get("RANK", "0")) == 0  # torchrun / accelerate set RANK
    if main_process:
        if plan.checkpoint is None:
            (output_dir / RECIPE_FILE).write_text(recipe_to_yaml(recipe))
        else:
            record_resume(output_dir, plan, recipe)
    for key, old, new in plan.differences:
        console.print(f"[yellow]--force: {key} was {old!r}, now {new!r}[/]", highlight=False)

    with console.status("Preparing model, data and trainer"):
        trainer = build_trainer(recipe)
    checkpoint = str(plan.checkpoint) if plan.checkpoint else None
    console.print(
        f"[bold]epx train[/]: {recipe.model.name_or_path}, shaping={recipe.shaping.method}, "
        f"{trainer.args.max_steps} steps -> {output_dir}"
        + (f" (resuming {plan.checkpoint.name})" if plan.checkpoint else ""),
        highlight=False,
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    final = output_dir / "final"
    trainer.save_model(str(final))
    _finish_wandb()
    curves = None
    if main_process:
        curves = _report(recipe, output_dir, final, trainer.state.global_step, console)
    return TrainResult(output_dir, trainer.state.global_step, metrics_path, curves)


def _report(recipe: Recipe, output_dir: Path, final: Path, steps: int, console: Any) -> Path | None:
    """The end of a run: summary table, curves, the held-out check before/after, model card."""
    from epx.train.report import (
        before_after,
        plot_curves,
        render_before_after,
        summary_table,
        write_model_card,
    )

    metrics_path = output_dir / METRICS_FILE
    curves = None
    if metrics_path.exists():
        curves = plot_curves(metrics_path, output_dir / "curves.png")
        console.print(summary_table(metrics_path))
    check = before_after(output_dir, recipe.eval.benches[0]) if recipe.eval.benches else None
    if check is not None:
        for renderable in render_before_after(check):
            console.print(renderable)
    if final.is_dir():
        write_model_card(
            final,
            base_model=recipe.model.name_or_path,
            method=recipe.shaping.method,
            steps=steps,
            recipe_yaml=recipe_to_yaml(recipe),
            check=check,
        )
    if curves is not None:
        console.print(f"curves: {curves}")
    return curves


def build_trainer(recipe: Recipe, reward_funcs: list[Any] | None = None) -> Any:
    """The EpxGRPOTrainer of `recipe` (model, tokenizer, data, rewards, callbacks), not yet run.

    `reward_funcs` replaces the recipe's reward functions (Python callables in TRL's signature).
    """
    from epx.quiet import quiet_libraries

    quiet_libraries()  # before transformers' trainer modules are imported
    from transformers import PrinterCallback, ProgressCallback

    from epx.data import build_train_dataset
    from epx.models import load_model, load_tokenizer, lora_config
    from epx.train.callbacks import (
        MetricsFileCallback,
        RecipeSnapshotCallback,
        RichProgressCallback,
        SamplesFileCallback,
        StageCallback,
    )
    from epx.train.grpo_args import grpo_config
    from epx.train.trainer import EpxGRPOTrainer

    args = grpo_config(recipe)  # built (and checked) in `check_launch_inputs` already
    tokenizer = load_tokenizer(recipe.model, padding_side="left")
    model = load_model(recipe.model, tokenizer)
    dataset = build_train_dataset(recipe.data, tokenizer)
    if reward_funcs is None:
        reward_funcs, weights = build_reward_functions(recipe, args.max_completion_length)
        args.reward_weights = weights
    callbacks = [
        StageCallback.for_params(recipe.stage),
        MetricsFileCallback(Path(recipe.output_dir) / METRICS_FILE),
        SamplesFileCallback(Path(recipe.output_dir) / SAMPLES_FILE, SAMPLES_PER_STEP),
        RecipeSnapshotCallback(recipe_to_yaml(recipe)),
        RichProgressCallback(),
    ]
    eval_callback = _eval_callback(recipe, tokenizer)
    if eval_callback is not None:
        callbacks.append(eval_callback)
    trainer = EpxGRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(recipe.model),
        callbacks=callbacks,
        shaping=recipe.shaping,
        max_reward_failure_rate=recipe.reward.max_failure_rate,
        analysis=recipe.analysis,
        sampling=recipe.sampling,
    )
    for default in (ProgressCallback, PrinterCallback):
        trainer.remove_callback(default)
    if eval_callback is not None:
        eval_callback.log_fn = trainer.record_metrics
    return trainer


def _eval_callback(recipe: Recipe, tokenizer: Any) -> Any:
    """In-training evaluation from the recipe's `eval:` section (None without benches)."""
    if not recipe.eval.benches:
        return None
    from epx.eval.callback import EvalCallback

    return EvalCallback.from_recipe(recipe, tokenizer=tokenizer)


def _reset_wandb() -> None:
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None:
        _finish_wandb()
        wandb.teardown()


def _finish_wandb() -> None:
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
