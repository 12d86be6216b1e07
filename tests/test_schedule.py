"""The position schedule's rule and the first step it can be on, by hand, and against the real
stage detector on a series that is flat from the start (the earliest a plateau can be called)."""

from __future__ import annotations

from epx.recipe import ShapingSection
from epx.schedule import (
    earliest_plateau_report,
    earliest_position_step,
    first_generation_at_or_after,
    position_on,
    position_reach,
)
from epx.stage import StageParams, StageTracker


def shaping(method: str = "position", schedule: str = "plateau", window=(201, 299)):
    return ShapingSection(method=method, position={"schedule": schedule, "window": window})


def test_the_rule_per_schedule():
    assert [position_on(shaping(schedule="window", window=(3, 4)), s, False) for s in range(1, 7)] == [
        False, False, True, True, False, False]  # fmt: skip
    assert position_on(shaping(schedule="always"), 1, False)
    assert not position_on(shaping(), 50, False) and position_on(shaping(), 50, True)
    assert not position_on(shaping(method="ppl", schedule="always"), 1, True)


def test_earliest_plateau_report_is_what_the_detector_does_on_a_flat_series():
    for window, min_steps, patience in ((20, 20, 10), (5, 0, 1), (4, 10, 3), (2, 0, 1)):
        params = StageParams(window=window, min_steps=min_steps, patience=patience)
        tracker = StageTracker(params)
        stages = [tracker.update(1.0, 2.0) for _ in range(60)]  # flat: the condition always holds
        assert stages.index(1) + 1 == earliest_plateau_report(params), params
    # the defaults: max(19, 20) + 10 = step 30; the bonus from step 31
    assert earliest_plateau_report(StageParams()) == 30
    assert earliest_position_step(shaping(), StageParams()) == 31


def test_several_steps_per_generation_move_the_first_step_to_a_generation():
    # generations start at steps 1, 17, 33, ... (16 updates each): step 31 -> 33
    assert first_generation_at_or_after(31, 16) == 33
    assert first_generation_at_or_after(33, 16) == 33 and first_generation_at_or_after(1, 16) == 1
    assert earliest_position_step(shaping(schedule="window", window=(3201, 4784)), StageParams(), 16) == 3201


def test_a_schedule_that_cannot_switch_on_is_said_in_one_line():
    line = position_reach(shaping(), StageParams(), max_steps=20)
    assert line is not None and "\n" not in line
    assert "from step 31 at the earliest" in line and "run ends at step 20" in line
    assert position_reach(shaping(), StageParams(), max_steps=31) is None
    window = position_reach(shaping(schedule="window", window=(201, 299)), StageParams(), 100)
    assert window is not None and "window starts at step 201" in window
    assert position_reach(shaping(method="none"), StageParams(), 1) is None
    assert position_reach(shaping(schedule="always"), StageParams(), 1) is None
