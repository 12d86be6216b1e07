"""The header every benchmark prints first: date, commit, machine and command, so that a table
quoted anywhere (benchmarks/README.md) says what produced it."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def commit() -> str:
    """The short commit, with `+changes` when the working tree differs from it."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{head}+changes" if dirty else head


def machine() -> str:
    try:
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
        torch_version = torch.__version__
    except ImportError:
        device, torch_version = "?", "not installed"
    load = f", load {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs{load}, {device}, "
            f"Python {platform.python_version()}, torch {torch_version}")


def print_header() -> None:
    """`date · commit · machine · command` (the command as it was run)."""
    command = " ".join([Path(sys.executable).name, *sys.argv])
    print(f"# {datetime.date.today()} · commit {commit()} · {machine()} · `{command}`", flush=True)
