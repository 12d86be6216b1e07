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
    """Print one line to stderr and exit with `code` (in a multi-process launch, the processes
    other than the main one name their rank)."""
    import os

    rank = int(os.environ.get("RANK", "0"))
    where = f" (rank {rank})" if rank else ""
    typer.echo(f"epx: error{where}: {message}", err=True)
    raise typer.Exit(code)


class Terminated(BaseException):
    """SIGTERM, e.g. from a launcher (torchrun) ending the other processes when one failed."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn EpxError, an error of the machine (a full disk, a read-only file system:
    `environment_error_line`), Ctrl-C and SIGTERM into one line on stderr with an exit code,
    never a traceback (what was saved stays: a run resumes from its last checkpoint)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import signal

        signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            return command(*args, **kwargs)
        except EpxError as error:
            fail(str(error), error.exit_code)
        except KeyboardInterrupt:
            typer.echo("epx: interrupted", err=True)
            raise typer.Exit(130) from None
        except Terminated:
            typer.echo(f"epx: terminated (SIGTERM){_rank_note()}", err=True)
            raise typer.Exit(143) from None
        except Exception as error:
            line = environment_error_line(error)
            if line is None:
                raise
            fail(line, 2)

    return wrapper


def _rank_note() -> str:
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return ""
    return f" on rank {os.environ.get('RANK', '0')}: the launcher stops every process when one fails"


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
