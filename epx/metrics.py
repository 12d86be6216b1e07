"""Evaluation metrics over sampled answers: Acc@n, Maj@n and the unbiased Pass@k estimator.

Pure and stateless. A problem is described by its n samples: each sample's equivalence key (the
scorer's canonical form of the extracted answer; None when no answer could be extracted) and
whether it was judged correct against the gold answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased Pass@k for one problem: `1 - C(n-c, k) / C(n, k)`.

    The chance that at least one of k samples drawn without replacement from the n generated ones
    (c of them correct) is correct (Chen et al. 2021). Computed as the product
    `prod_{i=n-c+1}^{n} (1 - k/i)`, which never forms the large binomials.
    """
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"pass_at_k: {name} must be an int, got {value!r}")
    if n < 1:
        raise ValueError(f"pass_at_k: n must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: c must be in [0, n={n}], got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: k must be in [1, n={n}], got {k}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def accuracy(correct: Sequence[bool]) -> float:
    """Acc@n for one problem: the fraction of its samples that are correct."""
    if not correct:
        raise ValueError("accuracy: no samples")
    return sum(bool(value) for value in correct) / len(correct)


@dataclass(frozen=True)
class Vote:
    """The outcome of a majority vote: the winning key, its size, and whether it is correct."""

    key: str | None  # None when no sample had an extracted answer
    count: int
    correct: bool


def majority_vote(keys: Sequence[str | None], correct: Sequence[bool]) -> Vote:
    """Majority vote over the samples' equivalence keys.

    Samples with the same key form one cluster; unparsed samples (key None) never win. The largest
    cluster wins; a tie goes to the tied cluster whose first sample comes earliest (the samples'
    order is their sample index, fixed by the seed). The vote is therefore invariant to the order
    of the samples whenever the largest cluster is unique. The vote's answer is the winning
    cluster's first sample, so the vote is correct when that sample is (members of one cluster
    are equivalent answers, so they agree on correctness unless the key and the verifier
    disagree). No parsed sample at all: the vote is wrong.
    """
    if len(keys) != len(correct):
        raise ValueError(f"majority_vote: {len(keys)} keys but {len(correct)} correctness flags")
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key is None:
            continue
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, index)
    if not counts:
        return Vote(key=None, count=0, correct=False)
    winner = min(counts, key=lambda key: (-counts[key], first[key]))
    return Vote(key=winner, count=counts[winner], correct=bool(correct[first[winner]]))


@dataclass(frozen=True)
class ProblemSamples:
    """The n scored samples of one problem, in sample-index order."""

    keys: tuple[str | None, ...]
    correct: tuple[bool, ...]
    statuses: tuple[str, ...]  # "correct" | "wrong" | "unparsed" | "timeout"
    tokens: tuple[int, ...]
    finished: tuple[bool, ...] = ()  # per sample: ended within the token limit (default: all)


RATES = ("acc", "maj", "pass@1", "pass@{n}", "unparsed", "truncated", "tokens_mean")


def rate_names(n: int) -> list[str]:
    """The rates of `bench_metrics` with n samples a problem (fractions, or a mean length)."""
    return list(dict.fromkeys(name.format(n=n) for name in RATES))


def eval_metric_names(n: int) -> list[str]:
    """What an evaluation logs of each benchmark, as `eval/<bench>/<name>`."""
    return [*rate_names(n), "timeouts"]


def bench_metrics(problems: Sequence[ProblemSamples], n: int) -> dict[str, float]:
    """Metrics of one benchmark, each averaged over its problems (every problem has n samples).

    Keys: `acc` (Acc@n), `maj` (Maj@n), `pass@1`, `pass@<n>`, `unparsed` (fraction of samples
    with no extracted answer), `truncated` (fraction cut off by the token limit: scored all the
    same), `timeouts` (count of samples whose scoring timed out),
    `tokens_mean` (mean completion length), `problems`, `samples`.
    """
    if not problems:
        raise ValueError("bench_metrics: no problems")
    for problem in problems:
        if len(problem.correct) != n:
            raise ValueError(
                f"bench_metrics: a problem has {len(problem.correct)} samples, not {n}"
            )
    count = len(problems)
    samples = count * n
    ks = sorted({1, n})
    metrics: dict[str, float] = {
        "problems": count,
        "samples": samples,
        "acc": sum(accuracy(p.correct) for p in problems) / count,
        "maj": sum(majority_vote(p.keys, p.correct).correct for p in problems) / count,
    }
    for k in ks:
        metrics[f"pass@{k}"] = sum(pass_at_k(n, sum(p.correct), k) for p in problems) / count
    metrics["unparsed"] = sum(p.statuses.count("unparsed") for p in problems) / samples
    metrics["truncated"] = sum(p.finished.count(False) for p in problems) / samples
    metrics["timeouts"] = sum(p.statuses.count("timeout") for p in problems)
    metrics["tokens_mean"] = sum(sum(p.tokens) for p in problems) / samples
    return metrics
