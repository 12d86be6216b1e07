"""`epx sweep` never mixes, loses or hides: a study refuses trials of other settings (or starts
one beside it with --new-study), a study folder belongs to one study, a dead journal worker's
trial is failed and retried, a storage outage is waited out (or ends the worker in one line),
bad options are one line before any trial, and Optuna's tracebacks stay out of the console.
Real studies on SQLite, a journal file and PostgreSQL; real `epx sweep` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from tests_shared import REPO, TINY, one_line_error, sweep_worker
from typer.testing import CliRunner

from epx.cli import app
from epx.sweep.identity import identity_differences, study_identity, variant_name
from epx.sweep.space import parse_space
from epx.sweep.storage import BEAT_ATTR, open_storage, worker_gone

# one trial of one tiny step, ranked by the training reward
QUICK = ["--recipe", TINY, "--metric", "reward", "--n-trials", "1", "--pruner", "none",
         "--set", "grpo.max_steps=1"]  # fmt: skip


def epx(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def method(name: str) -> list[object]:
    """`--method NAME` with the shipped space (found whatever the working dir)."""
    return ["--method", name, "--space", REPO / "sweeps" / f"{name}.yaml"]


def trials_of(db: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}").get_trials()


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


# ---- what defines a study (pure) ------------------------------------------------------------

SPACE = parse_space({"method": "ppl", "params": {
    "shaping.ppl.alpha": {"type": "float", "low": 0.001, "high": 0.1, "log": True}}}, "s.yaml")  # fmt: skip
RECIPE = {"grpo": {"learning_rate": 1e-3, "max_steps": 2}, "shaping": {"ppl": {"alpha": 0.01}},
          "output_dir": "runs/a", "logging": {"mode": "offline"}}  # fmt: skip


def identity(recipe=RECIPE, space=SPACE, **changes):
    settings = {"method": "ppl", "metric": "reward", "direction": "maximize", "sampler": "tpe"}
    return study_identity(recipe, space, **{**settings, **changes})


def test_a_study_identity_names_each_setting_that_differs_and_ignores_where_trials_go():
    # where trials go, how they are logged, and the searched key's value in the recipe
    same = identity({**RECIPE, "output_dir": "runs/b", "logging": {"mode": "disabled"},
                     "shaping": {"ppl": {"alpha": 0.05}}})  # fmt: skip
    assert identity_differences(identity(), same) == []
    assert variant_name("s", identity()) == variant_name("s", same)  # the same new name
    other = identity({**RECIPE, "grpo": {"learning_rate": 5e-4, "max_steps": 1}}, metric="loss")
    assert identity_differences(identity(), other) == [
        "metric: 'reward' there, 'loss' now",
        "recipe grpo.learning_rate: 0.001 there, 0.0005 now",
        "recipe grpo.max_steps: 2 there, 1 now",
    ]
    wider = parse_space({"method": "ppl", "params": {
        "shaping.ppl.alpha": {"type": "float", "low": 0.001, "high": 0.5, "log": False}}}, "t.yaml")  # fmt: skip
    assert identity_differences(identity(), identity(space=wider)) == [
        "search space shaping.ppl.alpha.high: 0.1 there, 0.5 now",
        "search space shaping.ppl.alpha.log: True there, False now",
    ]
    assert variant_name("s", identity()) != variant_name("s", other)
    legacy = {"method": "position", "metric": "reward", "direction": "maximize"}
    assert identity_differences(legacy, identity()) == ["method: 'position' there, 'ppl' now"]


# ---- a study and its folder -----------------------------------------------------------------


@pytest.mark.multiprocess
def test_a_study_refuses_trials_of_other_settings_and_new_study_starts_one_beside_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default folders: tmp_path/runs/sweep/<study>
    first = epx("sweep", *method("position"), *QUICK)
    assert first.exit_code == 0, first.stderr
    folder = tmp_path / "runs" / "sweep" / "tiny-random-position"
    db = folder / "study.db"
    before = trials_of(db, "tiny-random-position")
    assert [t.state for t in before] == [TrialState.COMPLETE]
    shipped = (REPO / "sweeps" / "position.yaml").read_text()
    narrow, linear = tmp_path / "narrow.yaml", tmp_path / "linear.yaml"
    narrow.write_text(shipped.replace("high: 0.5,", "high: 0.3,"))
    linear.write_text(shipped.replace("high: 0.5, log: true,", "high: 0.5, log: false,"))
    refused = {
        ("--set", "grpo.learning_rate=5e-4"): "recipe grpo.learning_rate: 0.001 there, 0.0005 now",
        ("--set", "grpo.max_steps=2"): "recipe grpo.max_steps: 1 there, 2 now",
        ("--metric", "loss"): "metric: 'reward' there, 'loss' now",
        ("--direction", "minimize"): "direction: 'maximize' there, 'minimize' now",
        ("--sampler", "random"): "sampler: 'tpe' there, 'random' now",
        ("--space", narrow): "search space shaping.position.alpha.high: 0.5 there, 0.3 now",
        ("--space", linear): "search space shaping.position.alpha.log: True there, False now",
    }
    for change, expected in refused.items():
        line = one_line_error(epx("sweep", *method("position"), *QUICK, *change))
        assert expected in line and "pass --new-study" in line, line
    line = one_line_error(epx("sweep", *method("ppl"), "--study-name", "tiny-random-position", *QUICK))
    assert "method: 'position' there, 'ppl' now" in line
    assert trials_of(db, "tiny-random-position") == before  # nothing added, no FAIL trial

    other = epx("sweep", *method("ppl"), "--study-name", "other", "-o", folder, *QUICK)
    line = one_line_error(other)  # another study's trials would overwrite trial-0000
    assert f"{folder} holds the files of study 'tiny-random-position'" in line

    new = epx("sweep", *method("position"), *QUICK, "--set", "grpo.learning_rate=5e-4", "--new-study")
    assert new.exit_code == 0, new.stderr
    name = next(word for word in new.stderr.split() if word.startswith("tiny-random-position-"))
    assert f"this is study {name}" in new.stderr
    new_db = tmp_path / "runs" / "sweep" / name / "study.db"
    (trial,) = trials_of(new_db, name)
    assert trial.state == TrialState.COMPLETE
    assert trials_of(db, "tiny-random-position") == before
    again = epx("sweep", *method("position"), *QUICK, "--set", "grpo.learning_rate=5e-4", "--new-study")
    assert again.exit_code == 0 and f"this is study {name}" in again.stderr  # the same one
    assert "already has 1 finished trials" in again.stderr and len(trials_of(new_db, name)) == 1

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    shown = epx("sweep", "--show", "tiny-random-position", "--storage", db)
    assert shown.exit_code == 0, shown.stderr
    assert (folder / "tiny-random-position-history.png").is_file()  # beside the study
    assert list(elsewhere.iterdir()) == []
    missing = tmp_path / "missing.db"
    line = one_line_error(epx("sweep", "--show", "nosuchstudy", "--storage", f"sqlite:///{missing}"))
    assert f"{missing} does not exist" in line and not missing.exists()


def test_bad_metric_and_launcher_are_one_line_before_any_trial(tmp_path):
    out = tmp_path / "sweep"
    evaluated = ["--set", "eval.benches=[arithmetic]"]
    cases = [
        (["--metric", "eval/foo/acc", *evaluated], "--metric eval/foo/acc: the recipe"),
        (["--metric", "eval/arithmetic/accuracy", *evaluated], "an evaluation logs acc, maj"),
        (["--metric", "rewad"], "did you mean reward?"),
        (["--metric", "rewards/correctnes/mean"], "the recipe's reward functions are correctness"),
        (["--metric", "reward", "--launcher", "nosuchlauncher"], "'nosuchlauncher' is not a command"),
    ]
    for extra, expected in cases:
        line = one_line_error(epx("sweep", "--method", "ppl", "--recipe", TINY, "-o", out, *extra))
        assert expected in line, line
        assert not out.exists()  # refused before the study or any trial existed


def _worker(out: Path, space: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "epx.cli", "sweep", "--method", "position", "--recipe", str(TINY),
            "--space", str(space), "--sampler", "grid", "--metric", "reward", "-o", str(out), *extra]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.multiprocess
def test_a_failed_trial_is_its_own_line_without_optunas_traceback(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("method: position\nparams:\n  model.name_or_path: {type: categorical, "
                     "choices: [./no-model], paper: ./no-model}\n")  # fmt: skip
    result = _worker(tmp_path / "sweep", space, "--n-trials", "1", "--max-failed", "1")
    assert result.returncode == 1, result.stderr
    assert "trial 0 failed: seed 0: epx train exited 2:" in result.stderr
    assert "1 trials in a row failed: this worker stops" in result.stderr
    assert "Traceback" not in result.stderr and "because of the following error" not in result.stderr


@pytest.mark.multiprocess
def test_ctrl_c_during_a_trial_is_one_line_and_the_trial_fails(tmp_path):
    out = tmp_path / "sweep"
    worker = sweep_worker(out, f"sqlite:///{out / 'study.db'}", 2, "--set", "grpo.max_steps=400")
    wait_for(out / "trial-0000" / "seed-0" / "metrics.jsonl", worker)
    worker.send_signal(signal.SIGINT)
    stderr = worker.communicate(timeout=120)[1]
    assert worker.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.rstrip().endswith("epx: interrupted")
    assert "KeyboardInterrupt" in stderr  # Optuna's one line says why the trial failed
    (trial,) = trials_of(out / "study.db", "shared")
    assert trial.state == TrialState.FAIL


# ---- journal storage: a dead worker's trial -------------------------------------------------


@pytest.mark.multiprocess
def test_a_journal_worker_killed_mid_trial_is_failed_at_once_and_retried(tmp_path):
    """SIGKILL a worker of a journal study: its PID on this host is gone, so the next worker
    fails the trial at once (no grace period to wait) and runs it again; the total is exact."""
    out = tmp_path / "sweep"
    journal = str(out / "study.log")
    worker = sweep_worker(out, journal, 2)
    wait_for(out / "trial-0000" / "seed-0" / "metrics.jsonl", worker)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    storage = open_storage(journal, heartbeat=None)
    killed = next(t for t in optuna.load_study(study_name="shared", storage=storage).get_trials()
                  if t.state == TrialState.RUNNING)  # fmt: skip
    rerun = sweep_worker(out, journal, 2)
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()
    trials = optuna.load_study(study_name="shared", storage=open_storage(journal, None)).get_trials()
    assert len({t.number for t in trials}) == len(trials)
    assert next(t for t in trials if t.number == killed.number).state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")  # ask(), no beats
def test_a_journal_trial_silent_past_the_grace_period_is_failed_and_retried(tmp_path):
    """A worker on another host last beat 3 s ago with a 1 s heartbeat (grace 2 s): stale."""
    journal = str(tmp_path / "study.log")
    storage = open_storage(journal, heartbeat=1)
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    beat = {"time": time.time(), "host": "another-host", "pid": os.getpid()}
    storage.set_trial_system_attr(trial._trial_id, BEAT_ATTR, beat)
    time.sleep(3)
    fresh = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    storage.record_heartbeat(fresh._trial_id)  # this process beats now: alive and recent
    from epx.sweep.total import fail_stale_trials

    fail_stale_trials(study)
    states = {t.number: t.state for t in study.get_trials()}
    assert states[trial.number] == TrialState.FAIL and states[fresh.number] == TrialState.RUNNING
    (retry,) = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert retry.system_attrs["failed_trial"] == trial.number and retry.params == trial.params


def test_whose_worker_is_gone_by_hand():
    alive = {10}.__contains__
    gone = lambda beat, started=100.0, now=105.0: worker_gone(  # noqa: E731
        beat, started, now, 4.0, host="here", alive=alive)
    assert not gone({"time": 104.0, "host": "here", "pid": 10})  # alive, beat 1 s ago
    assert gone({"time": 104.0, "host": "here", "pid": 11})  # its PID on this host is gone
    assert not gone({"time": 104.0, "host": "there", "pid": 11})  # another host's: by time only
    assert gone({"time": 100.5, "host": "there", "pid": 11})  # 4.5 s > grace 4 s
    assert gone(None)  # no beat in the 5 s since it started (grace 4 s)
    assert not gone(None, started=101.5)  # 3.5 s since its start: not yet
    # a retry inherits its predecessor's beat: a beat older than the start does not count
    assert not gone({"time": 90.0, "host": "here", "pid": 11}, started=103.0)


# ---- PostgreSQL outages ---------------------------------------------------------------------


@pytest.fixture
def postgres():
    from postgres import PostgresServer

    try:
        server = PostgresServer()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    yield server
    server.remove()


def trials_in(url: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="shared", storage=url).get_trials()


@pytest.mark.multiprocess
def test_a_worker_waits_out_a_postgresql_crash_and_restart(tmp_path, postgres):
    """`pg_ctl -m immediate` mid-trial, started again 15 s later: the worker retries, goes on
    and reaches the total; no traceback, nothing lost or counted twice."""
    out = tmp_path / "sweep"
    worker = sweep_worker(out, postgres.url, 2, "--set", "grpo.max_steps=12", "--pruner", "none")
    wait_for(out / "trial-0000" / "seed-0" / "metrics.jsonl", worker)
    postgres.stop()
    time.sleep(15)
    postgres.start()
    stderr = worker.communicate(timeout=600)[1]
    assert worker.returncode == 0, stderr
    assert "storage unreachable" in stderr and "storage back after" in stderr
    assert "Traceback" not in stderr and "UnboundLocalError" not in stderr
    trials = trials_in(postgres.url)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2


@pytest.mark.multiprocess
def test_a_storage_lost_for_good_ends_the_worker_in_one_line_and_its_trial_is_retried(tmp_path, postgres):
    out = tmp_path / "sweep"
    worker = sweep_worker(out, postgres.url, 2, "--set", "grpo.max_steps=12", "--pruner", "none", "--storage-retry", "5")
    wait_for(out / "trial-0000" / "seed-0" / "metrics.jsonl", worker)
    postgres.stop()
    stderr = worker.communicate(timeout=300)[1]
    assert worker.returncode == 1, stderr
    assert "Traceback" not in stderr and "UnboundLocalError" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"epx: error: storage {postgres.url}: no answer for ")
    assert "this worker stops; its trial 0 stays RUNNING until" in last
    postgres.start()
    assert [t.state for t in trials_in(postgres.url)] == [TrialState.RUNNING]  # not lost
    time.sleep(3)  # past the next worker's grace period (2 x 1 s)
    rerun = sweep_worker(out, postgres.url, 2, "--set", "grpo.max_steps=12", "--pruner", "none", "--heartbeat", "1")
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read()
    trials = trials_in(postgres.url)
    assert trials[0].state == TrialState.FAIL  # failed by the heartbeat check, then run again
    assert [t.system_attrs.get("failed_trial") for t in trials[1:]].count(0) == 1
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
