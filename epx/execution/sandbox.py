"""Run untrusted Python programs (generated code) in a sandbox, in parallel worker processes.

``run_programs(programs, workers, limits)`` runs each program in its own process and says
whether it ran to its end (``passed``), failed, or ran out of time; ``isolation()`` says what
this machine enforces. The confinement itself lives in `epx.execution.worker`, a standard-library
script that each worker runs as its own interpreter, started with a clean environment (so neither
the caller's memory nor its environment, which may hold WANDB_API_KEY or HF_TOKEN, is in any
process a program can reach). docs/sandbox.md lists what holds where.

Workers. One persistent set per interpreter, started lazily, grown on demand, reused between
calls (a call asking for fewer uses the first ones) and stopped at interpreter exit. Each worker
runs one program at a time and enforces its wall-clock limit itself (it kills the program and
everything it started); a worker that does not answer within the limit plus `GRACE_SECONDS`
is killed with its whole process group and replaced, its program reported as ``error``. As root,
each worker runs its programs as an unassigned uid of its own (60000 and up, skipping any the
passwd or group database knows, and any another epx process holds: a lock file each), so the
process limit of one program never counts another's, and the worker may kill every process of
that uid once a program ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Literal

from epx.per_process import PerProcess
from epx.scoring.pool import default_workers

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
FIRST_UID = 60000  # programs run as unassigned ids from here up, as isolate does
UID_LOCKS = Path(tempfile.gettempdir()) / "epx-sandbox-uids"
GRACE_SECONDS = 5.0  # past a program's wall-clock limit, before its worker is killed
STARTUP_SECONDS = 60.0  # for a worker to start and report what it enforces
_WORKER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
_POLL_SECONDS = 0.05

Status = Literal["passed", "failed", "timeout", "error"]


@dataclass(frozen=True)
class Limits:
    """What one program may use. ``cpu_seconds`` is whole seconds (an rlimit); ``disk_bytes``
    caps each file it writes and, with namespaces, each of its tmpfs directories."""

    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30  # address space (RLIMIT_AS)
    processes: int = 8  # processes of its uid, itself included (RLIMIT_NPROC)
    output_bytes: int = 64 << 10  # stdout and stderr kept (the rest is read and dropped)
    disk_bytes: int = 32 << 20
    open_files: int = 64

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive number, got {value!r}")
        if not isinstance(self.cpu_seconds, int):
            raise ValueError(f"Limits.cpu_seconds must be whole seconds, got {self.cpu_seconds!r}")


@dataclass(frozen=True)
class Execution:
    """How one program ran.

    status: ``passed`` (it ran to its end), ``failed`` (an exception, ``sys.exit``/``os._exit``
    before its end, a signal, a memory error), ``timeout`` (past its wall-clock or CPU limit),
    ``error`` (the sandbox could not run it). exit_code: its process's exit code (negative: the
    signal that ended it; 128 + signal from a PID namespace); None when it never ran.
    output: the first ``Limits.output_bytes`` of its stdout and stderr together.
    """

    status: Status
    exit_code: int | None
    output: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class Isolation:
    """What the workers enforce on this machine, beyond the limits and the clean environment.

    network: programs have no network at all (an empty network namespace). namespaces: each
    program has its own PID namespace (sees and outlives none of its processes) and mount
    namespace (a fresh tmpfs /tmp, HOME and TMPDIR, the `private_dirs` covered by empty tmpfs).
    uid: the unprivileged uid programs run as (None: epx's own user, who can read and delete
    that user's files). notes: why something is not enforced.
    """

    network: bool
    namespaces: bool
    uid: int | None
    private_dirs: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        """One line per property, for a report."""
        lines = [
            "network: " + ("none (own empty network namespace)" if self.network else "NOT cut"),
            "processes: "
            + ("own PID namespace" if self.namespaces else "own session (killed as a group)"),
            "files: "
            + (
                f"fresh tmpfs for {', '.join(self.private_dirs)}"
                if self.namespaces
                else "a temporary directory deleted afterwards"
            ),
            "user: "
            + (
                f"uid {self.uid} (unassigned)"
                if self.uid is not None
                else "epx's own (programs can read and change its files)"
            ),
        ]
        return lines + [f"note: {note}" for note in self.notes]


def _claim_uid(after: int) -> tuple[int, IO[str]]:
    """The first id above ``after`` that no user or group has and no other epx process holds;
    held (an exclusive lock on a file in `UID_LOCKS`) until the returned file is closed."""
    import fcntl
    import grp
    import pwd

    UID_LOCKS.mkdir(mode=0o700, parents=True, exist_ok=True)
    uid = after
    while True:
        uid += 1
        try:
            pwd.getpwuid(uid)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(uid)
            continue
        except KeyError:
            pass
        lock = (UID_LOCKS / f"{uid}.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        return uid, lock


class _Worker:
    """One worker interpreter, its pipes and the program it is running."""

    def __init__(self, uid: int | None) -> None:
        self.errors: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                str(WORKER_SCRIPT),
                str(os.getpid()),
                str(-1 if uid is None else uid),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            env=_WORKER_ENV,
            cwd="/",
            start_new_session=True,  # its own process group: Ctrl-C is the caller's business
        )
        self.index: int | None = None  # the caller's program being run
        self.sent = 0.0
        self.isolation: Isolation | None = None
        self.scratch: str | None = None  # the worker's directory, deleted when it stops

    def fileno(self) -> int:
        return self.process.stdout.fileno()  # type: ignore[union-attr]

    def handshake(self, deadline: float) -> None:
        """Read what the worker enforces; a worker that does not say is stopped (OSError)."""
        left = max(0.0, deadline - time.monotonic())
        if not select.select([self], [], [], left)[0]:
            self.stop()
            raise OSError("a sandbox worker did not start in time")
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            message = self.last_words()
            self.stop()
            raise OSError(f"a sandbox worker could not start: {message}")
        handshake = json.loads(line)
        self.scratch = handshake["scratch"]
        report = handshake["isolation"]
        self.isolation = Isolation(
            network=report["network"],
            namespaces=report["namespaces"],
            uid=report["uid"],
            private_dirs=tuple(report["private_dirs"]),
            notes=tuple(report["notes"]),
        )

    def send(self, index: int, program: str, limits: Limits) -> None:
        self.index, self.sent = index, time.monotonic()
        request = {"program": program, "limits": asdict(limits)}
        self.process.stdin.write(json.dumps(request).encode() + b"\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]

    def receive(self) -> Execution:
        """The running program's result; OSError when the worker died."""
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line.endswith(b"\n"):
            raise OSError(f"the sandbox worker died: {self.last_words()}")
        self.index = None
        return Execution(**json.loads(line))

    def last_words(self) -> str:
        """The end of what the worker wrote on stderr (a crash's traceback), or its exit code."""
        self.errors.seek(0)
        text = self.errors.read().decode(errors="replace").strip().splitlines()
        return text[-1] if text else f"exit code {self.process.poll()}"

    def stop(self, graceful: bool = False) -> None:
        """Stop the worker and everything in its process group, and reap it."""
        if graceful:
            try:
                self.process.stdin.close()  # type: ignore[union-attr]
                self.process.wait(timeout=2.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        if self.scratch is not None:  # what a killed worker left
            shutil.rmtree(self.scratch, ignore_errors=True)
        for stream in (self.process.stdin, self.process.stdout, self.errors):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]


def _lost(worker: _Worker, why: str, seconds: float) -> Execution:
    return Execution("error", None, f"{why}: {worker.last_words()}", seconds)


class _Pool:
    """This interpreter's workers (see the module docstring)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.workers: list[_Worker] = []
        self._uids: list[tuple[int, IO[str]]] = []  # each slot's uid and its lock

    def _uid(self, slot: int) -> int | None:
        if os.geteuid() != 0:
            return None
        while len(self._uids) <= slot:
            self._uids.append(_claim_uid(self._uids[-1][0] if self._uids else FIRST_UID - 1))
        return self._uids[slot][0]

    def grow(self, size: int) -> None:
        """Start workers until there are ``size`` (in parallel: each takes ~0.1 s to start)."""
        started = [_Worker(self._uid(slot)) for slot in range(len(self.workers), size)]
        deadline = time.monotonic() + STARTUP_SECONDS
        try:
            for worker in started:
                worker.handshake(deadline)
        except BaseException:
            for worker in started:
                worker.stop()
            raise
        self.workers.extend(started)

    def _replace(self, worker: _Worker) -> None:
        slot = self.workers.index(worker)
        worker.stop()
        fresh = _Worker(self._uid(slot))
        fresh.handshake(time.monotonic() + STARTUP_SECONDS)
        self.workers[slot] = fresh

    def close(self) -> None:
        for worker in self.workers:
            worker.stop(graceful=True)
        self.workers = []
        for _, lock in self._uids:
            lock.close()
        self._uids = []

    def run(self, programs: Sequence[str], limits: Limits, size: int) -> list[Execution]:
        """Results of ``programs`` in order, on the first ``size`` workers."""
        self.grow(size)
        results: list[Execution | None] = [None] * len(programs)
        pending = deque(range(len(programs)))
        busy: list[_Worker] = []
        try:
            while pending or busy:
                for worker in self.workers[:size]:
                    if pending and worker.index is None:
                        self._send(worker, pending.popleft(), programs, limits, results, busy)
                self._collect(busy, limits, results)
        except BaseException:  # e.g. Ctrl-C: a result still in flight would reach the next call
            for worker in busy:
                self._replace(worker)
            raise
        return [r or Execution("error", None, "not run", 0.0) for r in results]

    def _send(
        self,
        worker: _Worker,
        index: int,
        programs: Sequence[str],
        limits: Limits,
        results: list[Execution | None],
        busy: list[_Worker],
    ) -> None:
        try:
            worker.send(index, programs[index], limits)
            busy.append(worker)
        except OSError:
            results[index] = _lost(worker, "the sandbox worker died", 0.0)
            self._replace(worker)

    def _collect(
        self, busy: list[_Worker], limits: Limits, results: list[Execution | None]
    ) -> None:
        for worker in select.select(busy, [], [], _POLL_SECONDS)[0]:
            busy.remove(worker)
            index = worker.index
            assert index is not None
            try:
                results[index] = worker.receive()
            except (OSError, ValueError, TypeError) as error:
                results[index] = Execution(
                    "error", None, str(error), time.monotonic() - worker.sent
                )
                self._replace(worker)
        now = time.monotonic()
        for worker in [w for w in busy if now - w.sent > limits.wall_seconds + GRACE_SECONDS]:
            busy.remove(worker)
            assert worker.index is not None
            results[worker.index] = _lost(
                worker, "the sandbox worker did not answer", now - worker.sent
            )
            self._replace(worker)


_pool: PerProcess[_Pool] = PerProcess(_Pool, _Pool.close)


def _workers() -> _Pool:
    """This process's pool (call under its lock)."""
    if os.name != "posix":
        raise OSError("sandboxed execution needs a POSIX system (Linux for the full sandbox)")
    return _pool.get()


def run_programs(
    programs: Sequence[str], workers: int | None = None, limits: Limits | None = None
) -> list[Execution]:
    """Run each program in the sandbox, ``workers`` at a time; their results in order.

    OSError when no worker could be started (then nothing ran)."""
    if not programs:
        return []
    size = max(1, min(workers or default_workers(), len(programs)))
    with _pool.lock:
        return _workers().run(list(programs), limits or Limits(), size)


def run_program(program: str, limits: Limits | None = None) -> Execution:
    """Run one program in the sandbox."""
    return run_programs([program], 1, limits)[0]


def isolation() -> Isolation:
    """What the sandbox enforces on this machine (starts the first worker to find out)."""
    with _pool.lock:
        pool = _workers()
        pool.grow(1)
        found = pool.workers[0].isolation
    assert found is not None
    return found


def shutdown() -> None:
    """Stop the workers now (they start again on the next call)."""
    with _pool.lock:
        _pool.close()
