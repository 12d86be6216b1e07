"""epx's scorer beside math-verify alone: honest notations credited, reward hacks refused.

    .venv/bin/python benchmarks/scorer_agreement.py                      # every rewrite (~6 min)
    .venv/bin/python benchmarks/scorer_agreement.py --per-transform 50   # a seeded sample
    .venv/bin/python benchmarks/scorer_agreement.py --ablation 15        # + each rule off (~7 min)

Two corpora, each scored by epx (`score_many`, 2 workers) and by math-verify 0.9 alone (its
``parse`` with boxed extraction first, ``verify`` against the gold parsed as ``\\boxed{gold}``,
in 2 worker processes):

- honest: every shared gold rewritten by each notation transform of tests/notation_corpus.py,
  boxed after "So the final answer is"; every rewrite is correct, so more credited is better;
- gaming: the attempts of tests/test_reward_gaming.py; every one is wrong, so 0 is the goal.

Per class: how many each scorer credits, both, neither. Targets: epx >= math-verify on every
honest class, 0 gaming attempts credited by epx. Then the gaming attempts either credits and
the honest rewrites epx refuses. ``--ablation N`` scores N rewrites per transform and the
gaming corpus again with each of epx's presentation rules (`normalize.PRESENTATION_RULES`)
left out in turn: what each rule earns on the honest corpus, and whether leaving it out (or
keeping it) changes anything on the gaming corpus.
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

from meta import print_header  # benchmarks/meta.py: date, commit, machine, command

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
DATA_DIR = Path(os.environ.get("EPX_DATA_DIR") or REPO.parent / "shared" / "benchmarks")

Pair = tuple[str, str]
Results = dict[str, list[tuple[bool, bool]]]  # class -> (epx credited, math-verify credited)


def _configs() -> list[object]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]


@functools.lru_cache(maxsize=4096)
def _gold_parse(gold: str) -> list[object]:
    from math_verify import parse

    return parse(f"\\boxed{{{gold}}}", _configs(), extraction_mode="first_match")


def _math_verify_correct(pair: Pair) -> bool:
    """math-verify alone: the completion parsed (boxed first), verified against ``\\boxed{gold}``."""
    from math_verify import parse, verify

    completion, gold = pair
    try:
        return bool(verify(_gold_parse(gold), parse(completion, _configs())))
    except BaseException:  # math-verify's TimeoutException is a BaseException
        return False


def _leave_out(rule: str | None) -> None:
    """Pool initializer: this worker's epx cleans without one presentation rule."""
    from epx.scoring import normalize

    if rule is not None:
        del normalize.PRESENTATION_RULES[rule]


def _epx_correct(pair: Pair) -> bool:
    from epx.scoring import score_answer

    return score_answer(*pair).correct


def in_workers(function, pairs: list[Pair], workers: int, leave_out: str | None = None) -> list:
    """``function`` over ``pairs`` in fresh worker processes (fresh caches)."""
    context = multiprocessing.get_context("forkserver")
    with context.Pool(workers, initializer=_leave_out, initargs=(leave_out,)) as pool:
        return pool.map(function, pairs, chunksize=16)


def table(title: str, classes: Results, share: bool) -> list[str]:
    """Rows per class: count, epx credited, math-verify credited, both, neither."""
    lines = [title, f"{'class':46} {'n':>6} {'epx':>7} {'mv':>7} {'both':>6} {'neither':>7}"]

    def row(name: str, results: list[tuple[bool, bool]]) -> str:
        n = len(results)
        epx = sum(e for e, _ in results)
        mv = sum(m for _, m in results)
        both = sum(e and m for e, m in results)
        neither = sum(not e and not m for e, m in results)
        if not share:
            return f"{name[:46]:46} {n:6d} {epx:7d} {mv:7d} {both:6d} {neither:7d}"
        below = "" if epx >= mv else "   <- epx below math-verify"
        return f"{name[:46]:46} {n:6d} {epx / n:7.1%} {mv / n:7.1%} {both:6d} {neither:7d}{below}"

    everything = [result for results in classes.values() for result in results]
    lines += [row(name, results) for name, results in classes.items()]
    lines.append(row("all", everything))
    return lines


def compare(corpus: list, gaming: list[tuple], workers: int) -> None:
    """Both corpora by epx and by math-verify alone: the tables, then what each got wrong."""
    from epx.scoring import score_many

    pairs = [(r.completion, r.gold) for r in corpus] + [(c[1], c[3]) for c in gaming]
    start = time.perf_counter()
    scores = score_many(pairs, workers=workers)
    epx_s = time.perf_counter() - start
    start = time.perf_counter()
    mv = in_workers(_math_verify_correct, pairs, workers)
    mv_s = time.perf_counter() - start
    epx = [score.correct for score in scores]

    honest: Results = defaultdict(list)
    for index, rewrite in enumerate(corpus):
        honest[rewrite.transform].append((epx[index], mv[index]))
    hacks: Results = defaultdict(list)
    for offset, case in enumerate(gaming):
        hacks[case[0]].append((epx[len(corpus) + offset], mv[len(corpus) + offset]))

    golds = len({rewrite.gold_id for rewrite in corpus})
    print(
        f"honest: {len(corpus):,} rewrites of {golds:,} golds from {DATA_DIR} by "
        f"{len(honest)} transforms (tests/notation_corpus.py); every one is correct"
    )
    print("\n".join(table("credited (higher is better)", honest, share=True)))
    print(f"\ngaming: {len(gaming)} attempts of tests/test_reward_gaming.py; every one is wrong")
    print("\n".join(table("credited (0 is the goal)", hacks, share=False)))
    for offset, case in enumerate(gaming):
        index = len(corpus) + offset
        by = [name for name, hit in (("epx", epx[index]), ("math-verify", mv[index])) if hit]
        if by:
            print(f"  credited by {' and '.join(by)}: [{case[0]}] {case[1]!r}")
    refused = [index for index in range(len(corpus)) if not epx[index]]
    print(f"\nhonest rewrites epx refuses: {len(refused)} ({len(refused) / len(corpus):.2%})")
    for index in refused:
        rewrite = corpus[index]
        print(
            f"  [{rewrite.transform}] gold {rewrite.gold!r} answer {rewrite.answer!r}: "
            f"{scores[index].status}; math-verify {'credits' if mv[index] else 'refuses'} it"
        )
    print(f"\nwall: epx {epx_s:.0f} s, math-verify alone {mv_s:.0f} s, {workers} workers")


def ablation(corpus: list, gaming: list[tuple], workers: int) -> None:
    """epx again with each presentation rule left out: honest credited, hacks credited."""
    from epx.scoring.normalize import PRESENTATION_RULES

    pairs = [(r.completion, r.gold) for r in corpus] + [(c[1], c[3]) for c in gaming]
    print(
        f"\nablation: {len(corpus):,} honest rewrites (sample) and {len(gaming)} gaming attempts, "
        "epx with one presentation rule left out"
    )
    print(f"{'rule left out':40} {'honest':>8} {'hacks':>6}  transforms that lose credit")
    for rule in [None, *PRESENTATION_RULES]:
        credited = in_workers(_epx_correct, pairs, workers, leave_out=rule)
        lost: dict[str, int] = defaultdict(int)
        for rewrite, hit in zip(corpus, credited, strict=False):
            lost[rewrite.transform] += not hit
        losses = ", ".join(f"{name} ({n})" for name, n in lost.items() if n)
        share = sum(credited[: len(corpus)]) / len(corpus)
        hacks = sum(credited[len(corpus) :])
        print(f"{rule or '(none: all rules on)':40} {share:8.1%} {hacks:6d}  {losses or '-'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-transform", type=int, default=0, help="sample size (0: all)")
    parser.add_argument("--ablation", type=int, default=0, help="per-transform sample (0: none)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print_header()

    from notation_corpus import load_golds, rewrites, sample
    from test_reward_gaming import CORPUS, GOLD

    gaming = [(case[0], case[1], case[2], case[3] if len(case) > 3 else GOLD) for case in CORPUS]
    corpus = rewrites(load_golds(DATA_DIR))
    if args.per_transform:
        corpus = sample(corpus, args.per_transform, args.seed)
    compare(corpus, gaming, args.workers)
    if args.ablation:
        ablation(sample(corpus, args.ablation, args.seed), gaming, args.workers)
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
