"""`epx train` on tiny-random for real: metrics, checkpoints, W&B offline, resume, failure abort."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests_shared import step_records, train_tiny

from epx.errors import RunError, RunStateError
from epx.recipe import load_recipe
from epx.rewards import CountingReward
from epx.train import build_trainer, run_training

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny-random.yaml"
SECRET = "wandb-secret-key-0123456789abcdef0123"
STEP_KEYS = {
    "step", "reward", "accuracy", "entropy/positive", "entropy/negative", "log_ppl/positive",
    "log_ppl/negative", "shaping/ppl/weight_min", "shaping/ppl/weight_mean",
    "shaping/ppl/weight_max", "shaping/position/active", "shaping/position/bonus_abs_mean",
    "stage", "reward/failures",
}  # fmt: skip


def steps_logged(run: Path) -> list[int]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines if "reward" in json.loads(line)]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four steps with a checkpoint every two, W&B offline, a W&B key in the environment."""
    run = tmp_path_factory.mktemp("train") / "run"
    os.environ["WANDB_API_KEY"] = SECRET
    try:
        overrides = [f"output_dir={run}", "logging.mode=offline", "eval.benches=[aime24]"]
        overrides += ["eval.limit=2", "eval.n=2", "eval.every_n_steps=2", "eval.max_tokens=8"]
        run_training(load_recipe(TINY, overrides))
    finally:
        del os.environ["WANDB_API_KEY"]
    return run


def test_run_writes_metrics_every_step(first_run):
    records = [json.loads(line) for line in (first_run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for record in steps:
        assert set(record) >= STEP_KEYS, STEP_KEYS - set(record)
        assert 0.0 <= record["accuracy"] <= 1.0 and record["stage"] in (0.0, 1.0)
        low, high = record["shaping/ppl/weight_min"], record["shaping/ppl/weight_max"]
        assert 0.8 - 1e-6 <= low <= high <= 1.2 + 1e-6  # the clamp, in float32


def test_run_evaluates_in_training_into_metrics(first_run):
    records = [json.loads(line) for line in (first_run / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r["step"] for r in records if "eval/aime24/acc" in r]
    assert evaluated == [0, 2, 4]  # before training (a record of its own), then every 2 steps
    assert {key for key in records[0] if not key.startswith("eval/")} <= {"step", "epoch"}
    for record in records:
        if "eval/aime24/acc" in record:
            assert 0.0 <= record["eval/aime24/maj"] <= 1.0 and "eval/aime24/pass@2" in record
    assert (first_run / "eval" / "step-2").is_dir()


def test_each_evaluation_is_logged_at_its_own_step(tmp_path, monkeypatch):
    """With an evaluation every step, each record holds its own step's evaluation; the one before
    training is its own record at step 0 (it used to be averaged into step 1's)."""
    from epx.train.eval_callback import EvalCallback

    def evaluate(self, model, tokenizer, step):  # step-distinct values: the logging path is tested
        metrics = {"eval/arithmetic/acc": step / 10}  # here, the evaluation in test_eval_callback.py
        self._last_step = step
        self.log_fn(metrics, step)
        return metrics

    monkeypatch.setattr(EvalCallback, "evaluate", evaluate)
    run = tmp_path / "run"
    train_tiny(run, 3, ["logging.mode=disabled", "eval.benches=[arithmetic]", "eval.every_n_steps=1"])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logged = [(r["step"], r["eval/arithmetic/acc"]) for r in records if "eval/arithmetic/acc" in r]
    assert logged == [(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.3)]


def test_run_saves_checkpoints_with_the_resolved_recipe(first_run):
    for step in (2, 4):
        checkpoint = first_run / f"checkpoint-{step}"
        saved = load_recipe(checkpoint / "recipe.yaml")
        assert saved.shaping.method == "both" and saved.output_dir == str(first_run)
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        assert state["global_step"] == step
        assert (
            state["stateful_callbacks"]["StageCallback"]["attributes"]["tracker_state"]["step"]
            == step
        )
    assert (first_run / "curves.png").stat().st_size > 10_000


def test_run_keeps_a_bounded_sample_of_training_completions(first_run):
    rows = [json.loads(line) for line in (first_run / "samples.jsonl").read_text().splitlines()]
    assert sorted({row["step"] for row in rows}) == [1, 2, 3, 4]
    for step in (1, 2, 3, 4):
        assert len([row for row in rows if row["step"] == step]) == 8  # the whole batch of 8
    for row in rows:
        assert set(row) == {"step", "prompt", "completion", "answer", "status", "reward", "advantage"}
        assert row["prompt"].endswith("assistant\n") and "What is" in row["prompt"]
        assert row["status"] in ("correct", "wrong", "unparsed", "timeout", "truncated")
        # the recipe's rewards: correctness (1/0, nothing when cut off) + overlong (<= 0)
        assert -1.0 <= row["reward"] <= 1.0
        if row["status"] == "truncated":
            assert row["reward"] <= 0.0


def test_run_writes_its_own_model_card_with_the_held_out_check(first_run):
    card = (first_run / "final" / "README.md").read_text()
    assert "[None]" not in card and "fine-tuned version" not in card
    assert "base model: `tiny-random`" in card and "`both`" in card
    assert "| accuracy |" in card and "before (step 0)" in card and "after (step 4)" in card
    assert not (first_run / "README.md").exists()  # TRL's card is not written either


def test_run_logs_wandb_offline_and_writes_no_secret(first_run):
    offline_runs = list(first_run.glob("wandb/offline-run-*"))
    assert offline_runs, "W&B wrote no offline run"
    for path in first_run.parent.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert SECRET.encode() not in path.read_bytes(), path


def test_resume_continues_global_step(first_run):
    # as if the process died after logging step 5 but before checkpointing it, mid-write of step 6
    with (first_run / "metrics.jsonl").open("a") as handle:
        handle.write(json.dumps({"step": 5, "reward": 0.0}) + "\n" + '{"step": 6, "rew')
    recipe = load_recipe(
        TINY, [f"output_dir={first_run}", "grpo.max_steps=6", "logging.mode=disabled"]
    )
    result = run_training(recipe, resume=True)
    assert result.global_step == 6
    assert steps_logged(first_run) == [1, 2, 3, 4, 5, 6]  # 5 and 6 once each: redone after step 4
    state = json.loads((first_run / "checkpoint-6" / "trainer_state.json").read_text())
    tracker = state["stateful_callbacks"]["StageCallback"]["attributes"]["tracker_state"]
    assert tracker["step"] == 6  # 4 restored + 2 new, not restarted from 0


@pytest.mark.slow
def test_a_resumed_run_trains_bit_for_bit_what_the_uninterrupted_one_did(tmp_path):
    """Stopped after step 2 and resumed to step 5, a run logs the uninterrupted run's every value
    (generations, rewards, losses, gradient norms) and ends with its weights, bit for bit.

    The schedule is constant: a linear one decays over max_steps, so a run of 2 steps has other
    learning rates than a run of 5 (a longer budget resumes, on the new schedule)."""
    from safetensors.torch import load_file

    common = ["logging.mode=disabled", "grpo.save_steps=2", "grpo.lr_scheduler_type=constant"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train_tiny(whole, 5, common)
    train_tiny(cut, 2, common)
    train_tiny(cut, 5, common, resume=True)
    assert [r["step"] for r in step_records(cut)] == [1, 2, 3, 4, 5]
    assert step_records(cut) == step_records(whole)
    assert (cut / "samples.jsonl").read_text() == (whole / "samples.jsonl").read_text()
    weights = [load_file(run / "final" / "model.safetensors") for run in (whole, cut)]
    assert all(weights[0][name].equal(weights[1][name]) for name in weights[0])


def test_existing_run_needs_resume(first_run):
    with pytest.raises(RunStateError, match="pass --resume"):
        run_training(load_recipe(TINY, [f"output_dir={first_run}", "logging.mode=disabled"]))


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(RunStateError, match="no checkpoint-N folder"):
        run_training(
            load_recipe(TINY, [f"output_dir={tmp_path}", "logging.mode=disabled"]), resume=True
        )


class BrokenReward(CountingReward):
    """A reward whose scoring raises: the base class turns that into 0.0 and a counted failure."""

    name = "broken"

    def _score(self, texts, completion_ids, columns):
        raise RuntimeError("scorer crashed")


def test_reward_failures_abort_the_run_with_a_clear_message(tmp_path):
    recipe = load_recipe(
        TINY, [f"output_dir={tmp_path}", "logging.mode=disabled", "reward.max_failure_rate=0.5"]
    )
    trainer = build_trainer(recipe, reward_funcs=[BrokenReward()])
    with pytest.raises(
        RunError,
        match=r"failed on 8 of 8 scorings \(0 timeouts\) at step 1, above reward.max_failure_rate=0.5",
    ):
        trainer.train()


@pytest.mark.slow
def test_cli_console_shows_epx_lines_and_no_library_chatter(tmp_path):
    """A real `epx train` process: its own lines (with the clipped ratio), no weight-loading or
    shard-writing bars, no FutureWarning from the libraries' internals."""
    import subprocess
    import sys

    args = [sys.executable, "-m", "epx.cli", "train", str(TINY), "--set", f"output_dir={tmp_path}"]
    args += ["--set", "logging.mode=disabled", "--set", "grpo.max_steps=2"]
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "step    2" in output and "clipped" in output
    for chatter in ("FutureWarning", "Writing model shards", "Loading weights", "it/s]", "mtime"):
        assert chatter not in output, chatter


@pytest.mark.slow
def test_cli_run_killed_mid_way_resumes_without_losing_or_repeating_steps(tmp_path):
    """`epx train` in a subprocess, SIGKILLed once checkpoint-4 exists, then `--resume`."""
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    args = [sys.executable, "-m", "epx.cli", "train", str(TINY), "--set", f"output_dir={run}"]
    args += ["--set", "logging.mode=disabled", "--set", "grpo.save_steps=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [*args, "--set", "grpo.max_steps=400"], env=env, cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not (run / "checkpoint-4" / "trainer_state.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended early"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    from epx.models import latest_checkpoint

    kept = int(latest_checkpoint(run).name.split("-")[1])
    assert kept >= 4
    finish = kept + 2
    result = subprocess.run(
        [*args, "--set", f"grpo.max_steps={finish}", "--resume"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert steps_logged(run) == list(range(1, finish + 1))  # each step once, none lost
    state = json.loads((run / f"checkpoint-{finish}" / "trainer_state.json").read_text())
    assert state["global_step"] == finish


def test_the_detector_and_records_count_optimizer_steps_when_a_generation_feeds_several(tmp_path):
    """Accumulation 2, a generation every 4 micro-batches: steps 1-2 train on one generation
    batch, 3-4 on the next. TRL logs `reward` only at steps 1 and 3; the stage detector still
    takes a point at every step (the completions that step trained on) and records are written
    at step 1 and every 2 steps, as `analysis.every_n_steps` says."""
    run = tmp_path / "run"
    train_tiny(run, 4, ["logging.mode=disabled", "grpo.gradient_accumulation_steps=2",
                        "grpo.steps_per_generation=4", "grpo.per_device_train_batch_size=4",
                        "analysis.every_n_steps=2", "stage.window=2", "stage.min_steps=0"])  # fmt: skip
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert [r["step"] for r in records if "reward" in r] == [1, 3]  # TRL: generation steps only
    assert all("stage" in r and "entropy/positive" in r for r in records)  # epx: every step
    assert sorted(p.name for p in (run / "rollouts").iterdir()) == [
        "step-000001.parquet", "step-000002.parquet", "step-000004.parquet"]  # fmt: skip
    from epx.train.callbacks import StageCallback

    state = json.loads((run / "checkpoint-4" / "trainer_state.json").read_text())
    tracker = next(c for name, c in state["stateful_callbacks"].items() if name == StageCallback.__name__)
    assert tracker["attributes"]["tracker_state"]["step"] == 4  # one point per optimizer step


@pytest.mark.slow
def test_position_with_the_plateau_schedule_is_grpo_until_it_switches_on(tmp_path):
    """Same seed, same recipe: `position` with `schedule: plateau` trains bit for bit what GRPO
    trains until the step after the stage detector reports the plateau, and differs from then."""
    quick = ["logging.mode=disabled", "stage.window=2", "stage.min_steps=0", "stage.patience=1",
             "grpo.lr_scheduler_type=constant", "shaping.position.alpha=0.5"]  # fmt: skip
    grpo, position = tmp_path / "grpo", tmp_path / "position"
    train_tiny(grpo, 6, [*quick, "shaping.method=none"])
    train_tiny(position, 6, [*quick, "shaping.method=position", "shaping.position.schedule=plateau"])
    ours, theirs = step_records(position), step_records(grpo)
    on = [r["step"] for r in ours if r["shaping/position/active"] == 1.0]
    reported = next(r["step"] for r in theirs if r["stage"] == 1.0)
    assert on and on[0] == reported + 1 <= 5  # the bonus switches on after the report
    shaping_keys = ("shaping/",)
    for a, b in zip(ours, theirs, strict=True):
        same = {k: v for k, v in a.items() if not k.startswith(shaping_keys)}
        if a["step"] < on[0]:
            assert same == {k: v for k, v in b.items() if not k.startswith(shaping_keys)}, a["step"]
    assert [r["loss"] for r in ours if r["step"] >= on[0]] != [r["loss"] for r in theirs if r["step"] >= on[0]]
