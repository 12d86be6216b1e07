"""Trains the tiny recipe through `trainer.train()` once per named setup, alone or under
`torchrun --nproc_per_node 2` (gloo); run by tests/test_parity.py, which compares the two.

The global batch is the same whatever the number of processes: 3 prompt groups of 4 completions
a generation batch (per device 12 alone, 6 on each of 2 ranks: the middle group spans both). So
that the two launches train on the same completions, generation is replaced by a rollout whose
tokens are fixed by (prompt, index in its group, step) and never by which process asks: TRL's
`rollout_func`, the one thing swapped; scoring, advantages, shaping, the loss, the optimizer,
the stage detector, metrics and records are the real ones. Each setup writes its run dir under
OUT/<setup>/ (metrics.jsonl and rollouts/ from the main process) plus OUT/<setup>/calls-rank<r>.json
(how often this rank generated for evaluation).

    python tests/parity_worker.py OUT SETUP [SETUP ...]
    torchrun --nproc_per_node 2 tests/parity_worker.py OUT SETUP [SETUP ...]
    accelerate launch --config_file FSDP.yaml tests/fsdp_cpu.py tests/parity_worker.py OUT ...
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

TINY = Path(__file__).resolve().parents[1] / "recipes" / "tiny-random.yaml"
GROUP, GROUPS = 4, 3  # completions per prompt, prompt groups per generation batch
MAX_TOKENS = 12
COMMON = [
    "logging.mode=disabled",
    f"grpo.num_generations={GROUP}",
    f"grpo.max_completion_length={MAX_TOKENS}",
    "grpo.max_steps=4",
    "grpo.save_steps=100",
    "grpo.learning_rate=5e-3",
    "grpo.lr_scheduler_type=constant",
    "analysis.every_n_steps=1",
    "shaping.ppl.alpha=0.3",
    "shaping.position.schedule=always",
    "stage.window=2",
    "stage.min_steps=0",
    "stage.patience=1",
]
SETUPS: dict[str, list[str]] = {
    "none": ["shaping.method=none"],
    "ppl": ["shaping.method=ppl"],
    "position": ["shaping.method=position"],
    "both": ["shaping.method=both"],
    "position-plateau": ["shaping.method=position", "shaping.position.schedule=plateau"],
    "update-negative": ["shaping.method=none", "shaping.update_only=negative"],
    "max-token-prob": ["shaping.method=none", "shaping.max_token_prob=0.02"],
    "entropy-quantile": ["shaping.method=none", "shaping.entropy_quantile=0.5"],
    "ppl-quantile": ["shaping.method=both", "shaping.ppl_quantile=[0.0, 0.5]"],
    "position-range": ["shaping.method=ppl", "shaping.position_range=[0.5, 1.0]"],
    "dynamic": ["shaping.method=both", "sampling.dynamic=true", "sampling.on_exhausted=train",
                "sampling.max_generation_batches=4"],
    # one generation batch feeds two optimizer steps (TRL keeps old log-probs)
    "generation-every-2": ["shaping.method=both", "grpo.steps_per_generation=2"],
    # in-training evaluation of 3 problems: 3 chunks (more than the ranks) or 1 (fewer)
    "eval-3-chunks": ["shaping.method=ppl", "eval.benches=[arithmetic]", "eval.every_n_steps=2",
                      "eval.limit=3", "eval.batch_size=1", "eval.max_tokens=6"],
    "eval-1-chunk": ["shaping.method=ppl", "eval.benches=[arithmetic]", "eval.every_n_steps=2",
                     "eval.limit=3", "eval.batch_size=5", "eval.max_tokens=6"],
}  # fmt: skip


def rollout(prompts: list, trainer) -> dict:
    """Completions fixed by (prompt, index in the group, step): a process-independent draw."""
    rank = trainer.accelerator.process_index
    local = len(prompts)
    tokenizer = trainer.processing_class
    eos = tokenizer.eos_token_id
    first_char = 4  # ids 0-3 are the tiny tokenizer's special tokens
    prompt_ids, completion_ids = [], []
    for i, prompt in enumerate(prompts):
        row = rank * local + i
        text = prompt if isinstance(prompt, str) else json.dumps(prompt)
        prompt_ids.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        draw = random.Random(f"{text}/{row % GROUP}/{trainer.state.global_step}")
        length = draw.randint(1, MAX_TOKENS)
        tokens = [draw.randrange(first_char, len(tokenizer)) for _ in range(length)]
        if length < MAX_TOKENS or draw.random() < 0.5:  # some completions cut at the limit
            tokens = [*tokens[: MAX_TOKENS - 1], eos]
        completion_ids.append(tokens)
    return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}


def char_sum_reward(completions: list[str], **kwargs) -> list[float]:
    """Varies within a group (the completions differ): every group carries a signal or not by
    its text alone, the same on any number of processes."""
    return [float(sum(map(ord, text)) % 3) for text in completions]


def train(out: Path, name: str) -> None:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from epx.generation import HFGenerator
    from epx.recipe import load_recipe
    from epx.train import build_trainer

    world = int(os.environ.get("WORLD_SIZE", "1"))
    overrides = SETUPS[name]
    spg = next((int(o.split("=")[1]) for o in overrides if "steps_per_generation" in o), 1)
    per_device = GROUP * GROUPS // world // spg
    recipe = load_recipe(
        TINY,
        [*COMMON, *overrides, f"grpo.per_device_train_batch_size={per_device}",
         f"output_dir={out / name}"],
    )  # fmt: skip
    calls = {"generate": 0}
    original = HFGenerator.generate

    def counted(self, prompts, seed):
        calls["generate"] += 1
        return original(self, prompts, seed)

    HFGenerator.generate = counted
    try:
        trainer = build_trainer(recipe, reward_funcs=[char_sum_reward])
        trainer.rollout_func = rollout
        trainer.train()
    finally:
        HFGenerator.generate = original
    rank = trainer.accelerator.process_index
    sharded = any(type(p).__name__ == "DTensor" for p in trainer.model.parameters())  # FSDP2
    record = {"rank": rank, "world": trainer.accelerator.num_processes, **calls,
              "global_step": trainer.state.global_step, "sharded": sharded}  # fmt: skip
    (out / name / f"calls-rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    target = Path(sys.argv[1])
    for setup in sys.argv[2:]:
        train(target, setup)
