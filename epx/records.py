"""JSON-lines records a run writes as it goes (metrics.jsonl, samples.jsonl, eval samples): read
tolerantly, since a crash can leave the last line half written."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def parse_records_noting(lines: Iterable[str]) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """The JSON objects among `lines`, and (line number, why) of each line that is not one;
    why names the step of the record before it, if it has one (the step after it is missing)."""
    records: list[dict[str, Any]] = []
    skipped = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record, why = None, "not JSON"
        else:
            why = f"a JSON {type(record).__name__}, not an object"
        if isinstance(record, dict):
            records.append(record)
            continue
        step = records[-1].get("step") if records else None
        skipped.append((number, why + (f" (the record after step {step})" if step is not None else "")))
    return records, skipped


def parse_records(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The JSON objects among `lines` (a line that does not parse is skipped)."""
    return parse_records_noting(lines)[0]


def read_records_noting(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The records of a JSON-lines file and one note per line skipped (`file:line: why:
    skipped`); a cut last line is called one (the file may still be being written)."""
    path = Path(path)
    if not path.is_file():
        return [], []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    records, skipped = parse_records_noting(lines)
    notes = []
    for number, why in skipped:
        if number == len(lines) and not text.endswith("\n") and why.startswith("not JSON"):
            why = why.replace("not JSON", "a cut last line", 1)
        notes.append(f"{path}:{number}: {why}: skipped")
    return records, notes


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file ([] when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    return parse_records(path.read_text(encoding="utf-8", errors="replace").splitlines())
