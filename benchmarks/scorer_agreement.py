"""epx's scorer beside math-verify alone: honest notations credited, reward hacks refused.

    .venv/bin/python benchmarks/scorer_agreement.py                   # every rewrite (~15 min)
    .venv/bin/python benchmarks/scorer_agreement.py --per-transform 50 # a seeded sample

Two corpora, each scored by epx (`score_many`, 2 workers) and by math-verify 0.9 alone (its
``parse`` with boxed extraction first, ``verify`` against the gold parsed as ``\\boxed{gold}``,
in 2 worker processes):

- honest: every shared gold rewritten by each notation transform of tests/notation_corpus.py,
  boxed after "So the final answer is"; every rewrite is correct, so more credited is better;
- gaming: the attempts of tests/test_reward_gaming.py; every one is wrong, so 0 is the goal.

Per class: how many each scorer credits, both, neither. Targets: epx >= math-verify on every
honest class, 0 gaming attempts credited by epx. Then the honest rewrites epx refuses.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
DATA_DIR = Path(os.environ.get("EPX_DATA_DIR") or REPO.parent / "shared" / "benchmarks")


def _configs() -> list[object]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]


@functools.lru_cache(maxsize=4096)
def _gold_parse(gold: str) -> list[object]:
    from math_verify import parse

    return parse(f"\\boxed{{{gold}}}", _configs(), extraction_mode="first_match")


def _math_verify_correct(pair: tuple[str, str]) -> bool:
    """math-verify alone: the completion parsed (boxed first), verified against ``\\boxed{gold}``."""
    from math_verify import parse, verify

    completion, gold = pair
    try:
        return bool(verify(_gold_parse(gold), parse(completion, _configs())))
    except BaseException:  # math-verify's TimeoutException is a BaseException
        return False


def math_verify_alone(pairs: list[tuple[str, str]], workers: int) -> list[bool]:
    context = multiprocessing.get_context("forkserver")
    with context.Pool(workers) as pool:
        return pool.map(_math_verify_correct, pairs, chunksize=32)


def table(title: str, classes: dict[str, list[tuple[bool, bool]]], share: bool) -> list[str]:
    """Rows per class: count, epx credited, math-verify credited, both, neither."""
    lines = [title, f"{'class':46} {'n':>6} {'epx':>7} {'mv':>7} {'both':>6} {'neither':>7}"]

    def row(name: str, results: list[tuple[bool, bool]]) -> str:
        n = len(results)
        epx = sum(e for e, _ in results)
        mv = sum(m for _, m in results)
        both = sum(e and m for e, m in results)
        neither = sum(not e and not m for e, m in results)
        if share:
            return f"{name[:46]:46} {n:6d} {epx / n:7.1%} {mv / n:7.1%} {both:6d} {neither:7d}" + (
                "" if epx >= mv else "   <- epx below math-verify"
            )
        return f"{name[:46]:46} {n:6d} {epx:7d} {mv:7d} {both:6d} {neither:7d}"

    everything = [result for results in classes.values() for result in results]
    lines += [row(name, results) for name, results in classes.items()]
    lines.append(row("all", everything))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-transform", type=int, default=0, help="sample size (0: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from notation_corpus import load_golds, rewrites, sample
    from test_reward_gaming import CORPUS as GAMING
    from test_reward_gaming import GOLD

    from epx.rewards import score_many

    corpus = rewrites(load_golds(DATA_DIR))
    if args.per_transform:
        corpus = sample(corpus, args.per_transform, args.seed)
    honest = [(rewrite.completion, rewrite.gold) for rewrite in corpus]
    gaming = [(case[1], case[3] if len(case) > 3 else GOLD) for case in GAMING]

    start = time.perf_counter()
    epx_scores = score_many(honest + gaming, workers=args.workers)
    epx_s = time.perf_counter() - start
    start = time.perf_counter()
    mv_correct = math_verify_alone(honest + gaming, args.workers)
    mv_s = time.perf_counter() - start
    epx_correct = [score.correct for score in epx_scores]

    honest_classes: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for index, rewrite in enumerate(corpus):
        honest_classes[rewrite.transform].append((epx_correct[index], mv_correct[index]))
    gaming_classes: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for offset, case in enumerate(GAMING):
        index = len(corpus) + offset
        gaming_classes[case[0]].append((epx_correct[index], mv_correct[index]))

    golds = len({rewrite.gold_id for rewrite in corpus})
    print(
        f"honest: {len(corpus):,} rewrites of {golds:,} golds from {DATA_DIR} by "
        f"{len(honest_classes)} transforms (tests/notation_corpus.py); every one is correct"
    )
    print("\n".join(table("credited (higher is better)", honest_classes, share=True)))
    print()
    print(f"gaming: {len(gaming)} attempts of tests/test_reward_gaming.py; every one is wrong")
    print("\n".join(table("credited (0 is the goal)", gaming_classes, share=False)))
    for offset, case in enumerate(GAMING):
        index = len(corpus) + offset
        if epx_correct[index] or mv_correct[index]:
            by = " and ".join(
                n for n, c in (("epx", epx_correct[index]), ("math-verify", mv_correct[index])) if c
            )
            print(f"  credited by {by}: [{case[0]}] {case[1]!r}")
    print()
    refused = [
        (rewrite, epx_scores[index], mv_correct[index])
        for index, rewrite in enumerate(corpus)
        if not epx_correct[index]
    ]
    print(f"honest rewrites epx refuses: {len(refused)} ({len(refused) / len(corpus):.2%})")
    for rewrite, score, mv in refused:
        print(
            f"  [{rewrite.transform}] gold {rewrite.gold!r} answer {rewrite.answer!r}: "
            f"{score.status}; math-verify {'credits' if mv else 'refuses'} it"
        )
    print(
        f"\nwall: epx {epx_s:.0f} s, math-verify alone {mv_s:.0f} s, {args.workers} workers; "
        f"load average at the end {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
