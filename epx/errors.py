"""The errors epx shows to people: one line on stderr and an exit code, never a traceback."""

from __future__ import annotations

from collections.abc import Iterable


class EpxError(Exception):
    """Bad input or a failed precondition a person can act on."""

    exit_code = 2


class RecipeError(EpxError):
    """A recipe file or an override is wrong (which file, which key, what was expected)."""


class DataError(EpxError):
    """A dataset, benchmark or data file is missing or malformed."""


class ModelError(EpxError):
    """A model reference cannot be resolved or loaded."""


class RunError(EpxError):
    """A run cannot start or had to stop (resume mismatch, too many reward failures, ...)."""

    exit_code = 1


class RunStateError(EpxError):
    """What is in an output dir conflicts with what was asked (a run there without --resume, a
    resume with other settings, no usable checkpoint): bad input, exit code 2."""


DISK_FULL = ("No space left on device", "StorageFull", "Disk quota exceeded")
CUT_WRITE = ("unexpected pos", "PytorchStreamWriter failed", "file write failed")


def environment_error_line(error: BaseException) -> str | None:
    """One line for an error of the machine rather than of epx: a full disk (also as torch's
    or safetensors' cut write), a read-only file system, a permission refused; None otherwise.
    Finished work stays where it is: the line says how to go on."""
    import errno

    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    where = f" writing {error.filename}" if getattr(error, "filename", None) else ""
    code = getattr(error, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT) or any(mark in str(error) for mark in DISK_FULL):
        return (f"the disk is full{where} ({text}): free some space, then run the command again "
                "(epx train: with --resume, from the last whole checkpoint)")  # fmt: skip
    if isinstance(error, RuntimeError) and any(mark in str(error) for mark in CUT_WRITE):
        return (f"a file could not be written whole ({text}): is the disk full? Free some space, "
                "then run the command again (epx train: with --resume, from the last whole "
                "checkpoint)")  # fmt: skip
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) and isinstance(error, OSError):
        return f"cannot write{where or ' a file'}: {error.strerror or text}"
    return None


def nearest_names(name: str, known: Iterable[str], cutoff: float = 0.6) -> list[str]:
    """The known names most similar to `name` (every one on a tie), in their given order."""
    import difflib

    ratios = {k: difflib.SequenceMatcher(None, name, k).ratio() for k in known}
    best = max(ratios.values(), default=0.0)
    return [k for k, ratio in ratios.items() if ratio >= max(best, cutoff)]


def did_you_mean(name: str, known: Iterable[str], quote: str = "") -> str:
    """`; did you mean X?` (or `X or Y` on a tie) for an unknown `name`, or "" if none is close."""
    close = [f"{quote}{k}{quote}" for k in nearest_names(name, known)]
    return f"; did you mean {' or '.join(close)}?" if close else ""
