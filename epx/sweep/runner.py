"""`run_sweep(options)`: an Optuna study whose trials are real `epx train` runs in child processes.

One worker is one `epx sweep` process; several with the same `--study-name` and `--storage`
cooperate on one study through Optuna's own distributed mode (`study.optimize` on shared
storage, the heartbeat, a study-wide total). Each checks the study's identity
(`epx.sweep.identity`) and shares the study folder's lock (`epx.locks`). A trial:

1. draws its parameters (the paper's values are enqueued as the study's first trial);
2. runs `[launcher] python -m epx.cli train RECIPE --set ...` once per seed, each in its own
   folder `trial-NNNN/seed-S/` (`train.log` holds its console);
3. follows the child's `metrics.jsonl` as it grows: every record goes to the trial's W&B run,
   every value of the metric is reported to the pruner; a pruned trial's child is stopped
   (SIGINT, then SIGKILL) and the trial is PRUNED;
4. ends COMPLETE with the metric's mean over the seeds (each seed's value kept as a trial
   attribute), or FAIL with the child's last line (a crash, an out-of-memory kill, a NaN).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from epx.errors import RecipeError
from epx.sweep.child import last_line, start_child, stop_child
from epx.sweep.metric import MetricNeverLogged, final_value, finite
from epx.sweep.samplers import initial_trials, make_pruner, make_sampler
from epx.sweep.space import SEED_PARAM, SearchSpace
from epx.sweep.total import StudyTotal, fail_stale_trials, finished_trials, taken_before
from epx.sweep.tracking import (
    log_study_to_wandb,
    loggable,
    study_attrs,
    wandb_trial_run,
    write_worker_stats,
)

POLL_SECONDS = 0.2


class TrialFailed(Exception):
    """A trial that produced no value: its child failed, or the metric is not a number."""


class TrialSurplus(TrialFailed):
    """A trial another worker's trials made unnecessary (the study already has its total)."""


@dataclass(frozen=True)
class SweepOptions:
    """Everything `epx sweep` takes (the CLI options, one for one)."""

    method: str
    recipe: Path
    space: SearchSpace
    n_trials: int
    study_name: str
    storage: str
    metric: str
    direction: str = "maximize"
    sampler: str = "tpe"
    pruner: str = "median"
    repeats: int = 1
    launcher: str | None = None
    overrides: tuple[str, ...] = ()
    output_dir: Path = Path("runs/sweep")
    heartbeat: float = 60.0
    wandb_mode: str = "offline"
    wandb_project: str = "epx"
    max_steps: int | None = None  # the trials' step budget (for hyperband)
    max_failed: int = 5  # this worker stops after so many trials in a row failed
    seed: int = 0  # the first seed; --repeats K uses seed .. seed + K - 1
    identity: dict[str, Any] = field(default_factory=dict)  # epx.sweep.identity.study_identity
    storage_retry: float = 120.0  # seconds a lost storage connection is retried
    replaces: str | None = None  # --new-study: the study of other settings this one is beside


@dataclass
class SweepResult:
    study: Any
    output_dir: Path
    trials_run: int
    storage_seconds: float = 0.0
    wall_seconds: float = 0.0
    worker: str = ""
    finished: int = 0
    failed_out: bool = False  # stopped after --max-failed failures in a row
    running: int | None = None  # the trial this worker runs and has not told the storage yet
    metric_missing: str | None = None  # a run that ended well never logged the metric: why


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_sweep(options: SweepOptions, console: Any = None) -> SweepResult:
    """Run trials of the study until it has `n_trials` finished ones (COMPLETE or PRUNED).

    The worker holds the study folder's lock (`epx.locks.shared_lock`, shared with the study's
    other workers) throughout; a storage lost for longer than `storage_retry` ends it in one line.
    """
    from rich.console import Console

    from epx.locks import shared_lock
    from epx.sweep.storage import shown_url

    console = console or Console(stderr=True, soft_wrap=True)
    key = f"study {options.study_name!r} in {shown_url(options.storage)}"
    with shared_lock(options.output_dir, key, "epx sweep", "--output-dir"):
        console.print(
            f"[bold]epx sweep[/]: study {options.study_name} ({options.direction} "
            f"{options.metric}), {options.n_trials} trials of {options.recipe} -> "
            f"{options.output_dir}", highlight=False,
        )  # fmt: skip
        return _run_locked(options, console)


def _run_locked(options: SweepOptions, console: Any) -> SweepResult:
    from epx.errors import RunError
    from epx.sweep.storage import guard_storage, open_storage, shown_url

    one_line_optuna_logs()
    storage = open_storage(options.storage, options.heartbeat)
    notify = lambda text: console.print(f"[yellow]{text}[/]", highlight=False)  # noqa: E731
    clock = guard_storage(storage, options.storage_retry, notify)
    result = SweepResult(None, options.output_dir, 0, worker=worker_name())
    start = time.perf_counter()
    try:
        _optimize(options, console, storage, result)
    except Exception:  # Optuna's own clean-up fails too once the storage is gone
        if clock.lost is None:
            raise
        trial = (f"its trial {result.running} stays RUNNING until another worker's heartbeat "
                 "check fails it and runs it again" if result.running is not None
                 else "no trial of it was running")  # fmt: skip
        raise RunError(
            f"storage {shown_url(options.storage)}: {clock.lost}: this worker stops; {trial}"
        ) from None
    result.wall_seconds = time.perf_counter() - start
    result.storage_seconds = clock.seconds
    result.finished = finished_trials(result.study)
    write_worker_stats(options.output_dir, result, clock.calls)
    log_study_to_wandb(result.study, options)
    if result.metric_missing is not None:
        raise RecipeError(f"--metric {options.metric}: {result.metric_missing}")
    return result


def _optimize(options: SweepOptions, console: Any, storage: Any, result: SweepResult) -> None:
    """Create or join the study (its identity checked) and run trials until it has its total."""
    sampler = make_sampler(options.sampler, options.space)
    pruner = make_pruner(options.pruner, options.max_steps)
    from epx.sweep.storage import create_or_load

    study, created = create_or_load(storage, options.study_name, options.direction, sampler, pruner)
    result.study = study
    check_identity(study, options, created)
    if created:
        for key, value in study_attrs(options).items():
            study.set_user_attr(key, value)
    if created or not study.trials:
        for params in initial_trials(options.space, options.sampler):
            study.enqueue_trial(params, skip_if_exists=True)
    fail_stale_trials(study)
    done = finished_trials(study)
    if done >= options.n_trials:
        console.print(f"study {options.study_name} already has {done} finished trials of "
                      f"{options.n_trials}: nothing to run", highlight=False)  # fmt: skip
        return
    objective = _Objective(options, console, result)
    stop = StudyTotal(options.n_trials, options.sampler == "grid", options.max_failed)
    if not stop.done(study):
        settled = lambda study, trial: setattr(result, "running", None)  # noqa: E731 (told)
        study.optimize(
            objective, callbacks=[settled, stop], catch=(TrialFailed,), gc_after_trial=False
        )
    else:
        console.print(
            f"study {options.study_name}: {taken_before(study) - done} trials still run on other "
            "workers and make its total; nothing to start here", highlight=False
        )
    if stop.failed_in_a_row >= options.max_failed and result.metric_missing is None:
        console.print(
            f"[red]{stop.failed_in_a_row} trials in a row failed: this worker stops[/] (see "
            f"each trial's train.log under {options.output_dir}; --max-failed sets the limit)",
            highlight=False,
        )
        result.failed_out = True


def check_identity(study: Any, options: SweepOptions, created: bool) -> None:
    """Record the study's identity when it is new; otherwise refuse (RecipeError) settings that
    differ from it. A study made before identities were kept gets this one recorded after a
    check of what it did record (method, metric, direction)."""
    from epx.sweep.identity import IDENTITY_ATTR, identity_differences, refusal

    if not options.identity:
        return
    stored = None if created else recorded_identity(study)
    if stored is not None:
        differences = identity_differences(stored, options.identity)
        if differences:
            raise RecipeError(refusal(options.study_name, differences))
    if stored is None or "recipe_hash" not in stored:
        study.set_user_attr(IDENTITY_ATTR, options.identity)


def recorded_identity(study: Any, wait: float = 10.0) -> dict[str, Any] | None:
    """The identity a study was made with; for a study made before identities were kept, what
    it recorded of them; None for a new study whose creator has not recorded it yet (after
    `wait` seconds, or when it has no trial)."""
    from epx.sweep.identity import IDENTITY_ATTR

    deadline = time.monotonic() + wait
    while True:
        attrs = study.user_attrs
        if IDENTITY_ATTR in attrs:
            return attrs[IDENTITY_ATTR]
        if "method" in attrs:  # made by an earlier epx
            legacy = {"method": attrs["method"], "metric": attrs.get("metric"),
                      "direction": study.direction.name.lower()}  # fmt: skip
            return {key: value for key, value in legacy.items() if value is not None}
        if study.trials or time.monotonic() > deadline:
            return None
        time.sleep(0.2)  # another worker created it a moment ago


class _OneLine:
    """A logging filter: Optuna's record of a failed trial without its traceback (the cause's
    repr stays in the line); for a `TrialFailed`, whose line epx prints itself, no record."""

    def filter(self, record: Any) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], TrialFailed):
            return False
        record.exc_info, record.exc_text = None, None
        return True


def one_line_optuna_logs() -> None:
    """Optuna's warnings as one line each, never a traceback (see `_OneLine`)."""
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, _OneLine) for f in handler.filters):
            handler.addFilter(_OneLine())


class _Objective:
    """Optuna's objective: one trial = the recipe trained once per seed (module docstring)."""

    def __init__(self, options: SweepOptions, console: Any, result: SweepResult) -> None:
        self.options = options
        self.console = console
        self.result = result

    def __call__(self, trial: Any) -> float:
        import optuna

        options = self.options
        self.result.running = trial.number
        trial.set_user_attr("worker", self.result.worker)
        if taken_before(trial.study, trial.number) >= options.n_trials:
            trial.study.stop()  # another worker started the last trial at the same moment
            trial.set_user_attr(
                "error", f"surplus: the study already had {options.n_trials} trials"
            )
            raise TrialSurplus("surplus")
        params = options.space.suggest(trial)
        if SEED_PARAM in params:  # a comparison: its seed is a parameter (`trial_overrides`)
            seeds = [params[SEED_PARAM]]
        else:
            seeds = [options.seed + r for r in range(options.repeats)]
        trial_dir = options.output_dir / f"trial-{trial.number:04d}"
        shown = ", ".join(f"{k.split('.', 1)[-1]}={_short(v)}" for k, v in params.items())
        self.console.print(f"[bold]trial {trial.number}[/] {shown}", highlight=False)
        warning = trial_position_warning(options, params)
        if warning is not None:
            trial.set_user_attr("position_warning", warning)
            self.console.print(f"  [yellow]warning[/]: {warning}", highlight=False)
        run = wandb_trial_run(options, trial, params)
        values: list[float] = []
        state = "fail"
        try:
            for index, seed in enumerate(seeds):
                value = self._run_seed(trial, params, seed, trial_dir, index, run)
                values.append(value)
                trial.set_user_attr(f"value_seed_{seed}", value)
            mean = sum(values) / len(values)
            trial.set_user_attr("seeds", seeds)
            trial.set_user_attr("values", values)
            state = "complete"
            self.console.print(
                f"  trial {trial.number}: {options.metric} = {mean:.4g}", highlight=False
            )
            return mean
        except optuna.TrialPruned:
            state = "pruned"
            self.console.print(f"  trial {trial.number}: pruned", highlight=False)
            raise
        except TrialFailed as error:
            trial.set_user_attr("error", str(error))
            self.console.print(f"  [red]trial {trial.number} failed[/]: {error}", highlight=False)
            raise
        finally:
            self.result.trials_run += 1
            if run is not None:
                run.summary["state"] = state
                if values:
                    run.summary["value"] = sum(values) / len(values)
                run.finish(exit_code=0 if state != "fail" else 1)

    def _run_seed(
        self, trial: Any, params: dict[str, Any], seed: int, trial_dir: Path, index: int, run: Any
    ) -> float:
        import optuna

        options = self.options
        folder = trial_dir / f"seed-{seed}"
        child = start_child(options, params, seed, folder)
        reported: set[int] = set()
        try:
            while True:
                finished = child.process.poll() is not None
                for record in child.tail.read_new():
                    if run is not None:
                        run.log({**loggable(record), "seed": seed})
                    value = finite(record.get(options.metric))
                    step = int(record.get("step", 0))
                    if index == 0 and value is not None and step not in reported:
                        trial.report(value, step)  # pruning follows the first seed
                        reported.add(step)
                        if trial.should_prune():
                            stop_child(child)
                            raise optuna.TrialPruned(f"pruned at step {step}")
                if finished:
                    break
                time.sleep(POLL_SECONDS)
        except BaseException:
            stop_child(child)
            raise
        finally:
            child.log.close()
        if child.process.returncode != 0:
            raise TrialFailed(
                f"seed {seed}: epx train exited {child.process.returncode}: {last_line(folder)}"
            )
        try:
            return final_value(child.tail.records, options.metric)
        except MetricNeverLogged as error:  # every trial would fail alike: the worker stops
            self.result.metric_missing = f"a trial's run ended well but {error}"
            trial.study.stop()
            raise TrialFailed(f"seed {seed}: {error}") from None
        except ValueError as error:
            raise TrialFailed(f"seed {seed}: {error}") from None


def trial_position_warning(options: SweepOptions, params: dict[str, Any]) -> str | None:
    """`epx.launch_checks.position_warning` for the recipe a trial trains: a trial whose
    position bonus can never be on within its steps says so (it still runs: it is a setting
    of the study's space)."""
    from epx.grpo_args import grpo_config
    from epx.launch_checks import position_warning
    from epx.recipe import load_recipe
    from epx.sweep.space import trial_overrides

    overrides = trial_overrides(options.overrides, options.method, params)
    try:
        recipe = load_recipe(options.recipe, overrides)
        config = grpo_config(recipe, dry_run=True)
    except RecipeError:
        return None  # the trial's own `epx train` says what is wrong
    return position_warning(recipe, config, 1)  # steps per generation do not depend on processes


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


