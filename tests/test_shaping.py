"""The shaping formulas of PAPER.md: hand-computed values, a slow loop reference, and laws."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests_shared import examples

from epx.shaping import (
    apply_shaping,
    position_bonus,
    ppl_weights,
    relative_positions,
    sequence_log_ppl,
)

F64 = torch.float64


def t64(x) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


def position_shaped_advantages(adv, mask, alpha, k=15.0, center=0.5):
    """The position method alone (always on)."""
    return apply_shaping(adv, mask, "position", pos_alpha=alpha, k=k, center=center)[0]


def shaped(adv, logps, mask, g, method, ppl_alpha=0.01, pos_alpha=0.1, position_active=True,
           favour="low", ppl_clip=(0.8, 1.2)):  # fmt: skip
    """`apply_shaping` with the PPL weights of `logps` (the behaviour log-probs) per group of g."""
    weights = None
    if method in ("ppl", "both"):
        weights = ppl_weights(sequence_log_ppl(logps, mask), g, ppl_alpha, ppl_clip, favour)
    return apply_shaping(adv, mask, method, weights=weights, pos_alpha=pos_alpha,
                         position_active=position_active)  # fmt: skip


# ---------------------------------------------------------------- sequence_log_ppl


def test_sequence_log_ppl_ignores_padding():
    logps = torch.tensor([[-1.0, -2.0, -3.0, 9.0], [-0.5, 9.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    # row 0: -(-1 - 2 - 3) / 3 = 2.0; row 1: -(-0.5) / 1 = 0.5; the 9s are padding
    expected = torch.tensor([2.0, 0.5])
    torch.testing.assert_close(sequence_log_ppl(logps, mask), expected)
    torch.testing.assert_close(sequence_log_ppl(logps, mask.bool()), expected)
    torch.testing.assert_close(sequence_log_ppl(logps, mask.float()), expected)


def test_sequence_log_ppl_empty_row_is_nan_and_nan_padding_ignored():
    logps = torch.tensor([[float("nan"), float("-inf")], [-2.0, float("nan")]])
    mask = torch.tensor([[0, 0], [1, 0]])
    # row 0 has no response token: no log-PPL (NaN); row 1: -(-2) / 1 = 2
    out = sequence_log_ppl(logps, mask)
    assert math.isnan(out[0]) and out[1].item() == 2.0


def test_ppl_weights_leave_a_masked_out_completion_out_of_the_group():
    # Group of 4, one completion masked out entirely (NaN log-PPL). The other three: 1, 2, 3.
    # Q1 = 1.5, Q3 = 2.5 (nanquantile over 1, 2, 3), IQR 1, bounds [0, 4]: all kept.
    # mean 2, population std sqrt((1 + 0 + 1) / 3) = sqrt(2/3) = 0.8165
    # w = -1.2247, 0, 1.2247; alpha 0.1 -> 1.12247, 1.0, 0.87753; the masked-out one: 1.0
    # (as a 0.0 log-PPL it would have been the group's lowest and shifted every other weight)
    got = ppl_weights(t64([1.0, float("nan"), 2.0, 3.0]), 4, 0.1)
    w = 1 / math.sqrt(2 / 3)
    torch.testing.assert_close(got, t64([1 + 0.1 * w, 1.0, 1.0, 1 - 0.1 * w]))
    # a group with nothing finite is all ones
    torch.testing.assert_close(ppl_weights(t64([float("nan")] * 2), 2, 0.1), t64([1.0, 1.0]))


def test_sequence_log_ppl_bf16_input_returns_float32():
    out = sequence_log_ppl(torch.full((2, 3), -0.5, dtype=torch.bfloat16), torch.ones(2, 3))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([0.5, 0.5]))


def test_sequence_log_ppl_rejects_shape_mismatch():
    with pytest.raises(AssertionError, match="same"):
        sequence_log_ppl(torch.zeros(2, 3), torch.ones(2, 4))


# ---------------------------------------------------------------- ppl_weights

# A group of 8 with one IQR outlier. Sorted: 1 2 3 4 5 6 7 30.
# Q1: position 0.25 * 7 = 1.75 -> 2 + 0.75 * (3 - 2) = 2.75
# Q3: position 0.75 * 7 = 5.25 -> 6 + 0.25 * (7 - 6) = 6.25
# IQR = 3.5; bounds [2.75 - 5.25, 6.25 + 5.25] = [-2.5, 11.5] -> 30 is the outlier.
# non-outliers 1..7: mean 4, population std sqrt((9 + 4 + 1 + 0 + 1 + 4 + 9) / 7) = sqrt(4) = 2
# w = (x - 4) / 2 = -1.5 -1 -0.5 0 0.5 1 1.5 and 13 for the outlier.
OUTLIER_GROUP = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 30.0]
OUTLIER_W = [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 13.0]


def test_ppl_weights_iqr_outlier_in_group_of_8():
    # alpha 0.1: 1 - 0.1 w = 1.15 1.10 1.05 1.00 0.95 0.90 0.85; outlier 1 - 1.3 = -0.3 -> clamp 0.8
    expected = [1.15, 1.10, 1.05, 1.00, 0.95, 0.90, 0.85, 0.8]
    torch.testing.assert_close(ppl_weights(t64(OUTLIER_GROUP), 8, 0.1), t64(expected))
    # paper's alpha 0.01: 1 - 0.01 w, the outlier 1 - 0.13 = 0.87 (the clamp does not bind)
    expected = [1 - 0.01 * w for w in OUTLIER_W]
    torch.testing.assert_close(ppl_weights(t64(OUTLIER_GROUP), 8, 0.01), t64(expected))


def test_ppl_weights_group_of_one_is_one():
    # IQR 0, std 0 -> floored to 1.0, w = 0, weight 1
    out = ppl_weights(t64([3.7, -2.0, 100.0]), 1, 0.5)
    torch.testing.assert_close(out, t64([1.0, 1.0, 1.0]))


def test_ppl_weights_all_equal_group_is_one():
    # std 0 -> 1.0; w = 0 for all
    torch.testing.assert_close(ppl_weights(t64([2.0] * 4), 4, 0.5), t64([1.0] * 4))


def test_ppl_weights_std_at_the_floor():
    e = 1e-8
    # values 1, 1+e: mean 1 + e/2, population std e/2 = 5e-9 <= 1e-6 -> 1.0, w = -+5e-9
    out = ppl_weights(t64([1.0, 1.0 + e, 1.0, 1.0 + e]), 4, 0.5)
    torch.testing.assert_close(out, t64([1.0 + 0.5 * e / 2, 1.0 - 0.5 * e / 2] * 2))
    # values 1, 1+1e-6: std 5e-7 <= 1e-6 -> 1.0 as well, w = -+5e-7 -> 1 +- 0.1 * 5e-7
    out = ppl_weights(t64([1.0, 1.0 + 1e-6, 1.0, 1.0 + 1e-6]), 4, 0.1)
    torch.testing.assert_close(out, t64([1.0 + 5e-8, 1.0 - 5e-8] * 2), rtol=0, atol=1e-12)
    # values 1, 1+4e-6: std 2e-6 > 1e-6 is kept -> w = -1, +1 -> 1.1, 0.9
    out = ppl_weights(t64([1.0, 1.0 + 4e-6, 1.0, 1.0 + 4e-6]), 4, 0.1)
    torch.testing.assert_close(out, t64([1.1, 0.9, 1.1, 0.9]))


def test_ppl_weights_bound_is_inclusive():
    # [0, 1, 2, 3, x], x >= 3: Q1 = 1 (position 1), Q3 = 3 (position 3), IQR 2, upper bound 6.
    # x = 6 sits on the bound and is kept: mean 12/5 = 2.4,
    # std sqrt((2.4^2 + 1.4^2 + 0.4^2 + 0.6^2 + 3.6^2) / 5) = sqrt(21.2 / 5) = sqrt(4.24) = 2.05913
    # weight(0) = 1 + 0.1 * 2.4 / 2.05913 = 1.116554; weight(6) = 1 - 0.1 * 3.6 / 2.05913 = 0.825169
    out = ppl_weights(t64([0.0, 1.0, 2.0, 3.0, 6.0]), 5, 0.1)
    assert out[0].item() == pytest.approx(1.116554, abs=1e-6)
    assert out[4].item() == pytest.approx(0.825169, abs=1e-6)
    # x = 6.5 is past it: stats over 0..3: mean 1.5, std sqrt(1.25) = 1.118034
    # weight(0) = 1 + 0.1 * 1.5 / 1.118034 = 1.134164; weight(6.5) = 1 - 0.1 * 5 / 1.118 -> 0.8
    out = ppl_weights(t64([0.0, 1.0, 2.0, 3.0, 6.5]), 5, 0.1)
    assert out[0].item() == pytest.approx(1.134164, abs=1e-6)
    assert out[4].item() == pytest.approx(0.8)


def test_ppl_weights_alpha_zero_is_one():
    torch.manual_seed(0)
    torch.testing.assert_close(ppl_weights(torch.randn(12), 4, 0.0), torch.ones(12))


def test_ppl_weights_groups_are_independent():
    group2 = [0.3, 0.1, 0.2, 5.0, 0.4, 0.0, 0.9, 0.5]
    both = ppl_weights(t64(OUTLIER_GROUP + group2), 8, 0.1)
    alone = ppl_weights(t64(OUTLIER_GROUP), 8, 0.1)
    changed = ppl_weights(t64([*OUTLIER_GROUP, 2.5, *group2[1:]]), 8, 0.1)
    torch.testing.assert_close(both[:8], alone)
    torch.testing.assert_close(changed[:8], alone)
    assert not torch.allclose(both[8:], changed[8:])
    # w is a z-score: an affine change of a group (x -> 3x - 1) leaves its weights unchanged
    affine = ppl_weights(t64(OUTLIER_GROUP + [x * 3 - 1 for x in group2]), 8, 0.1)
    torch.testing.assert_close(affine, both)


def test_ppl_weights_clamp_binds_for_large_alpha():
    # alpha 1: 1 - w = 2.5 2 1.5 1 0.5 0 -0.5 -12 -> clamp to [0.8, 1.2]
    out = ppl_weights(t64(OUTLIER_GROUP), 8, 1.0)
    torch.testing.assert_close(out, t64([1.2, 1.2, 1.2, 1.0, 0.8, 0.8, 0.8, 0.8]))
    out = ppl_weights(t64(OUTLIER_GROUP), 8, 1.0, clip=(0.5, 2.0))
    torch.testing.assert_close(out, t64([2.0, 2.0, 1.5, 1.0, 0.5, 0.5, 0.5, 0.5]))


def test_ppl_weights_high_variant():
    # 1 + 0.1 w = 0.85 0.90 0.95 1.00 1.05 1.10 1.15; outlier 1 + 1.3 = 2.3 -> 1.2
    out = ppl_weights(t64(OUTLIER_GROUP), 8, 0.1, favour="high")
    torch.testing.assert_close(out, t64([0.85, 0.90, 0.95, 1.0, 1.05, 1.10, 1.15, 1.2]))


def test_ppl_weights_dtypes():
    x = torch.tensor(OUTLIER_GROUP)
    assert ppl_weights(x, 8, 0.1).dtype == torch.float32
    assert ppl_weights(x.double(), 8, 0.1).dtype == torch.float64
    bf = ppl_weights(x.bfloat16(), 8, 0.01)
    assert bf.dtype == torch.float32  # a bf16 weight would round 1.015 to 1.0156
    torch.testing.assert_close(bf, torch.tensor([1 - 0.01 * w for w in OUTLIER_W]))


def test_ppl_weights_rejects_incomplete_groups():
    with pytest.raises(AssertionError, match="group_size=4"):
        ppl_weights(torch.zeros(6), 4, 0.1)


# ---------------------------------------------------------------- position shaping

# A length-4 response: r = 0, .25, .5, .75; sigmoid(15 (r - .5)) = sigmoid(-7.5, -3.75, 0, 3.75)
# = 1/(1+1808.042), 1/(1+42.521), 0.5, 1 - 0.022977 = 0.000552779, 0.022977370, 0.5, 0.977022630
SIG = [0.000552779, 0.022977370, 0.5, 0.977022630]
BONUS = [0.1 * s for s in SIG]  # alpha 0.1: 5.52779e-5, 2.297737e-3, 0.05, 0.0977023


def test_position_hand_values():
    adv = torch.tensor([1.0, -1.0, 0.0, 0.02])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]] * 4)
    out = position_shaped_advantages(adv, mask, alpha=0.1)
    expected = torch.tensor(
        [
            [1 + BONUS[0], 1 + BONUS[1], 1.05, 1 + BONUS[3], 0, 0],  # pushed up, late more
            [-1 - BONUS[0], -1 - BONUS[1], -1.05, -1 - BONUS[3], 0, 0],  # pushed more negative
            [0, 0, 0, 0, 0, 0],  # A = 0 unchanged
            # |A| = 0.02: cap 0.5 * 0.02 = 0.01 binds at r = .5 and .75 (0.05, 0.0977 > 0.01)
            [0.02 + BONUS[0], 0.02 + BONUS[1], 0.03, 0.03, 0, 0],
        ]
    )
    torch.testing.assert_close(out, expected)
    bonus = position_bonus(adv, mask, alpha=0.1)
    torch.testing.assert_close(bonus[3], torch.tensor([BONUS[0], BONUS[1], 0.01, 0.01, 0, 0]))


def test_position_counts_valid_tokens_not_columns():
    # non-prefix mask: valid tokens at columns 0, 2, 3, 5 -> r = 0, .25, .5, .75 there
    mask = torch.tensor([[1, 0, 1, 1, 0, 1]])
    r = relative_positions(mask)
    torch.testing.assert_close(r, torch.tensor([[0.0, 0, 0.25, 0.5, 0, 0.75]]))
    out = position_shaped_advantages(torch.tensor([1.0]), mask, alpha=0.1)
    expected = torch.tensor([[1 + BONUS[0], 0, 1 + BONUS[1], 1.05, 0, 1 + BONUS[3]]])
    torch.testing.assert_close(out, expected)


def test_position_one_and_two_dim_advantages_agree():
    torch.manual_seed(0)
    adv = torch.randn(5)
    mask = (torch.rand(5, 7) > 0.3).int()
    one = position_shaped_advantages(adv, mask, 0.1)
    two = position_shaped_advantages(adv[:, None].expand(5, 7).clone(), mask, 0.1)
    torch.testing.assert_close(one, two)


def test_position_padding_is_exactly_zero_even_for_2d_input():
    adv = torch.full((2, 3), 7.0)
    out = position_shaped_advantages(adv, torch.tensor([[1, 0, 0], [0, 0, 0]]), 0.1)
    assert out[0, 1:].eq(0).all() and out[1].eq(0).all()


# ---------------------------------------------------------------- apply_shaping


def test_apply_shaping_both_weights_first_then_bonus_on_weighted():
    # one group of 2: lnPPL 1 and 3 -> mean 2, std 1 -> w = -1, 1 -> alpha 0.1: 1.1, 0.9
    logps = torch.tensor([[-1.0, -1.0, -1.0, -1.0], [-3.0, -3.0, -3.0, -3.0]])
    mask = torch.ones(2, 4)
    adv = torch.tensor([0.02, -0.02])
    out, info = shaped(adv, logps, mask, 2, "both", ppl_alpha=0.1, pos_alpha=0.1)
    torch.testing.assert_close(info["ppl_weight"], torch.tensor([1.1, 0.9]))
    # weighted: 0.022, -0.018; caps 0.011, 0.009 bind at r = .5, .75
    row0 = [0.022 + BONUS[0], 0.022 + BONUS[1], 0.033, 0.033]
    row1 = [-0.018 - BONUS[0], -0.018 - BONUS[1], -0.027, -0.027]
    torch.testing.assert_close(out, torch.tensor([row0, row1]))
    torch.testing.assert_close(sequence_log_ppl(logps, mask), torch.tensor([1.0, 3.0]))


def test_apply_shaping_none_and_inactive_position_leave_advantages():
    adv = torch.tensor([0.5, -1.5])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    expected = torch.tensor([[0.5, 0.5, 0.0], [-1.5, 0.0, 0.0]])
    for method in ("none", "position"):
        out, info = apply_shaping(adv, mask, method, position_active=False)
        torch.testing.assert_close(out, expected)
        assert "position_bonus" not in info and "ppl_weight" not in info


def test_apply_shaping_unknown_method_lists_known():
    with pytest.raises(ValueError, match="none, ppl, position, both"):
        apply_shaping(torch.zeros(2), torch.ones(2, 2), "pll")


def test_gathered_log_ppl_gives_single_process_weights():
    """Two "ranks" hold halves of a batch of 3 groups of 4 (group 2 straddles them), each padded to
    its own length; gathering log-PPL, weighting the whole groups and slicing = one process."""
    torch.manual_seed(1)
    g, b, t = 4, 12, 9
    logps = -torch.rand(b, t) * 3
    mask = (torch.arange(t)[None, :] < torch.randint(1, t + 1, (b, 1))).int()
    adv = torch.randn(b)
    full, _ = shaped(adv, logps, mask, g, "both", ppl_alpha=0.1)

    ranks = [slice(0, 6), slice(6, 12)]
    local = [(logps[s, : mask[s].sum(1).max()], mask[s, : mask[s].sum(1).max()]) for s in ranks]
    gathered = torch.cat([sequence_log_ppl(lp, m) for lp, m in local])  # what all_gather gives
    weights = ppl_weights(gathered, g, 0.1)
    for s, (_, m) in zip(ranks, local, strict=True):
        out, _ = apply_shaping(adv[s], m, "both", weights=weights[s])
        torch.testing.assert_close(out, full[s, : m.shape[1]])
    # weighting rank 0's half of group 2 (rows 4, 5) on its own would give other weights
    assert not torch.allclose(ppl_weights(gathered[4:6], 2, 0.1), weights[4:6])


# ---------------------------------------------------------------- loop reference vs vectorised


def ref_quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (pos - lo) * (s[hi] - s[lo])


def ref_shaping(adv, logps, mask, g, method, ppl_alpha, pos_alpha, active, favour):
    """PAPER.md literally: loops over groups, responses and tokens, in Python floats."""
    b, t = len(mask), len(mask[0])
    lnppl = []
    for i in range(b):
        vals = [logps[i][j] for j in range(t) if mask[i][j]]
        lnppl.append(-sum(vals) / len(vals) if vals else None)  # no response token: none
    weight = [1.0] * b
    if method in ("ppl", "both"):
        for start in range(0, b, g):
            xs = [x for x in lnppl[start : start + g] if x is not None]
            if not xs:
                continue
            q1, q3 = ref_quantile(xs, 0.25), ref_quantile(xs, 0.75)
            lo, hi = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
            kept = [x for x in xs if lo <= x <= hi] or xs
            mean, std = statistics.fmean(kept), statistics.pstdev(kept)
            std = 1.0 if std <= 1e-6 else std
            for i, x in enumerate(lnppl[start : start + g]):
                if x is None:
                    continue  # weight 1: it has no token to weigh
                w = (x - mean) / std
                raw = 1 - ppl_alpha * w if favour == "low" else 1 + ppl_alpha * w
                weight[start + i] = min(max(raw, 0.8), 1.2)
    out = [[0.0] * t for _ in range(b)]
    for i in range(b):
        n = sum(1 for j in range(t) if mask[i][j])
        k = 0
        for j in range(t):
            if not mask[i][j]:
                continue
            a = adv[i] * weight[i]
            if method in ("position", "both") and active:
                bonus = min(pos_alpha / (1 + math.exp(-15 * (k / n - 0.5))), 0.5 * abs(a))
                a += math.copysign(bonus, a) if a != 0 else 0.0
            out[i][j] = a
            k += 1
    return out


@st.composite
def batches(draw):
    g = draw(st.integers(1, 6))
    b = g * draw(st.integers(1, 3))
    t = draw(st.integers(1, 6))
    value = st.one_of(st.integers(-40, 0).map(lambda v: v / 4), st.floats(-10, 0))
    logps = [[draw(value) for _ in range(t)] for _ in range(b)]
    mask = [[draw(st.booleans()) for _ in range(t)] for _ in range(b)]
    adv = [draw(st.one_of(st.just(0.0), st.floats(-3, 3))) for _ in range(b)]
    return g, adv, logps, mask


ALPHA = st.one_of(st.just(0.0), st.sampled_from([0.01, 0.1, 1.0]), st.floats(0, 2))


@settings(max_examples=examples(150), deadline=None)
@given(
    batches(),
    st.sampled_from(["none", "ppl", "position", "both"]),
    ALPHA,
    ALPHA,
    st.booleans(),
    st.sampled_from(["low", "high"]),
)
def test_vectorised_equals_loop_reference(batch, method, ppl_alpha, pos_alpha, active, favour):
    g, adv, logps, mask = batch
    out, _ = shaped(
        t64(adv), t64(logps), torch.tensor(mask), g, method, ppl_alpha=ppl_alpha,
        pos_alpha=pos_alpha, position_active=active, favour=favour,
    )  # fmt: skip
    expected = ref_shaping(adv, logps, mask, g, method, ppl_alpha, pos_alpha, active, favour)
    torch.testing.assert_close(out, t64(expected), rtol=1e-9, atol=1e-12)


@settings(max_examples=examples(100), deadline=None)
@given(batches(), st.sampled_from(["none", "ppl", "position", "both"]), ALPHA, ALPHA)
def test_laws(batch, method, ppl_alpha, pos_alpha):
    g, adv, logps, mask = batch
    a, m = t64(adv), torch.tensor(mask)
    base = a[:, None] * m  # the unshaped per-token advantages, zero on padding
    out, _ = shaped(a, t64(logps), m, g, method, ppl_alpha=ppl_alpha, pos_alpha=pos_alpha)
    assert out[~m].eq(0).all()  # padding stays exactly zero
    assert torch.equal(out.sign(), base.sign())  # the sign is preserved, A = 0 stays 0
    zero, _ = shaped(a, t64(logps), m, g, method, ppl_alpha=0.0, pos_alpha=0.0)
    assert torch.equal(zero, base)  # alpha 0 leaves the advantages unchanged
    pos = position_shaped_advantages(a, m, pos_alpha)
    assert (pos.abs() >= base.abs()).all()  # position only pushes away from zero
    assert (pos.abs() <= 1.5 * base.abs() + 1e-12).all()  # by at most half of |A|
