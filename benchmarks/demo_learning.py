"""Does the CPU default really learn? `make demo`'s run, timed, and its held-out check read twice.

Runs `recipes/smollm2-135m-cpu.yaml` (training plus the in-training evaluations before and after
on the held-out `arithmetic` problems), or reads a finished run (`--run DIR`), then prints:

- the held-out check as epx scores it (the run's own eval records);
- the same completions judged by an independent rule that shares none of the scorer's code: the
  completion ended within the token limit and the last integer in it is the sum;
- the targets: accuracy rises by >= 0.15, >= 80% of the trained model's completions end within
  the limit, training plus both evaluations within 10 minutes (model preparation excluded).

    .venv/bin/python benchmarks/demo_learning.py [--run runs/demo/...] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from meta import print_header  # benchmarks/meta.py: date, commit, machine, command

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "smollm2-135m-cpu.yaml"
INTEGER = re.compile(r"-?\d+")
TARGET_RISE, TARGET_ENDED, TARGET_SECONDS = 0.15, 0.80, 600.0


def independent_correct(record: dict) -> bool:
    """Ended within the limit, and the last integer of the completion is the gold sum."""
    numbers = INTEGER.findall(record.get("completion", "").replace(",", ""))
    return bool(record.get("finished")) and bool(numbers) and numbers[-1] == str(record["gold"])


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarize(records: list[dict]) -> dict[str, float]:
    count = len(records)
    return {
        "epx accuracy": sum(bool(r["correct"]) for r in records) / count,
        "independent accuracy": sum(independent_correct(r) for r in records) / count,
        "ended within the limit": sum(bool(r["finished"]) for r in records) / count,
        "mean length (tokens)": sum(int(r["tokens"]) for r in records) / count,
    }


def main() -> int:
    print_header()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished demo run dir (else train one now)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    options = parser.parse_args()
    seconds = None
    run = options.run
    if run is None:
        import torch

        from epx.recipe import load_recipe
        from epx.train import build_trainer, configure_wandb

        run = Path(tempfile.mkdtemp(prefix="epx-demo-")) / "run"
        recipe = load_recipe(RECIPE, [f"output_dir={run}", *options.overrides])
        configure_wandb(recipe, run)  # offline, as `make demo`
        trainer = build_trainer(recipe)  # model preparation: excluded from the timed part
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    eval_dir = run / "eval"
    steps = sorted(int(p.name.removeprefix("step-")) for p in eval_dir.glob("step-*"))
    first, last = (read(eval_dir / f"step-{s}" / "arithmetic.jsonl") for s in (steps[0], steps[-1]))
    before, after = summarize(first), summarize(last)
    print(f"\nrun: {run}\nheld-out arithmetic: {len(first)} problems, steps {steps[0]} -> {steps[-1]}")
    print(f"{'':26}{'before':>9}{'after':>9}{'change':>9}")
    for key in before:
        print(f"{key:26}{before[key]:9.3f}{after[key]:9.3f}{after[key] - before[key]:+9.3f}")
    agree = sum(bool(r["correct"]) == independent_correct(r) for r in first + last)
    print(f"epx and the independent rule agree on {agree}/{len(first) + len(last)} completions")
    for title, records in (("before", first), ("after", last)):
        print(f"\nsamples {title} training (the same five problems):")
        for record in records[:5]:
            print(f"  {record.get('problem', record['problem_id'])!s:18} {record['completion']!r:58} "
                  f"answer {record['answer']!r} {record['status']}")
    rise = after["epx accuracy"] - before["epx accuracy"]
    checks = [
        (f"held-out accuracy rises by >= {TARGET_RISE}", rise >= TARGET_RISE, f"{rise:+.3f}"),
        (f"independent accuracy rises by >= {TARGET_RISE}",
         after["independent accuracy"] - before["independent accuracy"] >= TARGET_RISE,
         f"{after['independent accuracy'] - before['independent accuracy']:+.3f}"),
        (f">= {TARGET_ENDED:.0%} of the trained model's completions end within the limit",
         after["ended within the limit"] >= TARGET_ENDED, f"{after['ended within the limit']:.0%}"),
    ]  # fmt: skip
    if seconds is not None:
        checks.append(
            ("training + both evaluations <= 10 min", seconds <= TARGET_SECONDS, f"{seconds / 60:.1f} min")
        )
    print()
    for name, ok, value in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {value}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
