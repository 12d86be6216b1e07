"""score_many's worker pool: hard time limits, killed and dead workers, threads, clean exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from epx.scoring import Score, pool, score_answer, score_many
from epx.scoring.pool import GRACE_SECONDS

STARTUP_SLACK = 4.0  # forking replacements, a loaded CI machine


def sentence(answer: str) -> str:
    return f"Hence the final answer is \\boxed{{{answer}}}."


def alive(pid: int) -> bool:
    """Whether a process exists (a zombie counts: it has not been reaped)."""
    return Path(f"/proc/{pid}").exists()


def test_results_come_back_in_order_and_empty_input_gives_empty_output():
    assert score_many([]) == []
    pairs = [(sentence(str(i % 7)), str(i % 5)) for i in range(100)]
    expected = [i % 7 == i % 5 for i in range(100)]
    assert [s.correct for s in score_many(pairs, workers=2)] == expected


def test_workers_zero_scores_in_process_with_the_same_results():
    pairs = [(sentence("\\frac{1}{2}"), "0.5"), (sentence("3"), "4"), ("nothing", "4")]
    assert score_many(pairs, workers=0) == score_many(pairs, workers=2)


def test_odd_inputs_never_raise():
    odd = [(None, "1"), (b"\\boxed{1}", "1"), ("\\boxed{1}", 1), ("a", "b", "c"), 7]
    scores = score_many(odd, workers=1)  # type: ignore[arg-type]
    assert [s.correct for s in scores] == [False, True, True, False, False]
    assert score_many(odd, workers=0) == scores  # type: ignore[arg-type]


PATHOLOGICAL = ["2003^{2002^{2001}}", "(10^6)!", "10^{10^{10}}", "(" * 5_000 + "1"]


def test_pathological_answers_score_zero_within_the_hard_limit_and_the_pool_keeps_working():
    timeout = 2.0
    pairs = [(sentence(answer), "5") for answer in PATHOLOGICAL]
    start = time.monotonic()
    scores = score_many(pairs, workers=len(pairs), timeout=timeout)  # one item per worker
    elapsed = time.monotonic() - start
    assert [s.correct for s in scores] == [False] * len(pairs)
    assert {s.status for s in scores} <= {"timeout", "wrong", "unparsed"}
    assert elapsed < timeout + GRACE_SECONDS + STARTUP_SLACK
    assert score_many([(sentence("5"), "5")], workers=2, timeout=timeout)[0].correct


@pytest.mark.parametrize("how", [signal.SIGSTOP, signal.SIGKILL], ids=["stuck", "dead"])
def test_a_stuck_or_dead_worker_is_replaced_and_only_its_item_is_lost(how: signal.Signals):
    """SIGSTOP: a worker that never returns to Python (no alarm can land), killed at the hard
    limit; SIGKILL: a worker that dies (say, the OOM killer). Either way the call returns, the
    item being scored is a timeout, the other items of its chunk are scored elsewhere."""
    timeout = 1.0
    score_many([(sentence("1"), "1")], workers=1)
    worker = pool._pool.current.workers[0]  # type: ignore[union-attr]
    old_pid = worker.process.pid
    # a symbolic gold: the verifier evaluates the power tower (a number gold rejects its form)
    # (a gold of its own per case: a worker stopped while it reads its gold marks that gold as
    # one that hangs, and its samples are then not sent again)
    gold = f"{int(how)}\\sqrt{{7}}"
    pairs = [(sentence("9^{9^{9}}"), gold), (sentence("5"), "5"), (sentence("6"), "5")]
    results: list[list[Score]] = []
    caller = threading.Thread(target=lambda: results.append(score_many(pairs, 1, timeout)))
    start = time.monotonic()
    caller.start()
    while worker.running_index() != 0 and time.monotonic() - start < 10:
        time.sleep(0.005)
    os.kill(old_pid, how)
    caller.join(timeout=30)
    elapsed = time.monotonic() - start
    assert not caller.is_alive()
    assert [s.status for s in results[0]] == ["timeout", "correct", "wrong"]
    assert results[0][0].answer == "9^{9^{9}}"
    assert elapsed < timeout + GRACE_SECONDS + STARTUP_SLACK
    assert pool._pool.current.workers[0].process.pid != old_pid  # type: ignore[union-attr]
    assert not alive(old_pid)  # killed and reaped: no zombie


def test_score_many_and_score_answer_work_from_a_thread():
    results: dict[str, object] = {}

    def body() -> None:
        results["many"] = score_many([(sentence("\\frac{6}{4}"), "1.5")] * 3, workers=2)
        results["zero"] = score_many([(sentence("2"), "2")], workers=0)  # no in-process here
        results["one"] = score_answer(sentence("x+1"), "1+x")

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(timeout=60)
    assert [s.correct for s in results["many"]] == [True] * 3  # type: ignore[union-attr]
    assert results["zero"][0].correct  # type: ignore[index]
    assert results["one"].correct  # type: ignore[union-attr]


def test_concurrent_callers_each_get_their_own_results():
    outputs: dict[int, list[bool]] = {}

    def body(k: int) -> None:
        pairs = [(sentence(str(k + i % 2)), str(k)) for i in range(20)]
        outputs[k] = [s.correct for s in score_many(pairs, workers=2)]

    threads = [threading.Thread(target=body, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outputs == {k: [i % 2 == 0 for i in range(20)] for k in range(3)}


UNGUARDED_SCRIPT = """
import multiprocessing.forkserver as fs
from epx.scoring import score_many
from epx.scoring import pool
print("top-level code ran")  # no __main__ guard: workers must not run this again
print(score_many([("\\\\boxed{2}", "2")], workers=2)[0].status)
print(*[w.process.pid for w in pool._pool.current.workers], fs._forkserver._forkserver_pid)
"""


def test_an_unguarded_script_runs_once_and_its_exit_stops_every_worker(repo: Path, tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    ran, status, pids = done.stdout.splitlines()
    assert (ran, status) == ("top-level code ran", "correct")
    deadline = time.monotonic() + 10
    while any(alive(int(pid)) for pid in pids.split()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(int(pid)) for pid in pids.split())  # workers and forkserver gone
