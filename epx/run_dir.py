"""The one owner of the layout of the folders epx writes: a run (`epx train`'s output dir) and an
evaluation (`epx eval`'s output dir, and each in-training evaluation inside a run).

A run dir:

| path | what |
|---|---|
| `recipe.yaml` | the resolved recipe of the run's first segment (never overwritten) |
| `recipe-from-step-N.yaml`, `resumes.jsonl` | a resumed segment's recipe, and each resume |
| `metrics.jsonl` | one JSON object per logged step (with `step`) |
| `samples.jsonl` | a sample of each generation batch's completions |
| `summary.json` | the end-of-training record (runtime, loss, whether it finished) |
| `rollouts/step-000010.parquet` | rollout records for `epx analyze` |
| `eval/step-N/` | an in-training evaluation (an eval dir) |
| `checkpoint-N/` | Trainer checkpoints (with the recipe and the stage detector's state) |
| `final/` | the final weights and epx's model card |
| `curves.png` | the training curves |
| `train.log` | the console of a run a sweep started |
| `wandb/` | W&B's files (offline runs: `wandb sync`) |
| `.epx.lock` | held while a process writes here (`epx.locks`) |

An eval dir: `settings.json` (what every sample there was generated with), one JSONL of sample
records per benchmark (`LoadedBenchmark.records_file`), `summary.json`, `wandb/`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epx.records import read_records, read_records_noting


@dataclass(frozen=True)
class EvalDir:
    """An evaluation's folder (see the module docstring)."""

    path: Path

    @property
    def settings(self) -> Path:
        return self.path / "settings.json"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def wandb(self) -> Path:
        return self.path / "wandb"

    def records(self, records_file: str) -> Path:
        """A benchmark's sample records (`LoadedBenchmark.records_file` names the file)."""
        return self.path / records_file

    def read_records(self, records_file: str) -> list[dict[str, Any]]:
        return read_records(self.records(records_file))


@dataclass(frozen=True)
class RunDir:
    """An `epx train` output dir (see the module docstring)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def recipe(self) -> Path:
        """The resolved recipe of the run's first segment."""
        return self.path / "recipe.yaml"

    @property
    def resumes(self) -> Path:
        """One line per resume."""
        return self.path / "resumes.jsonl"

    @property
    def metrics(self) -> Path:
        """One JSON object per logged step."""
        return self.path / "metrics.jsonl"

    @property
    def samples(self) -> Path:
        """A sample of each generation batch's completions."""
        return self.path / "samples.jsonl"

    @property
    def summary(self) -> Path:
        """The end-of-training record."""
        return self.path / "summary.json"

    @property
    def rollouts(self) -> Path:
        """The rollout records' folder."""
        return self.path / "rollouts"

    @property
    def evaluations(self) -> Path:
        """The in-training evaluations' folder."""
        return self.path / "eval"

    @property
    def final(self) -> Path:
        """The final weights and model card."""
        return self.path / "final"

    @property
    def curves(self) -> Path:
        """The training curves."""
        return self.path / "curves.png"

    @property
    def console_log(self) -> Path:
        """The console of a run a sweep started."""
        return self.path / "train.log"

    @property
    def wandb(self) -> Path:
        """W&B's files."""
        return self.path / "wandb"

    def segment_recipe(self, step: int) -> Path:
        """The recipe of the segment resumed from step `step`."""
        return self.path / f"recipe-from-step-{step}.yaml"

    def checkpoint(self, step: int) -> Path:
        return self.path / f"checkpoint-{step}"

    def rollout_file(self, step: int) -> Path:
        return self.rollouts / f"step-{step:06d}.parquet"

    def rollout_files(self) -> list[Path]:
        return sorted(self.rollouts.glob("step-*.parquet"))

    def evaluation(self, step: int) -> EvalDir:
        """The in-training evaluation at global step `step` (0: before training)."""
        return EvalDir(self.evaluations / f"step-{step}")

    def evaluation_steps(self) -> list[int]:
        """The steps with an in-training evaluation, in order."""
        found = []
        for folder in self.evaluations.glob("step-*") if self.evaluations.is_dir() else []:
            suffix = folder.name.removeprefix("step-")
            if folder.is_dir() and suffix.isdigit():
                found.append(int(suffix))
        return sorted(found)

    def is_run(self) -> bool:
        """Whether the folder holds an `epx train` run (its recipe is written first)."""
        return self.recipe.is_file()

    def read_metrics(self) -> list[dict[str, Any]]:
        """The records of metrics.jsonl (a half-written last line is skipped)."""
        return read_records(self.metrics)

    def read_metrics_noting(self) -> tuple[list[dict[str, Any]], list[str]]:
        """The records of metrics.jsonl, and one note per line skipped (file:line: why)."""
        return read_records_noting(self.metrics)

    def read_summary(self) -> dict[str, Any] | None:
        """summary.json, or None when it is missing or not whole."""
        try:
            summary = json.loads(self.summary.read_text())
        except (OSError, ValueError):
            return None
        return summary if isinstance(summary, dict) else None
