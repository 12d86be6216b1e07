"""Rising/plateau stage detector over a logged series (one detector for the trainer and analysis).

The paper (docs/method.md): in the rising stage reward climbs fast while entropy drops fast; in the plateau stage
reward grows slowly and entropy flattens. The rules (t = 0-based index of a logged step):

1. slopes: s_t is the least-squares slope of the last ``window`` rewards (none until the window is
   full); e_t likewise over the window's finite entropies (NaN/None skipped; with fewer than
   max(2, window // 2) of them e_t is undefined and the reward alone decides).
2. peaks so far: S_t = max s (fastest rise), D_t = max -e (fastest entropy drop).
3. condition at t: s_t <= reward_slope_frac * S_t and, where e_t is defined,
   -e_t <= entropy_slope_frac * D_t; a part whose peak is <= 0 (never rose / never fell) holds.
   Comparisons allow a relative 1e-9 of the peak, so a noiseless tie (a slope exactly at the
   fraction) holds however the float sums round.
4. the plateau is confirmed once the condition has held on ``patience`` consecutive steps, all at
   t >= min_steps; it begins at the first step of that run and never ends.

Causal: step t uses values up to t only, so `StageTracker` (online, the trainer) and
`detect_plateau` (offline, analysis) agree; the reported stage switches at the confirming step,
plateau_step + patience - 1. Tolerance with the defaults (tests/test_stage.py): for a reward that
rises linearly by 0.5 over b steps (b = 40..100) then by 0.0005 a step, entropy falling then flat,
with Gaussian noise of sd up to 0.02, the plateau start is in [b, b + window + patience], that is
[b, b + 30]; noiseless it is b + 13 or b + 14 (a window's slope falls to 30% of the peak once about
two thirds of the window lies past b). A series flat from the start is plateau from max(min_steps,
window - 1) when noiseless; with noise its peak slope is noise and the call comes later (within 120
steps in the tests). Slow rises with noisy steps need a larger window: the window's slope has sd
noise * sqrt(12 / window^3), which should stay well under the rising slope.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class StageParams:
    """Parameters of the rising/plateau detector."""

    window: int = 20
    """Trailing steps the least-squares slopes are fitted over (the smoothing). In training a
    step is an optimizer step (TRL's global step), fed with the completions it trained on."""
    min_steps: int = 20
    """The plateau never begins before this step index."""
    reward_slope_frac: float = 0.3
    """Reward part: the slope has fallen to at most this fraction of its peak so far."""
    entropy_slope_frac: float = 0.3
    """Entropy part: the drop rate has fallen to at most this fraction of its peak so far."""
    patience: int = 10
    """Consecutive steps the condition must hold before the plateau is called."""

    def __post_init__(self) -> None:
        if self.window < 2 or self.patience < 1 or self.min_steps < 0:
            raise ValueError(
                f"stage params need window >= 2, patience >= 1, min_steps >= 0: {self}"
            )


def _slope(values: Sequence[float]) -> float | None:
    """Least-squares slope of the finite values against their index; None with fewer than 2."""
    pts = [(i, v) for i, v in enumerate(values) if math.isfinite(v)]
    if len(pts) < 2:
        return None
    mx = sum(i for i, _ in pts) / len(pts)
    my = sum(v for _, v in pts) / len(pts)
    sxx = sum((i - mx) ** 2 for i, _ in pts)
    return sum((i - mx) * (v - my) for i, v in pts) / sxx


TIE = 1e-9
"""Relative slack of the slope comparisons: exact ties must not depend on float rounding."""


def _under(value: float, frac: float, peak: float) -> bool:
    """Rule 3 for one part: the peak never rose above 0, or value <= frac * peak (ties hold)."""
    return peak <= 0 or value <= (frac + TIE) * peak


def _finite(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _json(x: float) -> float | None:
    return x if math.isfinite(x) else None


class StageTracker:
    """Online detector: feed one logged step at a time; 0 rising, 1 plateau.

    Keeps the last ``window`` values and the running peaks only; `state` is JSON-serialisable.
    """

    def __init__(self, params: StageParams | None = None) -> None:
        self.params = params or StageParams()
        self.step = 0  # number of values seen; the next update is step index `step`
        self.plateau_step: int | None = None
        self._rewards: deque[float] = deque(maxlen=self.params.window)
        self._entropies: deque[float] = deque(maxlen=self.params.window)
        self._peak_rise: float | None = None
        self._peak_drop: float | None = None
        self._run_start: int | None = None

    @property
    def stage(self) -> int:
        """0 rising, 1 plateau (from the confirming step on)."""
        return 0 if self.plateau_step is None else 1

    def update(self, reward: float | None, entropy: float | None = None) -> int:
        """Add the values logged at the next step; returns the stage (0 rising, 1 plateau)."""
        t, p = self.step, self.params
        self.step += 1
        if self.plateau_step is not None:
            return 1
        self._rewards.append(_finite(reward))
        self._entropies.append(_finite(entropy))
        if len(self._rewards) < p.window:
            return 0
        rise = _slope(self._rewards)
        holds = rise is not None  # non-finite rewards are skipped like entropies
        if rise is not None:
            self._peak_rise = rise if self._peak_rise is None else max(self._peak_rise, rise)
            holds = _under(rise, p.reward_slope_frac, self._peak_rise)
        slope = _slope(self._entropies)
        n_entropy = sum(math.isfinite(e) for e in self._entropies)
        if slope is not None and n_entropy >= max(2, p.window // 2):
            drop = -slope
            self._peak_drop = drop if self._peak_drop is None else max(self._peak_drop, drop)
            holds = holds and _under(drop, p.entropy_slope_frac, self._peak_drop)
        if not holds or t < p.min_steps:
            self._run_start = None
            return 0
        if self._run_start is None:
            self._run_start = t
        if t - self._run_start + 1 >= p.patience:
            self.plateau_step = self._run_start
            return 1
        return 0

    def state(self) -> dict[str, Any]:
        """JSON-serialisable state (NaN stored as None), for checkpoints."""
        return {
            "params": asdict(self.params),
            "step": self.step,
            "plateau_step": self.plateau_step,
            "rewards": [_json(r) for r in self._rewards],
            "entropies": [_json(e) for e in self._entropies],
            "peak_rise": self._peak_rise,
            "peak_drop": self._peak_drop,
            "run_start": self._run_start,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore `state`; a ValueError if it was saved with other params (the run's detector)."""
        saved = StageParams(**state["params"])
        if saved != self.params:
            raise ValueError(
                f"the stage detector was saved with {saved}, not {self.params}; "
                "resume with the same stage parameters"
            )
        self.step = int(state["step"])
        self.plateau_step = state["plateau_step"]
        self._rewards = deque((_finite(r) for r in state["rewards"]), maxlen=saved.window)
        self._entropies = deque((_finite(e) for e in state["entropies"]), maxlen=saved.window)
        self._peak_rise = state["peak_rise"]
        self._peak_drop = state["peak_drop"]
        self._run_start = state["run_start"]

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> StageTracker:
        """A tracker restored from `state`, with the params saved in it."""
        tracker = cls(StageParams(**state["params"]))
        tracker.load_state(state)
        return tracker


def _entropy_at(entropy: Sequence[float | None] | None, n: int) -> list[float | None]:
    if entropy is None:
        return [None] * n
    assert len(entropy) == n, f"entropy has {len(entropy)} values, reward has {n}"
    return list(entropy)


def stage_series(
    reward: Sequence[float],
    entropy: Sequence[float | None] | None = None,
    params: StageParams | None = None,
) -> list[int]:
    """The stage reported at each step: 0 rising, 1 plateau (from the confirming step on)."""
    tracker = StageTracker(params)
    return [
        tracker.update(r, e) for r, e in zip(reward, _entropy_at(entropy, len(reward)), strict=True)
    ]


def detect_plateau(
    reward: Sequence[float],
    entropy: Sequence[float | None] | None = None,
    params: StageParams | None = None,
) -> int | None:
    """Index of the step where the plateau begins, or None if it is not confirmed by the end."""
    tracker = StageTracker(params)
    for r, e in zip(reward, _entropy_at(entropy, len(reward)), strict=True):
        tracker.update(r, e)
    return tracker.plateau_step
