"""`epx sweep` with several workers, or a worker killed: real Optuna studies on SQLite, a journal
file and PostgreSQL whose trials are real `epx train` runs of the tiny recipe (in a file of their
own so that the test workers share the sweep tests evenly)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from tests_shared import sweep_worker

from epx.sweep.storage import open_storage


@pytest.mark.multiprocess
def test_a_worker_killed_mid_trial_is_retried_and_a_rerun_reaches_the_total(tmp_path):
    """SIGKILL a sweep while a trial runs: the next worker fails that trial by its stale
    heartbeat and runs it again; the rerun reaches the requested total, no number twice."""
    out = tmp_path / "sweep"
    storage = f"sqlite:///{out / 'study.db'}"
    worker = sweep_worker(out, storage, 3, "--heartbeat", "1")
    deadline = time.monotonic() + 120
    while True:  # until the second trial is running with a metrics file of its own
        assert worker.poll() is None and time.monotonic() < deadline, worker.stderr.read() if worker.poll() else ""
        if (out / "trial-0001" / "seed-0" / "metrics.jsonl").is_file():
            break
        time.sleep(0.2)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    study = optuna.load_study(study_name="shared", storage=storage)
    killed = next(t for t in study.get_trials() if t.state == TrialState.RUNNING)
    time.sleep(3)  # past the grace period (2 x 1 s) without a heartbeat
    rerun = sweep_worker(out, storage, 3, "--heartbeat", "1")
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()
    trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    by_number = {t.number: t for t in trials}
    assert by_number[killed.number].state == TrialState.FAIL  # not RUNNING forever
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params  # run again
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 3


@pytest.fixture(scope="module")
def postgres_url():
    from postgres import start_postgres

    try:
        url, stop = start_postgres()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    yield url
    stop()


@pytest.mark.multiprocess
def test_two_workers_share_one_study_on_postgresql(tmp_path, postgres_url):
    _two_workers_reach_the_total(tmp_path / "sweep", postgres_url, postgres_url)


@pytest.mark.multiprocess
def test_two_workers_share_one_study_in_a_journal_file(tmp_path):
    journal = tmp_path / "sweep" / "study.log"
    _two_workers_reach_the_total(tmp_path / "sweep", str(journal), open_storage(str(journal)))


def _two_workers_reach_the_total(out: Path, url: str, storage: object) -> None:
    workers = [sweep_worker(out, url, 4) for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=600) == 0, worker.stderr.read()
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4  # exactly the total, no overshoot
    assert len({t.number for t in trials}) == len(trials)
    assert len({t.user_attrs["worker"] for t in complete}) == 2  # both workers ran trials
    assert len(list((out / "workers").glob("*.json"))) == 2
