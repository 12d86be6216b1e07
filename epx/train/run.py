"""`run_training(recipe)`: wires recipe, model, data, rewards, trainer, tracking and the run dir."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epx.errors import RecipeError, RunError
from epx.recipe import Recipe, recipe_to_yaml
from epx.run_dir import RunDir

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

    from epx.launch_checks import check_launch_inputs, position_warning
    from epx.paths import make_output_dir
    from epx.train.resume import plan_start, record_resume

    main_process = int(os.environ.get("RANK", "0")) == 0  # torchrun / accelerate set RANK
    # one line stays one line in logs and pipes; only the main process speaks
    console = Console(stderr=True, soft_wrap=True, quiet=not main_process)
    output_dir = Path(recipe.output_dir)
    run_dir = RunDir(output_dir)
    plan = plan_start(output_dir, recipe, resume=resume, force=force)
    for name, why in plan.passed:
        console.print(f"[yellow]{name} is unusable ({why}): passed over[/]", highlight=False)
    metrics_path = run_dir.metrics
    if plan.finished:
        console.print(
            f"{output_dir} is finished (step {plan.finished_step} of grpo.max_steps "
            f"{recipe.grpo.get('max_steps')}): nothing to train; raise grpo.max_steps to go on",
            highlight=False,
        )
        curves = run_dir.curves
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
    existed = output_dir.exists()
    make_output_dir(output_dir)
    with console.status("Preparing model, data and trainer"):
        trainer = build_trainer(recipe)
    try:
        check_launch_mode(trainer, recipe)  # before anything is written into it
    except RecipeError:
        if not existed:  # leave nothing behind
            with contextlib.suppress(OSError):  # another process may have removed it already
                output_dir.rmdir()
        raise
    configure_wandb(recipe, output_dir)
    if main_process:
        if plan.checkpoint is None:
            run_dir.recipe.write_text(recipe_to_yaml(recipe))
        else:
            record_resume(output_dir, plan, recipe)
    for key, old, new in plan.differences:
        console.print(f"[yellow]--force: {key} was {old!r}, now {new!r}[/]", highlight=False)
    warning = position_warning(recipe, trainer.args, world)
    if warning:
        console.print(f"[yellow]warning: {warning}[/]", highlight=False)
    checkpoint = str(plan.checkpoint) if plan.checkpoint else None
    console.print(
        f"[bold]epx train[/]: {recipe.model.name_or_path}, shaping={recipe.shaping.method}, "
        f"{trainer.args.max_steps} steps, {describe_launch(trainer)} -> {output_dir}"
        + (f" (resuming {plan.checkpoint.name})" if plan.checkpoint else ""),
        highlight=False,
    )
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
    except RuntimeError as error:
        if world > 1 and lost_a_peer(error):
            raise RunError(
                f"another process of this launch stopped ({_first_line(error)}); the last "
                f"complete checkpoint in {output_dir} is kept: relaunch with --resume"
            ) from None
        raise
    final = run_dir.final
    trainer.save_final(str(final))
    _finish_wandb()
    curves = None
    if main_process:
        curves = _report(recipe, output_dir, final, trainer.state.global_step, console)
    if world > 1:  # end together: a process group torn down at exit with peers still in it aborts
        trainer.accelerator.wait_for_everyone()
        trainer.accelerator.end_training()
    return TrainResult(output_dir, trainer.state.global_step, metrics_path, curves)


PEER_LOST = ("closed by peer", "reset by peer", "Broken pipe", "Connection refused")


def lost_a_peer(error: BaseException) -> bool:
    """Whether a collective failed because another process of the launch is gone (gloo says
    so in its message; NCCL's watchdog ends such a process instead)."""
    import torch.distributed as dist

    return isinstance(error, dist.DistNetworkError) or any(s in str(error) for s in PEER_LOST)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.split("] ", 1)[-1].split(". ", 1)[0][:160]  # gloo: [source location] what. why


def describe_launch(trainer: Any) -> str:
    """'1 process', or 'N processes (DDP|FSDP2|DeepSpeed ZeRO-3, gloo|nccl)'."""
    accelerator = trainer.accelerator
    if accelerator.num_processes == 1:
        return "1 process"
    if trainer.is_fsdp_enabled:
        mode = f"FSDP{accelerator.state.fsdp_plugin.fsdp_version}"
    elif trainer.is_deepspeed_enabled:
        stage = accelerator.state.deepspeed_plugin.zero_stage
        mode = f"DeepSpeed ZeRO-{stage}"
    else:
        mode = "DDP"
    backend = accelerator.state.backend or "?"
    return f"{accelerator.num_processes} processes ({mode}, {backend})"


def check_launch_mode(trainer: Any, recipe: Recipe, environ: Any = None) -> None:
    """A launch that asks for sharding (FSDP or DeepSpeed: an accelerate config, `grpo.fsdp`,
    `grpo.deepspeed`) and did not get it is refused in one line: accelerate falls back to
    plain DDP without a word where it cannot shard (on a CPU, or with `use_cpu`)."""
    environ = os.environ if environ is None else environ
    args = trainer.args
    asked = {
        "FSDP": environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" or bool(args.fsdp),
        "DeepSpeed": environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
        or bool(args.deepspeed),
    }
    got = {"FSDP": trainer.is_fsdp_enabled, "DeepSpeed": trainer.is_deepspeed_enabled}
    for mode, wanted in asked.items():
        if wanted and not got[mode]:
            raise RecipeError(
                f"{recipe.source}: {mode} was asked for (accelerate config or grpo.fsdp/"
                f"deepspeed), but accelerate set up {describe_launch(trainer)} without it (it "
                "shards only on GPUs, without use_cpu); on a CPU launch `torchrun "
                "--nproc_per_node N -m epx.cli train ...` for DDP over gloo"
            )


def _report(recipe: Recipe, output_dir: Path, final: Path, steps: int, console: Any) -> Path | None:
    """The end of a run: summary table, curves, the held-out check before/after, model card."""
    from epx.train.report import (
        before_after,
        plot_curves,
        render_before_after,
        summary_table,
        write_model_card,
    )

    run_dir = RunDir(output_dir)
    metrics_path = run_dir.metrics
    curves = None
    if metrics_path.exists():
        curves = plot_curves(metrics_path, run_dir.curves)
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
    from epx.grpo_args import grpo_config
    from epx.models import load_model, load_tokenizer, lora_config
    from epx.rewards import recipe_rewards
    from epx.train.callbacks import (
        MetricsFileCallback,
        RecipeSnapshotCallback,
        RichProgressCallback,
        SamplesFileCallback,
        StageCallback,
    )
    from epx.train.trainer import EpxGRPOTrainer

    args = grpo_config(recipe)  # built (and checked) in `check_launch_inputs` already
    tokenizer = load_tokenizer(recipe.model, padding_side="left")
    model = load_model(recipe.model, tokenizer)
    dataset = build_train_dataset(recipe.data, tokenizer)
    if reward_funcs is None:
        reward_funcs, weights = recipe_rewards(recipe, args.max_completion_length)
        args.reward_weights = weights
    callbacks = [
        StageCallback.for_params(recipe.stage),
        MetricsFileCallback(RunDir(recipe.output_dir)),
        SamplesFileCallback(RunDir(recipe.output_dir).samples, SAMPLES_PER_STEP),
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
        eval_callback.model_for_generation = lambda _model: trainer.model_for_generation()
        eval_callback.clock = trainer.clock
    return trainer


def _eval_callback(recipe: Recipe, tokenizer: Any) -> Any:
    """In-training evaluation from the recipe's `eval:` section (None without benches)."""
    from epx.train.eval_callback import EvalCallback

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
