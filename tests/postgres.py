"""A throwaway PostgreSQL server on loopback for the distributed sweep tests (Debian's package).

`start_postgres()` runs initdb and pg_ctl on a free port with a data dir in a fresh temp folder
(as the `postgres` user when the tests run as root: PostgreSQL refuses root) and returns the
SQLAlchemy URL and a stop function. `.ci/run` installs the package; without it the tests skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


class PostgresServer:
    """A throwaway server (see `start_postgres`) that a test can also stop as a crash would
    (`pg_ctl -m immediate`) and start again on the same port and data."""

    def __init__(self) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin_dir = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="epx-postgres-"))
        self.folder.chmod(0o755)
        self.data, sockets = self.folder / "data", self.folder / "sockets"
        sockets.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            shutil.chown(sockets, "postgres")
        self.port = free_port()
        self.options = f"-p {self.port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=100"
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", "epx")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/epx"

    def _run(self, tool: str, *args: object) -> None:
        command = _as_postgres([str(self.bin_dir / tool), *(str(a) for a in args)])
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        log = self.folder / "server.log"
        self._run("pg_ctl", "-D", self.data, "-o", self.options, "-l", log, "-w", "start")

    def stop(self) -> None:
        """Stop at once, as a crash would: open connections break mid-transaction."""
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        subprocess.run(
            _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres() -> tuple[str, Callable[[], None]]:
    """A running server and its URL (database `epx`, user postgres, trust auth on loopback).

    Its folder is a fresh one under the system temp dir, open to the `postgres` user (pytest's
    own temp dirs are root's alone); `stop()` ends the server and removes it."""
    server = PostgresServer()
    return server.url, server.remove
