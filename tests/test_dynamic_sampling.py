"""Dynamic sampling: the pure parts by hand, then the real trainer: only groups whose rewards
differ reach the loss, two gloo ranks keep the same groups as one process, the round cap, and a
resumed run draws what the uninterrupted one drew."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tests_shared import answer_of, signal_reward, step_records, train_tiny

from epx.errors import RunError
from epx.recipe import load_recipe
from epx.train import build_trainer
from epx.train.dynamic import draw_prompts, fill_rows, groups_with_signal, round_seed
from epx.train.dynamic_rows import RowTable

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny-random.yaml"
WORKER = Path(__file__).with_name("dynamic_rank_worker.py")


def test_groups_with_signal_by_hand():
    values = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.5, 0.5 + 1e-9, 0.5, 0.5],
                          dtype=torch.float64)  # fmt: skip
    assert groups_with_signal(values, 4).tolist() == [False, True, False]  # 1e-9 is "equal"
    assert groups_with_signal(values, 4, tolerance=0.0).tolist() == [False, True, True]
    assert groups_with_signal(torch.tensor([float("nan")] * 2), 2).tolist() == [False]


def test_further_rounds_draw_fixed_prompts():
    assert round_seed(0, 5, 1) == round_seed(0, 5, 1) != round_seed(0, 5, 2) != round_seed(1, 5, 1)
    drawn = draw_prompts(100, 10, round_seed(0, 5, 1))
    assert len(set(drawn)) == 10 and drawn == draw_prompts(100, 10, round_seed(0, 5, 1))
    assert len(draw_prompts(3, 5, 0)) == 5  # a tiny dataset repeats


def test_merge_pads_prompts_left_and_completions_right():
    a = {"prompt_ids": torch.tensor([[7, 8]]), "completion_ids": torch.tensor([[1, 2, 3]]),
         "completion_mask": torch.tensor([[1, 1, 1]]), "advantages": torch.tensor([0.5]),
         "num_items_in_batch": torch.tensor(3)}  # fmt: skip
    b = {"prompt_ids": torch.tensor([[6, 7, 8]]), "completion_ids": torch.tensor([[4]]),
         "completion_mask": torch.tensor([[1]]), "advantages": torch.tensor([-0.5]),
         "num_items_in_batch": torch.tensor(1)}  # fmt: skip
    table = RowTable.of_batch({k: v for k, v in a.items() if k != "num_items_in_batch"})
    table.update({1: RowTable.of_batch({k: v for k, v in b.items() if k != "num_items_in_batch"}).rows[0]})
    merged = table.stack(2, pad_id=0)
    assert merged["prompt_ids"].tolist() == [[0, 7, 8], [6, 7, 8]]
    assert merged["completion_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert merged["completion_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert merged["advantages"].tolist() == [0.5, -0.5] and "num_items_in_batch" not in merged
    assert fill_rows(kept=8, needed=16, group_size=4).tolist() == [0, 1, 2, 3, 4, 5, 6, 7] * 2


def make_trainer(tmp_path: Path, *overrides: str, reward=signal_reward):
    recipe = load_recipe(TINY, [f"output_dir={tmp_path / 'run'}", "logging.mode=disabled",
                                "sampling.dynamic=true", *overrides])  # fmt: skip
    trainer = build_trainer(recipe, reward_funcs=[reward])
    trainer.model.train()
    return trainer


def prompt_answers(trainer) -> dict[int, int]:
    from epx.train.rollouts import prompt_id

    return {prompt_id(row["prompt"]): int(row["answer"]) for row in trainer.train_dataset}


def test_only_groups_whose_rewards_differ_reach_the_loss(tmp_path):
    trainer = make_trainer(tmp_path, "sampling.max_generation_batches=30")
    rows = [trainer.train_dataset[i] for i in range(8)]
    kinds = [answer_of(r["prompt"]) % 3 for r in rows]
    assert 2 in kinds and (0 in kinds or 1 in kinds)  # some groups have a signal, some not
    batch = [row for row in rows[:2] for _ in range(4)]
    torch.manual_seed(0)
    output = trainer._generate_and_score_completions(batch)
    answers = prompt_answers(trainer)
    kept = [answers[int(p)] % 3 for p in output["epx_prompt"]]
    assert len(kept) == 8 and set(kept) == {2}  # only the groups with a signal
    assert (output["advantages"] != 0).all()  # every row teaches something
    assert output["num_items_in_batch"] == output["completion_mask"].sum()
    # the rounds replayed by hand: round 0 is the batch's two prompts, round r draws two prompts
    # by round_seed(seed, step 0, r); a group has a signal when its sum % 3 == 2
    signal = [answer_of(row["prompt"]) % 3 == 2 for row in rows[:2]]
    kept, rounds = sum(signal), 1
    while kept < 2:
        drawn = draw_prompts(len(trainer.train_dataset), 2, round_seed(trainer.args.seed, 0, rounds))
        found = [answer_of(trainer.train_dataset[i]["prompt"]) % 3 == 2 for i in drawn]
        signal += found
        kept, rounds = kept + sum(found), rounds + 1
    metrics = trainer._metrics["train"]
    assert metrics["sampling/generation_rounds"][-1] == rounds and len(metrics["reward"]) == 1
    assert metrics["sampling/kept_fraction"][-1] == pytest.approx(sum(signal) / (2 * rounds))
    assert metrics["reward"][-1] == pytest.approx(0.5)  # the kept batch's: 0, 1, 0, 1 per group


def constant_reward(completions: list[str], **kwargs) -> list[float]:
    return [1.0] * len(completions)


def test_the_round_cap_is_an_error_or_trains_on_what_there_is(tmp_path):
    trainer = make_trainer(tmp_path, "sampling.max_generation_batches=3", reward=constant_reward)
    batch = [trainer.train_dataset[0]] * 4 + [trainer.train_dataset[1]] * 4
    with pytest.raises(RunError, match=r"0 of the 2 groups a step needs had rewards that differ "
                                       r"after 3 generation rounds \(sampling.max_generation_batches=3\)"):  # fmt: skip
        trainer._generate_and_score_completions(batch)
    # the real correctness reward: a random model is never right, so every group is all-wrong
    recipe = load_recipe(TINY, [f"output_dir={tmp_path / 'b'}", "logging.mode=disabled",
                                "sampling.dynamic=true", "sampling.max_generation_batches=2",
                                "sampling.on_exhausted=train", "reward.functions=[{name: correctness}]"])  # fmt: skip
    lenient = build_trainer(recipe)
    lenient.model.train()
    output = lenient._generate_and_score_completions(batch)
    assert output["completion_ids"].size(0) == 8 and (output["advantages"] == 0).all()
    metrics = lenient._metrics["train"]
    assert metrics["sampling/kept_fraction"][-1] == 0.0 and metrics["sampling/generation_rounds"][-1] == 2
    assert metrics["sampling/solve_none"][-1] == 4.0 and metrics["sampling/solve_all"][-1] == 0.0


@pytest.mark.multiprocess
def test_two_ranks_keep_the_same_groups_as_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    one = subprocess.run([sys.executable, str(WORKER), str(tmp_path)], capture_output=True,
                         text=True, env=env, timeout=600)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--standalone", str(WORKER), str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    single = json.loads((tmp_path / "rank0-of-1.json").read_text())
    ranks = [json.loads((tmp_path / f"rank{r}-of-2.json").read_text()) for r in (0, 1)]
    assert {r["world"] for r in ranks} == {2} and len(ranks[0]["prompts"]) == len(ranks[1]["prompts"]) == 2
    assert ranks[0]["prompts"] + ranks[1]["prompts"] == single["prompts"]  # the same kept group
    assert ranks[0]["rows"] + ranks[1]["rows"] == [0, 1, 2, 3] == single["rows"]
    assert ranks[0]["rounds"] == ranks[1]["rounds"] == single["rounds"]


def rollout_prompts(run: Path, step: int) -> list[int]:
    import pyarrow.parquet as pq

    return pq.read_table(run / "rollouts" / f"step-{step:06d}.parquet").column("prompt_id").to_pylist()


def test_a_resumed_run_draws_and_keeps_what_the_uninterrupted_one_did(tmp_path):
    common = ["logging.mode=disabled", "sampling.dynamic=true", "grpo.save_steps=2",
              "analysis.every_n_steps=1", "sampling.max_generation_batches=30",
              "grpo.lr_scheduler_type=constant"]  # fmt: skip  (a linear one depends on max_steps)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train_tiny(whole, 4, common)
    train_tiny(cut, 2, common)
    train_tiny(cut, 4, common, resume=True)
    # from step 3 on: TRL's batch from the resumed data order, further rounds drawn by (seed,
    # step, round), the same generations: the same groups kept, the same values logged
    for step in (1, 2, 3, 4):
        assert rollout_prompts(cut, step) == rollout_prompts(whole, step), step
    assert step_records(cut) == step_records(whole)
    assert all("sampling/kept_fraction" in m for m in step_records(whole))
