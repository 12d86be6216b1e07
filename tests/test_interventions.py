"""The interventions: each keep-mask against hand-computed values, and in the trainer, exactly
those tokens keep their advantage when they reach TRL's loss."""

from __future__ import annotations

import torch

from epx.interventions import (
    group_quantile_mask,
    group_quantiles,
    position_mask,
    probability_mask,
    sign_mask,
)
from epx.shaping import relative_positions

MASK = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])  # lengths 4, 2, 5


def test_sign_mask_keeps_the_asked_sign_and_never_padding():
    advantages = torch.tensor([0.5, -1.0, 0.0])  # per sequence
    assert sign_mask(advantages, MASK, "positive").tolist() == [
        [True, True, True, True, False], [False] * 5, [False] * 5]  # fmt: skip
    assert sign_mask(advantages, MASK, "negative").tolist() == [
        [False] * 5, [True, True, False, False, False], [False] * 5]  # fmt: skip
    assert sign_mask(advantages, MASK, "all").tolist() == MASK.bool().tolist()
    token_level = torch.tensor([[0.1, 0.2, 0.3, 0.4, 9.0], [-1, -1, 5, 5, 5], [0, 0, 0, 0, 0.0]])
    assert sign_mask(token_level, MASK, "positive")[0].tolist() == [True] * 4 + [False]  # padding


def test_probability_mask_keeps_tokens_at_most_the_threshold():
    probs = torch.tensor([[0.99, 0.95, 0.5, 0.96, 0.1], [0.2, 1.0, 0.1, 0.1, 0.1], [0.9] * 5])
    keep = probability_mask(probs.log(), MASK, 0.95)
    assert keep.tolist() == [[False, True, True, False, False],  # 0.95 itself is kept
                             [True, False, False, False, False],  # padding never
                             [True] * 5]  # fmt: skip


def test_relative_positions_and_the_position_window():
    r = relative_positions(MASK, torch.float64)  # the position shaping's count
    assert r[0].tolist() == [0.0, 0.25, 0.5, 0.75, 0.0]  # t / 4; padding 0
    assert r[2].tolist() == [0.0, 0.2, 0.4, 0.6, 0.8]  # t / 5
    keep = position_mask(MASK, 0.5, 1.0)  # the second half of each response
    assert keep.tolist() == [[False, False, True, True, False],
                             [False, True, False, False, False],  # t/2 = 0.5
                             [False, False, False, True, True]]  # fmt: skip


def test_group_quantiles_and_the_low_ppl_half():
    log_ppl = torch.tensor([2.0, 0.5, 1.0, 3.0, 7.0, 7.0, 1.0, 9.0])  # two groups of 4
    # ranks in group 1: 2.0->2, 0.5->0, 1.0->1, 3.0->3; group 2 (ties by position): 7->1, 7->2, 1->0, 9->3
    assert group_quantiles(log_ppl, 4).tolist() == [2 / 3, 0.0, 1 / 3, 1.0, 1 / 3, 2 / 3, 0.0, 1.0]
    assert group_quantile_mask(log_ppl, 4, 0.0, 0.5).tolist() == [
        False, True, True, False, True, False, True, False]  # fmt: skip
    assert group_quantiles(torch.tensor([5.0, 6.0]), 1).tolist() == [0.0, 0.0]  # a group of one
