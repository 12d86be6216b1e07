"""The interventions behind the paper's findings: restrict the policy update to a subset of
tokens. Pure torch functions returning a (B, T) keep-mask; the trainer multiplies the shaped
advantages by it, so a dropped token contributes no policy gradient (as TRL's own
`top_entropy_quantile` drops tokens: by zeroing their loss, not by renormalising).

Shapes: B = prompts x G (a prompt's G responses consecutive), T = completion tokens; `mask` is
the response mask (TRL's ``completion_mask``). The reference's switches map to: only
positive-advantage tokens (`sign_mask(..., "positive")`), only negative ones, only tokens whose
probability is at most 0.95 (`probability_mask`); epx adds samples of given in-group log-PPL
quantiles (`group_quantile_mask`) and a relative-position window (`position_mask`). High-entropy
tokens are TRL's `top_entropy_quantile` (recipe `shaping.entropy_quantile`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from epx.shaping import relative_positions

UpdateOnly = Literal["all", "positive", "negative"]


def _check(mask: Tensor) -> None:
    assert mask.dim() == 2, f"mask must be (B, T), got shape {tuple(mask.shape)}"


def sign_mask(advantages: Tensor, mask: Tensor, which: UpdateOnly) -> Tensor:
    """Tokens whose advantage has the asked sign (all: every response token).

    advantages: (B,) or (B, T); mask: (B, T). Returns (B, T) bool, False on padding. A token
    with advantage 0 is neither positive nor negative.
    """
    _check(mask)
    valid = mask.bool()
    if which == "all":
        return valid
    full = advantages.unsqueeze(1).expand_as(mask) if advantages.dim() == 1 else advantages
    assert full.shape == mask.shape, f"advantages {tuple(full.shape)} vs mask {tuple(mask.shape)}"
    chosen = full > 0 if which == "positive" else full < 0
    return valid & chosen


def probability_mask(logps: Tensor, mask: Tensor, max_prob: float) -> Tensor:
    """Tokens whose probability under the policy is at most `max_prob` (the reference: 0.95).

    logps: (B, T) log-probs of the sampled tokens. Returns (B, T) bool, False on padding.
    """
    _check(mask)
    assert logps.shape == mask.shape
    return mask.bool() & (logps.detach().float().exp() <= max_prob)


def position_mask(mask: Tensor, low: float, high: float) -> Tensor:
    """Tokens whose relative position lies in [low, high] (both inclusive). (B, T) bool."""
    r = relative_positions(mask, torch.float64)  # as the position shaping counts them
    return mask.bool() & (r >= low - 1e-12) & (r <= high + 1e-12)


def group_quantiles(values: Tensor, group_size: int) -> Tensor:
    """Each value's rank within its group as a fraction: 0 for the lowest, 1 for the highest
    (ties broken by position; a group of one is 0). values: (N,) with N = groups x G."""
    assert values.dim() == 1 and values.numel() % group_size == 0, (
        f"{values.numel()} values do not split into groups of {group_size}"
    )
    grouped = values.reshape(-1, group_size).double()
    order = torch.argsort(grouped, dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(group_size, device=values.device).expand_as(order))
    return (ranks.double() / max(1, group_size - 1)).reshape(-1)


def group_quantile_mask(log_ppl: Tensor, group_size: int, low: float, high: float) -> Tensor:
    """Samples whose in-group log-PPL quantile lies in [low, high]. (N,) bool.

    With G = 4 the quantiles are 0, 1/3, 2/3, 1: [0, 0.5] keeps each group's two lowest-PPL
    responses (the paper's "low-PPL samples").
    """
    q = group_quantiles(log_ppl, group_size)
    return (q >= low - 1e-12) & (q <= high + 1e-12)


def restriction_mask(
    advantages: Tensor,
    mask: Tensor,
    logps: Tensor,
    *,
    update_only: UpdateOnly = "all",
    max_token_prob: float | None = None,
    position_range: tuple[float, float] | None = None,
    keep_rows: Tensor | None = None,
) -> Tensor:
    """The tokens every configured intervention keeps (B, T) bool: the AND of the sign, the
    probability and the position masks and a per-completion keep (B,) (e.g. `ppl_quantile`'s)."""
    keep = sign_mask(advantages, mask, update_only)
    if max_token_prob is not None:
        keep &= probability_mask(logps, mask, max_token_prob)
    if position_range is not None:
        keep &= position_mask(mask, *position_range)
    if keep_rows is not None:
        keep &= keep_rows.bool().unsqueeze(1)
    return keep
