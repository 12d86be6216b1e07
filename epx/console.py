"""Where tables and progress bars go: tables to stdout, at least `width` columns wide when it is a
log or a pipe (rich would otherwise squeeze a table into 80); one progress-bar layout."""

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


def progress_bar(console: Any, description: str = "{task.description}", **kwargs: Any) -> Any:
    """A rich Progress: description, bar, done/total, elapsed and remaining time."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn(description), BarColumn(), MofNCompleteColumn())
    columns += (TimeElapsedColumn(), TimeRemainingColumn())
    return Progress(*columns, console=console, **kwargs)
