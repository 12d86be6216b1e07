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


def start_postgres() -> tuple[str, Callable[[], None]]:
    """A running server and its URL (database `epx`, user postgres, trust auth on loopback).

    Its folder is a fresh one under the system temp dir, open to the `postgres` user (pytest's
    own temp dirs are root's alone); `stop()` ends the server and removes it."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="epx-postgres-"))
    folder.chmod(0o755)
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    run = lambda *args: subprocess.run(  # noqa: E731
        _as_postgres([str(a) for a in args]), check=True, capture_output=True, text=True, timeout=120
    )
    run(bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=100"
    run(bin_dir / "pg_ctl", "-D", data, "-o", options, "-l", folder / "server.log", "-w", "start")
    run(bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "epx")

    def stop() -> None:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(folder, ignore_errors=True)

    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/epx", stop
