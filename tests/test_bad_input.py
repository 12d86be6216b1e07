"""Bad input and crashes end in one line on stderr (the file or option, the key, what was
expected) with exit code 2, or work as a user would expect; nothing of a run is lost or
overwritten. The real CLI, real tiny training runs, real truncated files."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from tests_shared import one_line_error
from typer.testing import CliRunner

from epx.cli import app
from epx.recipe import load_recipe
from epx.train import run_training

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny-random.yaml"


def epx(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def snapshot(run: Path) -> dict[str, float]:
    """Every file of a run with its modification time (what "nothing overwritten" compares);
    the lock file, which names whoever held the run last, is no part of it."""
    from epx.locks import LOCK_FILE

    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in run.rglob("*")
            if p.is_file() and p.name != LOCK_FILE}  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished four-step tiny run with checkpoints at steps 2 and 4."""
    run = tmp_path_factory.mktemp("finished") / "run"
    run_training(load_recipe(TINY, [f"output_dir={run}", "logging.mode=disabled"]))
    return run


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def train(run: Path, *extra: str):
    return epx("train", TINY, "--set", f"output_dir={run}", "--set", "logging.mode=disabled", *extra)


def steps_logged(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


# ---- resume ---------------------------------------------------------------------------------


def test_a_run_has_no_duplicated_step_and_its_summary_is_its_own_record(finished_run):
    assert steps_logged(finished_run) == [1, 2, 3, 4]
    summary = json.loads((finished_run / "summary.json").read_text())
    assert summary["global_step"] == 4 and summary["finished"] is True
    assert "train_runtime" in summary


def test_resuming_a_finished_run_says_so_and_trains_nothing(run_copy):
    before = snapshot(run_copy)
    result = train(run_copy, "--resume")
    assert result.exit_code == 0, result.stderr
    assert "is finished (step 4 of grpo.max_steps 4)" in result.stderr
    assert snapshot(run_copy) == before  # no step 5, no new final/, metrics untouched


def test_resume_with_values_that_change_training_is_refused_naming_them(run_copy):
    before = snapshot(run_copy)
    changed = ["--set", "shaping.method=none", "--set", "grpo.learning_rate=0.5"]
    changed += ["--set", "grpo.num_generations=2", "--set", "grpo.max_steps=6"]
    line = one_line_error(train(run_copy, "--resume", *changed))
    for expected in ("grpo.learning_rate: 0.001 there, 0.5 now", "grpo.num_generations: 4 there",
                     "shaping.method: 'both' there, 'none' now", "--resume --force"):  # fmt: skip
        assert expected in line
    assert "max_steps" not in line  # a longer budget is what resuming is for
    assert snapshot(run_copy) == before


def test_forced_resume_is_recorded_and_the_recipe_history_kept(run_copy):
    original = (run_copy / "recipe.yaml").read_text()
    result = train(run_copy, "--resume", "--force", "--set", "grpo.learning_rate=0.002",
                   "--set", "grpo.max_steps=6")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "--force: grpo.learning_rate was 0.001, now 0.002" in result.stderr
    assert (run_copy / "recipe.yaml").read_text() == original  # the first segment's, untouched
    segment = load_recipe(run_copy / "recipe-from-step-4.yaml")
    assert segment.grpo["learning_rate"] == 0.002
    (record,) = [json.loads(line) for line in (run_copy / "resumes.jsonl").read_text().splitlines()]
    assert record["from_step"] == 4 and record["forced"] is True
    assert record["differences"] == [{"key": "grpo.learning_rate", "there": 0.001, "now": 0.002}]
    assert steps_logged(run_copy) == [1, 2, 3, 4, 5, 6]


def test_a_longer_budget_resumes_without_force(run_copy):
    result = train(run_copy, "--resume", "--set", "grpo.max_steps=5")
    assert result.exit_code == 0, result.stderr
    assert steps_logged(run_copy) == [1, 2, 3, 4, 5]
    assert json.loads((run_copy / "summary.json").read_text())["global_step"] == 5


@pytest.mark.parametrize(
    ("damaged", "problem"),
    [("model.safetensors", "model.safetensors is truncated"),
     ("trainer_state.json", "trainer_state.json is truncated or not valid JSON")],
)  # fmt: skip
def test_a_cut_latest_checkpoint_is_named_and_the_previous_one_used(run_copy, damaged, problem):
    (run_copy / "summary.json").unlink()  # a crash while saving the last checkpoint: no summary
    shutil.rmtree(run_copy / "final")
    path = run_copy / "checkpoint-4" / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    result = train(run_copy, "--resume")
    assert result.exit_code == 0, result.stderr
    assert f"checkpoint-4 is unusable ({problem}): passed over" in result.stderr
    assert "resuming checkpoint-2" in result.stderr
    assert steps_logged(run_copy) == [1, 2, 3, 4]  # steps 3 and 4 redone, each logged once
    state = json.loads((run_copy / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4  # the cut checkpoint is replaced by a whole one


def test_a_checkpoint_without_optimizer_state_is_refused_unless_forced(run_copy):
    (run_copy / "checkpoint-4" / "optimizer.pt").unlink()
    line = one_line_error(train(run_copy, "--resume", "--set", "grpo.max_steps=5"))
    assert "checkpoint-4 has no optimizer state (optimizer.pt)" in line and "--force" in line
    forced = train(run_copy, "--resume", "--force", "--set", "grpo.max_steps=5")
    assert forced.exit_code == 0, forced.stderr


def test_no_usable_checkpoint_names_each_one(tmp_path):
    for step in (2, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "config.json").write_text("{}")
    line = one_line_error(train(tmp_path, "--resume"))
    assert "no usable checkpoint" in line
    assert "checkpoint-4: no trainer_state.json" in line and "checkpoint-2" in line


def test_an_existing_run_needs_resume_and_exits_2(run_copy):
    before = snapshot(run_copy)
    assert "pass --resume" in one_line_error(train(run_copy))
    assert snapshot(run_copy) == before


# ---- values no run can use ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("grpo.learning_rate=-1e-3", "grpo.learning_rate: expected a number >= 0, got -0.001"),
        ("grpo.temperature=0", "grpo.temperature: expected a number > 0"),
        ("grpo.per_device_train_batch_size=0", "grpo.per_device_train_batch_size: expected an integer >= 1"),
        ("grpo.gradient_accumulation_steps=0", "grpo.gradient_accumulation_steps: expected an integer >= 1"),
        ("grpo.epsilon=-1", "grpo.epsilon: expected a number >= 0"),
        ("grpo.max_steps=-5", "grpo.max_steps: expected an integer >= 1, got -5"),
        ("grpo.max_completion_length=0", "grpo.max_completion_length: expected an integer >= 1"),
        ("data.source=missing.jsonl", "data.source: file not found: missing.jsonl"),
        ("data.source=builtin:sums", "unknown built-in task 'builtin:sums'"),
        ("eval.benches=[aime2]", "eval.benches: unknown benchmark 'aime2'"),
    ],
)  # fmt: skip
def test_values_no_run_can_use_fail_the_dry_run_and_the_launch(tmp_path, override, expected):
    dry = one_line_error(epx("train", TINY, "--dry-run", "--set", override))
    assert expected in dry and "tiny-random.yaml" in dry
    launch = one_line_error(train(tmp_path / "run", "--set", override))
    assert expected in launch
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_epochs_without_max_steps_are_fine():
    result = epx("train", TINY, "--dry-run", "--set", "grpo.max_steps=-1",
                 "--set", "grpo.num_train_epochs=1")  # fmt: skip
    assert result.exit_code == 0, result.stderr


def test_a_duplicated_yaml_key_is_an_error(tmp_path):
    recipe = tmp_path / "dup.yaml"
    recipe.write_text(TINY.read_text() + "\nshaping:\n  method: none\n")
    line = one_line_error(epx("train", recipe, "--dry-run"))
    assert "dup.yaml: line" in line and "key 'shaping' given twice" in line


def test_dry_run_lists_what_it_checked():
    result = epx("train", TINY, "--dry-run", "--set", "eval.benches=[arithmetic]")
    assert result.exit_code == 0, result.stderr
    assert "ok  builtin:arithmetic: found" in result.stdout
    assert "ok  eval arithmetic: 20 problems (builtin:arithmetic)" in result.stdout


# ---- data -----------------------------------------------------------------------------------


def write_data(path: Path, bad: dict) -> Path:
    rows = [{"problem": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(6)]
    rows.insert(4, bad)
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


@pytest.mark.parametrize(
    ("bad", "expected"),
    [({"problem": "What is 1 + 1?"}, "data.jsonl:5: no field 'answer'"),
     ({"problem": "What is 1 + 1?", "answer": None}, "data.jsonl:5: field 'answer' is null"),
     ({"problem": "What is 1 + 1?", "answer": ""}, "data.jsonl:5: field 'answer' is empty")],
)  # fmt: skip
def test_every_training_row_is_checked_as_it_is_read(tmp_path, bad, expected):
    data = write_data(tmp_path / "data.jsonl", bad)
    line = one_line_error(train(tmp_path / "run", "--set", f"data.source={data}"))
    assert expected in line and "data.bad_rows: skip" in line
    skipped = train(tmp_path / "run2", "--set", f"data.source={data}", "--set", "data.bad_rows=skip",
                    "--set", "grpo.max_steps=1")  # fmt: skip
    assert skipped.exit_code == 0, skipped.stderr
    assert "data: skipped 1 rows without a problem or answer" in skipped.stderr


def test_eval_names_a_null_answer_for_what_it_is(tmp_path):
    data = write_data(tmp_path / "bench.jsonl", {"problem": "What?", "answer": None})
    line = one_line_error(epx("eval", "--bench", data, "--model", TINY, "--wandb-mode", "disabled",
                              "-o", tmp_path / "out"))  # fmt: skip
    assert "bench.jsonl:5: field 'answer' is null" in line


# ---- paths and models -----------------------------------------------------------------------


def test_an_output_dir_under_a_file_or_unwritable_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "is a file" in one_line_error(train(blocker / "run"))
    assert "is a file" in one_line_error(epx("train", TINY, "--dry-run", "--set", f"output_dir={blocker}/run"))
    assert "output_dir: cannot create /proc/epx-run" in one_line_error(train(Path("/proc/epx-run")))


def test_eval_into_an_existing_file_is_one_line(tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    line = one_line_error(epx("eval", "--bench", "arithmetic", "--model", TINY, "-o", target))
    assert f"--output-dir: {target} is a file, not a folder" in line
    assert target.read_text() == "keep me"


def test_a_corrupt_checkpoint_as_model_is_one_line(finished_run, tmp_path):
    checkpoint = tmp_path / "checkpoint-4"
    shutil.copytree(finished_run / "checkpoint-4", checkpoint)
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    line = one_line_error(epx("eval", "--bench", "arithmetic", "--model", checkpoint, "-o", tmp_path / "o"))
    assert "checkpoint-4: the model cannot be loaded: model.safetensors is truncated" in line


def test_eval_of_a_run_whose_newest_checkpoint_is_cut_says_it_uses_the_previous_one(run_copy, tmp_path):
    weights = run_copy / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    result = epx("eval", "--bench", "arithmetic", "--model", run_copy, "--limit", "2", "--n", "1",
                 "--max-tokens", "4", "-o", tmp_path / "o", "--wandb-mode", "disabled")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert (f"{run_copy / 'checkpoint-4'} is unusable (model.safetensors is truncated): using "
            "checkpoint-2") in " ".join(result.stderr.split())  # fmt: skip
    settings = json.loads((tmp_path / "o" / "settings.json").read_text())
    assert settings["model"]["name_or_path"].endswith("checkpoint-2")


def test_a_model_dir_without_tokenizer_or_empty_is_one_line_and_writes_nothing(finished_run, tmp_path):
    no_tokenizer = tmp_path / "no-tokenizer"
    shutil.copytree(finished_run / "final", no_tokenizer)
    for path in no_tokenizer.iterdir():
        if path.name.startswith(("tokenizer", "chat_template")):
            path.unlink()
    empty = tmp_path / "empty"
    empty.mkdir()
    for model, expected in ((no_tokenizer, f"{no_tokenizer}: no tokenizer files (tokenizer.json"),
                            (empty, f"{empty}: the folder is empty")):  # fmt: skip
        out = tmp_path / f"out-{model.name}"
        line = one_line_error(epx("eval", "--bench", "arithmetic", "--model", model, "-o", out))
        assert expected in line, line
        assert not out.exists()  # no settings.json, no empty JSONL


def test_a_missing_local_model_dir_is_not_called_a_hub_id(tmp_path):
    line = one_line_error(epx("eval", "--bench", "arithmetic", "--model", tmp_path / "nothing",
                              "-o", tmp_path / "o"))  # fmt: skip
    assert "nothing: no such local file or folder" in line and "hub" not in line.split(":")[2]


def test_an_unknown_hub_id_fails_within_seconds_without_network(tmp_path):
    start = time.monotonic()
    line = one_line_error(epx("eval", "--bench", "arithmetic", "--model", "nonexistent",
                              "-o", tmp_path / "o"))  # fmt: skip
    assert time.monotonic() - start < 20
    assert "cannot load 'nonexistent'" in line


# ---- garbage gold answers -------------------------------------------------------------------

GARBAGE = ["\\frac{" * 5000, "x" * 1_000_000, "2003^{2002^{2001}}", "(" * 5000 + "1"]


def test_a_garbage_gold_is_parsed_once_per_prompt_not_once_per_sample():
    from epx.scoring import score_many

    pairs = [(f"so \\boxed{{{i}}}", gold) for gold in GARBAGE for i in range(8)]
    start = time.monotonic()
    scores = score_many(pairs, workers=2, timeout=1.0)
    first = time.monotonic() - start
    assert {s.status for s in scores} == {"timeout"}
    # one gold's parse times out once (<= 1 s + 2 s grace before a hard kill), not 8 times
    assert first < len(GARBAGE) * 3.0 / 2 + 5, first
    start = time.monotonic()
    assert [s.status for s in score_many(pairs, workers=2, timeout=1.0)] == ["timeout"] * 32
    assert time.monotonic() - start < 2.0  # remembered: nothing is parsed again


def test_scorer_timeouts_count_towards_the_failure_rate(tmp_path):
    """A reward whose every scoring times out (as math-verify's do on a garbage gold) stops the
    run like failures do; before, timeouts were not counted at all."""
    from epx.errors import RunError
    from epx.rewards import CountingReward
    from epx.train import build_trainer

    class TimingOut(CountingReward):
        name = "timing_out"

        def _score(self, texts, completion_ids, columns):
            return [(0.0, "timeouts")] * len(texts)

    recipe = load_recipe(TINY, [f"output_dir={tmp_path}", "logging.mode=disabled",
                                "reward.max_failure_rate=0.5"])  # fmt: skip
    trainer = build_trainer(recipe, reward_funcs=[TimingOut()])
    with pytest.raises(RunError, match=r"failed on 8 of 8 scorings \(8 timeouts\) at step 1"):
        trainer.train()
