"""Per-completion facts of a generation batch, and the reward functions' counts of a batch.

Pure over what the trainer hands in (TRL's output and its reward log, the reward functions'
counters); the only collective is the sum of the counts over processes, done by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from epx.errors import RunError
from epx.train.batch_keys import INFO_PREFIX, ROW_KEY
from epx.train.rollouts import prompt_id

COUNT_FIELDS = ("correct", "total", "failures", "timeouts", "scored")


def weighted_rewards(columns: Sequence[Sequence[float]], weights: Sequence[float]) -> list[float]:
    """The total reward of each completion as TRL's `reward` metric counts it: the weighted sum
    over the reward functions that scored it (NaN = not scored), NaN when none did."""
    totals = []
    for values in zip(*columns, strict=True):
        scored = [(w, v) for w, v in zip(weights, values, strict=True) if not math.isnan(v)]
        totals.append(sum(w * v for w, v in scored) if scored else math.nan)
    return totals


def row_info(
    output: dict[str, Any],
    prompts: Sequence[Any],
    reward_log: dict[str, Sequence[float]],
    reward_weights: Sequence[float],
    stop_ids: Sequence[int],
    process_index: int,
    num_processes: int,
) -> dict[str, Tensor]:
    """The epx_* tensors (B,) of this process's completions: their index in the generation batch
    (process-major, as TRL gathers rewards), prompt id, total reward, correctness (NaN without a
    `correctness` reward), TRL's advantage and whether they were cut off.

    `reward_log`: TRL's per-function reward log, whose last entries are this generation batch
    (every process's rows, process-major)."""
    advantages = output["advantages"]
    device, local = advantages.device, advantages.size(0)
    start, total = process_index * local, local * num_processes

    def this_process(values: Sequence[float]) -> list[float]:
        return list(values)[-total:][start : start + local]

    columns = {name: this_process(values) for name, values in reward_log.items()}
    rewards = weighted_rewards(list(columns.values()), reward_weights)
    correct = columns.get("correctness", [math.nan] * local)
    ids = output["completion_ids"]
    stops = torch.tensor(list(stop_ids), device=ids.device)
    info = {
        ROW_KEY: torch.arange(start, start + local, device=device),
        "prompt": torch.tensor([prompt_id(p) for p in prompts], device=device),
        "reward": torch.tensor(rewards, device=device, dtype=torch.float32),
        "correct": torch.tensor(correct, device=device, dtype=torch.float32),
        "advantage": advantages.detach().clone() if advantages.dim() == 1 else advantages[:, 0],
        "truncated": ~torch.isin(ids, stops).any(dim=1),
    }
    return {key if key == ROW_KEY else f"{INFO_PREFIX}{key}": value for key, value in info.items()}


def reward_counts(reward_funcs: Sequence[Any]) -> list[float]:
    """This process's counts since the last call, in COUNT_FIELDS order: correct and total of
    the `correctness` reward, failures, timeouts and scorings of every counting reward."""
    totals = dict.fromkeys(COUNT_FIELDS, 0)
    for reward_func in reward_funcs:
        pop = getattr(reward_func, "pop_counts", None)
        if pop is None:
            continue
        counts = pop()
        totals["failures"] += counts.get("failures", 0)
        totals["timeouts"] += counts.get("timeouts", 0)
        totals["scored"] += counts.get("total", 0)
        if getattr(reward_func, "__name__", "") == "correctness":
            totals["correct"] += counts.get("correct", 0)
            totals["total"] += counts.get("total", 0)
    return [float(totals[name]) for name in COUNT_FIELDS]


def count_metrics(
    summed: Sequence[float], max_failure_rate: float, step: int, output_dir: str
) -> dict[str, float]:
    """`accuracy`, `reward/failures`, `reward/timeouts` from every process's counts; RunError
    when failures and timeouts together pass `max_failure_rate` of the scorings."""
    counts = dict(zip(COUNT_FIELDS, summed, strict=True))
    metrics = {"reward/failures": counts["failures"], "reward/timeouts": counts["timeouts"]}
    if counts["total"]:
        metrics["accuracy"] = counts["correct"] / counts["total"]
    failed = counts["failures"] + counts["timeouts"]  # a timeout is a scoring that failed
    if counts["scored"] and failed / counts["scored"] > max_failure_rate:
        raise RunError(
            f"reward functions failed on {int(failed)} of {int(counts['scored'])} scorings "
            f"({int(counts['timeouts'])} timeouts) at step {step}, above "
            f"reward.max_failure_rate={max_failure_rate}; the last checkpoint in {output_dir} "
            "is kept"
        )
    return metrics
