"""Step time of shaped vs vanilla GRPO, measured side by side in one run.

The tiny model at a fixed thread count; the same seed and batch for every method; methods none, ppl,
position and both interleaved (in a shuffled order) over repetitions. A step is what the trainer
does per batch: generate, score, shape, loss, backward (no optimizer step, so every method sees the
same weights and the same completions). Three settings: TRL keeps no old log-probs and the loss
sees the whole generation batch (the PPL weights come from the loss's own forward); no old
log-probs over two micro-batches (one extra no-grad forward); TRL's old log-probs (reused).

    python benchmarks/shaping_overhead.py [--reps 15] [--threads 1] [--tokens 64]
    # on a GPU: random weights of a real shape, bf16, HF generation
    python benchmarks/shaping_overhead.py --model random:qwen2.5-0.5b --prompts 8 --tokens 256
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch
from meta import print_header  # benchmarks/meta.py: date, commit, machine, command

from epx.recipe import load_recipe
from epx.train import build_trainer

METHODS = ("none", "ppl", "position", "both")
TINY = Path(__file__).resolve().parents[1] / "recipes" / "tiny-random.yaml"


def char_sum_reward(completions: list[str], **kwargs) -> list[float]:
    """Cheap and varied within groups, so the shaping has non-zero advantages to work on."""
    return [float(sum(map(ord, text)) % 5) for text in completions]


def make_trainers(setting: list[str], args: argparse.Namespace, out: Path) -> dict[str, object]:
    trainers = {}
    for method in METHODS:
        recipe = load_recipe(
            TINY,
            [
                f"output_dir={out / method}",
                "logging.mode=disabled",
                f"shaping.method={method}",
                "shaping.position.schedule=always",
                f"model.name_or_path={args.model}",
                f"model.dtype={'auto' if torch.cuda.is_available() else 'float32'}",
                f"grpo.max_completion_length={args.tokens}",
                f"grpo.per_device_train_batch_size={args.prompts * 4}",
                *setting,
            ],
        )
        trainer = build_trainer(recipe, reward_funcs=[char_sum_reward])
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = 1
        trainers[method] = trainer
    return trainers


def one_step(trainer, batch: list[dict], seed: int) -> tuple[float, float]:
    """Seconds of one step, and its peak GPU memory in GiB (0 on a CPU)."""
    torch.manual_seed(seed)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    output = trainer._generate_and_score_completions(copy.deepcopy(batch))
    trainer.model.zero_grad(set_to_none=True)
    trainer._compute_loss(trainer.model, output).backward()
    if cuda:
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
    return time.perf_counter() - start, peak


def measure(setting_name: str, setting: list[str], args: argparse.Namespace) -> None:
    reps = args.reps
    with tempfile.TemporaryDirectory() as tmp:
        trainers = make_trainers(setting, args, Path(tmp))
        reference = trainers["none"]
        rows = [reference.train_dataset[i] for i in range(args.prompts)]
        batch = [row for row in rows for _ in range(reference.num_generations)]
        for trainer in trainers.values():  # warm-up
            one_step(trainer, batch, seed=0)
        times: dict[str, list[float]] = {method: [] for method in METHODS}
        peaks: dict[str, float] = dict.fromkeys(METHODS, 0.0)
        order = list(METHODS)
        rng = random.Random(0)
        for rep in range(reps):
            rng.shuffle(order)
            for method in order:
                seconds, peak = one_step(trainers[method], batch, seed=rep)
                times[method].append(seconds)
                peaks[method] = max(peaks[method], peak)
        old_logps = reference.args.gradient_accumulation_steps % (
            reference.args.steps_per_generation * reference.num_iterations
        )
        base = statistics.median(times["none"])
        print(f"\n{setting_name} (TRL old log-probs: {'yes' if old_logps else 'no'})")
        print(f"{'method':<10}{'median step s':>15}{'ratio vs none':>15}{'peak GiB':>10}")
        for method in METHODS:
            median = statistics.median(times[method])
            print(f"{method:<10}{median:>15.4f}{median / base:>15.3f}{peaks[method]:>10.2f}")


def main() -> None:
    print_header()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=64, help="max completion tokens")
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step (x4 generations)")
    parser.add_argument("--model", default="tiny-random", help="tiny-random or random:ARCH")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(
        f"shaping overhead: {args.model} on {device}, {args.prompts} prompts x 4 generations, "
        f"{args.tokens} tokens, {args.threads} thread(s), {args.reps} interleaved repetitions, "
        f"torch {torch.__version__}"
    )
    measure("no old log-probs, 1 micro-batch per generation: PPL from the loss's forward", [], args)
    half = args.prompts * 2
    measure(
        "no old log-probs, 2 micro-batches per generation: PPL needs one no-grad forward",
        ["grpo.steps_per_generation=2", "grpo.gradient_accumulation_steps=2",
         f"grpo.per_device_train_batch_size={half}"],
        args,
    )  # fmt: skip
    measure(
        "TRL old log-probs (steps_per_generation 2, no accumulation): PPL reuses them",
        ["grpo.steps_per_generation=2", f"grpo.per_device_train_batch_size={half}"],
        args,
    )


if __name__ == "__main__":
    main()
