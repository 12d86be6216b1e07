"""Whether and where a run continues: `plan_start(output_dir, recipe, resume, force)`.

- Without `--resume`, a folder that holds checkpoints is refused (never overwritten).
- With it, the newest usable checkpoint is chosen; newer ones that are cut or corrupt are passed
  over by name. One without optimizer state is refused unless forced.
- A run whose checkpoint (or `summary.json`) already reached `grpo.max_steps` is finished: there
  is nothing to train.
- The recipe must equal the checkpoint's in everything that changes training (all but where
  results go, logging, evaluation, rollout records, the step budget and saving): the differing
  keys are named, and
  `--force` accepts them, which the run dir records (`resumes.jsonl`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from epx.checkpoints import checkpoint_folders, latest_usable, optimizer_problem, trainer_state
from epx.errors import RunStateError
from epx.recipe import Recipe, flatten, recipe_to_yaml
from epx.run_dir import RunDir

# Keys a resumed segment may change: where results go, what is logged or evaluated, the budget.
RESUMABLE = ("output_dir", "logging.", "eval.", "analysis.", "launch.", "grpo.max_steps",
             "grpo.num_train_epochs", "grpo.save_steps", "grpo.save_total_limit",
             "grpo.logging_steps", "reward.max_failure_rate")  # fmt: skip


@dataclass
class StartPlan:
    """How a launch starts: fresh, from `checkpoint`, or not at all (`finished`)."""

    checkpoint: Path | None = None
    finished_step: int | None = None
    passed: list[tuple[str, str]] = field(default_factory=list)  # (folder, why it was passed over)
    differences: list[tuple[str, Any, Any]] = field(default_factory=list)  # (key, there, now)
    forced: bool = False

    @property
    def finished(self) -> bool:
        return self.finished_step is not None


def training_differences(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The keys (dotted) whose values differ and that change training, sorted."""
    old_flat, new_flat = flatten(old), flatten(new)
    differences = []
    for key in sorted(set(old_flat) | set(new_flat)):
        if key.startswith(RESUMABLE) or key in RESUMABLE:
            continue
        if old_flat.get(key) != new_flat.get(key):
            differences.append((key, old_flat.get(key), new_flat.get(key)))
    return differences


def _describe(differences: list[tuple[str, Any, Any]]) -> str:
    return "; ".join(f"{key}: {old!r} there, {new!r} now" for key, old, new in differences)


def plan_start(output_dir: Path, recipe: Recipe, *, resume: bool, force: bool = False) -> StartPlan:
    """Decide how the run starts (see the module docstring); RunStateError when it cannot."""
    folders = checkpoint_folders(output_dir)
    if not resume:
        if folders:
            raise RunStateError(
                f"{output_dir} already holds {folders[0][1].name}: pass --resume to continue "
                "it, or set output_dir to a new folder"
            )
        return StartPlan()
    if not folders:
        raise RunStateError(f"--resume: no checkpoint-N folder in {output_dir} to resume from")
    checkpoint, passed = latest_usable(output_dir)
    if checkpoint is None:
        problems = "; ".join(f"{name}: {why}" for name, why in passed)
        raise RunStateError(f"--resume: no usable checkpoint in {output_dir} ({problems})")
    plan = StartPlan(checkpoint=checkpoint, passed=passed, forced=force)
    step = trainer_state(checkpoint)["global_step"]  # type: ignore[index]
    max_steps = recipe.grpo.get("max_steps")
    if isinstance(max_steps, int) and max_steps >= 1 and _finished_at(output_dir, step) >= max_steps:
        plan.finished_step = _finished_at(output_dir, step)
        return plan
    missing = optimizer_problem(checkpoint)
    if missing and not force:
        raise RunStateError(
            f"--resume: {checkpoint.name} has {missing}: it would continue with a fresh "
            "optimizer; pass --resume --force to accept that"
        )
    saved = RunDir(checkpoint).recipe  # a checkpoint keeps its recipe under the same name
    if saved.is_file():
        old = yaml.safe_load(saved.read_text()) or {}
        new = yaml.safe_load(recipe_to_yaml(recipe))
        plan.differences = training_differences(old, new)
    if plan.differences and not force:
        raise RunStateError(
            f"--resume: the recipe differs from {checkpoint.name}'s in what changes training "
            f"({_describe(plan.differences)}); pass --resume --force to continue with the new "
            "values"
        )
    return plan


def _finished_at(output_dir: Path, checkpoint_step: int) -> int:
    """The step the run reached: its checkpoint's, or summary.json's when training ended later."""
    try:
        summary = json.loads(RunDir(output_dir).summary.read_text())
        return max(checkpoint_step, int(summary.get("global_step", 0)))
    except (OSError, ValueError, TypeError):
        return checkpoint_step


def record_resume(output_dir: Path, plan: StartPlan, recipe: Recipe) -> Path:
    """Keep this segment's recipe (`recipe-from-step-N.yaml`) and a line in `resumes.jsonl`."""
    step = trainer_state(plan.checkpoint)["global_step"]  # type: ignore[arg-type,index]
    recipe_path = RunDir(output_dir).segment_recipe(step)
    recipe_path.write_text(recipe_to_yaml(recipe))
    line = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "from_step": step,
        "checkpoint": plan.checkpoint.name,  # type: ignore[union-attr]
        "passed_over": [{"checkpoint": name, "problem": why} for name, why in plan.passed],
        "forced": plan.forced,
        "differences": [{"key": k, "there": old, "now": new} for k, old, new in plan.differences],
        "recipe": recipe_path.name,
    }
    with RunDir(output_dir).resumes.open("a") as handle:
        handle.write(json.dumps(line) + "\n")
    return recipe_path
