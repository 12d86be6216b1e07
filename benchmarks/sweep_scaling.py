"""Does coordinating sweep workers cost next to nothing? Trials per minute with 1 and 2 workers.

In one run, against one PostgreSQL server (started here on loopback, as in the tests): a study of
N trials of the tiny recipe run by one `epx sweep` worker, then another study of 2N trials run by
two workers at once (one torch thread each, as many trials each as the single worker). Prints
trials finished per minute, the ratio (target >= 1.7 on 2 cores) and each worker's time in the
storage as a share of its wall time (target < 2%).

    .venv/bin/python benchmarks/sweep_scaling.py [--trials 6] [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from meta import print_header  # benchmarks/meta.py: date, commit, machine, command

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
TARGET_RATIO, TARGET_SHARE = 1.7, 0.02


def worker(out: Path, storage: str, study: str, n_trials: int, steps: int) -> subprocess.Popen:
    args = [sys.executable, "-m", "epx.cli", "sweep", "--method", "ppl", "--recipe",
            str(REPO / "recipes" / "tiny-random.yaml"), "--n-trials", str(n_trials),
            "--metric", "reward", "--sampler", "random", "--pruner", "none", "--storage", storage,
            "--study-name", study, "-o", str(out), "--set", f"grpo.max_steps={steps}",
            "--set", "logging.mode=disabled"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run(out: Path, storage: str, study: str, workers: int, per_worker: int, steps: int) -> dict:
    start = time.perf_counter()
    processes = [worker(out, storage, study, per_worker * workers, steps) for _ in range(workers)]
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(process.stderr.read().decode()[-2000:])
    wall = time.perf_counter() - start
    stats = [json.loads(p.read_text()) for p in sorted((out / "workers").glob("*.json"))]
    import optuna

    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    complete = sum(t.state.name == "COMPLETE" for t in trials)
    return {"wall": wall, "complete": complete, "per_minute": complete / wall * 60, "stats": stats}


def main() -> int:
    print_header()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="trials per worker")
    parser.add_argument("--steps", type=int, default=6, help="training steps per trial")
    options = parser.parse_args()
    from postgres import start_postgres

    url, stop = start_postgres()
    try:
        folder = Path(tempfile.mkdtemp(prefix="epx-sweep-bench-"))
        one = run(folder / "one", url, "one-worker", 1, options.trials, options.steps)
        two = run(folder / "two", url, "two-workers", 2, options.trials, options.steps)
    finally:
        stop()
    print(f"tiny recipe, {options.steps} steps a trial, {options.trials} trials per worker, "
          f"PostgreSQL on loopback, {os.cpu_count()} cores, 1 torch thread per trial")  # fmt: skip
    for name, result in (("1 worker ", one), ("2 workers", two)):
        print(f"{name}: {result['complete']:3d} trials COMPLETE in {result['wall']:6.1f} s = "
              f"{result['per_minute']:5.2f} trials/min")  # fmt: skip
    ratio = two["per_minute"] / one["per_minute"]
    print(f"ratio 2 workers / 1 worker: {ratio:.2f}  (target >= {TARGET_RATIO})")
    shares = []
    for result in (one, two):
        for stat in result["stats"]:
            share = stat["storage_seconds"] / stat["wall_seconds"]
            shares.append(share)
            print(f"  worker {stat['worker']}: {stat['trials_run']} trials, storage "
                  f"{stat['storage_seconds']:.3f} s in {stat['storage_calls']} calls of "
                  f"{stat['wall_seconds']:.1f} s = {share:.3%}")  # fmt: skip
    print(f"storage share of a worker's wall time, at most: {max(shares):.3%}  (target < {TARGET_SHARE:.0%})")
    ok = ratio >= TARGET_RATIO and max(shares) < TARGET_SHARE
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
