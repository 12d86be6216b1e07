"""Trainer callbacks: the stage detector's state, `metrics.jsonl`, and rich progress on the console."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from epx.stage import StageParams, StageTracker


class StageCallback(TrainerCallback, ExportableState):
    """Holds the rising/plateau tracker; its state goes into every checkpoint and back on resume."""

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.tracker = StageTracker(StageParams(**params))

    @property
    def tracker_state(self) -> dict[str, Any]:
        return self.tracker.state()

    @tracker_state.setter
    def tracker_state(self, state: dict[str, Any]) -> None:  # called by Trainer on resume
        self.tracker = StageTracker.from_state(state)

    def update(self, reward: float, entropy: float | None) -> int:
        return self.tracker.update(reward, entropy if entropy == entropy else None)

    def state(self) -> dict[str, Any]:
        return {"args": dict(self.params), "attributes": {"tracker_state": self.tracker_state}}

    @classmethod
    def for_params(cls, params: StageParams) -> StageCallback:
        return cls(**dataclasses.asdict(params))


class MetricsFileCallback(TrainerCallback):
    """Appends one JSON object per logged step (with `step`) to OUTPUT_DIR/metrics.jsonl.

    On resume, lines past the checkpoint's step (logged after it, then lost with the crash) are
    dropped first, so the file never holds a step twice.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not self.path.exists():
            return
        kept = [
            line
            for line in self.path.read_text().splitlines()
            if line.strip() and _step_of(line) <= state.global_step
        ]
        self.path.write_text("".join(line + "\n" for line in kept))

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, **{k: _jsonable(v) for k, v in logs.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, TypeError, ValueError):
        return 1 << 62  # a torn last line: drop it


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


class RecipeSnapshotCallback(TrainerCallback):
    """Writes the resolved recipe into every checkpoint folder, so a checkpoint explains itself."""

    def __init__(self, recipe_yaml: str) -> None:
        self.recipe_yaml = recipe_yaml

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            (folder / "recipe.yaml").write_text(self.recipe_yaml)


CONSOLE_COLUMNS = (
    ("reward", "reward"),
    ("accuracy", "acc"),
    ("entropy", "entropy"),
    ("entropy/positive", "H+"),
    ("entropy/negative", "H-"),
    ("shaping/ppl/weight_mean", "w_ppl"),
    ("shaping/position/active", "pos"),
    ("stage", "stage"),
    ("completions/mean_length", "len"),
)


class RichProgressCallback(TrainerCallback):
    """A rich progress bar over optimizer steps and one compact line per logged step."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.progress: Any = None
        self.task: Any = None
        self.started = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]train[/] {task.description:<11}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=state.max_steps, completed=state.global_step
        )
        self.started = time.perf_counter()

    def set_phase(self, phase: str) -> None:
        """Show what the step is doing now (generating, optimizing, ...)."""
        if self.progress is not None:
            self.progress.update(self.task, description=phase)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any
    ) -> None:
        if self.progress is None or not logs or "reward" not in logs:
            return
        cells = [f"step {state.global_step:>4}"]
        for key, label in CONSOLE_COLUMNS:
            if key in logs and isinstance(logs[key], int | float):
                cells.append(f"{label} {logs[key]:.3g}")
        self.progress.console.print("  ".join(cells), highlight=False, soft_wrap=True)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
