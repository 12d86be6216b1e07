"""Scorer throughput: an in-process `score_answer` loop against `score_many` on worker processes.

    .venv/bin/python benchmarks/scorer_throughput.py              # 1,000 cases, 2 workers, seed 0

Cases are drawn (seeded) from the gold answers of the shared benchmark files: half are the gold
in a sentence (``... so the final answer is \\boxed{GOLD}.``), half near misses (an integer gold
plus one, else ``\\boxed{GOLD+1}``). Both sides score the same cases in one run; the pool is warmed
(started, and a few unrelated items scored) before timing. Overhead per call is measured on
10,000 empty completions, which a worker rejects at once: pool wall / count is the price of a
call through the pool (chunking, pickling, pipes, polling). Targets: ratio >= 1.0, overhead < 50 us.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

from meta import print_header  # benchmarks/meta.py: date, commit, machine, command

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA_DIR = Path(os.environ.get("EPX_DATA_DIR") or REPO.parent / "shared" / "benchmarks")


def load_golds(data_dir: Path) -> list[str]:
    """Every gold answer of the benchmark files, in file order."""
    return [
        json.loads(line)["answer"]
        for path in sorted(data_dir.glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def near_miss(gold: str) -> str:
    """A wrong answer close to the gold."""
    return str(int(gold) + 1) if re.fullmatch(r"-?\d+", gold) else f"{gold}+1"


def draw_cases(golds: list[str], n: int, seed: int) -> list[tuple[str, str]]:
    """n (completion, gold) pairs, half right and half near misses."""
    rng = random.Random(seed)
    cases = []
    for index in range(n):
        gold = rng.choice(golds)
        answer = gold if index % 2 == 0 else near_miss(gold)
        cases.append((f"We work it out, so the final answer is \\boxed{{{answer}}}.", gold))
    rng.shuffle(cases)
    return cases


def timed(function, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def main() -> None:
    print_header()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="cases to score")
    parser.add_argument("--workers", type=int, default=2, help="pool size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()

    from epx.scoring import score_answer, score_many

    cases = draw_cases(load_golds(DATA_DIR), args.n, args.seed)
    warm = [(f"\\boxed{{{i}}}", str(i)) for i in range(4 * args.workers)]
    score_answer(*warm[0])
    score_many(warm, workers=args.workers, timeout=args.timeout)

    local_s, local = timed(lambda: [score_answer(c, g, args.timeout) for c, g in cases])
    pool_s, pooled = timed(score_many, cases, workers=args.workers, timeout=args.timeout)
    empty = [("", "")] * 10_000
    empty_s, _ = timed(score_many, empty, workers=args.workers, timeout=args.timeout)

    agree = sum(a == b for a, b in zip(local, pooled, strict=True))  # type: ignore[arg-type]
    correct = sum(s.correct for s in pooled)  # type: ignore[union-attr]
    print(f"cases: {len(cases)} from {DATA_DIR} (seed {args.seed}); {correct} scored correct")
    print(f"in-process (score_answer loop): {len(cases) / local_s:8.1f} calls/s ({local_s:.2f} s)")
    print(
        f"pool, {args.workers} workers (score_many): {len(cases) / pool_s:8.1f} calls/s "
        f"({pool_s:.2f} s)"
    )
    print(f"ratio pool / in-process: {local_s / pool_s:.2f}  (target >= 1.0)")
    print(
        f"pool overhead: {empty_s / len(empty) * 1e6:.1f} us/call  (target < 50; wall of "
        f"score_many on {len(empty):,} empty completions / count)"
    )
    ideal = local_s / args.workers
    print(
        f"pool wall above a perfect {args.workers}-way split: "
        f"{(pool_s - ideal) / len(cases) * 1e6:.1f} us/call  ((pool wall - in-process wall / "
        f"{args.workers}) / cases; includes load imbalance and other processes on the cores)"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"same Score in both paths: {agree}/{len(cases)}")


if __name__ == "__main__":
    main()
