"""The per-process holder of the worker pools: one object per process, made on first use, closed
once, and never the parent's object in a forked child."""

from __future__ import annotations

import os

from epx.per_process import PerProcess


def holder() -> tuple[PerProcess[list[str]], list[list[str]]]:
    closed: list[list[str]] = []
    return PerProcess(lambda: [f"made in {os.getpid()}"], closed.append), closed


def test_one_object_is_made_on_first_use_and_kept_until_closed():
    held, closed = holder()
    assert held.current is None
    first = held.get()
    assert held.get() is first
    held.close()
    assert closed == [first]
    assert held.get() is not first  # a new one after close
    held.close()


def test_a_forked_child_makes_its_own_and_never_closes_the_parents():
    held, closed = holder()
    parent_object = held.get()
    pid = os.fork()
    if pid == 0:  # the child: reports through its exit code
        ok = held.current is None and held.get() is not parent_object
        held.close()
        os._exit(0 if ok and closed == [[f"made in {os.getpid()}"]] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert held.current is parent_object and closed == []
    held.close()
