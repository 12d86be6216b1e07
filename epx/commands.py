"""Registers each command's Typer function on the app (the modules imported here import no torch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer


def register(app: typer.Typer, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Attach every command; `wrap` maps EpxError to one line and an exit code."""
    from epx.analyze.command import analyze_command
    from epx.eval.command import eval_command
    from epx.sweep.command import sweep_command
    from epx.train.command import train_command

    app.command("train")(wrap(train_command))
    app.command("eval")(wrap(eval_command))
    app.command("sweep")(wrap(sweep_command))
    app.command("analyze")(wrap(analyze_command))
