"""The study-wide total: trials finished or running count, so that workers together run exactly
`n_trials` (Optuna's `MaxTrialsCallback` counts finished ones only and can overshoot), and the
trials of dead workers never count (they are failed first)."""

from __future__ import annotations

from typing import Any


def fail_stale_trials(study: Any) -> None:
    """Fail (and enqueue again) the RUNNING trials whose worker is gone, as Optuna does before
    each trial: at the start and after every trial too, so that they never make the total."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def finished_trials(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def taken_before(study: Any, number: int | None = None) -> int:
    """Trials finished or running (before trial `number`, if given): what counts towards the
    study's total once the running ones end."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    trials = study.get_trials(deepcopy=False, states=states)
    return sum(1 for t in trials if number is None or t.number < number)


def waiting_trials(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


class StudyTotal:
    """Stop this worker once the study's finished and running trials reach `n_trials`.

    Optuna's `MaxTrialsCallback` counts finished trials only, so two workers can both start a
    last trial and overshoot; counting the running ones (and, in the objective, refusing a trial
    whose lower-numbered trials already make the total) keeps the total exact.
    """

    def __init__(self, n_trials: int, grid: bool = False, max_failed: int = 5) -> None:
        self.n_trials = n_trials
        self.grid = grid  # a grid study also ends when its queue of grid points is empty
        self.max_failed = max_failed
        self.failed_in_a_row = 0

    def done(self, study: Any) -> bool:
        return taken_before(study) >= self.n_trials or (self.grid and not waiting_trials(study))

    def __call__(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        fail_stale_trials(study)  # a dead worker's trial must not count towards the total
        surplus = isinstance(trial.user_attrs.get("error"), str) and trial.user_attrs[
            "error"
        ].startswith("surplus")
        if trial.state == TrialState.FAIL and not surplus:
            self.failed_in_a_row += 1
        elif trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            self.failed_in_a_row = 0
        if self.done(study) or self.failed_in_a_row >= self.max_failed:
            study.stop()
