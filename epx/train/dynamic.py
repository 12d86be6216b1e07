"""DAPO's dynamic sampling: a generation batch made only of prompt groups whose rewards differ.

A group whose rewards are all equal (within a tolerance) has zero advantage everywhere: it
teaches nothing. The trainer scores rounds of generation and keeps the groups with a signal until
the step's generation batch is full (the reference, verl, keeps a group when the std of its
rewards is > 0, and raises once its generation-batch cap is reached).

Which rows are kept is decided from per-row numbers gathered over processes (reward, correctness,
length, cut-off), so every process takes the same decision also when a group spans processes.
The kept batch is laid out as one process would lay it out (kept rows in round and row order, the
first `total` of them), and process p trains positions [p * local, (p + 1) * local). Only those
rows reach process p, sent point to point from the process that generated them; nothing else is
gathered, so a process holds at most its own generation batch plus the rows it will train.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from epx.errors import RunError
from epx.recipe import SamplingSection
from epx.train.batch_keys import INFO_PREFIX, ROW_KEY
from epx.train.dynamic_rows import RowTable, move_rows, row_tensors

ROW_NUMBERS = ("signal", "correct", "reward", "length", "truncated")  # gathered per row


def groups_with_signal(values: Tensor, group_size: int, tolerance: float = 1e-6) -> Tensor:
    """(N / G,) bool: groups whose values are not all equal (max - min > tolerance).

    values: (N,) one per completion, groups of `group_size` consecutive; NaN counts as equal to
    nothing (a group with a NaN reward and otherwise equal values has no signal either)."""
    assert values.dim() == 1 and values.numel() % group_size == 0, (
        f"{values.numel()} values do not split into groups of {group_size}"
    )
    grouped = torch.nan_to_num(values.double().reshape(-1, group_size), nan=0.0)
    spread = grouped.max(dim=1).values - grouped.min(dim=1).values
    return spread > tolerance


def round_seed(seed: int, step: int, round_index: int) -> int:
    """The seed of the prompts drawn for a round: fixed by (seed, step, round), so a resumed run
    draws what the uninterrupted one drew."""
    digest = hashlib.sha256(f"epx-dynamic/{seed}/{step}/{round_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def draw_prompts(dataset_size: int, groups: int, seed: int) -> list[int]:
    """`groups` distinct dataset indices (with repeats only when the dataset is smaller)."""
    rng = random.Random(seed)
    if groups <= dataset_size:
        return rng.sample(range(dataset_size), groups)
    return [rng.randrange(dataset_size) for _ in range(groups)]


def fill_rows(kept: int, needed: int, group_size: int) -> Tensor:
    """Row indices that fill `needed` rows from `kept` kept rows by cycling whole groups (for
    `on_exhausted: train`); `kept` must be > 0 and a multiple of the group size."""
    groups = kept // group_size
    order = [g % groups for g in range(needed // group_size)]
    return torch.tensor([g * group_size + i for g in order for i in range(group_size)])


def extra_inputs(
    dataset: Any,
    seed: int,
    step: int,
    round_index: int,
    group_size: int,
    local: int,
    rank: int,
    world: int,
) -> list[dict[str, Any]]:
    """This process's rows of a further round's prompts (each repeated G times, process-major)."""
    total = local * world
    indices = draw_prompts(len(dataset), total // group_size, round_seed(seed, step, round_index))
    rows = [index for index in indices for _ in range(group_size)]
    return [dataset[i] for i in rows[rank * local : (rank + 1) * local]]


@dataclass
class Counts:
    """What the rounds of one step generated and dropped (the `sampling/*` metrics)."""

    rounds: int = 0
    generated_groups: int = 0
    kept_groups: int = 0
    solve_all: int = 0
    solve_none: int = 0


class DynamicBatch:
    """The rounds of one step: `add_round` after each scored round (True once the batch is full
    or the round cap is reached), then `finish` for this process's rows of the kept batch.

    The positions of the kept batch are assigned as rounds come: position k holds the k-th kept
    row; the rows of positions this process trains are moved to it after each round."""

    def __init__(self, config: SamplingSection, group_size: int, local: int, rank: int, world: int):
        self.config = config
        self.group_size, self.local, self.rank, self.world = group_size, local, rank, world
        self.total = local * world
        self.counts = Counts()
        self.mine = RowTable()  # this process's positions (slot = position - rank * local)
        self.numbers: list[Tensor] = []  # the gathered ROW_NUMBERS of the kept positions, in order
        self.first: dict[str, Tensor] | None = None  # round 1, until a round keeps something
        self.first_numbers: Tensor | None = None
        self.dtypes: dict[str, torch.dtype] = {}
        self.kept_numbers: Tensor | None = None  # the kept batch's ROW_NUMBERS, after `finish`

    @property
    def rounds(self) -> int:
        return self.counts.rounds

    @property
    def kept(self) -> int:
        return sum(len(n) for n in self.numbers)

    def add_round(self, output: dict[str, Any], accelerator: Any) -> bool:
        """Decide on a scored round (this process's rows of it) and move the kept rows."""
        rows = row_tensors(output, self.local)
        signal_key = "correct" if self.config.metric == "accuracy" else "reward"
        local_numbers = torch.stack(
            [
                output[f"{INFO_PREFIX}{signal_key}"].double(),
                output[f"{INFO_PREFIX}correct"].double(),
                output[f"{INFO_PREFIX}reward"].double(),
                output["completion_mask"].sum(dim=1).double(),
                output[f"{INFO_PREFIX}truncated"].double(),
            ],
            dim=1,
        )  # (local, len(ROW_NUMBERS))
        numbers = accelerator.gather(local_numbers)  # (total, ...), process-major: global rows
        counts, g = self.counts, self.group_size
        counts.rounds += 1
        signal = groups_with_signal(numbers[:, 0], g, self.config.tolerance)
        correct = numbers[:, 1].reshape(-1, g)
        counts.solve_all += int((~signal & (correct == 1).all(dim=1)).sum())
        counts.solve_none += int((~signal & (correct == 0).all(dim=1)).sum())
        counts.generated_groups += signal.numel()
        counts.kept_groups += int(signal.sum())
        chosen = signal.repeat_interleave(g).nonzero().squeeze(1).tolist()  # global rows
        if counts.rounds == 1:
            self.first, self.first_numbers = rows, numbers.cpu()
            self.dtypes = {key: value.dtype for key, value in rows.items()}
        start = self.kept
        chosen = chosen[: max(0, self.total - start)]  # only the first `total` positions count
        if chosen:
            self.first = None  # a kept row: the first round is no longer the fallback
            self.numbers.append(numbers[chosen].cpu())
            self._move(RowTable.of_batch(rows), [(row, start + i) for i, row in enumerate(chosen)],
                       accelerator)  # fmt: skip
        return self.kept >= self.total or counts.rounds >= self.config.max_generation_batches

    def _move(self, source: RowTable, moves: Sequence[tuple[int, int]], accelerator: Any) -> None:
        """Rows to positions: (global source row, kept-batch position) pairs; this process
        sends its source rows and keeps the positions it trains."""
        local = self.local
        routes = [(row // local, row % local, pos // local, pos % local) for row, pos in moves]
        self.mine.update(move_rows(source, routes, self.dtypes, self.rank, accelerator.device))

    def finish(self, accelerator: Any, pad_id: int, step: int) -> dict[str, Any]:
        """This process's rows of the kept batch (RunError past the cap with `on_exhausted:
        error`); `num_items_in_batch` counts every process's response tokens."""
        kept, total, g = self.kept, self.total, self.group_size
        if kept < total and self.config.on_exhausted == "error":
            raise RunError(
                f"dynamic sampling at step {step}: {kept // g} of the {total // g} groups a step "
                f"needs had rewards that differ after {self.rounds} generation rounds "
                f"(sampling.max_generation_batches={self.config.max_generation_batches}); raise "
                "it, or set sampling.on_exhausted: train to train on what there is"
            )
        if kept == 0:  # nothing to learn from: the first round as it was (zero advantages)
            assert self.first is not None and self.first_numbers is not None
            batch, numbers = dict(self.first), self.first_numbers
        else:
            numbers = torch.cat(self.numbers)
            if kept < total:  # the kept groups, cycled to fill the batch (copies of positions)
                sources = fill_rows(kept, total, g).tolist()
                held = RowTable(self.mine.rows)
                self._move(held, list(zip(sources[kept:], range(kept, total), strict=True)),
                           accelerator)  # fmt: skip
                numbers = numbers[sources]
            batch = self.mine.stack(self.local, pad_id)
        device = batch["completion_mask"].device
        start = self.rank * self.local
        batch[ROW_KEY] = torch.arange(start, start + self.local, device=device)
        batch["num_items_in_batch"] = numbers[:, 3].sum().to(device=device, dtype=torch.long)
        self.kept_numbers = numbers
        return batch

    def update_metrics(self, metrics: dict[str, list[float]], before: dict[str, int]) -> None:
        """One value per metric for the step, however many rounds it took: the kept batch's own
        for what it determines (reward, accuracy, lengths), the rounds' mean for the rest, and
        the `sampling/*` counts."""
        for key, values in metrics.items():
            start = before.get(key, 0)
            fresh = [v for v in values[start:] if v == v]
            if len(values) - start > 1:
                del values[start:]
                values.append(sum(fresh) / len(fresh) if fresh else float("nan"))
        numbers = self.kept_numbers
        if numbers is not None:
            reward, correct = numbers[:, 2], numbers[:, 1]
            scored = reward[~torch.isnan(reward)]
            own = {
                "reward": scored.mean().item() if scored.numel() else float("nan"),
                "reward_std": scored.std().item() if scored.numel() > 1 else 0.0,
                "frac_reward_zero_std": 1.0
                - groups_with_signal(reward, self.group_size).double().mean().item(),
                "completions/mean_length": numbers[:, 3].mean().item(),
                "completions/clipped_ratio": numbers[:, 4].mean().item(),
            }
            if not torch.isnan(correct).all():
                own["accuracy"] = correct[~torch.isnan(correct)].mean().item()
            for key, value in own.items():
                if metrics.get(key):
                    metrics[key][-1] = value
        counts = self.counts
        metrics["sampling/generation_rounds"].append(float(counts.rounds))
        metrics["sampling/solve_all"].append(float(counts.solve_all))
        metrics["sampling/solve_none"].append(float(counts.solve_none))
        fraction = counts.kept_groups / counts.generated_groups if counts.generated_groups else 0.0
        metrics["sampling/kept_fraction"].append(fraction)


def dynamic_batch(
    config: SamplingSection,
    group_size: int,
    inputs: list[dict[str, Any]],
    accelerator: Any,
    score: Callable[[list[dict[str, Any]]], dict[str, Any]],
    draw: Callable[[int], list[dict[str, Any]]],
    metrics: dict[str, list[float]],
    pad_id: int,
    step: int,
) -> dict[str, Any]:
    """This process's rows of a generation batch made only of groups with a signal, for global
    step `step`: `score` generates and scores a round's inputs (round 0: `inputs`, round r:
    `draw(r)`); the step's `metrics` (TRL's lists) end with one value each and the `sampling/*`
    counts."""
    before = {key: len(values) for key, values in metrics.items()}
    local = len(inputs)
    batch = DynamicBatch(config, group_size, local, accelerator.process_index,
                         accelerator.num_processes)  # fmt: skip
    round_inputs = inputs
    while not batch.add_round(score(round_inputs), accelerator):
        round_inputs = draw(batch.rounds)
    output = batch.finish(accelerator, pad_id, step)
    batch.update_metrics(metrics, before)
    return output
