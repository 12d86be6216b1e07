"""Helpers shared by several test modules: tiny training runs and their records, reward functions
of the dynamic-sampling tests (and their torchrun worker), the property tests' example counts."""

from __future__ import annotations

import json
import os
from pathlib import Path

TINY = Path(__file__).resolve().parents[1] / "recipes" / "tiny-random.yaml"

EXPLORE = os.environ.get("EPX_HYPOTHESIS") == "explore"


def examples(n: int) -> int:
    """A property test's example count: ``n``, ten times that under `make fuzz`."""
    return 10 * n if EXPLORE else n


def train_tiny(run: Path, steps: int, overrides: list[str], resume: bool = False) -> None:
    """Train the tiny recipe into ``run`` for ``steps`` steps (continuing it with ``resume``)."""
    from epx.recipe import load_recipe
    from epx.train import run_training

    recipe = load_recipe(TINY, [*overrides, f"output_dir={run}", f"grpo.max_steps={steps}"])
    run_training(recipe, resume=resume)


WALL_TIME = ("step_time", "timing/")  # metrics that measure wall time (never reproducible)


def without_wall_time(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith(WALL_TIME)}


def step_records(run: Path) -> list[dict]:
    """A run's per-step metrics records without their wall time: what a rerun must reproduce."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [without_wall_time(r) for r in records if "reward" in r]


def answer_of(prompt: str) -> int:
    """The sum a built-in arithmetic prompt asks for ("What is 3 + 4? ..." -> 7)."""
    text = prompt.split("What is ", 1)[1].split("?", 1)[0]
    return sum(int(n) for n in text.split(" + "))


def signal_reward(prompts: list[str], completions: list[str], **kwargs) -> list[float]:
    """Fixed by the prompt and the completion's global row, never by the sampled text:
    sum % 3 == 0 -> every sample 1 (no signal), == 1 -> every sample 0 (no signal),
    == 2 -> 0, 1, 0, 1 within the group (a signal)."""
    rank = int(os.environ.get("RANK", "0"))
    start = rank * len(prompts)
    rewards = []
    for i, prompt in enumerate(prompts):
        kind = answer_of(prompt) % 3
        rewards.append(1.0 if kind == 0 else 0.0 if kind == 1 else float((start + i) % 2))
    return rewards
