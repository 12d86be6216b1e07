"""The errors epx shows to people: one line on stderr and an exit code, never a traceback."""

from __future__ import annotations


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
