"""JSON-lines records a run writes as it goes (metrics.jsonl, samples.jsonl, eval samples): read
tolerantly, since a crash can leave the last line half written."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def parse_records(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The JSON objects among `lines` (a line that does not parse is skipped)."""
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file ([] when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    return parse_records(path.read_text(encoding="utf-8", errors="replace").splitlines())
