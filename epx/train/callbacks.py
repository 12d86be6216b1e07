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

from epx.run_dir import RunDir
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
    """Appends one JSON object per logged step (with `step`) to the run's metrics.jsonl; the
    end-of-training summary (runtime, loss) goes to its summary.json instead.

    On resume, lines past the checkpoint's step (logged after it, then lost with the crash) are
    dropped first, so the file never holds a step twice.
    """

    def __init__(self, run_dir: RunDir) -> None:
        self.run_dir = run_dir
        self.path = run_dir.metrics

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            drop_lines_after(self.path, state.global_step)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, **{k: _jsonable(v) for k, v in logs.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if "train_runtime" in logs:  # the end-of-training summary: its own record, no step row
            summary = {"global_step": state.global_step, "max_steps": state.max_steps, **record}
            summary["finished"] = state.global_step >= state.max_steps
            summary.pop("step")
            self.run_dir.summary.write_text(json.dumps(summary, indent=2) + "\n")
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def drop_lines_after(path: Path, step: int) -> None:
    """Keep the JSONL lines of `path` whose `step` is at most `step` (resume: the rest was logged
    after the checkpoint, then lost with the crash)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and _step_of(line) <= step]
    path.write_text("".join(line + "\n" for line in kept))


class SamplesFileCallback(TrainerCallback):
    """A bounded sample of each logged step's training completions in OUTPUT_DIR/samples.jsonl.

    The trainer hands it TRL's completion log at each logged step (`record`); at most
    `per_step` rows, spread over the generation batch: step, prompt, completion, the extracted
    answer, its status (correct, wrong, unparsed, truncated, ...), the total reward and the
    advantage. On resume, lines past the checkpoint's step are dropped.
    """

    def __init__(self, path: str | Path, per_step: int = 8) -> None:
        self.path = Path(path)
        self.per_step = per_step

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            drop_lines_after(self.path, state.global_step)

    def record(self, step: int, logs: dict[str, Any], weights: list[float]) -> None:
        """Append up to `per_step` rows of TRL's `_logs` (the last generation batch)."""
        rows = sample_rows(logs, weights, step, self.per_step)
        if not rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def sample_rows(
    logs: dict[str, Any], weights: list[float], step: int, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` evenly spaced rows of TRL's completion log (prompt, completion, rewards
    per function, advantages, extra columns), with the weighted total reward."""
    prompts, completions = list(logs.get("prompt", ())), list(logs.get("completion", ()))
    count = min(len(prompts), len(completions))
    if not count or limit < 1:
        return []
    rewards = {name: list(values) for name, values in logs.get("rewards", {}).items()}
    extra = {name: list(values) for name, values in logs.get("extra", {}).items()}
    advantages = list(logs.get("advantages", ()))
    picked = sorted({round(i * (count - 1) / max(1, limit - 1)) for i in range(min(limit, count))})
    rows = []
    for index in picked:
        total = sum(
            weight * values[index]
            for weight, values in zip(weights, rewards.values(), strict=False)
            if index < len(values) and values[index] == values[index]
        )
        rows.append(
            {
                "step": step,
                "prompt": _jsonable(prompts[index]),
                "completion": _jsonable(completions[index]),
                "answer": _column(extra, "answer", index),
                "status": _column(extra, "status", index),
                "reward": total,
                "advantage": advantages[index] if index < len(advantages) else None,
            }
        )
    return rows


def _column(extra: dict[str, list[Any]], name: str, index: int) -> Any:
    values = extra.get(name, [])
    return _jsonable(values[index]) if index < len(values) else None


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
        folder = RunDir(args.output_dir).checkpoint(state.global_step)
        if state.is_world_process_zero and folder.is_dir():
            RunDir(folder).recipe.write_text(self.recipe_yaml)  # the run's name for a recipe


CONSOLE_COLUMNS = (  # (metric, label, unit)
    ("reward", "reward", ""),
    ("accuracy", "acc", ""),
    ("entropy", "entropy", ""),
    ("entropy/positive", "H+", ""),
    ("entropy/negative", "H-", ""),
    ("shaping/ppl/weight_mean", "w_ppl", ""),
    ("shaping/position/active", "pos", ""),
    ("stage", "stage", ""),
    ("completions/mean_length", "len", ""),
    ("completions/clipped_ratio", "clipped", ""),
    ("timing/generation", "gen", "s"),
    ("timing/scoring", "score", "s"),
    ("timing/optimization", "opt", "s"),
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
        from epx.console import progress_bar

        self.progress = progress_bar(self.console, "[bold]train[/] {task.description:<11}")
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
        if self.progress is None or not logs or "stage" not in logs:
            return  # not a training step's record (the end-of-training summary)
        cells = [f"step {state.global_step:>4}"]
        for key, label, unit in CONSOLE_COLUMNS:
            if key in logs and isinstance(logs[key], int | float):
                cells.append(f"{label} {logs[key]:.3g}{unit}")
        self.progress.console.print("  ".join(cells), highlight=False, soft_wrap=True)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
