"""Where a study lives: SQLite (one worker), a journal file (several on one machine or a shared
file system) or PostgreSQL (several machines), through Optuna's own storages.

Every storage gets Optuna's heartbeat: a worker killed outright leaves its trial RUNNING only
until `grace` seconds pass without a beat; the next worker that asks for a trial fails it and
`RetryHeartbeatStaleTrialCallback` enqueues it again. RDB storages (SQLite, PostgreSQL) have it
built in. A journal file has none in Optuna, so `HeartbeatJournalStorage` adds it: each beat is a
record the worker itself writes into the journal (its host, PID and clock), and a trial is stale
when its worker is a process of this host that no longer exists, or when its last beat is older
than the grace period (workers on several hosts then need clocks that agree within it, as NTP
keeps them).

A lost database connection (`guard_storage`) is retried with backoff for `retry_seconds`; after
that the storage counts as lost and every call raises `StorageLost` at once. PostgreSQL drops idle
connections, so the pool checks them before use (`pool_pre_ping`). Workers that start together
race to create the tables: that is retried.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epx.errors import RecipeError

JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
MAX_RETRY = 3  # times a trial whose worker died is run again
RETRY_SECONDS = 120.0  # a lost database connection is retried this long
BACKOFF_SECONDS = (0.5, 5.0)  # the first wait between tries, and the longest
BEAT_ATTR = "epx:heartbeat"  # a journal trial's last heartbeat: {"time", "host", "pid"}


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def storage_url(text: str) -> str:
    """`--storage` as a URL: a path to a SQLite file (.db, .sqlite, .sqlite3) becomes
    `sqlite:///` and its absolute path; anything else stays as given."""
    if "://" not in text and Path(text).suffix in SQLITE_SUFFIXES:
        return sqlite_url(Path(text))
    return text


def is_rdb(url: str) -> bool:
    return "://" in url and not url.startswith("journal://")


def shown_url(url: str) -> str:
    """The URL with its password, if any, hidden (for messages and lock files)."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def storage_file(url: str) -> Path | None:
    """The file a SQLite URL or a journal names (None for a server or an in-memory SQLite)."""
    if not is_rdb(url):
        return Path(url.removeprefix("journal://"))
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    return None


class StorageLost(Exception):
    """The storage did not answer within the retry time (the message says since when and why)."""


@dataclass
class StorageClock:
    """Seconds and calls a worker spent in its storage (the cost of coordinating workers), and
    why the storage was given up (None while it answers)."""

    seconds: float = 0.0
    calls: int = 0
    lost: str | None = None


def is_connection_error(error: BaseException) -> bool:
    """Whether `error` (or what caused it) is a lost or refused database connection, or a
    SQLite file locked for longer than its timeout: what a retry can cure."""
    from sqlalchemy import exc

    seen: BaseException | None = error
    for _ in range(6):  # Optuna wraps SQLAlchemy's errors in StorageInternalError
        if seen is None:
            return False
        if isinstance(seen, exc.DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, exc.OperationalError | exc.InterfaceError | exc.DisconnectionError):
            return not re.search(r"no such (table|column)", str(seen))
        seen = seen.__cause__ or seen.__context__
    return False


def guard_storage(
    storage: Any, retry_seconds: float = RETRY_SECONDS, notify: Callable[[str], None] | None = None
) -> StorageClock:
    """Wrap the storage's public methods on the instance (Optuna still sees its class, so the
    heartbeat stays on): add up their time, and retry a lost connection with backoff for
    `retry_seconds` (`notify` hears when an outage starts and ends). Then the storage is lost:
    that call and every later one raise `StorageLost`. The heartbeat thread's beats are not
    timed, and never raise (a beat that fails is a beat missed)."""
    import optuna

    clock = StorageClock()
    outage: list[float] = []  # when the current outage began (empty while the storage answers)

    def retried(method: Any, *args: Any, **kwargs: Any) -> Any:
        delay, deadline = BACKOFF_SECONDS[0], None
        while True:
            if clock.lost:
                raise StorageLost(clock.lost)
            try:
                result = method(*args, **kwargs)
            except optuna.exceptions.UpdateFinishedTrialError:
                if deadline is None or method.__name__ != "set_trial_state_values":
                    raise
                return True  # the try before the connection dropped had written it
            except Exception as error:
                if not is_connection_error(error):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + retry_seconds
                if not outage:
                    outage.append(now)
                    if notify:
                        notify(f"storage unreachable ({_first_line(error)}): retrying for up "
                               f"to {retry_seconds:.0f} s")  # fmt: skip
                if now >= deadline:
                    clock.lost = (f"no answer for {now - outage[0]:.0f} s "
                                  f"({_first_line(error)})")  # fmt: skip
                    raise StorageLost(clock.lost) from None
                time.sleep(min(delay, deadline - now))
                delay = min(2 * delay, BACKOFF_SECONDS[1])
                continue
            if outage:
                if notify:
                    notify(f"storage back after {time.monotonic() - outage[0]:.0f} s")
                outage.clear()
            return result

    def timed(*args: Any, _method: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return retried(_method, *args, **kwargs)
        finally:
            clock.seconds += time.perf_counter() - start
            clock.calls += 1

    def beat(*args: Any, _method: Any, **kwargs: Any) -> None:
        with contextlib.suppress(Exception):
            retried(_method, *args, **kwargs)

    names = [n for n in dir(optuna.storages.BaseStorage) if not n.startswith("_")]
    for name in [*names, "record_heartbeat"]:
        method = getattr(storage, name, None)
        if not callable(method) or name == "get_heartbeat_interval":
            continue
        wrapper = beat if name == "record_heartbeat" else timed
        setattr(storage, name, lambda *a, _w=wrapper, _m=method, **k: _w(*a, _method=_m, **k))
    return clock


def _first_line(error: BaseException) -> str:
    cause = error
    while cause.__cause__ is not None:  # the driver's own message, not Optuna's wrapper
        cause = cause.__cause__
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


def worker_gone(
    beat: dict[str, Any] | None,
    started: float,
    now: float,
    grace: float,
    *,
    host: str,
    alive: Callable[[int], bool],
) -> bool:
    """Whether a RUNNING journal trial's worker is gone: its last beat (or, with no beat since
    the trial started, its start) is older than `grace` seconds, or it is a process of `host`
    that `alive` says no longer exists. A beat from before `started` belongs to an earlier run
    of the same parameters (a retry inherits its attributes)."""
    if not isinstance(beat, dict) or float(beat.get("time", 0.0)) < started:
        return now - started > grace
    if beat.get("host") == host and not alive(int(beat.get("pid", 0))):
        return True
    return now - float(beat["time"]) > grace


def process_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _heartbeat_journal_class() -> type:
    """`HeartbeatJournalStorage`, built on first use (optuna is imported only by commands)."""
    import optuna
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.trial import TrialState

    class HeartbeatJournalStorage(optuna.storages.JournalStorage, BaseHeartbeat):
        """A journal storage with Optuna's heartbeat (see the module docstring)."""

        def __init__(self, backend: Any, interval: int, grace: int, callback: Any) -> None:
            super().__init__(backend)
            self.interval, self.grace, self.callback = interval, grace, callback

        def record_heartbeat(self, trial_id: int) -> None:
            beat = {"time": time.time(), "host": socket.gethostname(), "pid": os.getpid()}
            self.set_trial_system_attr(trial_id, BEAT_ATTR, beat)

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now, host = time.time(), socket.gethostname()
            running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
            stale = []
            for trial in running:
                started = trial.datetime_start.timestamp() if trial.datetime_start else now
                beat = trial.system_attrs.get(BEAT_ATTR)
                if worker_gone(beat, started, now, self.grace, host=host, alive=process_alive):
                    stale.append(trial._trial_id)
            return stale

        def get_heartbeat_interval(self) -> int | None:
            return self.interval

        def get_heartbeat_stale_trial_callback(self) -> Any:
            return self.callback

    return HeartbeatJournalStorage


def open_storage(url: str, heartbeat: float | None = 60.0) -> Any:
    """The Optuna storage of `url` (sqlite:///..., postgresql+psycopg://..., a journal file),
    with the heartbeat of `heartbeat` seconds (none: None, e.g. to show a study)."""
    import optuna

    with warnings.catch_warnings():  # the heartbeat and its retry are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        beats: dict[str, Any] = {}
        if heartbeat:
            beats = dict(
                heartbeat_interval=int(max(1, heartbeat)),
                grace_period=int(max(2, 2 * heartbeat)),
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRY
                ),
            )
    if not is_rdb(url):
        path = Path(url.removeprefix("journal://"))
        if path.suffix not in JOURNAL_SUFFIXES:
            raise RecipeError(
                f"--storage {url}: expected an RDB URL (sqlite:///file.db, "
                "postgresql+psycopg://user@host/db), a SQLite file (.db) or a journal file "
                "(.log, .journal)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(str(path))
        if not beats:
            return optuna.storages.JournalStorage(backend)
        return _heartbeat_journal_class()(
            backend, beats["heartbeat_interval"], beats["grace_period"],
            beats["heartbeat_stale_trial_callback"],
        )  # fmt: skip
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}  # one writer at a time: wait, don't fail
    kwargs: dict[str, Any] = {"engine_kwargs": engine_kwargs, **beats}
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
    raise RecipeError(f"--storage {shown_url(url)}: cannot open the study storage ({text})") from None


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
