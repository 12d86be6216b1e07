"""Read a run dir for analysis: its metrics, its rollout records, and what its recipe says."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from epx.analyze.core import StepRollouts
from epx.checkpoints import checkpoint_folders
from epx.errors import DataError
from epx.run_dir import RunDir
from epx.stage import StageParams

METHOD_LABELS = {"none": "GRPO", "ppl": "GRPO+PPL", "position": "GRPO+Position",
                 "both": "GRPO+PPL+Position"}  # fmt: skip


@dataclass
class Run:
    """What `epx analyze` reads of one `epx train` output dir."""

    path: Path
    name: str
    method: str
    recipe_source: str
    stage_params: StageParams
    records: list[dict[str, Any]]
    rollouts: list[StepRollouts] = field(default_factory=list)
    eval_key: str | None = None
    skipped: list[str] = field(default_factory=list)  # what was left out, and why (one line each)

    @property
    def label(self) -> str:
        return f"{self.name} ({METHOD_LABELS.get(self.method, self.method)})"


def read_rollouts(run_dir: RunDir, skipped: list[str] | None = None) -> list[StepRollouts]:
    """Every readable `rollouts/step-*.parquet` of a run, in step order; a file that is cut,
    empty, not Parquet or without a column is left out with a note in `skipped`."""
    import pyarrow as pa

    steps = []
    for path in run_dir.rollout_files():
        try:
            steps.append(_read_step(path))
        except (OSError, ValueError, KeyError, pa.ArrowException) as error:
            text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if skipped is not None:
                skipped.append(f"{path}: a corrupt rollout record file ({text}): skipped")
    return steps


def _read_step(path: Path) -> StepRollouts:
    """One rollout record file (ValueError, KeyError or OSError when it is not whole)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    columns = set(table.column_names)

    def number(name: str, table: Any = table) -> np.ndarray:
        return table.column(name).to_numpy(zero_copy_only=False)

    step = StepRollouts(
        step=int(path.stem.removeprefix("step-")),
        correct=number("correct").astype(np.float64),
        entropy=number("entropy").astype(np.float64),
        log_ppl=number("log_ppl").astype(np.float64),
        advantage=number("advantage").astype(np.float64),
        length=number("length").astype(np.int64),
    )
    if "token_entropy" in columns:
        lists = {name: table.column(name).combine_chunks() for name in
                 ("token_entropy", "token_logprob", "token_position", "token_advantage")}  # fmt: skip
        flat = {
            name: column.flatten().to_numpy(zero_copy_only=False)
            for name, column in lists.items()
        }
        lengths = np.diff(lists["token_entropy"].offsets.to_numpy())
        step = dataclasses.replace(
            step,
            token_sample=np.repeat(np.arange(len(lengths)), lengths),
            **{name: values.astype(np.float64) for name, values in flat.items()},
        )
    return step


def load_run(path: str | Path) -> Run:
    """A run dir's metrics, rollouts and recipe facts; DataError when it is no run dir."""
    from epx.recipe import load_recipe

    path = Path(path)
    run_dir = RunDir(path)
    metrics = run_dir.metrics
    if not metrics.is_file():
        raise DataError(f"{path}: not an epx train output dir (no metrics.jsonl)")
    records, skipped = run_dir.read_metrics_noting()
    if not any("reward" in r for r in records):
        raise DataError(f"{metrics}: no logged training step yet")
    method, source, params, eval_key = "?", "", StageParams(), None
    saved = [run_dir.recipe, *(RunDir(folder).recipe for _, folder in checkpoint_folders(path))]
    saved = [file for file in saved if file.is_file()]  # the run's, else its newest checkpoint's
    if saved:
        recipe = load_recipe(saved[0])
        method, params = recipe.shaping.method, recipe.stage
        source = recipe.logging.run_name or path.name
        if recipe.eval.benches:
            from epx.benchmarks import logged_name

            eval_key = f"eval/{logged_name(recipe.eval.benches[0])}/acc"
    rollouts = read_rollouts(run_dir, skipped) if run_dir.rollouts.is_dir() else []
    return Run(path, path.name, method, source, params, records, rollouts, eval_key, skipped)
