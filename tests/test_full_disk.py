"""A full disk during `epx train` (a checkpoint cut mid-write) and `epx eval` (a sample line that
cannot be appended) is one line with exit code 2, and once there is space again the same command
(`--resume` for train) goes on to what an uninterrupted run gives. A real full file system: a
small tmpfs, which only root can mount (the tests skip otherwise and say why)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests_shared import REPO, TINY

DATA_DIR = Path(os.environ["EPX_DATA_DIR"])


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 1600 KiB: a tiny run's first checkpoint fits, its second does not."""
    if os.geteuid() != 0:
        pytest.skip("a full disk needs a tmpfs, and only root can mount one (mount -t tmpfs)")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1600k", "tmpfs", str(disk)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def grow(disk: Path, size: str = "64m") -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)


def epx(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "epx.cli", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def error_line(result: subprocess.CompletedProcess) -> str:
    """The command's one error line (its progress lines aside), asserting exit code 2."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("epx: error: ")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr[-3000:]
    return errors[0]


@pytest.mark.slow
def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_resume_finishes(small_disk):
    run = small_disk / "run"
    train = ["train", TINY, "--set", f"output_dir={run}", "--set", "logging.mode=disabled"]
    line = error_line(epx(*train))
    assert "could not be written whole" in line or "the disk is full" in line
    assert "--resume" in line
    grow(small_disk)
    resumed = epx(*train, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming checkpoint-2" in resumed.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # the steps after the last whole checkpoint, each once


@pytest.mark.slow
def test_a_full_disk_during_an_eval_is_one_line_and_the_rerun_matches_an_uninterrupted_one(small_disk, tmp_path):
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (1600 * 1024 - 16 * 1024))  # leaves 16 KiB: a few chunks
    args = ["eval", "--bench", "aime24", "--model", TINY, "--data-dir", DATA_DIR, "--limit", "30",
            "--n", "2", "--max-tokens", "4", "--batch-size", "4", "--wandb-mode", "disabled"]  # fmt: skip
    out = small_disk / "out"
    line = error_line(epx(*args, "-o", out))
    assert "the disk is full" in line and "No space left on device" in line
    filler.unlink()
    assert epx(*args, "-o", out).returncode == 0
    whole = tmp_path / "whole"
    assert epx(*args, "-o", whole).returncode == 0
    summary = lambda folder: json.loads((folder / "summary.json").read_text())["benches"]["aime24"]  # noqa: E731
    assert {k: v for k, v in summary(out).items() if k != "records"} == {
        k: v for k, v in summary(whole).items() if k != "records"
    }
    order = lambda r: (r["problem_id"], r["sample"])  # noqa: E731
    records = lambda folder: sorted(  # noqa: E731
        (json.loads(line) for line in (folder / "aime24.jsonl").read_text().splitlines()), key=order
    )
    assert records(out) == records(whole)  # nothing lost, nothing twice
