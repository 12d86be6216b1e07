"""Where each optimizer step's wall time goes: generation, scoring, optimization (verl's
`timing_s/*`, as epx's `timing/*` metrics, in seconds).

- `timing/generation`: producing the step's scored batch (sampling, TRL's old log-probs, the
  advantages, dynamic sampling's further rounds) except the reward functions;
- `timing/scoring`: the reward functions;
- `timing/optimization`: the rest of the step (the loss's forwards and backwards, the optimizer
  step), that is its wall time less the two above and less any in-training evaluation in it;
- `timing/evaluation`: in-training evaluation at the step's end (0 without one);
- `timing/step`: the step's wall time, from its first micro-batch to its end.

The main process's clock is the one logged (every process waits for the others at each step).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

PHASES = ("generation", "scoring", "evaluation")


class StepClock:
    """Wall time of one optimizer step and of its phases (phases may nest: scoring runs inside
    generation and is taken out of it)."""

    def __init__(self, now: Callable[[], float] = time.perf_counter) -> None:
        self.now = now
        self.begin: float | None = None
        self.spent: dict[str, float] = defaultdict(float)
        self._open: list[str] = []

    def start_step(self) -> None:
        self.begin = self.now()
        self.spent.clear()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase; time spent in a phase opened inside it is that one's, not this one's."""
        assert name in PHASES, f"unknown phase {name!r}: known are {', '.join(PHASES)}"
        start = self.now()
        outer = self._open[-1] if self._open else None
        self._open.append(name)
        try:
            yield
        finally:
            self._open.pop()
            took = self.now() - start
            self.spent[name] += took
            if outer is not None:
                self.spent[outer] -= took

    def finish_step(self) -> dict[str, float]:
        """The step's `timing/*` metrics (empty when no step was started)."""
        if self.begin is None:
            return {}
        wall = self.now() - self.begin
        self.begin = None
        busy = sum(self.spent.values())
        return {
            "timing/generation": self.spent["generation"],
            "timing/scoring": self.spent["scoring"],
            "timing/optimization": max(0.0, wall - busy),
            "timing/evaluation": self.spent["evaluation"],
            "timing/step": wall,
        }
