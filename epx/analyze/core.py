"""The paper's analysis as pure functions over a run's records (numpy; no files, no plots).

Inputs: the logged steps of `metrics.jsonl` (dicts with `step`) and the rollout records
(`StepRollouts`, one per saved step). Stages come from `epx.stage.detect_plateau`, the detector
the trainer's `plateau` schedule uses, re-run here with any parameters. A step belongs to the
rising stage before the plateau's first step and to the plateau from it on.

Definitions (the tests check each on a small fixture by hand):

- PPL buckets: within each saved step, samples by log-PPL quartile of their rank (bucket 0 = the
  lowest quarter; tied samples share the bucket of their mean rank; a step whose samples all tie
  has no order and is left out); per stage and bucket the accuracy (mean correctness), the mean sample entropy, the
  mean token log-prob, and the change of that mean token log-prob from one saved step to the
  next (a pair counts for the stage of its later step).
- Position deciles: tokens by relative position t/|o| (decile min(9, floor(10 r))); per stage and
  decile the mean token entropy and the share of high-entropy tokens, a token being high-entropy
  when its entropy is in the top 20% of its step's tokens (at or above the step's 80th percentile).
- Covariance (Cui et al. 2025): per saved step, the population covariance of token log-prob and
  token advantage over all response tokens, and over the high-entropy ones.
- Stage summary: per stage its steps, entropy drop (mean of its first 3 logged values minus mean
  of its last 3), accuracy gain (last 3 minus first 3; held-out: its last evaluation minus its
  first), the change
  of positive and negative sample entropy, and the high-entropy share of the last position decile.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from epx.stage import StageParams, detect_plateau

STAGES = ("rising", "plateau")
BUCKETS = 4
DECILES = 10
HIGH_ENTROPY_TOP = 0.2
EDGE = 3  # logged values averaged at each end of a stage


@dataclass
class StepRollouts:
    """One saved step's rollout records: per sample (S,) and per token (N,) arrays."""

    step: int
    correct: np.ndarray
    entropy: np.ndarray
    log_ppl: np.ndarray
    advantage: np.ndarray
    length: np.ndarray
    token_sample: np.ndarray | None = None  # (N,) the sample each token belongs to
    token_entropy: np.ndarray | None = None
    token_logprob: np.ndarray | None = None
    token_position: np.ndarray | None = None
    token_advantage: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def has_tokens(self) -> bool:
        return self.token_entropy is not None and len(self.token_entropy) > 0


def logged_steps(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training steps' records (those with a reward), in step order."""
    return sorted(
        (r for r in records if isinstance(r.get("reward"), int | float)), key=lambda r: r["step"]
    )


def series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the records holding a finite `key`."""
    points = [(r["step"], float(r[key])) for r in records
              if isinstance(r.get(key), int | float) and math.isfinite(r[key])]  # fmt: skip
    return [p[0] for p in points], [p[1] for p in points]


DETECTOR_INPUTS = ("stage/reward", "stage/entropy")  # what the trainer's detector took per step


def plateau_start(records: list[dict[str, Any]], params: StageParams) -> int | None:
    """The step where the plateau begins: the detector over the series the trainer fed it
    (`stage/reward`, `stage/entropy`, one per optimizer step), or for runs that logged none,
    over the logged reward and entropy."""
    reward_key, entropy_key = DETECTOR_INPUTS
    steps = sorted((r for r in records if reward_key in r), key=lambda r: r["step"])
    if not steps:
        steps, reward_key, entropy_key = logged_steps(records), "reward", "entropy"

    def value(record: dict[str, Any], key: str) -> float | None:
        v = record.get(key)
        return float(v) if isinstance(v, int | float) else None

    reward = [value(r, reward_key) for r in steps]
    entropy = [value(r, entropy_key) for r in steps]
    index = detect_plateau(reward, entropy, params)  # type: ignore[arg-type]
    return None if index is None else int(steps[index]["step"])


def stage_of(step: int, boundary: int | None) -> str:
    return "plateau" if boundary is not None and step >= boundary else "rising"


def _mean(values: Any) -> float:
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    return float(array.mean()) if array.size else math.nan


def buckets_by_quantile(values: np.ndarray, count: int = BUCKETS) -> np.ndarray:
    """Bucket 0..count-1 of each value by its rank: floor(count * rank / n), tied values sharing
    the bucket of their mean rank; -1 for every value when all tie (no order to bucket by)."""
    if values.size == 0:
        return np.zeros(0, dtype=int)
    _, group, sizes = np.unique(values.astype(np.float64), return_inverse=True, return_counts=True)
    if sizes.size == 1:
        return np.full(values.size, -1, dtype=int)
    mean_rank = np.cumsum(sizes) - sizes + (sizes - 1) / 2
    bucket = np.minimum(count - 1, np.floor(count * mean_rank / values.size)).astype(int)
    return bucket[group.reshape(-1)]


def ppl_bucket_table(
    rollouts: list[StepRollouts], boundary: int | None, count: int = BUCKETS
) -> list[dict[str, Any]]:
    """Per stage and log-PPL bucket: samples, accuracy, entropy, token log-prob, its change."""
    per_step: list[tuple[int, str, dict[int, dict[str, float]]]] = []
    for step in sorted(rollouts, key=lambda r: r.step):
        bucket = buckets_by_quantile(step.log_ppl, count)
        cells: dict[int, dict[str, float]] = {}
        for b in range(count):
            chosen = bucket == b
            logprob = math.nan
            if step.has_tokens:
                in_bucket = np.isin(step.token_sample, np.flatnonzero(chosen))
                logprob = _mean(step.token_logprob[in_bucket])
            cells[b] = {"samples": int(chosen.sum()), "correct": step.correct[chosen],
                        "entropy": step.entropy[chosen], "logprob": logprob}  # fmt: skip
        per_step.append((step.step, stage_of(step.step, boundary), cells))
    rows = []
    for stage in STAGES:
        steps = [(s, cells) for s, st, cells in per_step if st == stage]
        if not steps:
            continue
        pairs = [(earlier, later) for (_, _, earlier), (_, later_stage, later)
                 in itertools.pairwise(per_step) if later_stage == stage]  # fmt: skip
        for b in range(count):
            deltas = [later[b]["logprob"] - earlier[b]["logprob"] for earlier, later in pairs]
            rows.append({
                "stage": stage,
                "bucket": b,
                "samples": sum(cells[b]["samples"] for _, cells in steps),
                "accuracy": _mean(np.concatenate([cells[b]["correct"] for _, cells in steps])),
                "entropy": _mean(np.concatenate([cells[b]["entropy"] for _, cells in steps])),
                "logprob": _mean([cells[b]["logprob"] for _, cells in steps]),
                "logprob_change": _mean(deltas),
            })  # fmt: skip
    return rows


def high_entropy(token_entropy: np.ndarray, top: float = HIGH_ENTROPY_TOP) -> np.ndarray:
    """Tokens in the top `top` share of the step's entropies (at or above its quantile)."""
    if token_entropy.size == 0:
        return np.zeros(0, dtype=bool)
    return token_entropy >= np.quantile(token_entropy.astype(np.float64), 1.0 - top)


def deciles(position: np.ndarray) -> np.ndarray:
    return np.minimum(DECILES - 1, np.floor(position * DECILES + 1e-9)).astype(int)


def position_table(rollouts: list[StepRollouts], boundary: int | None) -> list[dict[str, Any]]:
    """Per stage and relative-position decile: tokens, mean entropy, high-entropy share."""
    acc: dict[tuple[str, int], list[np.ndarray]] = {}
    for step in rollouts:
        if not step.has_tokens:
            continue
        high = high_entropy(step.token_entropy)
        decile = deciles(step.token_position)
        stage = stage_of(step.step, boundary)
        for d in range(DECILES):
            chosen = decile == d
            acc.setdefault((stage, d), []).append(
                np.stack([step.token_entropy[chosen], high[chosen].astype(np.float64)])
            )
    rows = []
    for (stage, d), parts in sorted(acc.items(), key=lambda kv: (STAGES.index(kv[0][0]), kv[0][1])):
        joined = np.concatenate(parts, axis=1)
        rows.append({"stage": stage, "decile": d, "tokens": int(joined.shape[1]),
                     "entropy": _mean(joined[0]), "high_share": _mean(joined[1])})  # fmt: skip
    return rows


def _covariance(x: np.ndarray, y: np.ndarray) -> float:
    if x.size == 0:
        return math.nan
    x, y = x.astype(np.float64), y.astype(np.float64)
    return float(((x - x.mean()) * (y - y.mean())).mean())


def covariance_table(rollouts: list[StepRollouts]) -> list[dict[str, Any]]:
    """Per saved step: Cov(token log-prob, advantage) overall and over high-entropy tokens."""
    rows = []
    for step in sorted(rollouts, key=lambda r: r.step):
        if not step.has_tokens:
            continue
        high = high_entropy(step.token_entropy)
        rows.append({
            "step": step.step,
            "tokens": int(step.token_entropy.size),
            "cov": _covariance(step.token_logprob, step.token_advantage),
            "cov_high_entropy": _covariance(step.token_logprob[high], step.token_advantage[high]),
        })  # fmt: skip
    return rows


def _ends(values: list[float]) -> tuple[float, float]:
    return _mean(values[:EDGE]), _mean(values[-EDGE:])


def stage_summary(
    records: list[dict[str, Any]],
    rollouts: list[StepRollouts],
    boundary: int | None,
    eval_key: str | None = None,
) -> list[dict[str, Any]]:
    """One row per stage present in the run (see the module docstring)."""
    steps = logged_steps(records)
    by_stage = {
        stage: [r for r in steps if stage_of(r["step"], boundary) == stage] for stage in STAGES
    }
    position = {(r["stage"], r["decile"]): r for r in position_table(rollouts, boundary)}
    rows = []
    for stage, chosen in by_stage.items():
        if not chosen:
            continue
        row: dict[str, Any] = {
            "stage": stage,
            "first_step": chosen[0]["step"],
            "last_step": chosen[-1]["step"],
        }
        for key, name, sign in (("entropy", "entropy_drop", -1), ("accuracy", "accuracy_gain", 1),
                                ("entropy/positive", "positive_entropy_change", 1),
                                ("entropy/negative", "negative_entropy_change", 1)):  # fmt: skip
            _, values = series(chosen, key)
            first, last = _ends(values)
            row[name] = sign * (last - first) if values else math.nan
        if eval_key is not None:
            _, values = series(
                [r for r in records if stage_of(r["step"], boundary) == stage], eval_key
            )
            # evaluations are few: the stage's last one minus its first
            row["held_out_gain"] = values[-1] - values[0] if len(values) > 1 else math.nan
        last_decile = position.get((stage, DECILES - 1))
        row["last_decile_high_share"] = last_decile["high_share"] if last_decile else math.nan
        rows.append(row)
    return rows
