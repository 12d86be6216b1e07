"""Shared fixtures: where the benchmark files are, W&B offline into a temp dir, fixed torch threads."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (a red CI is a regression, never a new draw);
# `make fuzz` (EPX_HYPOTHESIS=explore) draws new ones, ten times as many.
settings.register_profile("fixed", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=1_000)
settings.load_profile(os.environ.get("EPX_HYPOTHESIS", "fixed"))

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("EPX_DATA_DIR", REPO.parent / "shared" / "benchmarks"))
os.environ["EPX_DATA_DIR"] = str(DATA_DIR)  # also for module-scoped fixtures and subprocesses


@pytest.hookimpl(trylast=True)  # after `-m` deselected: only the tests that will run count
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with the most long tests first: pytest-xdist hands whole files to its workers in this
    order, so the long ones start at once and no worker is left alone with one at the end."""
    long = ("slow", "multiprocess")
    long_tests = Counter(item.path for item in items if any(item.get_closest_marker(m) for m in long))
    items.sort(key=lambda item: -long_tests[item.path])


@pytest.fixture(autouse=True)
def _offline_tracking(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test logs W&B offline into a temp dir and uses a temp model cache."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path_factory.mktemp("wandb")))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
