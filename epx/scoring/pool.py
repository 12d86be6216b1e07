"""Score many (completion, gold) pairs in worker processes that can never hang the caller.

Design. One persistent pool per interpreter, created lazily on the first call and reused; it
grows on demand, and a call asking for fewer workers uses the first ones (no churn between
callers). Workers are forked from a ``forkserver`` that has imported math-verify and warmed its
parser once (`warmup`): the parent's torch threads are never forked, the caller's ``__main__``
is never re-run, and a replacement worker starts warm in milliseconds. Work goes out in chunks of
up to 32 pairs (one pipe round trip each). A worker scores each pair on its main thread with
math-verify's own integer-second timeouts (`local.score_local`) and writes (item, start time)
into shared memory before each one. The parent polls: a pair running past ``timeout +
GRACE_SECONDS`` (sympy stuck where no signal lands, or a stopped process) gets its worker killed,
reaped and replaced; that pair becomes ``Score("timeout")`` and the rest of its chunk is sent
again. A worker that dies (each has a 4 GiB address-space cap) is handled the same way. Calls
from several threads are serialised by a lock; workers are stopped at interpreter exit.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sys
import time
import types
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from epx.per_process import PerProcess
from epx.scoring.extract import DEFAULT_STRICTNESS, Strictness, final_answer
from epx.scoring.score import Score

CHUNK_SIZE = 32
GRACE_SECONDS = 2.0  # past math-verify's own timeout, before a worker is killed
STARTUP_SECONDS = 30.0  # more for a job not started yet (a new worker may still be importing)
WORKER_MEMORY_BYTES = 4 << 30
_POLL_SECONDS = 0.05
_MAX_ATTEMPTS = 3  # a chunk whose worker dies before starting it is retried this often

_Item = tuple[str, str]
_Row = tuple[str, str | None, bool, str | None, bool]  # a Score's fields, gold readable


def default_workers() -> int:
    """Workers when the caller does not say: one per core, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def _limit_memory() -> None:
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = WORKER_MEMORY_BYTES if hard < 0 else min(WORKER_MEMORY_BYTES, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


def _worker_main(conn: Connection, progress: Any) -> None:
    """A worker's loop: score chunks until told to stop (None) or the parent goes away."""
    _limit_memory()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    from epx.scoring.local import read_gold, score_local

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        items, timeout, strictness = message
        rows: list[_Row] = []
        for index, (completion, gold) in enumerate(items):
            progress[1], progress[2] = time.monotonic(), 0.0  # the parent reads index first
            progress[0] = index
            readable = read_gold(gold, timeout)  # phase 0: the gold (cached after its first use)
            progress[1], progress[2] = time.monotonic(), 1.0
            score = score_local(completion, gold, timeout, strictness)
            rows.append((score.status, score.answer, score.boxed, score.key, readable))
        conn.send(rows)


@contextmanager
def _caller_main_hidden() -> Iterator[None]:
    """Start a worker without the caller's ``__main__``.

    spawn and forkserver children re-run the parent's main script (as ``__mp_main__``); a script
    without an ``if __name__ == "__main__"`` guard would then train or evaluate again in every
    worker. Workers need nothing from it, so for the few milliseconds of ``start()`` the main
    module is a bare one (the caller holds the pool lock).
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


@dataclass
class _Job:
    indices: list[int]  # positions in the caller's list
    attempts: int = 0


class _Worker:
    """One worker process, its pipe, its progress cell and the job it is running."""

    def __init__(self, ctx: Any) -> None:
        self.progress = ctx.RawArray("d", [-1.0, 0.0, 0.0])  # index, start time, phase
        parent_end, child_end = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker_main, args=(child_end, self.progress), daemon=True, name="epx-scorer"
        )
        with _caller_main_hidden():
            self.process.start()
        child_end.close()
        self.conn: Connection = parent_end
        self.job: _Job | None = None

    def send(self, job: _Job, batch: _Batch) -> None:
        """Hand ``job`` to the (idle) worker; its progress reads "not started" until it starts."""
        self.job = job
        self.progress[0], self.progress[1] = -1.0, time.monotonic()
        self.conn.send(([batch.items[i] for i in job.indices], batch.timeout, batch.strictness))

    def running_index(self) -> int:
        """Index (in its chunk) of the item being scored (the last one once done); -1 before."""
        return int(self.progress[0])

    def reading_gold(self) -> bool:
        """Whether the item being scored is still parsing its gold answer."""
        return self.running_index() >= 0 and self.progress[2] == 0.0

    def overdue(self, now: float, limit: float) -> bool:
        """Whether the item being scored ran past ``limit`` s, or the job never started."""
        if self.running_index() >= 0:
            return now - self.progress[1] > limit
        return now - self.progress[1] > limit + STARTUP_SECONDS

    def stop(self, graceful: bool) -> None:
        """Stop the process and reap it (no zombie)."""
        if graceful:
            try:
                self.conn.send(None)
                self.process.join(timeout=1.0)
            except (OSError, ValueError):
                pass
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5.0)
        self.conn.close()


def _context() -> Any:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["epx.scoring.warmup"])  # ignored if a forkserver already runs
    return ctx


def _timeout_score(completion: str, strictness: Strictness = DEFAULT_STRICTNESS) -> Score:
    final = final_answer(completion, strictness)
    return Score("timeout", final.text, final.boxed)


class _Pool:
    """The worker processes of this interpreter (see the module docstring)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._ctx = _context()
        self.workers: list[_Worker] = []

    def grow(self, size: int) -> None:
        """Start workers until there are at least ``size``."""
        while len(self.workers) < size:
            self.workers.append(_Worker(self._ctx))

    def close(self) -> None:
        for worker in self.workers:
            worker.stop(graceful=True)
        self.workers = []

    def _replace(self, worker: _Worker) -> None:
        worker.stop(graceful=False)
        self.workers[self.workers.index(worker)] = _Worker(self._ctx)

    def run(
        self, items: list[_Item], timeout: float, size: int, strictness: Strictness
    ) -> list[Score]:
        """Scores of ``items`` in order, on the first ``size`` workers; a worker past the hard
        limit is killed and replaced."""
        self.grow(size)
        batch = _Batch(items, timeout, strictness, chunk_size=math.ceil(len(items) / size))
        try:
            while batch.pending or batch.busy:
                self._dispatch(batch, size)
                self._collect(batch)
                self._kill_overdue(batch)
        except BaseException:  # e.g. Ctrl-C: results still in flight would reach the next call
            for worker in [w for w in self.workers if w.job is not None]:
                self._replace(worker)
            raise
        return batch.scores()

    def _dispatch(self, batch: _Batch, size: int) -> None:
        for worker in self.workers[:size]:
            if not batch.pending:
                return
            if worker.job is not None:
                continue
            try:
                worker.send(batch.pending.popleft(), batch)
                batch.busy[worker.conn] = worker
            except (OSError, ValueError):
                self._lost(worker, batch)

    def _collect(self, batch: _Batch) -> None:
        for conn in wait(list(batch.busy), timeout=_POLL_SECONDS):
            worker = batch.busy.pop(conn)  # type: ignore[arg-type]
            try:
                rows = worker.conn.recv()
            except (EOFError, OSError):
                self._lost(worker, batch)
                continue
            job, worker.job = worker.job, None
            for index, row in zip(job.indices, rows, strict=True):  # type: ignore[union-attr]
                batch.results[index] = Score(*row[:4])
                if not row[4]:  # the gold could not be read in time: never again in this process
                    _remember_unreadable(batch.items[index][1])

    def _kill_overdue(self, batch: _Batch) -> None:
        now = time.monotonic()
        for conn, worker in list(batch.busy.items()):
            if worker.overdue(now, batch.timeout + GRACE_SECONDS):
                del batch.busy[conn]
                self._lost(worker, batch, overdue=True)

    def _lost(self, worker: _Worker, batch: _Batch, overdue: bool = False) -> None:
        """A worker was killed or died: its running item times out, the rest go back in line.

        Killed for overrunning while it parsed a gold answer: that gold hangs, so its other
        samples time out unscored (and later calls skip it too)."""
        job, index = worker.job, worker.running_index()
        gold_stuck = overdue and worker.reading_gold()
        self._replace(worker)
        if job is None:
            return
        if 0 <= index < len(job.indices):
            stuck = job.indices[index]
            batch.time_out([stuck])
            rest = job.indices[:index] + job.indices[index + 1 :]
            if gold_stuck:  # the gold itself hangs: its other samples time out unscored
                gold = batch.items[stuck][1]
                _remember_unreadable(gold)
                batch.time_out([i for i in rest if batch.items[i][1] == gold])
                rest = [i for i in rest if batch.items[i][1] != gold]
            if rest:
                batch.pending.appendleft(_Job(rest))
        elif job.attempts + 1 < _MAX_ATTEMPTS:
            batch.pending.appendleft(_Job(job.indices, job.attempts + 1))
        else:
            batch.time_out(job.indices)


class _Batch:
    """One call's items, results, chunks waiting, and workers busy with it."""

    def __init__(
        self, items: list[_Item], timeout: float, strictness: Strictness, chunk_size: int
    ) -> None:
        self.items = items
        self.timeout = timeout
        self.strictness = strictness
        self.results: list[Score | None] = [None] * len(items)
        known_bad = [i for i, (_, gold) in enumerate(items) if gold in _unreadable_golds]
        self.time_out(known_bad)
        todo = [i for i in range(len(items)) if self.results[i] is None]
        size = max(1, min(CHUNK_SIZE, chunk_size))
        self.pending = deque(_Job(chunk) for chunk in chunks_by_gold(todo, items, size))
        self.busy: dict[Connection, _Worker] = {}

    def time_out(self, indices: list[int]) -> None:
        for index in indices:
            self.results[index] = _timeout_score(self.items[index][0], self.strictness)

    def scores(self) -> list[Score]:
        return [
            s or _timeout_score(self.items[i][0], self.strictness)
            for i, s in enumerate(self.results)
        ]


def chunks_by_gold(indices: list[int], items: list[_Item], size: int) -> list[list[int]]:
    """Chunks of about `size` items in which the samples of one gold stay together (so one
    worker parses each gold once); a gold with more than `size` samples spans chunks."""
    groups: dict[str, list[int]] = {}
    for index in indices:
        groups.setdefault(items[index][1], []).append(index)
    chunks: list[list[int]] = []
    current: list[int] = []
    for group in groups.values():
        if current and len(current) + len(group) > size:
            chunks.append(current)
            current = []
        for start in range(0, len(group), size):
            piece = group[start : start + size]
            if current and len(current) + len(piece) > size:
                chunks.append(current)
                current = []
            current.extend(piece)
    if current:
        chunks.append(current)
    return chunks


_UNREADABLE_LIMIT = 10_000
_unreadable_golds: dict[str, None] = {}  # golds that hung a worker: their samples time out at once


def _remember_unreadable(gold: str) -> None:
    if len(_unreadable_golds) >= _UNREADABLE_LIMIT:
        _unreadable_golds.pop(next(iter(_unreadable_golds)))
    _unreadable_golds[gold] = None


_pool: PerProcess[_Pool] = PerProcess(_Pool, _Pool.close)


def as_text(value: object) -> str:
    """Any value as text: str as is, None as empty, bytes decoded, anything else str()."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def as_item(pair: object) -> _Item:
    """A (completion, gold) pair as two strings; ("", "") for anything that is not one."""
    try:
        completion, gold = pair  # type: ignore[misc]
        return as_text(completion), as_text(gold)
    except Exception:
        return "", ""


def run_in_pool(
    pairs: Iterable[tuple[str, str]],
    workers: int,
    timeout: float,
    strictness: Strictness = DEFAULT_STRICTNESS,
) -> list[Score]:
    """Score ``pairs`` on ``workers`` worker processes (see the module docstring)."""
    items = [as_item(pair) for pair in pairs]
    if not items:
        return []
    with _pool.lock:
        try:
            return _pool.get().run(items, timeout, workers, strictness)
        except (OSError, RuntimeError):  # no processes could be started: nothing was scored
            return [_timeout_score(completion, strictness) for completion, _ in items]
