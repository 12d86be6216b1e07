"""Output folders a command writes into: checked before anything is written, one line if not."""

from __future__ import annotations

import os
from pathlib import Path

from epx.errors import RecipeError


def check_output_dir(path: str | os.PathLike[str], option: str = "output_dir") -> Path:
    """`path` is (or can become) a writable folder; RecipeError naming `option` otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RecipeError(f"{option}: {path} is a file, not a folder")
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise RecipeError(f"{option}: {path} cannot be created: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise RecipeError(f"{option}: {path} cannot be created: {ancestor} is not writable")
    return path


def make_output_dir(path: str | os.PathLike[str], option: str = "output_dir") -> Path:
    """Create the folder (checked first); an OS refusal is one line too."""
    path = check_output_dir(path, option)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RecipeError(f"{option}: cannot create {path} ({error.strerror})") from None
    return path
