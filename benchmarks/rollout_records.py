"""What saving rollout records costs, and how fast `epx analyze` reads them; both in one run.

1. Step time on the tiny recipe with records off, on (samples only) and on with token_stats,
   saved at every step (the worst case; the default saves every 10th), interleaved over
   repetitions: generate, score, loss forward (where the records are read off), backward, and
   the Parquet write a logged step does. Target: token_stats on <= 1.03 x off.
2. `epx analyze` on 100 saved steps of 64 samples x 256 tokens (synthetic records of the real
   schema, a real metrics.jsonl). Target: under 10 s.

    .venv/bin/python benchmarks/rollout_records.py [--reps 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from meta import print_header  # benchmarks/meta.py: date, commit, machine, command

from epx.recipe import load_recipe
from epx.run_dir import RunDir
from epx.train import build_trainer

TINY = Path(__file__).resolve().parents[1] / "recipes" / "tiny-random.yaml"
SETTINGS = {
    "off": ["analysis.every_n_steps=0"],
    "samples": ["analysis.every_n_steps=1", "analysis.token_stats=false"],
    "token_stats": ["analysis.every_n_steps=1", "analysis.token_stats=true"],
}


def char_sum_reward(completions: list[str], **kwargs) -> list[float]:
    return [float(sum(map(ord, text)) % 5) for text in completions]


def one_step(trainer, batch: list[dict], seed: int) -> float:
    torch.manual_seed(seed)
    start = time.perf_counter()
    trainer.state.global_step = 0  # the step being trained is 1: records are due
    output = trainer._generate_and_score_completions(copy.deepcopy(batch))
    trainer.model.zero_grad(set_to_none=True)
    trainer._compute_loss(trainer.model, output).backward()
    trainer.state.global_step = 1
    trainer.observer.recorder.write(1, trainer.accelerator, RunDir(trainer.args.output_dir))
    return time.perf_counter() - start


def step_times(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for name, overrides in SETTINGS.items():
            recipe = load_recipe(TINY, [f"output_dir={Path(tmp) / name}", "logging.mode=disabled",
                                        "grpo.max_completion_length=64",
                                        "grpo.per_device_train_batch_size=16", *overrides])  # fmt: skip
            trainer = build_trainer(recipe, reward_funcs=[char_sum_reward])
            trainer.model.train()
            trainer.current_gradient_accumulation_steps = 1
            trainers[name] = trainer
        rows = [trainers["off"].train_dataset[i] for i in range(4)]
        batch = [row for row in rows for _ in range(4)]
        for trainer in trainers.values():
            one_step(trainer, batch, 0)
        times: dict[str, list[float]] = {name: [] for name in SETTINGS}
        order, rng = list(SETTINGS), random.Random(0)
        for rep in range(args.reps):
            rng.shuffle(order)
            for name in order:
                times[name].append(one_step(trainers[name], batch, rep))
        written = sorted((Path(tmp) / "token_stats" / "rollouts").glob("*.parquet"))
        size = written[0].stat().st_size if written else 0
    base = statistics.median(times["off"])
    print(f"\nrecords at every step: tiny-random, 16 completions x 64 tokens, {args.threads} thread(s), "
          f"{args.reps} interleaved repetitions")  # fmt: skip
    print(f"{'setting':<14}{'median step s':>15}{'ratio vs off':>14}")
    for name in SETTINGS:
        median = statistics.median(times[name])
        print(f"{name:<14}{median:>15.4f}{median / base:>14.3f}")
    print(f"one step's file with token_stats: {size} bytes (16 completions)")
    ratio = statistics.median(times["token_stats"]) / base
    print(f"token_stats on / off: {ratio:.3f}  (target <= 1.03)")


def synthetic_run(folder: Path, steps: int, samples: int, tokens: int) -> None:
    """A run dir with a real metrics.jsonl and `steps` rollout files of the real schema."""
    from epx.train.rollouts import write_rollouts

    rng = np.random.default_rng(0)
    records = [{"step": s, "reward": min(1.0, s / 50) + rng.normal(0, 0.02), "accuracy": min(1.0, s / 50),
                "entropy": max(0.2, 2 - s / 30), "entropy/positive": 1.0, "entropy/negative": 1.5}
               for s in range(1, steps * 2 + 1)]  # fmt: skip
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for step in range(2, steps * 2 + 1, 2):
        rows = []
        for i in range(samples):
            logprob = rng.normal(-1, 0.5, tokens).astype(np.float32)
            rows.append({"step": step, "row": i, "prompt_id": i // 8, "sample": i % 8,
                         "reward": float(i % 2), "correct": float(i % 2), "advantage": 1.0 - 2 * (i % 2),
                         "length": tokens, "truncated": False, "log_ppl": float(-logprob.mean()),
                         "entropy": 1.0, "token_ids": np.arange(tokens, dtype=np.int32),
                         "token_entropy": rng.gamma(1.0, 1.0, tokens).astype(np.float32),
                         "token_logprob": logprob,
                         "token_position": (np.arange(tokens) / tokens).astype(np.float32),
                         "token_advantage": np.full(tokens, 1.0 - 2 * (i % 2), dtype=np.float32)})  # fmt: skip
        write_rollouts(RunDir(folder), step, rows, samples)


def analyze_time() -> None:
    from epx.analyze.report import analyze_runs

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        synthetic_run(run, 100, 64, 256)
        start = time.perf_counter()
        analyze_runs([run], Path(tmp) / "report", write_html=True)
        seconds = time.perf_counter() - start
    print("\nepx analyze on 100 saved steps of 64 samples x 256 tokens (1.6M tokens):")
    print(f"{seconds:.2f} s  (target < 10 s)")


def main() -> None:
    print_header()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    step_times(args)
    analyze_time()


if __name__ == "__main__":
    main()
