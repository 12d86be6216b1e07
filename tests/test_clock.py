"""StepClock on a hand-driven clock: phases nest (scoring inside generation counts once),
optimization is the rest of the step, evaluation is in neither."""

from __future__ import annotations

import pytest

from epx.train.clock import StepClock


class FakeTime:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_phases_nest_and_optimization_is_the_rest_of_the_step():
    now = FakeTime()
    clock = StepClock(now)
    clock.start_step()  # t = 100
    with clock.phase("generation"):
        now.t += 5.0  # sampling
        with clock.phase("scoring"):
            now.t += 3.0  # reward functions
        now.t += 1.0  # advantages
    now.t += 4.0  # loss and optimizer step
    with clock.phase("evaluation"):
        now.t += 2.0
    # generation 5 + 1 = 6 (its 9 s less the 3 of scoring), scoring 3, step 15,
    # optimization 15 - 6 - 3 - 2 (evaluation) = 4
    assert clock.finish_step() == {"timing/generation": 6.0, "timing/scoring": 3.0,
                                   "timing/optimization": 4.0, "timing/evaluation": 2.0,
                                   "timing/step": 15.0}  # fmt: skip
    assert clock.finish_step() == {}  # a step is finished once


def test_an_unknown_phase_is_refused():
    with pytest.raises(AssertionError, match="known are generation, scoring, evaluation"), StepClock().phase("sampling"):
        pass
