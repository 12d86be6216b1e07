"""Locks on the folders epx writes: a run dir, an eval output dir, a study's folder.

Each such folder has one lock file, `.epx.lock`, on which a writer holds an `fcntl.flock` for as
long as it writes there. The kernel drops the lock when the process ends, however it ends, so a
crash leaves no lock behind: the file stays and names its last holder, but that is not a lock
(`--resume` after a SIGKILL just works). The file names the holder (command, PID, host), which
a second writer's one-line refusal (`RunStateError`, exit 2) quotes.

- `exclusive_lock`: one writer at a time (`epx train` on a run dir, `epx eval` on its output).
- `shared_lock`: any number of writers with the same key (the workers of one study); a writer
  with another key is refused while they run, and also afterwards while the folder still holds
  their files: a folder belongs to the key that wrote it.

flock works across hosts on NFS (Linux emulates it with POSIX locks there); on a file system
without locks at all, it locks nothing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from epx.errors import RunStateError

LOCK_FILE = ".epx.lock"
INFO_SIZE = 1024  # the holder's JSON, padded: one pwrite replaces it whole
SETTLE_SECONDS = 5.0  # a shared lock waits this long for a peer between its two flock calls


def holder_info(path: Path) -> dict[str, Any]:
    """What the lock file says about its (last) holder; {} when it has nothing readable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        info = json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def describe(info: dict[str, Any]) -> str:
    """`epx train, PID 123 on host-a since 2026-01-01T10:00:00`, or `another process`."""
    if not info.get("pid"):
        return "another process"
    since = f" since {info['since']}" if info.get("since") else ""
    return f"{info.get('command', 'epx')}, PID {info['pid']} on {info.get('host', '?')}{since}"


class _LockFile:
    """An open lock file: flock calls and the holder's JSON at its start."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise RunStateError(
                f"{folder}: cannot create its lock file {LOCK_FILE} ({error.strerror})"
            ) from None

    def try_lock(self, mode: int) -> bool:
        try:
            fcntl.flock(self.fd, mode | fcntl.LOCK_NB)
            return True
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise

    def write(self, command: str, key: str | None) -> None:
        info = {"command": command, "pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S"), "key": key}  # fmt: skip
        data = json.dumps(info).encode()[: INFO_SIZE - 1].ljust(INFO_SIZE - 1) + b"\n"
        os.pwrite(self.fd, data, 0)
        os.ftruncate(self.fd, INFO_SIZE)

    def info(self) -> dict[str, Any]:
        return holder_info(self.path)

    def close(self) -> None:
        os.close(self.fd)  # releases the flock


def _occupied(folder: Path) -> bool:
    """Whether the folder holds anything besides its lock file."""
    return any(child.name != LOCK_FILE for child in folder.iterdir())


@contextlib.contextmanager
def _created(folder: Path, option: str) -> Iterator[None]:
    """Create `folder` if needed; if it was created here and holds nothing but the lock file at
    the end (the command failed before writing), remove it again."""
    from epx.paths import make_output_dir

    existed = folder.is_dir()
    make_output_dir(folder, option)
    try:
        yield
    finally:
        if not existed and not _occupied(folder):
            with contextlib.suppress(OSError):
                (folder / LOCK_FILE).unlink()
                folder.rmdir()


@contextlib.contextmanager
def exclusive_lock(folder: str | os.PathLike[str], command: str, option: str) -> Iterator[None]:
    """Hold `folder` (created if needed) for one writer; RunStateError naming the holder when
    another process holds it. `option` is what the user passes to choose another folder."""
    folder = Path(folder)
    with _created(folder, option):
        lock = _LockFile(folder)
        try:
            if not lock.try_lock(fcntl.LOCK_EX):
                raise RunStateError(
                    f"{folder} is in use ({describe(lock.info())}): wait for it to end, or "
                    f"pass another {option}"
                )
            lock.write(command, None)
            yield
        finally:
            lock.close()


@contextlib.contextmanager
def shared_lock(
    folder: str | os.PathLike[str], key: str, command: str, option: str
) -> Iterator[None]:
    """Hold `folder` (created if needed) together with the writers of the same `key`;
    RunStateError when a writer of another key holds it, or the folder holds another key's files."""
    folder = Path(folder)
    with _created(folder, option):
        lock = _LockFile(folder)
        try:
            _join(lock, folder, key, command, option)
            yield
        finally:
            lock.close()


def _join(lock: _LockFile, folder: Path, key: str, command: str, option: str) -> None:
    """Take the shared lock for `key` (see `shared_lock`).

    Alone (the exclusive lock is free), the writer checks whom the folder belongs to, writes its
    own record and turns its lock shared. flock's turn is not atomic, so two writers starting
    at the same moment can both get there: each reads the record again once it holds the shared
    lock, and the one whose key is not there gives way.
    """
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        if lock.try_lock(fcntl.LOCK_EX):
            previous = lock.info()
            if previous.get("key") not in (None, key) and _occupied(folder):
                raise RunStateError(
                    f"{folder} holds the files of {previous['key']} (written by "
                    f"{describe(previous)}, now ended): pass another {option}"
                )
            lock.write(command, key)
            fcntl.flock(lock.fd, fcntl.LOCK_SH)
        elif not lock.try_lock(fcntl.LOCK_SH):
            if time.monotonic() > deadline:  # an exclusive holder that is not a study worker
                raise RunStateError(
                    f"{folder} is in use ({describe(lock.info())}): pass another {option}"
                )
            time.sleep(0.05)  # a peer is between its two flock calls
            continue
        holder = lock.info()
        if holder.get("key") == key:
            return
        if not holder and time.monotonic() < deadline:  # a record half written: read again
            fcntl.flock(lock.fd, fcntl.LOCK_UN)
            time.sleep(0.05)
            continue
        raise RunStateError(
            f"{folder} is in use by {holder.get('key') or 'another command'} "
            f"({describe(holder)}): pass another {option}"
        )
