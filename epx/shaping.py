"""The paper's two advantage-shaping methods (docs/method.md) as pure torch functions (no trainer,
no I/O).

Shapes: B = prompts x G (a prompt's G responses are consecutive rows), T = completion tokens.
`mask` is the response mask (TRL's ``completion_mask``: 1 on response tokens, the EOS included).

Dtypes: statistics are computed in float64 (float32 on MPS, which has no float64) whatever the
input dtype; results come back in the input's dtype promoted to at least float32, so a bf16 input
gives float32 (a bf16 weight could not even represent 1.0027, the size of a typical PPL weight).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

METHODS = ("none", "ppl", "position", "both")
Favour = Literal["low", "high"]


def _out_dtype(t: Tensor) -> torch.dtype:
    return torch.promote_types(t.dtype, torch.float32) if t.is_floating_point() else torch.float32


def _stat_dtype(t: Tensor) -> torch.dtype:
    return torch.float32 if t.device.type == "mps" else torch.float64


def _check_mask(mask: Tensor, b: int | None = None) -> None:
    assert mask.dim() == 2, f"mask must be (B, T), got shape {tuple(mask.shape)}"
    if b is not None:
        assert mask.shape[0] == b, f"mask has {mask.shape[0]} rows, expected B={b}"


def sequence_log_ppl(logps: Tensor, mask: Tensor) -> Tensor:
    """Per-response log-perplexity ``-(1/|o_i|) sum_t mask * logp``.

    logps: (B, T) token log-probs of the behaviour policy; mask: (B, T) bool/int/float.
    Returns (B,). A row with an empty mask (a completion TRL masked out, e.g. a truncated one under
    ``mask_truncated_completions``) has no log-PPL: NaN, which the group statistics leave out.
    Values under the mask (padding) are ignored even when they are not finite.
    """
    _check_mask(mask)
    assert logps.shape == mask.shape, (
        f"logps {tuple(logps.shape)} and mask {tuple(mask.shape)} must have the same (B, T) shape"
    )
    m = mask.bool()
    dtype = _stat_dtype(logps)
    total = torch.where(m, logps.to(dtype), 0.0).sum(dim=1)  # (B,)
    count = m.sum(dim=1).to(dtype)  # (B,)
    log_ppl = torch.where(count > 0, -total / count.clamp(min=1), torch.nan)
    return log_ppl.to(_out_dtype(logps))


def ppl_weights(
    log_ppl: Tensor,
    group_size: int,
    alpha: float,
    clip: tuple[float, float] = (0.8, 1.2),
    favour: Favour = "low",
) -> Tensor:
    """PPL weight of every response: ``clamp(1 - alpha * w, *clip)`` (``1 + alpha * w`` if high).

    log_ppl: (B,), groups are consecutive blocks of ``group_size``. Per group: Q1, Q3 by
    ``torch.quantile`` (linear interpolation); the non-outliers lie in [Q1 - 1.5 IQR, Q3 + 1.5 IQR]
    (bounds kept); mean and population std over them (over all if none remain); a std <= 1e-6
    becomes 1.0; ``w = (lnPPL - mean) / std`` for every response, outliers included.
    ``favour="low"`` is the paper's method (low-PPL responses weigh more); ``"high"`` is the
    reference code's high-PPL ablation. Returns (B,). A group of one gets weight 1.
    NaN log-PPLs (completions with no response token) take no part in their group's statistics
    and get weight 1 (they have no token to weigh); a group with no finite value is all ones.
    """
    assert log_ppl.dim() == 1, f"log_ppl must be (B,), got shape {tuple(log_ppl.shape)}"
    assert group_size >= 1, f"group_size must be >= 1, got {group_size}"
    b = log_ppl.shape[0]
    assert b % group_size == 0, (
        f"B={b} responses do not split into groups of group_size={group_size}; "
        "a prompt's responses must be consecutive and complete"
    )
    assert favour in ("low", "high"), f"favour must be 'low' or 'high', got {favour!r}"
    lo_clip, hi_clip = clip
    assert lo_clip <= hi_clip, f"clip must be (low, high) with low <= high, got {clip}"
    dtype = _stat_dtype(log_ppl)
    x = log_ppl.to(dtype).reshape(b // group_size, group_size)  # (n_groups, G)
    finite = ~torch.isnan(x)
    probs = torch.tensor([0.25, 0.75], dtype=dtype, device=x.device)
    q1, q3 = torch.nanquantile(x, probs, dim=1, keepdim=True)  # (n_groups, 1) each
    iqr = q3 - q1
    keep = finite & (x >= q1 - 1.5 * iqr) & (x <= q3 + 1.5 * iqr)  # (n_groups, G)
    keep = torch.where(keep.any(dim=1, keepdim=True), keep, finite)
    n = keep.sum(dim=1, keepdim=True).clamp(min=1).to(dtype)
    mean = torch.where(keep, x, 0.0).sum(dim=1, keepdim=True) / n
    var = torch.where(keep, (x - mean) ** 2, 0.0).sum(dim=1, keepdim=True) / n
    std = var.sqrt()
    std = torch.where(std <= 1e-6, torch.ones_like(std), std)
    w = (x - mean) / std
    sign = -1.0 if favour == "low" else 1.0
    weight = torch.where(finite, (1.0 + sign * alpha * w).clamp(lo_clip, hi_clip), 1.0)
    return weight.reshape(b).to(_out_dtype(log_ppl))


def relative_positions(mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """``r_t = t / |o_i|`` with t the index of the token among the row's valid tokens.

    mask: (B, T). Counting valid tokens (a cumulative sum) rather than columns makes it right for
    masks that are not a left-aligned prefix too. Returns (B, T) in [0, 1), 0 on padding.
    """
    _check_mask(mask)
    m = mask.bool()
    index = m.long().cumsum(dim=1) - 1  # (B, T): 0 at the first valid token
    length = m.sum(dim=1, keepdim=True).clamp(min=1)  # (B, 1)
    return torch.where(m, index.to(dtype) / length.to(dtype), 0.0)


def _token_advantages(advantages: Tensor, mask: Tensor) -> Tensor:
    """(B,) or (B, T) advantages -> (B, T), zero on padding."""
    assert advantages.dim() in (1, 2), (
        f"advantages must be (B,) or (B, T), got shape {tuple(advantages.shape)}"
    )
    _check_mask(mask, advantages.shape[0])
    if advantages.dim() == 2:
        assert advantages.shape == mask.shape, (
            f"advantages {tuple(advantages.shape)} and mask {tuple(mask.shape)} differ"
        )
    adv = advantages.to(_out_dtype(advantages))
    adv = adv if adv.dim() == 2 else adv.unsqueeze(1).expand(mask.shape)
    return torch.where(mask.bool(), adv, 0.0)


def position_bonus(
    advantages: Tensor, mask: Tensor, alpha: float, k: float = 15.0, center: float = 0.5
) -> Tensor:
    """Capped bonus ``b_t = min(alpha * sigmoid(k * (r_t - center)), 0.5 * |A_t|)``.

    advantages: (B,) or (B, T); mask: (B, T). Returns (B, T) >= 0, zero on padding and where A = 0.
    """
    assert alpha >= 0, f"position alpha must be >= 0, got {alpha}"
    adv = _token_advantages(advantages, mask)  # (B, T)
    r = relative_positions(mask, adv.dtype)
    bonus = alpha * torch.sigmoid(k * (r - center))
    return torch.minimum(bonus, 0.5 * adv.abs())  # adv is 0 on padding, so the bonus is too


def apply_shaping(
    advantages: Tensor,
    mask: Tensor,
    method: str,
    *,
    weights: Tensor | None = None,
    pos_alpha: float = 0.1,
    k: float = 15.0,
    center: float = 0.5,
    position_active: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The trainer's one call: PPL weight first, then the position bonus on the weighted advantages.

    advantages: (B,) or (B, T); mask: (B, T); weights: (B,) PPL weights (`ppl_weights`, computed
    on whole prompt groups, which may be spread over processes), needed for "ppl" and "both".
    The bonus (`position_bonus`: ``A~_t = A_t + sign(A_t) b_t``) is added only when
    ``position_active`` (the schedule's decision). Returns ((B, T) advantages, zero on padding;
    info) with ``ppl_weight`` (B,) when PPL is on and ``position_bonus`` (B, T) when it was added.
    """
    if method not in METHODS:
        raise ValueError(f"unknown shaping method {method!r}: known are {', '.join(METHODS)}")
    adv = _token_advantages(advantages, mask)  # (B, T)
    info: dict[str, Tensor] = {}
    if method in ("ppl", "both"):
        assert weights is not None, "method 'ppl'/'both' needs the PPL weights"
        assert weights.shape == adv.shape[:1], (
            f"weights must be (B,)=({adv.shape[0]},), got shape {tuple(weights.shape)}"
        )
        info["ppl_weight"] = weights
        adv = adv * weights.to(adv.dtype).unsqueeze(1)
    if method in ("position", "both") and position_active:
        bonus = position_bonus(adv, mask, pos_alpha, k, center)
        info["position_bonus"] = bonus
        adv = adv + adv.sign() * bonus
    return adv, info
