"""Run by tests/test_multiprocess.py under `torchrun --nproc_per_node 2` (two gloo CPU ranks).

Each rank takes its half of one prompt group (per_device_train_batch_size 2, num_generations 4,
so the group is spread over both ranks), lets TRL generate and score, computes the PPL weights the
trainer's way (gather log-PPL, weight the whole group, keep its slice), dumps what it saw, then
trains the tiny recipe for two steps.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from trl import GRPOTrainer
from trl.trainer.utils import shuffle_sequence_dict

from epx.recipe import load_recipe
from epx.shaping import sequence_log_ppl
from epx.train import build_trainer


def char_sum_reward(completions: list[str], **kwargs) -> list[float]:
    return [float(sum(map(ord, text)) % 5) for text in completions]


def main(out_dir: Path) -> None:
    recipe = load_recipe(
        Path(__file__).resolve().parents[1] / "recipes" / "tiny-random.yaml",
        [
            f"output_dir={out_dir / 'run'}",
            "logging.mode=disabled",
            "shaping.method=ppl",
            "shaping.ppl.alpha=0.5",
            "grpo.per_device_train_batch_size=2",
            "grpo.max_steps=2",
        ],
    )
    trainer = build_trainer(recipe, reward_funcs=[char_sum_reward])
    rank, world = trainer.accelerator.process_index, trainer.accelerator.num_processes
    trainer.model.train()
    group = [trainer.train_dataset[0]] * 4
    local = group[rank * 2 : rank * 2 + 2]
    torch.manual_seed(1234 + rank)
    output = GRPOTrainer._generate_and_score_completions(trainer, local)
    mask = output["completion_mask"]
    log_ppl = sequence_log_ppl(trainer._behaviour_logps(output), mask)
    weights = trainer._ppl_weights(log_ppl)
    # the same batch shaped at loss time from the loss's own forward, rows shuffled as TRL does
    deferred = {**output, "epx_row": torch.arange(rank * 2, rank * 2 + 2), "order": torch.arange(2)}
    torch.manual_seed(99 + rank)
    deferred = shuffle_sequence_dict(deferred)
    order = deferred.pop("order")
    trainer._position_on = False
    trainer._at_loss = True  # what _generate_and_score_completions decides for this setup
    trainer.current_gradient_accumulation_steps = 1
    trainer._compute_loss(trainer.model, deferred)
    valid = mask[order].bool()
    ratio = (
        deferred["advantages"][valid]
        / output["advantages"][order].unsqueeze(1).expand_as(valid)[valid]
    )
    per_row = [ratio[valid[:i].sum() : valid[: i + 1].sum()].mean().item() for i in range(2)]
    loss_time_weights = [per_row[list(order).index(i)] for i in range(2)]
    trainer.train()
    record = {
        "rank": rank,
        "world": world,
        "log_ppl": log_ppl.tolist(),
        "weights": weights.tolist(),
        "loss_time_weights": loss_time_weights,
        "advantages": output["advantages"].tolist(),
        "global_step": trainer.state.global_step,
    }
    (out_dir / f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
