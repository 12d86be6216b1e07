"""DAPO's dynamic sampling, the parts that are pure: which groups carry a signal, which prompts
a further round draws, and how rounds of generation outputs are merged.

A prompt group whose rewards are all equal (within a tolerance) has zero advantage everywhere:
it teaches nothing. The trainer drops such groups and generates more prompts until the step's
batch is full (`EpxGRPOTrainer._dynamic_batch`). The reference (verl) keeps a group when the
std of its rewards is > 0, and raises once its generation-batch cap is reached.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import torch
from torch import Tensor

from epx.train.batch_keys import INFO_PREFIX, ROW_KEY

LEFT_PADDED = ("prompt_ids", "prompt_mask")
RIGHT_PADDED = ("completion_ids", "completion_mask", "old_per_token_logps", "ref_per_token_logps",
                "sampling_per_token_logps", "importance_sampling_ratio", "tool_mask")  # fmt: skip
BATCH_TOTALS = ("num_items_in_batch",)  # recomputed for the kept batch


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


def _pad(tensor: Tensor, length: int, left: bool, value: float) -> Tensor:
    missing = length - tensor.size(1)
    if missing <= 0:
        return tensor
    pad = tensor.new_full((tensor.size(0), missing, *tensor.shape[2:]), value)
    return torch.cat([pad, tensor] if left else [tensor, pad], dim=1)


def merge_rows(parts: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Concatenate outputs along the rows: prompts left-padded, completions (and their per-token
    tensors) right-padded to the longest; per-row tensors (B,) concatenated; batch totals left
    out (they are recomputed)."""
    merged: dict[str, Any] = {}
    keys = [k for k in parts[0] if k not in BATCH_TOTALS]
    for key in keys:
        values = [part[key] for part in parts]
        if not isinstance(values[0], Tensor):
            raise ValueError(f"dynamic sampling cannot merge the non-tensor output {key!r}")
        if key in LEFT_PADDED or key in RIGHT_PADDED:
            length = max(v.size(1) for v in values)
            fill = pad_id if key.endswith("_ids") else 0
            values = [_pad(v, length, key in LEFT_PADDED, fill) for v in values]
        merged[key] = torch.cat(values, dim=0)
    return merged


def take_rows(output: dict[str, Any], rows: Tensor) -> dict[str, Any]:
    """The rows `rows` of every per-row tensor of an output (batch totals left out)."""
    return {k: v[rows] for k, v in output.items() if k not in BATCH_TOTALS}


def fill_rows(kept: int, needed: int, group_size: int) -> Tensor:
    """Row indices that fill `needed` rows from `kept` kept rows by cycling whole groups (for
    `on_exhausted: train`); `kept` must be > 0 and a multiple of the group size."""
    groups = kept // group_size
    order = [g % groups for g in range(needed // group_size)]
    return torch.tensor([g * group_size + i for g in order for i in range(group_size)])


# ---------------------------------------------------------------- the rounds (uses the trainer)


def gather_rows(accelerator: Any, output: dict[str, Any], local: int) -> dict[str, Any]:
    """Every process's rows of a round, on every process (process-major, as TRL gathers
    rewards); per-token tensors padded to the longest first."""
    gathered = {}
    for key, value in output.items():
        if key in BATCH_TOTALS or not isinstance(value, Tensor) or value.size(0) != local:
            continue
        kind = value.dtype
        value = value.to(torch.uint8) if kind == torch.bool else value
        if value.dim() >= 2:
            value = accelerator.pad_across_processes(value, dim=1, pad_first=key in LEFT_PADDED)
        value = accelerator.gather(value)
        gathered[key] = value.to(kind) if kind == torch.bool else value
    return gathered


def dynamic_batch(trainer: Any, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """This process's rows of a generation batch made only of groups whose rewards differ.

    Round 0 scores TRL's own batch; each further round draws prompts by `round_seed`. The
    decisions are made on the rows of every process, gathered, so every process takes the same
    ones and ends with the same number of rows, also when a group spans processes.
    """
    from epx.errors import RunError

    cfg = trainer.sampling
    group, local = trainer.num_generations, len(inputs)
    accelerator = trainer.accelerator
    total, rank = local * accelerator.num_processes, accelerator.process_index
    metrics = trainer._metrics["train"]
    before = {key: len(values) for key, values in metrics.items()}
    parts: list[dict[str, Any]] = []
    first: dict[str, Any] | None = None
    kept = generated = solve_all = solve_none = rounds = 0
    round_inputs = inputs
    key = f"{INFO_PREFIX}{'correct' if cfg.metric == 'accuracy' else 'reward'}"
    while True:
        rows = gather_rows(accelerator, trainer._scored_round(round_inputs), local)
        rounds += 1
        first = first or rows
        signal = groups_with_signal(rows[key], group, cfg.tolerance)
        correct = rows[f"{INFO_PREFIX}correct"].reshape(-1, group)
        solve_all += int((~signal & (correct == 1).all(dim=1)).sum())
        solve_none += int((~signal & (correct == 0).all(dim=1)).sum())
        generated += signal.numel()
        chosen = signal.repeat_interleave(group).nonzero().squeeze(1)
        if chosen.numel():
            parts.append(take_rows(rows, chosen))
            kept += chosen.numel()
        if kept >= total or rounds >= cfg.max_generation_batches:
            break
        round_inputs = extra_inputs(trainer, rounds, local, total)
    pad_id = trainer._tokenizer.pad_token_id or 0
    if kept >= total:
        batch = take_rows(merge_rows(parts, pad_id), torch.arange(total))
    elif cfg.on_exhausted == "error":
        raise RunError(
            f"dynamic sampling at step {trainer.state.global_step + 1}: {kept // group} of the "
            f"{total // group} groups a step needs had rewards that differ after {rounds} "
            f"generation rounds (sampling.max_generation_batches={cfg.max_generation_batches}); "
            "raise it, or set sampling.on_exhausted: train to train on what there is"
        )
    elif kept == 0:  # nothing to learn from: the first round as it was (zero advantages)
        batch = take_rows(first, torch.arange(total))
    else:  # the kept groups, cycled to fill the batch
        batch = take_rows(merge_rows(parts, pad_id), fill_rows(kept, total, group))
    mine = take_rows(batch, torch.arange(rank * local, (rank + 1) * local))
    device = batch["completion_mask"].device
    mine[ROW_KEY] = torch.arange(rank * local, (rank + 1) * local, device=device)
    mine["num_items_in_batch"] = batch["completion_mask"].sum()  # every process's rows
    _kept_batch_metrics(metrics, before, batch, group)
    metrics["sampling/generation_rounds"].append(float(rounds))
    metrics["sampling/solve_all"].append(float(solve_all))
    metrics["sampling/solve_none"].append(float(solve_none))
    metrics["sampling/kept_fraction"].append((kept // group) / generated if generated else 0.0)
    return mine


def extra_inputs(trainer: Any, round_index: int, local: int, total: int) -> list[dict[str, Any]]:
    """This process's rows of a further round's prompts (each repeated G times, process-major)."""
    group = trainer.num_generations
    seed = round_seed(trainer.args.seed, trainer.state.global_step, round_index)
    indices = draw_prompts(len(trainer.train_dataset), total // group, seed)
    rows = [index for index in indices for _ in range(group)]
    rank = trainer.accelerator.process_index
    return [trainer.train_dataset[i] for i in rows[rank * local : (rank + 1) * local]]


def _kept_batch_metrics(
    metrics: dict[str, list[float]], before: dict[str, int], batch: dict[str, Any], group: int
) -> None:
    """One value per metric for the step, however many rounds it took: the kept batch's own for
    what it determines (reward, accuracy, lengths), the rounds' mean for the rest."""
    for key, values in metrics.items():
        start = before.get(key, 0)
        fresh = [v for v in values[start:] if v == v]
        if len(values) - start > 1:
            del values[start:]
            values.append(sum(fresh) / len(fresh) if fresh else float("nan"))
    reward = batch[f"{INFO_PREFIX}reward"].double()
    correct = batch[f"{INFO_PREFIX}correct"].double()
    lengths = batch["completion_mask"].sum(dim=1).double()
    own = {
        "reward": reward.mean().item(),
        "reward_std": reward.std().item() if reward.numel() > 1 else 0.0,
        "frac_reward_zero_std": 1.0
        - groups_with_signal(reward.float(), group).double().mean().item(),
        "completions/mean_length": lengths.mean().item(),
        "completions/clipped_ratio": batch[f"{INFO_PREFIX}truncated"].double().mean().item(),
    }
    if not torch.isnan(correct).all():
        own["accuracy"] = correct[~torch.isnan(correct)].mean().item()
    for key, value in own.items():
        if metrics.get(key):
            metrics[key][-1] = value
