"""Run by tests/test_dynamic_sampling.py, under `torchrun --nproc_per_node 2` or alone.

One generation batch of the tiny recipe with dynamic sampling: one 4-sample group a step, split
2 + 2 over the ranks when there are two, and a reward fixed by the
prompt and the completion's global row, never by the sampled text: the kept groups must be the
same whatever the number of processes. Dumps the prompt ids of the rows this process kept.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from tests_shared import signal_reward  # tests/ is on sys.path (the script's folder)

from epx.recipe import load_recipe
from epx.train import build_trainer


def main(out_dir: Path) -> None:
    recipe = load_recipe(
        Path(__file__).resolve().parents[1] / "recipes" / "tiny-random.yaml",
        [
            f"output_dir={out_dir / 'run'}",
            "logging.mode=disabled",
            "sampling.dynamic=true",
            "shaping.method=none",
            "sampling.max_generation_batches=20",
        ],
    )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_device = 4 // world  # a generation batch of 4 rows: one group
    recipe.grpo["per_device_train_batch_size"] = per_device
    trainer = build_trainer(recipe, reward_funcs=[signal_reward])
    rank = trainer.accelerator.process_index
    trainer.model.train()
    batch = [trainer.train_dataset[0]] * 4  # TRL's layout: the group's rows, process-major
    batch = batch[rank * per_device : (rank + 1) * per_device]
    torch.manual_seed(7)
    output = trainer._generate_and_score_completions(batch)
    record = {
        "rank": rank,
        "world": trainer.accelerator.num_processes,
        "prompts": output["epx_prompt"].tolist(),
        "rows": output["epx_row"].tolist(),
        "rounds": trainer._metrics["train"]["sampling/generation_rounds"][-1],
    }
    (out_dir / f"rank{rank}-of-{world}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
