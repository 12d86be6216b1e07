"""What a finished comparison study's runs did, read beyond its report: per run the plateau, the
first step a shaped run leaves GRPO of the same seed, the held-out accuracy judged by epx and by an
independent rule, and what the models say before and after training.

- independent rule (shared with `demo_learning.py`, none of the scorer's code): the completion
  ended within the token limit and its last integer is the gold sum;
- "leaves GRPO at": the first logged step whose loss, reward, entropy or grad-norm differs from
  the `none` run of the same seed (a run bit for bit GRPO until its shaping acts leaves it then).

    .venv/bin/python benchmarks/study_check.py [runs/sweep/smollm2-135m-cpu-study-compare]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from demo_learning import independent_correct
from meta import print_header  # benchmarks/meta.py: date, commit, machine, command

from epx.run_dir import RunDir

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "runs" / "sweep" / "smollm2-135m-cpu-study-compare"
COMPARED = ("loss", "reward", "entropy", "grad_norm")
METHODS = ("none", "ppl", "position", "both")
SAMPLES = 3


def runs_of(study: Path) -> dict[tuple[str, int], RunDir]:
    """(method, seed) -> its run; where a pair ran twice, the later trial."""
    found = {}
    for folder in sorted(study.glob("trial-*/seed-*")):
        run = RunDir(folder)
        if not run.is_run() or (run.read_summary() or {}).get("finished") is not True:
            continue
        recipe = yaml.safe_load(run.recipe.read_text())
        found[(recipe["shaping"]["method"], int(recipe["grpo"]["seed"]))] = run
    return found


def by_step(run: RunDir) -> dict[int, dict]:
    merged: dict[int, dict] = {}
    for record in run.read_metrics():
        merged.setdefault(record["step"], {}).update(record)
    return merged


def leaves_grpo_at(run: dict[int, dict], grpo: dict[int, dict]) -> int | None:
    for step in sorted(run):
        if any(run[step].get(key) != grpo.get(step, {}).get(key) for key in COMPARED):
            return step
    return None


def held_out(run: RunDir, step: int) -> list[dict]:
    return run.evaluation(step).read_records("arithmetic.jsonl")


def main() -> int:
    print_header()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, nargs="?", default=STUDY)
    study = parser.parse_args().study
    runs = runs_of(study)
    if not runs:
        print(f"{study}: no finished study runs", file=sys.stderr)
        return 2
    print(f"{study.relative_to(REPO) if study.is_relative_to(REPO) else study}: {len(runs)} runs")
    print(f"{'method':>9} {'seed':>4} {'plateau':>7} {'leaves GRPO':>11} {'epx acc':>8} "
          f"{'independent':>11} {'ended':>6} {'epx at 0':>8}")  # fmt: skip
    for (method, seed), run in sorted(runs.items(), key=lambda i: (METHODS.index(i[0][0]), i[0][1])):
        steps = by_step(run)
        plateau = next((s for s in sorted(steps) if (steps[s].get("stage") or 0) > 0), None)
        grpo = runs.get(("none", seed))
        leaves = "-" if method == "none" or grpo is None else leaves_grpo_at(steps, by_step(grpo))
        evaluations = run.evaluation_steps()
        first, last = held_out(run, evaluations[0]), held_out(run, evaluations[-1])
        share = lambda rows, test: sum(map(test, rows)) / len(rows)  # noqa: E731
        print(f"{method:>9} {seed:>4} {plateau if plateau else '-':>7} {leaves or 'never':>11} "
              f"{share(last, lambda r: bool(r['correct'])):>8.3f} {share(last, independent_correct):>11.3f} "
              f"{share(last, lambda r: bool(r['finished'])):>6.3f} "
              f"{share(first, lambda r: bool(r['correct'])):>8.3f}")  # fmt: skip
    pairs = [(record, run.path) for run in runs.values() for step in run.evaluation_steps()
             for record in held_out(run, step)]  # fmt: skip
    differ = [(r, f) for r, f in pairs if bool(r["correct"]) != independent_correct(r)]
    print(f"\nepx and the independent rule agree on {len(pairs) - len(differ)}/{len(pairs)} held-out "
          f"completions (every evaluation of every run); where they differ:")  # fmt: skip
    for record, folder in differ:
        print(f"  {folder.relative_to(study)}: {record['problem']} (gold {record['gold']}) -> "
              f"{record['completion'].strip()!r}: epx {record['status']}")  # fmt: skip
    print(f"\nwhat the models say (seed 0, the first {SAMPLES} held-out problems; epx's verdict):")
    for method in METHODS:
        run = runs.get((method, 0))
        if run is None:
            continue
        evaluations = run.evaluation_steps()
        for step in (evaluations[0], evaluations[-1]):
            for record in held_out(run, step)[:SAMPLES]:
                print(f"  {method:>8} step {step:>2}  {record['problem']:<18} -> "
                      f"{record['completion'].strip()[:60]!r:<64} {record['status']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
