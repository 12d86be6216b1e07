"""Dynamic sampling on the CPU default, against plain GRPO, in one run.

Both train `recipes/smollm2-135m-cpu.yaml` with the same seeds (grpo.seed 0, data.seed 0): plain
GRPO for its 20 steps, then with dynamic sampling (groups whose rewards are all equal dropped,
more prompts generated until the batch is full) for the same wall time. Prints the share of
generated groups kept, the generation cost per trained group with a signal, and the held-out
accuracy each reached (the recipe's 138 held-out sums, sampled as the demo samples them).

    .venv/bin/python benchmarks/dynamic_sampling.py [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from meta import print_header  # benchmarks/meta.py: date, commit, machine, command
from transformers import TrainerCallback

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "smollm2-135m-cpu.yaml"


class WallTime(TrainerCallback):
    """Stop training once `seconds` of it have passed (checked at each step's end)."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.start = seconds, time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if time.perf_counter() - self.start >= self.seconds:
            control.should_training_stop = True


def train(run: Path, overrides: list[str], seconds: float | None) -> dict:
    from epx.recipe import load_recipe
    from epx.train import build_trainer, configure_wandb

    recipe = load_recipe(RECIPE, [f"output_dir={run}", "logging.mode=disabled", "eval.after_training=false",
                                  "analysis.every_n_steps=0", *overrides])  # fmt: skip
    configure_wandb(recipe, run)
    trainer = build_trainer(recipe)
    evaluator = next(c for c in trainer.callback_handler.callbacks if type(c).__name__ == "EvalCallback")
    start = time.perf_counter()
    if seconds is not None:
        trainer.add_callback(WallTime(seconds))
    trainer.train()
    wall = time.perf_counter() - start  # both evaluations outside: the step-0 one ran in train()
    held_out = evaluator.evaluate(trainer.model, trainer.processing_class, trainer.state.global_step)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "reward" in r]
    return {"wall": wall, "steps": trainer.state.global_step, "records": steps,
            "before": evaluator.history[0][1]["eval/arithmetic/acc"],
            "after": held_out["eval/arithmetic/acc"]}  # fmt: skip


def main() -> int:
    print_header()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="epx-dynamic-"))
    plain = train(folder / "plain", options.overrides, None)
    dynamic = train(folder / "dynamic", [*options.overrides, "sampling.dynamic=true",
                                         "sampling.max_generation_batches=10",
                                         "sampling.on_exhausted=train", "grpo.max_steps=1000"],
                    seconds=plain["wall"])  # fmt: skip
    groups = 6  # prompts a step (24 completions / 4)
    kept_plain = [1.0 - r["frac_reward_zero_std"] for r in plain["records"]]
    kept_dynamic = [r["sampling/kept_fraction"] for r in dynamic["records"]]
    rounds = [r["sampling/generation_rounds"] for r in dynamic["records"]]
    print("\nsmollm2-135m-cpu, 6 prompts x 4 a step, seeds grpo.seed 0 / data.seed 0, 2 cores")
    print(f"{'':34}{'plain GRPO':>14}{'dynamic':>14}")
    print(f"{'training wall time (s)':34}{plain['wall']:14.0f}{dynamic['wall']:14.0f}")
    print(f"{'steps trained':34}{plain['steps']:14d}{dynamic['steps']:14d}")
    share_plain = sum(kept_plain) / len(kept_plain)
    share_dynamic = sum(kept_dynamic) / len(kept_dynamic)
    print(f"{'generated groups with a signal':34}{share_plain:14.1%}{share_dynamic:14.1%}")
    trained_plain = sum(k * groups for k in kept_plain)  # groups with a signal that were trained
    generated_plain = groups * len(kept_plain)
    generated_dynamic = sum(r * groups for r in rounds)
    trained_dynamic = groups * len(rounds)
    print(f"{'groups generated per trained group with a signal':50}"
          f"{generated_plain / max(trained_plain, 1e-9):>6.2f}{generated_dynamic / trained_dynamic:>14.2f}")  # fmt: skip
    print(f"{'mean generation rounds a step':34}{1.0:14.2f}{sum(rounds) / len(rounds):14.2f}")
    print(f"{'held-out accuracy before':34}{plain['before']:14.3f}{dynamic['before']:14.3f}")
    print(f"{'held-out accuracy at the same wall time':34}{plain['after']:14.3f}{dynamic['after']:14.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
