"""The `epx` command line: parse options, call one function, map EpxError to one line and an exit code.

Heavy libraries (torch, transformers, trl) are imported inside the commands, so `epx --help` is instant.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import typer

from epx import __version__
from epx.errors import EpxError, environment_error_line

app = typer.Typer(
    name="epx",
    help="RLVR experiment runner: GRPO with PPL- and position-based advantage shaping.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit with `code`."""
    typer.echo(f"epx: error: {message}", err=True)
    raise typer.Exit(code)


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn EpxError, an error of the machine (a full disk, a read-only file system:
    `environment_error_line`) and Ctrl-C into one line on stderr with an exit code, never a
    traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except EpxError as error:
            fail(str(error), error.exit_code)
        except KeyboardInterrupt:
            typer.echo("epx: interrupted", err=True)
            raise typer.Exit(130) from None
        except Exception as error:
            line = environment_error_line(error)
            if line is None:
                raise
            fail(line, 2)

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"epx {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """RLVR experiment runner: GRPO with PPL- and position-based advantage shaping."""


def _register_commands() -> None:
    from epx.commands import register

    register(app, friendly_errors)


_register_commands()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
