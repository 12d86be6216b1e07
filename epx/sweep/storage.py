"""Where a study lives: SQLite (one worker), a journal file (several on one machine or a shared
file system) or PostgreSQL (several machines), through Optuna's own storages.

RDB storages (SQLite, PostgreSQL) get Optuna's heartbeat: a worker killed outright leaves its
trial RUNNING only until `grace` seconds pass without a beat; the next worker that asks for a
trial fails it and `RetryHeartbeatStaleTrialCallback` enqueues it again. PostgreSQL drops idle
connections, so the pool checks them before use (`pool_pre_ping`). Workers that start together
race to create the tables: that is retried.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epx.errors import RecipeError

JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")
MAX_RETRY = 3  # times a trial whose worker died is run again


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def is_rdb(url: str) -> bool:
    return "://" in url and not url.startswith("journal://")


@dataclass
class StorageClock:
    """Seconds and calls a worker spent in its storage (the cost of coordinating workers)."""

    seconds: float = 0.0
    calls: int = 0


def time_storage_calls(storage: Any) -> StorageClock:
    """Wrap the storage's public methods on the instance (Optuna still sees its class, so the
    heartbeat stays on) to add up their time; the heartbeat thread's beats are not counted."""
    import optuna

    clock = StorageClock()
    names = [n for n in dir(optuna.storages.BaseStorage) if not n.startswith("_")]
    for name in names:
        method = getattr(storage, name, None)
        if not callable(method) or name in ("record_heartbeat", "get_heartbeat_interval"):
            continue

        def timed(*args: Any, _method: Any = method, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                clock.seconds += time.perf_counter() - start
                clock.calls += 1

        setattr(storage, name, timed)
    return clock


def open_storage(url: str, heartbeat: float | None = 60.0) -> Any:
    """The Optuna storage of `url` (sqlite:///..., postgresql+psycopg://..., a journal file)."""
    import optuna

    if not is_rdb(url):
        path = Path(url.removeprefix("journal://"))
        if path.suffix not in JOURNAL_SUFFIXES:
            raise RecipeError(
                f"--storage {url}: expected an RDB URL (sqlite:///file.db, "
                "postgresql+psycopg://user@host/db) or a journal file (.log, .journal)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}  # one writer at a time: wait, don't fail
    kwargs: dict[str, Any] = {"engine_kwargs": engine_kwargs}
    with warnings.catch_warnings():  # the heartbeat and its retry are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if heartbeat:
            kwargs.update(
                heartbeat_interval=int(max(1, heartbeat)),
                grace_period=int(max(2, 2 * heartbeat)),
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRY
                ),
            )
    last_error: Exception | None = None
    for attempt in range(5):  # workers starting together race to create the tables
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, **kwargs)
        except Exception as error:
            last_error = error
            time.sleep(0.5 * (attempt + 1))
    text = str(last_error).strip().splitlines()[0] if last_error else ""
    raise RecipeError(f"--storage {url}: cannot open the study storage ({text})") from None


def create_or_load(
    storage: Any, name: str, direction: str, sampler: Any, pruner: Any
) -> tuple[Any, bool]:
    """The study `name`, created if it does not exist (created: True), else loaded."""
    import optuna

    for attempt in range(5):
        try:
            study = optuna.create_study(
                storage=storage, study_name=name, direction=direction, sampler=sampler,
                pruner=pruner,
            )  # fmt: skip
            return study, True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(
                study_name=name, storage=storage, sampler=sampler, pruner=pruner
            )
            if study.direction.name.lower() != direction:
                raise RecipeError(
                    f"study {name!r} exists with direction {study.direction.name.lower()}, "
                    f"not {direction}; pass another --study-name"
                ) from None
            return study, False
        except Exception as error:  # a concurrent creation left the other worker half-done
            if attempt == 4:
                raise RecipeError(f"study {name!r}: cannot create or load it ({error})") from None
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")
