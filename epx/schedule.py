"""When the position bonus is on: the schedule's rule per step, and the first step it can be on.

`always` is on at every step; `window` on the global steps of `shaping.position.window` (both
ends included); `plateau` from the first step after the stage detector reports the plateau (it
stays on). The decision is taken when a generation batch is shaped, so with several optimizer
steps per generation batch the bonus switches on at the first generation at or after that step.
Pure: no trainer, no torch.
"""

from __future__ import annotations

from epx.recipe import ShapingSection
from epx.stage import StageParams

POSITION_METHODS = ("position", "both")


def position_on(shaping: ShapingSection, step: int, plateau_reported: bool) -> bool:
    """Whether the bonus is on for global `step` (1-based, the step being trained)."""
    position = shaping.position
    if shaping.method not in POSITION_METHODS:
        return False
    if position.schedule == "always":
        return True
    if position.schedule == "window":
        return position.window[0] <= step <= position.window[1]
    return plateau_reported


def earliest_plateau_report(params: StageParams) -> int:
    """The first global step at whose end the detector can report the plateau: its slopes need a
    full window (step index window - 1), the plateau never begins before step index `min_steps`,
    and it is confirmed `patience` steps after it begins (1-based: index + 1)."""
    return max(params.window - 1, params.min_steps) + params.patience


def first_generation_at_or_after(step: int, updates_per_generation: int) -> int:
    """The first step >= `step` that starts a generation batch (steps 1, 1 + u, 1 + 2u, ...)."""
    u = max(1, updates_per_generation)
    return 1 + -(-(step - 1) // u) * u


def earliest_position_step(
    shaping: ShapingSection, params: StageParams, updates_per_generation: int = 1
) -> int | None:
    """The first step the bonus can be on (None: the method has no position bonus)."""
    if shaping.method not in POSITION_METHODS:
        return None
    schedule = shaping.position.schedule
    if schedule == "always":
        start = 1
    elif schedule == "window":
        start = shaping.position.window[0]
    else:
        start = earliest_plateau_report(params) + 1
    return first_generation_at_or_after(start, updates_per_generation)


def position_reach(
    shaping: ShapingSection, params: StageParams, max_steps: int, updates_per_generation: int = 1
) -> str | None:
    """One line when the recipe's position bonus cannot be on within `max_steps`, else None."""
    first = earliest_position_step(shaping, params, updates_per_generation)
    if first is None or first <= max_steps:
        return None
    schedule = shaping.position.schedule
    if schedule == "plateau":
        why = (f"the stage detector cannot report a plateau before the end of step "
               f"{earliest_plateau_report(params)} (max(stage.window - 1, stage.min_steps) + "
               "stage.patience)")  # fmt: skip
    else:
        why = f"shaping.position.window starts at step {shaping.position.window[0]}"
    return (f"shaping.method={shaping.method} with schedule {schedule}: the position bonus can "
            f"be on from step {first} at the earliest, {why}, and the run ends at step "
            f"{max_steps}: every step trains without it")  # fmt: skip
