"""One object per process (the worker pools of the scorer and of the sandbox): created on first
use, closed at interpreter exit, and never shared with a forked child, whose copy belongs to the
parent."""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """Holds this process's ``T``; callers take `lock` around `get` and their use of it."""

    def __init__(self, create: Callable[[], T], close: Callable[[T], None]) -> None:
        self._create, self._close = create, close
        self.lock = threading.Lock()
        self._value: T | None = None
        self._pid = 0
        self._at_exit = False

    def get(self) -> T:
        """This process's object, created on first use (call under `lock`)."""
        if self._value is None or self._pid != os.getpid():
            self._value, self._pid = self._create(), os.getpid()
            if not self._at_exit:
                self._at_exit = bool(atexit.register(self.close))
        return self._value

    @property
    def current(self) -> T | None:
        """This process's object if it was created, else None."""
        return self._value if self._pid == os.getpid() else None

    def close(self) -> None:
        """Close this process's object (the next `get` creates a new one)."""
        value, self._value = self.current, None
        if value is not None:
            self._close(value)
