"""A run's `checkpoint-N` folders: which are usable, and what a resume would change.

A checkpoint is usable when its `trainer_state.json` parses with a global step (Trainer writes it
last, so a save cut short by a crash has none) and its weights are whole: every tensor that the
safetensors header lists lies inside the file; an FSDP checkpoint saved as a sharded state dict
(`pytorch_model_fsdp_0/`, `optimizer_0/`: torch.distributed.checkpoint folders) has the
`.metadata` file that the save writes once every process's shard is on disk. A checkpoint without
optimizer state resumes with a fresh optimizer, so `--resume` refuses it unless forced. Pure file
reading: no torch.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors")
SHARD_INDEX = "model.safetensors.index.json"
OPTIMIZER_FILES = ("optimizer.pt", "optimizer.bin")
FSDP_MODEL_DIRS = "pytorch_model_fsdp_*"  # accelerate's SHARDED_STATE_DICT save (one per model)
FSDP_OPTIMIZER_DIRS = "optimizer_*"
DCP_METADATA = ".metadata"  # torch.distributed.checkpoint writes it last, after every shard


def sharded_problem(folder: Path) -> str | None:
    """Why a torch.distributed.checkpoint folder is not whole (None if it is)."""
    metadata = folder / DCP_METADATA
    if not metadata.is_file() or metadata.stat().st_size == 0:
        return f"{folder.name}/ has no {DCP_METADATA}: its save was cut short"
    if not any(folder.glob("*.distcp")):
        return f"{folder.name}/ holds no shard (*.distcp)"
    return None


def checkpoint_folders(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Every `checkpoint-N` folder under `run_dir`, newest (largest N) first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [
        (int(match.group(1)), child)
        for child in run_dir.iterdir()
        if child.is_dir() and (match := CHECKPOINT_PATTERN.match(child.name))
    ]
    return sorted(found, reverse=True)


def trainer_state(folder: Path) -> dict[str, Any] | None:
    """The checkpoint's trainer_state.json, or None when it is missing or not whole."""
    try:
        state = json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("global_step"), int) else None


def safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file is not whole (None if it is): header and every tensor inside."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                return f"{path.name} is truncated"
            (header_size,) = struct.unpack("<Q", head)
            if header_size > size - 8:
                return f"{path.name} is truncated"
            header = json.loads(handle.read(header_size))
    except (OSError, ValueError, UnicodeDecodeError):
        return f"{path.name} is unreadable"
    ends = [
        entry["data_offsets"][1]
        for name, entry in header.items()
        if name != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry
    ]
    if 8 + header_size + max(ends, default=0) > size:
        return f"{path.name} is truncated"
    return None


def checkpoint_problem(folder: Path) -> str | None:
    """What makes a checkpoint unusable for resuming or loading, or None."""
    if not (folder / "trainer_state.json").is_file():
        return "no trainer_state.json: its save was cut short"
    if trainer_state(folder) is None:
        return "trainer_state.json is truncated or not valid JSON"
    index = folder / SHARD_INDEX
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError):
            return f"{SHARD_INDEX} is not valid JSON"
        for shard in sorted(shards):
            if not (folder / shard).is_file():
                return f"{shard} is missing"
            problem = safetensors_problem(folder / shard)
            if problem:
                return problem
        return None
    weights = [folder / name for name in WEIGHT_FILES if (folder / name).is_file()]
    sharded = sorted(path for path in folder.glob(FSDP_MODEL_DIRS) if path.is_dir())
    if not weights:
        for path in sharded:
            problem = sharded_problem(path)
            if problem:
                return problem
        if sharded or any(folder.glob("pytorch_model*.bin")) or any(folder.glob("global_step*")):
            return None  # FSDP shards, torch or DeepSpeed weights
        return "no model weights (model.safetensors, or FSDP's pytorch_model_fsdp_0/)"
    for path in weights:
        problem = safetensors_problem(path)
        if problem:
            return problem
    return None


def optimizer_problem(folder: Path) -> str | None:
    """Why the checkpoint's optimizer state is missing or not whole (None if it is there)."""
    if any(folder.glob("global_step*")):
        return None  # DeepSpeed keeps it in a folder of its own
    for path in sorted(p for p in folder.glob(FSDP_OPTIMIZER_DIRS) if p.is_dir()):
        return sharded_problem(path)  # FSDP's sharded optimizer state
    for name in OPTIMIZER_FILES:
        path = folder / name
        if path.is_file():
            try:
                with zipfile.ZipFile(path):  # torch.save writes a zip; a cut one has no directory
                    return None
            except (zipfile.BadZipFile, OSError):
                return f"{name} is truncated"
    return "no optimizer state (optimizer.pt)"


def latest_usable(run_dir: str | Path) -> tuple[Path | None, list[tuple[str, str]]]:
    """The newest usable checkpoint, and the newer ones passed over with their problem."""
    passed: list[tuple[str, str]] = []
    for _, folder in checkpoint_folders(run_dir):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder, passed
        passed.append((folder.name, problem))
    return None, passed
