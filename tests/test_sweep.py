"""`epx sweep`: search spaces and objective values by hand, then real Optuna studies on real
storage (SQLite, PostgreSQL) whose trials are real `epx train` runs of the tiny recipe."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from epx.cli import app
from epx.errors import RecipeError
from epx.sweep.metric import MetricsTail, default_metric, final_value, metric_points
from epx.sweep.space import as_overrides, check_against_recipe, parse_space

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny-random.yaml"
# A pruning test's trials run this many steps: the kept trial all of them, the pruned one is
# stopped after its first report (a tiny step takes 0.1-1 s here; the pruning signal ~0.2 s).
PRUNED_RUN_STEPS = 40
FAST = ["--set", "grpo.max_steps=2", "--set", "eval.benches=[arithmetic]", "--set", "eval.limit=4"]
FAST += ["--set", "eval.every_n_steps=1", "--set", "eval.max_tokens=4"]


def epx(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def load(folder: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'study.db'}")


def write_space(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---- search spaces (pure) -------------------------------------------------------------------


def test_space_parses_typed_parameters_with_paper_and_grid_values():
    space = parse_space(
        {"method": "both", "params": {
            "shaping.ppl.alpha": {"type": "float", "low": 0.001, "high": 0.1, "log": True,
                                  "paper": 0.01, "grid": [0.01, 0.03]},
            "shaping.position.k": {"type": "int", "low": 5, "high": 30, "paper": 15},
            "shaping.position.schedule": {"type": "categorical", "choices": ["always", "plateau"]},
        }},
        "s.yaml",
    )  # fmt: skip
    assert [p.key for p in space.params] == [
        "shaping.ppl.alpha", "shaping.position.k", "shaping.position.schedule"
    ]  # fmt: skip
    assert space.paper_values() == {"shaping.ppl.alpha": 0.01, "shaping.position.k": 15}
    with pytest.raises(RecipeError, match=r"s.yaml: params.shaping.position.k: the grid sampler"):
        space.grid()  # an int without grid values
    assert as_overrides({"a.b": 0.5, "c": "plateau", "d": [1, 2]}) == ["a.b=0.5", "c=plateau", "d=[1, 2]"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"x": {"type": "float", "low": 0.5, "high": 0.1}}, r"params.x: low \(0.5\) must be <= high \(0.1\)"),
        ({"x": {"type": "float", "low": "a", "high": 1}}, r"params.x: low must be a number, got 'a'"),
        ({"x": {"type": "floaty", "low": 0, "high": 1}}, r"params.x: type must be one of float, int, categorical"),
        ({"x": {"type": "int", "low": 0.5, "high": 3}}, r"params.x: an int parameter needs integer low and high"),
        ({"x": {"type": "float", "low": 0, "high": 1, "log": True}}, r"params.x: a log-scaled parameter needs low > 0"),
        ({"x": {"type": "categorical", "choices": []}}, r"params.x: a categorical parameter needs a non-empty"),
        ({"x": {"type": "float", "low": 0, "high": 1, "paper": 2}}, r"params.x: paper value 2 lies outside"),
        ({"x": {"type": "float", "low": 0, "high": 1, "hgh": 2}}, r"params.x: unknown field 'hgh'"),
    ],
)  # fmt: skip
def test_a_bad_parameter_is_one_line_naming_file_and_key(params, expected):
    with pytest.raises(RecipeError, match=rf"^s.yaml: {expected}"):
        parse_space({"method": "ppl", "params": params}, "s.yaml")


def test_a_key_the_recipe_does_not_have_is_named_before_any_trial():
    space = parse_space({"method": "position", "params": {
        "shaping.position.alfa": {"type": "float", "low": 0.01, "high": 0.5}}}, "s.yaml")  # fmt: skip
    with pytest.raises(RecipeError, match=r"^s.yaml: params.shaping.position.alfa = .*unknown key.*alpha"):
        check_against_recipe(space, TINY, [])
    negative = parse_space({"method": "ppl", "params": {
        "shaping.ppl.alpha": {"type": "float", "low": -1, "high": 0.5}}}, "s.yaml")  # fmt: skip
    with pytest.raises(RecipeError, match=r"^s.yaml: params.shaping.ppl.alpha = -1.0: .*greater than or equal to 0"):
        check_against_recipe(negative, TINY, [])


def test_the_shipped_spaces_fit_the_default_recipe():
    from epx.sweep.space import load_space

    for method in ("ppl", "position", "both"):
        space = load_space(REPO / "sweeps" / f"{method}.yaml")
        assert space.method == method and space.paper_values()
        check_against_recipe(space, REPO / "recipes" / "smollm2-135m-cpu.yaml", [])
    position = load_space(REPO / "sweeps" / "position.yaml").paper_values()
    assert position["shaping.position.alpha"] == 0.1 and position["shaping.position.k"] == 15
    assert load_space(REPO / "sweeps" / "ppl.yaml").paper_values()["shaping.ppl.alpha"] == 0.01


# ---- objective values (pure) ----------------------------------------------------------------


def test_the_value_is_the_metric_at_the_last_record_that_holds_it():
    records = [{"step": 1, "reward": 0.1, "eval/a/acc": 0.2}, {"step": 2, "reward": 0.3},
               {"step": 4, "reward": 0.5, "eval/a/acc": 0.6}]  # fmt: skip
    assert final_value(records, "eval/a/acc") == 0.6
    assert metric_points(records, "eval/a/acc") == [(1, 0.2), (4, 0.6)]
    with pytest.raises(ValueError, match=r"'eval/a/acc' is None \(not a number\) at step 5"):
        final_value([*records, {"step": 5, "eval/a/acc": None}], "eval/a/acc")  # NaN is null
    with pytest.raises(ValueError, match="'loss' never logged; the run logged eval/a/acc, reward"):
        final_value(records, "loss")
    with pytest.raises(ValueError, match="'x' is inf"):
        final_value([{"x": math.inf}], "x")


def test_metrics_tail_returns_only_completed_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.read_new() == []  # no file yet
    path.write_text('{"step": 1}\n{"step": 2, "rew')
    assert tail.read_new() == [{"step": 1}]
    with path.open("a") as handle:
        handle.write('ard": 1}\n')
    assert tail.read_new() == [{"step": 2, "reward": 1}]
    assert len(tail.records) == 2


def test_the_default_objective_is_held_out_accuracy_and_needs_an_eval_section():
    from epx.recipe import load_recipe

    assert default_metric(load_recipe(TINY, ["eval.benches=[arithmetic]"])) == "eval/arithmetic/acc"
    with pytest.raises(RecipeError, match=r"no eval section.*--metric reward"):
        default_metric(load_recipe(TINY))
    result = epx("sweep", "--method", "ppl", "--recipe", TINY)
    assert result.exit_code == 2 and "no eval section" in result.stderr


def test_trial_command_puts_the_launcher_in_front():
    from epx.sweep.child import trial_command
    from epx.sweep.options import build_options

    options = build_options(
        method="ppl", recipe=TINY, space=None, n_trials=1, study_name=None, storage=None,
        metric="reward", direction="maximize", sampler="tpe", pruner="none", repeats=1,
        launcher="accelerate launch --config_file recipes/accelerate/zero3.yaml",
        overrides=["grpo.max_steps=2"], output_dir=None, heartbeat=60,
    )  # fmt: skip
    command = trial_command(options, {"shaping.ppl.alpha": 0.02}, 3, Path("out"))
    assert Path(command[0]).name == "accelerate"  # on PATH, or beside this Python
    assert command[1:6] == ["launch", "--config_file", "recipes/accelerate/zero3.yaml", "-m", "epx.cli"]
    assert " ".join(command).endswith(
        "--set grpo.max_steps=2 --set shaping.method=ppl --set shaping.ppl.alpha=0.02 "
        "--set grpo.seed=3 --set output_dir=out --set logging.mode=disabled"
    )
    assert options.study_name == "tiny-random-ppl" and options.storage.endswith("study.db")


# ---- real studies ---------------------------------------------------------------------------


@pytest.mark.multiprocess
def test_a_sweep_of_three_trials_with_sqlite(tmp_path):
    out = tmp_path / "sweep"
    result = epx("sweep", "--method", "position", "--recipe", TINY, "--n-trials", 3, "-o", out, *FAST)
    assert result.exit_code == 0, result.stderr
    study = load(out, "tiny-random-position")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert study.user_attrs["metric"] == "eval/arithmetic/acc"
    paper = {"shaping.position.alpha": 0.1, "shaping.position.k": 15.0,
             "shaping.position.center": 0.5, "shaping.position.schedule": "plateau"}  # fmt: skip
    assert trials[0].params == paper  # the paper's values come first
    for trial in trials:
        assert 0.01 <= trial.params["shaping.position.alpha"] <= 0.5
        assert 5 <= trial.params["shaping.position.k"] <= 30
        assert trial.params["shaping.position.schedule"] in ("always", "plateau")
        assert 0.0 <= trial.value <= 1.0
        assert (out / f"trial-{trial.number:04d}" / "seed-0" / "metrics.jsonl").is_file()
        # two steps: a plateau schedule can never switch the bonus on, and the trial says so
        plateau = trial.params["shaping.position.schedule"] == "plateau"
        assert ("position_warning" in trial.user_attrs) == plateau
    assert "warning: shaping.method=position with schedule plateau: the position bonus can be " \
        "on from step" in result.stderr
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 4  # one per trial, finished before the next, and the study's
    for run in runs:
        assert b"tiny-random-position" in next(run.glob("run-*.wandb")).read_bytes()  # group
    shown = epx("sweep", "--show", "tiny-random-position", "-o", out)
    assert shown.exit_code == 0, shown.stderr
    assert "best: trial" in shown.stdout and "epx train" in shown.stdout
    assert "position bonus never on" in shown.stdout  # the paper's trial (0) in the table
    assert "--set shaping.method=position" in shown.stdout
    assert (out / "tiny-random-position-history.png").stat().st_size > 5_000
    assert (out / "tiny-random-position-parallel.png").stat().st_size > 5_000


@pytest.mark.multiprocess
def test_a_failing_trial_is_fail_with_its_last_line_and_the_sweep_goes_on(tmp_path):
    space = write_space(tmp_path / "space.yaml", "method: position\nparams:\n"
                        "  model.name_or_path: {type: categorical, choices: [tiny-random, ./no-model], paper: tiny-random}\n")  # fmt: skip
    out = tmp_path / "sweep"
    result = epx("sweep", "--method", "position", "--recipe", TINY, "--space", space, "--sampler", "grid",
                 "--n-trials", 2, "--metric", "reward", "-o", out, *FAST)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    trials = load(out, "tiny-random-position").get_trials()
    states = {t.params["model.name_or_path"]: t for t in trials}
    assert states["tiny-random"].state == TrialState.COMPLETE
    failed = states["./no-model"]
    assert failed.state == TrialState.FAIL
    assert "exited 2" in failed.user_attrs["error"] and "no-model: no such local file" in failed.user_attrs["error"]


@pytest.mark.multiprocess
def test_a_nan_metric_fails_the_trial_rather_than_ranking_it(tmp_path):
    out = tmp_path / "sweep"
    # correctness only: a random model is never right, so no sample has a positive advantage
    result = epx("sweep", "--method", "ppl", "--recipe", TINY, "--n-trials", 1, "--metric", "entropy/positive",
                 "--max-failed", 2, "-o", out, "--set", "reward.functions=[{name: correctness}]", *FAST)  # fmt: skip
    assert result.exit_code == 1 and "2 trials in a row failed: this worker stops" in result.stderr
    trials = load(out, "tiny-random-ppl").get_trials()
    assert len(trials) == 2  # then the worker stopped instead of trying forever
    trial = trials[0]
    assert trial.state == TrialState.FAIL and trial.value is None
    assert "'entropy/positive' is None (not a number)" in trial.user_attrs["error"]


@pytest.mark.multiprocess
def test_a_clearly_worse_trial_is_pruned_by_the_median_pruner(tmp_path):
    space = write_space(tmp_path / "space.yaml", "method: position\nparams:\n"
                        "  grpo.max_completion_length: {type: categorical, choices: [6, 16], paper: 6}\n")  # fmt: skip
    out = tmp_path / "sweep"
    result = epx("sweep", "--method", "position", "--recipe", TINY, "--space", space, "--sampler", "grid",
                 "--pruner", "median", "--n-trials", 2, "--metric", "completions/mean_length",
                 "--direction", "minimize", "-o", out, "--set", f"grpo.max_steps={PRUNED_RUN_STEPS}",
                 "--set", "grpo.save_steps=1000")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    trials = {t.params["grpo.max_completion_length"]: t for t in load(out, "tiny-random-position").get_trials()}
    assert trials[6].state == TrialState.COMPLETE and trials[6].value <= 6
    assert trials[16].state == TrialState.PRUNED  # its first report (~16 tokens) > the median (<= 6)
    steps = [json.loads(line)["step"] for line in
             (out / f"trial-{trials[16].number:04d}" / "seed-0" / "metrics.jsonl").read_text().splitlines()]  # fmt: skip
    assert max(steps) < PRUNED_RUN_STEPS  # its child was stopped early


@pytest.mark.multiprocess
def test_repeats_run_each_setting_with_several_seeds_and_report_the_mean(tmp_path):
    out = tmp_path / "sweep"
    result = epx("sweep", "--method", "ppl", "--recipe", TINY, "--n-trials", 1, "--repeats", 2,
                 "--metric", "completions/mean_length", "--launcher", f"env OMP_NUM_THREADS=1 {sys.executable}",
                 "-o", out, "--set", "grpo.max_steps=2")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (trial,) = load(out, "tiny-random-ppl").get_trials()
    assert trial.user_attrs["seeds"] == [0, 1]
    values = [trial.user_attrs["value_seed_0"], trial.user_attrs["value_seed_1"]]
    assert trial.value == pytest.approx(sum(values) / 2) and values == trial.user_attrs["values"]
    for seed in (0, 1):
        saved = (out / "trial-0000" / f"seed-{seed}" / "recipe.yaml").read_text()
        assert f"seed: {seed}" in saved


@pytest.mark.multiprocess
def test_a_trial_can_be_a_two_process_launch_and_pruning_stops_every_rank(tmp_path):
    """`--launcher "torchrun --standalone --nproc_per_node 2"`: each trial trains on two gloo
    ranks; its value is the main rank's metric (only it writes metrics.jsonl), and a pruned
    trial's launch is stopped whole (torchrun and both ranks)."""
    space = write_space(tmp_path / "space.yaml", "method: position\nparams:\n"
                        "  grpo.max_completion_length: {type: categorical, choices: [6, 16], paper: 6}\n")  # fmt: skip
    out = tmp_path / "sweep"
    launcher = f"env OMP_NUM_THREADS=1 {sys.executable} -m torch.distributed.run --standalone --nproc_per_node 2"
    result = epx("sweep", "--method", "position", "--recipe", TINY, "--space", space, "--sampler", "grid",
                 "--pruner", "median", "--n-trials", 2, "--metric", "completions/mean_length",
                 "--direction", "minimize", "--launcher", launcher, "-o", out,
                 "--set", f"grpo.max_steps={PRUNED_RUN_STEPS}", "--set", "grpo.save_steps=1000")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    trials = {t.params["grpo.max_completion_length"]: t for t in load(out, "tiny-random-position").get_trials()}
    kept, pruned = trials[6], trials[16]
    assert kept.state == TrialState.COMPLETE and pruned.state == TrialState.PRUNED
    folder = out / f"trial-{kept.number:04d}" / "seed-0"
    log = (folder / "train.log").read_text()
    assert "2 processes (DDP, gloo)" in log and log.count("epx train: ") == 1
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert kept.value == records[-1]["completions/mean_length"]  # the main rank's last value
    pruned_folder = out / f"trial-{pruned.number:04d}" / "seed-0"
    steps = [json.loads(line)["step"] for line in (pruned_folder / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) < PRUNED_RUN_STEPS  # stopped early
    left = subprocess.run(["pgrep", "-f", str(pruned_folder)], capture_output=True, text=True)
    assert left.stdout.strip() == ""  # no rank of the pruned launch is left running
