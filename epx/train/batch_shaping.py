"""What the trainer's seams do to a batch: the shaping of its advantages and the interventions'
mask, as functions of the batch, the recipe's `shaping` section and the accelerator (whose
gathers make a prompt group spread over processes count whole). Each returns the metrics it
produced; the trainer only calls them.

Shapes: B = this process's completions (a prompt's G completions are consecutive rows of the
generation batch, process-major), T = completion tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from epx.interventions import group_quantile_mask, restriction_mask
from epx.recipe import ShapingSection
from epx.shaping import apply_shaping, ppl_weights
from epx.train.batch_keys import KEEP_ROW_KEY, ORIGINAL_KEY, POSITION_ON_KEY


def on_groups(
    accelerator: Any, values: Tensor, fn: Callable[[Tensor], Tensor], rows: Tensor | None = None
) -> Tensor:
    """`fn` over whole prompt groups of a per-completion value (B,); this process's part.

    A group may be spread over processes, so the values are gathered the way TRL gathers rewards
    (process-major), `fn` sees the whole batch, and each process keeps its slice. `rows` are the
    completions' indices in the generation batch when TRL has shuffled them (loss time): the
    values go back to generation order (groups consecutive) and return.
    """
    gathered = accelerator.gather(values)
    if rows is None:
        result = fn(gathered)
    else:
        order = accelerator.gather(rows).argsort()
        ordered = fn(gathered[order])
        result = torch.empty_like(ordered)
        result[order] = ordered
    local = values.size(0)
    start = accelerator.process_index * local
    return result[start : start + local]


def shape_batch(
    batch: dict[str, Any],
    log_ppl: Tensor | None,
    shaping: ShapingSection,
    group_size: int,
    accelerator: Any,
    rows: Tensor | None = None,
) -> dict[str, float]:
    """Shape ``batch["advantages"]`` in place: PPL weights from ``log_ppl`` (B,), then the
    position bonus if the batch has it on; mark the rows inside `shaping.ppl_quantile`.
    ``rows``: the batch is TRL-shuffled (loss time). Returns the shaping metrics (all processes)."""
    metrics: dict[str, float] = {}
    method = shaping.method
    if method != "none":
        weights = None
        if method in ("ppl", "both"):
            ppl = shaping.ppl
            weigh = lambda v: ppl_weights(v, group_size, ppl.alpha, ppl.clip, ppl.favour)  # noqa: E731
            weights = on_groups(accelerator, log_ppl, weigh, rows)
        position = shaping.position
        advantages, mask = batch["advantages"], batch["completion_mask"]
        shaped, info = apply_shaping(
            advantages,
            mask,
            method,
            weights=weights,
            pos_alpha=position.alpha,
            k=position.k,
            center=position.center,
            position_active=bool(batch[POSITION_ON_KEY].item()),
        )
        batch["advantages"] = shaped.to(advantages.dtype)
        metrics.update(shaping_metrics(info, mask, accelerator))
    if shaping.ppl_quantile is not None:
        low, high = shaping.ppl_quantile
        keep = lambda v: group_quantile_mask(v, group_size, low, high).to(v.dtype)  # noqa: E731
        batch[KEEP_ROW_KEY] = on_groups(accelerator, log_ppl.float(), keep, rows)
    return metrics


def shaping_metrics(info: dict[str, Tensor], mask: Tensor, accelerator: Any) -> dict[str, float]:
    """`shaping/ppl/weight_min|mean|max` and `shaping/position/bonus_abs_mean` (the mean |bonus|
    over response tokens), over every process's completions."""
    metrics = {}
    if "ppl_weight" in info:
        weights = accelerator.gather(info["ppl_weight"].float())
        metrics["shaping/ppl/weight_min"] = weights.min().item()
        metrics["shaping/ppl/weight_mean"] = weights.mean().item()
        metrics["shaping/ppl/weight_max"] = weights.max().item()
    if "position_bonus" in info:
        valid = mask.bool()
        stats = torch.stack([info["position_bonus"].float()[valid].abs().sum(), valid.sum().float()])
        total, count = accelerator.gather(stats).view(-1, 2).sum(0).tolist()
        metrics["shaping/position/bonus_abs_mean"] = total / max(count, 1.0)
    return metrics


def restrict_batch(
    batch: dict[str, Any], logps: Tensor, shaping: ShapingSection, accelerator: Any
) -> dict[str, float]:
    """Set to 0 the advantage of every token outside the interventions' subset, in place (from
    the unrestricted advantages each time: a second iteration over the batch masks afresh).
    Returns `shaping/update/kept_share`: the share of response tokens kept (all processes)."""
    original = batch.setdefault(ORIGINAL_KEY, batch["advantages"])
    mask = batch["completion_mask"]
    full = original.unsqueeze(1).expand_as(mask) if original.dim() == 1 else original
    keep = restriction_mask(
        full,
        mask,
        logps,
        update_only=shaping.update_only,
        max_token_prob=shaping.max_token_prob,
        position_range=shaping.position_range,
        keep_rows=batch.get(KEEP_ROW_KEY),
    )
    stats = torch.stack([(keep & mask.bool()).sum(), mask.bool().sum()]).float()
    kept, total = accelerator.gather(stats).view(-1, 2).sum(0).tolist()
    batch["advantages"] = full * keep.to(full.dtype)
    return {"shaping/update/kept_share": kept / total if total else 1.0}
