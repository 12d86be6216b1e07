"""Where tables go: stdout, at least `width` columns wide when it is a log or a pipe (rich
would otherwise squeeze a table into 80)."""

from __future__ import annotations

from typing import Any


def table_console(width: int = 160) -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=width)


def cell(value: Any, nan: str = "–") -> str:
    """A table cell: blank for None, `nan` for NaN, 4 significant digits for a float."""
    import math

    if value is None:
        return ""
    if isinstance(value, float):
        return nan if math.isnan(value) else f"{value:.4g}"
    return str(value)
