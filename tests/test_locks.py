"""Folder locks (`epx.locks`) between real processes: one writer of a run dir or an eval output
dir, the workers of one study sharing its folder, a dead holder's lock no lock at all; and two
real `epx train` / `epx eval` processes on one folder: the second is one line naming the first's
PID and host (exit 2), and the first's work is neither mixed nor overwritten."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests_shared import REPO, TINY, one_line_error

from epx.errors import RunStateError
from epx.locks import LOCK_FILE, exclusive_lock, holder_info, shared_lock

HOLD = """
import sys, time
from epx.locks import exclusive_lock, shared_lock
folder, key = sys.argv[1], sys.argv[2]
lock = exclusive_lock(folder, "epx train", "output_dir") if key == "-" else shared_lock(
    folder, key, "epx sweep", "--output-dir")
with lock:
    print("held", flush=True)
    time.sleep(600)
"""


def holder(folder: Path, key: str = "-") -> subprocess.Popen:
    """A process that holds `folder` (exclusively, or shared under `key`) until killed."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), key], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    line = process.stdout.readline()
    assert line == "held\n", process.stderr.read()
    return process


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


def refusal(lock) -> str:
    """The message of the RunStateError that taking `lock` raises."""
    with pytest.raises(RunStateError) as refused, lock:
        pass
    return str(refused.value)


def test_an_exclusive_lock_names_its_holder_and_a_dead_holder_holds_nothing(tmp_path):
    folder = tmp_path / "run"
    first = holder(folder)
    message = refusal(exclusive_lock(folder, "epx train", "output_dir"))
    host = socket.gethostname()
    assert message.startswith(f"{folder} is in use (epx train, PID {first.pid} on {host} since ")
    assert message.endswith("wait for it to end, or pass another output_dir")
    kill(first)
    assert holder_info(folder / LOCK_FILE)["pid"] == first.pid  # the file stays: not a lock
    with exclusive_lock(folder, "epx train", "output_dir"):
        assert holder_info(folder / LOCK_FILE)["pid"] == os.getpid()


def test_a_shared_lock_admits_its_key_and_refuses_another_now_and_later(tmp_path):
    folder = tmp_path / "study"
    workers = [holder(folder, "study 'a'") for _ in range(2)]  # both hold it at once
    pids = {str(worker.pid) for worker in workers}
    message = refusal(shared_lock(folder, "study 'b'", "epx sweep", "--output-dir"))
    assert message.startswith(f"{folder} is in use by study 'a' (epx sweep, PID ")
    assert message.split("PID ")[1].split()[0] in pids
    assert "is in use" in refusal(exclusive_lock(folder, "epx eval", "--output-dir"))
    for worker in workers:
        kill(worker)
    (folder / "trial-0000").mkdir()  # study a's files
    message = refusal(shared_lock(folder, "study 'b'", "epx sweep", "--output-dir"))
    assert message.startswith(f"{folder} holds the files of study 'a' (written by epx sweep, PID ")
    assert message.endswith(", now ended): pass another --output-dir")
    with shared_lock(folder, "study 'a'", "epx sweep", "--output-dir"):  # its own: again
        pass


def test_a_folder_created_for_a_command_that_wrote_nothing_is_removed_again(tmp_path):
    folder = tmp_path / "new" / "run"
    with pytest.raises(ValueError), exclusive_lock(folder, "epx train", "output_dir"):
        assert folder.is_dir()
        raise ValueError("the recipe was wrong")
    assert not folder.exists()


def _train(run: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "epx.cli", "train", str(TINY), "--set", f"output_dir={run}",
            "--set", "logging.mode=disabled", *extra]  # fmt: skip


def _steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.multiprocess
def test_two_trainings_on_one_output_dir_the_second_is_refused_and_resume_works_after_a_kill(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(_train(run, "--set", "grpo.max_steps=400"), cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (run / "checkpoint-2" / "trainer_state.json").exists():
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    second = subprocess.run(_train(run), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    line = one_line_error(second)
    assert f"{run} is in use (epx train, PID {first.pid} on {socket.gethostname()} since " in line
    assert first.poll() is None  # the first one goes on
    while not (run / "checkpoint-4" / "trainer_state.json").exists():
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    kill(first)  # a crash: the lock file stays, naming a dead PID
    assert holder_info(run / LOCK_FILE)["pid"] == first.pid
    kept = _steps(run)
    assert kept == list(range(1, len(kept) + 1))  # one run's steps, none twice
    from epx.models import latest_checkpoint

    finish = int(latest_checkpoint(run).name.split("-")[1]) + 2
    resumed = subprocess.run(_train(run, "--set", f"grpo.max_steps={finish}", "--resume"),
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _steps(run) == list(range(1, finish + 1))


@pytest.mark.multiprocess
def test_two_evals_into_one_output_dir_the_second_is_refused(tmp_path):
    """The same eval twice at once (the worst case: both would append the same samples)."""
    out = tmp_path / "out"
    args = [sys.executable, "-m", "epx.cli", "eval", "--bench", "math500", "--limit", "200",
            "--model", str(TINY), "--data-dir", os.environ["EPX_DATA_DIR"], "--n", "4",
            "--max-tokens", "16", "--batch-size", "4", "-o", str(out), "--wandb-mode", "disabled"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    records = out / "math500.jsonl"
    deadline = time.monotonic() + 300
    while not records.is_file() or not records.stat().st_size:
        assert first.poll() is None and time.monotonic() < deadline, "the first eval ended early"
        time.sleep(0.1)
    settings = (out / "settings.json").read_text()
    second = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    line = one_line_error(second)
    assert f"{out} is in use (epx eval, PID {first.pid} on {socket.gethostname()} since " in line
    assert first.poll() is None, "the first eval ended before the second was refused"
    kill(first)
    assert (out / "settings.json").read_text() == settings
    lines = records.read_text().splitlines()
    parsed = [json.loads(line) for line in lines[:-1]]  # the last may be cut by the kill
    assert len({(r["problem_id"], r["sample"]) for r in parsed}) == len(parsed)  # none twice
