"""The rising/plateau detector on synthetic series with a known breakpoint, online == offline."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tests_shared import examples

from epx.stage import TIE, StageParams, StageTracker, detect_plateau, stage_series

P = StageParams()  # window 20, min_steps 20, fractions 0.3, patience 10
TOLERANCE = P.window + P.patience  # the stated tolerance: start in [b, b + 30]


def synthetic(b: int, n: int, noise: float, seed: int, post_slope: float = 0.0005):
    """Reward 0.1 -> 0.6 linearly over b steps, then +post_slope a step; entropy 1.0 -> 0.4 then
    flat; Gaussian noise (sd `noise` on reward, noise / 2 on entropy)."""
    rng = random.Random(seed)
    reward = [0.1 + 0.5 * min(t, b) / b + post_slope * max(0, t - b) for t in range(n)]
    entropy = [1.0 - 0.6 * min(t, b) / b for t in range(n)]
    reward = [r + rng.gauss(0, noise) for r in reward]
    entropy = [e + rng.gauss(0, noise / 2) for e in entropy]
    return reward, entropy


@pytest.mark.parametrize("b", [40, 60, 100])
@pytest.mark.parametrize("noise", [0.0, 0.01, 0.02])
@pytest.mark.parametrize("with_entropy", [True, False])
def test_plateau_found_within_tolerance_of_breakpoint(b, noise, with_entropy):
    for seed in range(5):
        reward, entropy = synthetic(b, b + 80, noise, seed)
        start = detect_plateau(reward, entropy if with_entropy else None, P)
        assert start is not None and b <= start <= b + TOLERANCE, (seed, start)


def test_noiseless_lag_is_about_two_thirds_of_a_window():
    # the window's slope falls to 30% of the peak once ~13 of its 20 points lie past the break
    for b in (40, 60, 100):
        reward, entropy = synthetic(b, b + 80, 0.0, 0)
        assert b + 12 <= detect_plateau(reward, entropy, P) <= b + 15


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_purely_rising_series_is_never_plateau(noise):
    for seed in range(5):
        # still rising at step 300: reward +0.5/300 = 0.00167 a step, entropy -0.002 a step
        reward, entropy = synthetic(300, 300, noise, seed)
        assert detect_plateau(reward, entropy, P) is None
        assert detect_plateau(reward, None, P) is None


def test_flat_series_is_plateau_from_min_steps():
    # noiseless: both slopes 0, the peaks 0 -> the condition holds from the first full window
    # (t = 19) but never before min_steps = 20; confirmed after patience 10 -> stage 1 at t = 29
    flat = [0.3] * 60
    assert detect_plateau(flat, flat, P) == 20
    stages = stage_series(flat, flat, P)
    assert stages[28] == 0 and stages[29:] == [1] * 31
    assert detect_plateau(flat, None, StageParams(min_steps=0)) == 19  # window - 1
    # noisy: the peak slope is noise, and a run of 10 slopes under 30% of it comes soon after
    for seed in range(5):
        rng = random.Random(seed)
        reward = [0.3 + rng.gauss(0, 0.02) for _ in range(200)]
        entropy = [0.8 + rng.gauss(0, 0.01) for _ in range(200)]
        start = detect_plateau(reward, entropy, P)
        assert start is not None and 20 <= start <= 120, (seed, start)


def test_entropy_still_dropping_delays_the_plateau():
    # reward flattens at 40 but entropy keeps falling until 100: no plateau before 100
    reward, _ = synthetic(40, 200, 0.0, 0)
    entropy = [1.0 - 0.006 * min(t, 100) for t in range(200)]
    assert detect_plateau(reward, None, P) < 100
    start = detect_plateau(reward, entropy, P)
    assert start is not None and 100 <= start <= 100 + TOLERANCE


def test_missing_entropy_values():
    reward, entropy = synthetic(60, 140, 0.01, 0)
    alone = detect_plateau(reward, None, P)
    assert detect_plateau(reward, [None] * 140, P) == alone
    assert detect_plateau(reward, [math.nan] * 140, P) == alone
    # every third value missing: the slope is fitted over the others
    sparse = [None if t % 3 == 0 else e for t, e in enumerate(entropy)]
    start = detect_plateau(reward, sparse, P)
    assert start is not None and 60 <= start <= 60 + TOLERANCE
    # fewer than window // 2 = 10 finite values in every window: the reward alone decides
    rare = [e if t % 3 == 0 else math.nan for t, e in enumerate([5.0 - t for t in range(140)])]
    assert detect_plateau(reward, rare, P) == alone


def test_min_steps_is_respected():
    flat = [0.0] * 100
    for min_steps in (0, 20, 35, 50):
        start = detect_plateau(flat, None, StageParams(min_steps=min_steps))
        assert start == max(min_steps, P.window - 1)


# ---------------------------------------------------------------- online == offline, causal


def reference_stages(reward, entropy, p: StageParams) -> list[int]:
    """The rules of epx/stage.py's docstring, recomputed from the whole prefix at every step."""
    stages, run, plateau = [], 0, False
    for t in range(len(reward)):
        if not plateau and t >= p.window - 1:
            rises, drops = [], []
            for u in range(p.window - 1, t + 1):
                x = np.arange(p.window)
                rises.append(np.polyfit(x, reward[u - p.window + 1 : u + 1], 1)[0])
                e = np.array(entropy[u - p.window + 1 : u + 1], dtype=float)
                ok = np.isfinite(e)
                drops.append(-np.polyfit(x[ok], e[ok], 1)[0] if ok.sum() >= p.window // 2 else None)
            peak = max(rises)
            holds = peak <= 0 or rises[-1] <= (p.reward_slope_frac + TIE) * peak
            if drops[-1] is not None:
                peak_drop = max(d for d in drops if d is not None)
                holds = holds and (
                    peak_drop <= 0 or drops[-1] <= (p.entropy_slope_frac + TIE) * peak_drop
                )
            run = run + 1 if holds and t >= p.min_steps else 0
            plateau = run >= p.patience
        stages.append(int(plateau))
    return stages


@settings(max_examples=examples(25), deadline=None)
@given(
    b=st.integers(25, 70),
    noise=st.sampled_from([0.0, 0.01, 0.03, 0.1]),
    seed=st.integers(0, 10_000),
    missing=st.sampled_from([0.0, 0.3]),
    window=st.integers(4, 15),
    patience=st.integers(1, 6),
)
# noiseless, t = 40: the entropy drop is exactly 0.3 of its peak, and numpy and epx round apart
@example(b=35, noise=0.0, seed=582, missing=0.3, window=7, patience=1)
def test_tracker_equals_reference_rules(b, noise, seed, missing, window, patience):
    p = StageParams(window=window, patience=patience, min_steps=10)
    reward, entropy = synthetic(b, 100, noise, seed)
    rng = random.Random(seed)
    entropy = [None if rng.random() < missing else e for e in entropy]
    entropy_nan = [math.nan if e is None else e for e in entropy]
    expected = reference_stages(reward, entropy_nan, p)
    assert stage_series(reward, entropy, p) == expected
    start = detect_plateau(reward, entropy, p)
    assert (start is None) == (1 not in expected)
    if start is not None:
        assert expected.index(1) == start + patience - 1  # confirmed patience - 1 steps later


def test_decision_is_causal():
    reward, entropy = synthetic(50, 120, 0.02, 3)
    stages = stage_series(reward, entropy, P)
    for t in range(0, 120, 7):
        future = [9.0 * (i % 2) for i in range(40)]  # wild values after t change nothing up to t
        again = stage_series(reward[: t + 1] + future, entropy[: t + 1] + future, P)
        assert again[: t + 1] == stages[: t + 1]
        assert (detect_plateau(reward[: t + 1], entropy[: t + 1], P) is not None) == stages[t]


def test_tracker_update_matches_stage_series_and_plateau_step():
    reward, entropy = synthetic(60, 140, 0.01, 1)
    tracker = StageTracker(P)
    online = [tracker.update(r, e) for r, e in zip(reward, entropy, strict=True)]
    assert online == stage_series(reward, entropy, P)
    assert tracker.stage == 1 and tracker.plateau_step == detect_plateau(reward, entropy, P)


@pytest.mark.parametrize("cut", [0, 5, 19, 40, 70, 75, 130])
def test_state_round_trip_mid_series_continues_identically(cut):
    reward, entropy = synthetic(60, 140, 0.01, 2)
    entropy = [None if t % 4 == 0 else e for t, e in enumerate(entropy)]
    whole = StageTracker(P)
    expected = [whole.update(r, e) for r, e in zip(reward, entropy, strict=True)]

    first = StageTracker(P)
    got = [first.update(r, e) for r, e in zip(reward[:cut], entropy[:cut], strict=True)]
    saved = json.dumps(first.state(), allow_nan=False)  # strict JSON, NaN stored as null
    for resumed in (StageTracker.from_state(json.loads(saved)), StageTracker(P)):
        resumed.load_state(json.loads(saved))
        rest = [resumed.update(r, e) for r, e in zip(reward[cut:], entropy[cut:], strict=True)]
        assert got + rest == expected
        assert resumed.plateau_step == whole.plateau_step
        assert resumed.state() == whole.state()


def test_load_state_with_other_params_is_refused():
    state = StageTracker(P).state()
    with pytest.raises(ValueError, match="same stage parameters"):
        StageTracker(StageParams(window=10)).load_state(state)


def test_state_stays_small():
    tracker = StageTracker(P)
    for t in range(1000):
        tracker.update(0.001 * t, 1.0 - 0.0005 * t)
    state = tracker.state()
    assert len(state["rewards"]) == len(state["entropies"]) == P.window


def test_params_are_validated():
    with pytest.raises(ValueError, match="window >= 2"):
        StageParams(window=1)
