"""The paper's observations, checked on one run: each says what the paper found, what the run
shows (with the numbers) and a verdict, `consistent`, `not consistent` or `not measurable (why)`.
Never a verdict without numbers. Pure: the inputs are the tables of `epx.analyze.core`.

1. Rising stage: entropy falls mostly in negative samples: the drop of `entropy/negative` over the
   rising stage is larger than that of `entropy/positive` (and positive).
2. Plateau: learning concentrates on high-entropy tokens: the covariance of token log-prob and
   advantage (what moves entropy under policy gradient) is larger in magnitude over the
   high-entropy tokens than over all tokens, on average over the plateau's saved steps.
3. Plateau: ... in low-perplexity samples: in the plateau, the lowest log-PPL quartile of each
   saved step is more accurate than the highest.
4. Plateau: ... late in the sequence: in the plateau, the share of high-entropy tokens is larger
   in the last relative-position decile than in the first.
5. Responses lengthen: the mean completion length of the run's last logged steps is above that of
   its first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from epx.analyze.core import DECILES, EDGE, logged_steps, series, stage_of

CONSISTENT, NOT_CONSISTENT = "consistent", "not consistent"


@dataclass(frozen=True)
class Finding:
    observation: str  # what the paper found
    shows: str  # what the run shows, with numbers ("" when not measurable)
    verdict: str  # consistent | not consistent | not measurable (why)


def _ends(values: list[float]) -> tuple[float, float] | None:
    """The mean of the first and of the last EDGE values (None with fewer than 2 * EDGE)."""
    if len(values) < 2 * EDGE:
        return None
    return sum(values[:EDGE]) / EDGE, sum(values[-EDGE:]) / EDGE


def _change(value: float) -> str:
    return f"{value:+.4f}" if math.isfinite(value) else "n/a"


def _unmeasurable(why: str) -> str:
    return f"not measurable ({why})"


def rising_entropy_in_negatives(records: list[dict[str, Any]], boundary: int | None) -> Finding:
    observation = "rising stage: entropy falls mostly in negative samples"
    rising = [r for r in logged_steps(records) if stage_of(r["step"], boundary) == "rising"]
    ends = {key: _ends(series(rising, key)[1]) for key in ("entropy/positive", "entropy/negative")}
    missing = [key for key, value in ends.items() if value is None]
    if missing:
        return Finding(observation, "", _unmeasurable(
            f"the rising stage has fewer than {2 * EDGE} logged values of {', '.join(missing)}"))
    drop = {key: first - last for key, (first, last) in ends.items()}  # type: ignore[misc]
    neg, pos = drop["entropy/negative"], drop["entropy/positive"]
    steps = series(rising, "entropy/negative")[0]
    whole = " (no plateau: the whole run)" if boundary is None else ""
    shows = (f"H- fell {neg:+.3f} (from {ends['entropy/negative'][0]:.3f} to "  # type: ignore[index]
             f"{ends['entropy/negative'][1]:.3f}), H+ fell {pos:+.3f} over steps "  # type: ignore[index]
             f"{steps[0]}-{steps[-1]}{whole}")
    return Finding(observation, shows, CONSISTENT if neg > 0 and neg > pos else NOT_CONSISTENT)


def plateau_high_entropy_covariance(covariance: list[dict[str, Any]], boundary: int | None) -> Finding:
    observation = "plateau: learning concentrates on high-entropy tokens"
    if boundary is None:
        return Finding(observation, "", _unmeasurable("the run never reached the plateau"))
    rows = [r for r in covariance if r["step"] >= boundary
            and math.isfinite(r["cov"]) and math.isfinite(r["cov_high_entropy"])]  # fmt: skip
    if not rows:
        return Finding(observation, "", _unmeasurable("no rollout records with token stats in the plateau"))
    overall = sum(abs(r["cov"]) for r in rows) / len(rows)
    high = sum(abs(r["cov_high_entropy"]) for r in rows) / len(rows)
    shows = (f"mean |Cov(log-prob, advantage)| over the top-20% entropy tokens {high:.4g} vs "
             f"{overall:.4g} over all tokens ({len(rows)} saved plateau steps)")
    return Finding(observation, shows, CONSISTENT if high > overall else NOT_CONSISTENT)


def plateau_low_ppl_samples(ppl_buckets: list[dict[str, Any]], boundary: int | None) -> Finding:
    observation = "plateau: ... in low-perplexity samples"
    if boundary is None:
        return Finding(observation, "", _unmeasurable("the run never reached the plateau"))
    rows = {r["bucket"]: r for r in ppl_buckets if r["stage"] == "plateau" and r["samples"] > 0}
    if len(rows) < 2:
        return Finding(observation, "", _unmeasurable("fewer than two log-PPL quartiles hold plateau samples"))
    low, high = rows[min(rows)], rows[max(rows)]
    if not (math.isfinite(low["accuracy"]) and math.isfinite(high["accuracy"])):
        return Finding(observation, "", _unmeasurable("no correctness in the rollout records"))
    shows = (f"accuracy of log-PPL quartile {min(rows)} (the lowest holding samples) "
             f"{low['accuracy']:.3f} vs quartile {max(rows)} {high['accuracy']:.3f} (token log-prob "
             f"change {_change(low['logprob_change'])} vs {_change(high['logprob_change'])})")
    return Finding(observation, shows, CONSISTENT if low["accuracy"] > high["accuracy"] else NOT_CONSISTENT)


def plateau_late_tokens(position: list[dict[str, Any]], boundary: int | None) -> Finding:
    observation = "plateau: ... late in the sequence"
    if boundary is None:
        return Finding(observation, "", _unmeasurable("the run never reached the plateau"))
    rows = {r["decile"]: r for r in position if r["stage"] == "plateau"}
    if 0 not in rows or DECILES - 1 not in rows:
        return Finding(observation, "", _unmeasurable("no token records in the plateau"))
    first, last = rows[0]["high_share"], rows[DECILES - 1]["high_share"]
    shows = f"high-entropy share {last:.3f} in the last position decile vs {first:.3f} in the first"
    return Finding(observation, shows, CONSISTENT if last > first else NOT_CONSISTENT)


def responses_lengthen(records: list[dict[str, Any]]) -> Finding:
    observation = "responses lengthen over training"
    steps, lengths = series(logged_steps(records), "completions/mean_length")
    ends = _ends(lengths)
    if ends is None:
        return Finding(observation, "", _unmeasurable(f"fewer than {2 * EDGE} logged lengths"))
    first, last = ends
    shows = (f"mean length {first:.1f} tokens over the first {EDGE} logged steps, {last:.1f} over "
             f"the last {EDGE} (steps {steps[0]}-{steps[-1]})")
    return Finding(observation, shows, CONSISTENT if last > first else NOT_CONSISTENT)


def findings(records: list[dict[str, Any]], boundary: int | None, tables: dict[str, Any]) -> list[Finding]:
    """Every finding of one run (`tables`: its `ppl_buckets`, `position`, `covariance`)."""
    return [
        rising_entropy_in_negatives(records, boundary),
        plateau_high_entropy_covariance(tables["covariance"], boundary),
        plateau_low_ppl_samples(tables["ppl_buckets"], boundary),
        plateau_late_tokens(tables["position"], boundary),
        responses_lengthen(records),
    ]
