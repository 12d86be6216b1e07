"""A trial's `epx train` child process: its command line, start (in a run dir of its own, its
console in the run dir's `train.log`), a clean stop of its whole process group, and its last line.

A child is started in a new session, and on Linux it dies with the worker that started it (even
a worker killed outright). A launcher (`--launcher "torchrun --standalone --nproc_per_node 2"`)
goes in front of `-m epx.cli train`; stopping the session's group stops every rank it started.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from epx.run_dir import RunDir
from epx.sweep.metric import MetricsTail
from epx.sweep.space import trial_overrides

STOP_SECONDS = 30.0  # a pruned child gets this long to end after SIGINT


@dataclass
class Child:
    """One seed's `epx train` process and what it has logged so far."""

    process: subprocess.Popen
    folder: Path
    tail: MetricsTail
    log: Any = field(repr=False)


def trial_command(options: Any, params: dict[str, Any], seed: int, folder: Path) -> list[str]:
    """The child's command line: the launcher (default: this Python) then `-m epx.cli train`."""
    command = shlex.split(options.launcher) if options.launcher else [sys.executable]
    command += ["-m", "epx.cli", "train", str(options.recipe)]
    overrides = trial_overrides(options.overrides, options.method, params, seed)
    overrides += [f"output_dir={folder}", "logging.mode=disabled"]
    for override in overrides:
        command += ["--set", override]
    return command


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child is killed when the worker that started it dies (even by SIGKILL).
    Also SIGINT back to its default: Python installs its Ctrl-C handler (the clean stop of a
    pruned trial) only when SIGINT is not ignored, and an ignored SIGINT would be inherited."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def start_child(options: Any, params: dict[str, Any], seed: int, folder: Path) -> Child:
    """Start the seed's run in `folder` (a retried trial starts its seed from scratch)."""
    import shutil

    from epx.checkpoints import checkpoint_folders

    run_dir = RunDir(folder)
    folder.mkdir(parents=True, exist_ok=True)
    run_dir.metrics.unlink(missing_ok=True)
    for _, checkpoint in checkpoint_folders(folder):
        shutil.rmtree(checkpoint, ignore_errors=True)
    log = run_dir.console_log.open("w", encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    process = subprocess.Popen(
        trial_command(options, params, seed, folder),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        preexec_fn=_die_with_parent if os.name == "posix" else None,
    )
    return Child(process, folder, MetricsTail(run_dir.metrics), log)


def stop_child(child: Child) -> None:
    """End the child's process group: SIGINT (a clean stop), then SIGKILL."""
    if child.process.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, STOP_SECONDS), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(child.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            child.process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def last_line(folder: Path) -> str:
    """The last non-empty line a child printed (its error, when it failed)."""
    try:
        lines = RunDir(folder).console_log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no output)"
    text = next((line.strip() for line in reversed(lines) if line.strip()), "(no output)")
    return text.removeprefix("epx: error: ")


