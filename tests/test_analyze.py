"""`epx analyze`: the tables on a small fixture computed by hand, the rollout records of a real
tiny run (schema, size bound), and the command end to end on two real runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from epx.analyze.core import (
    StepRollouts,
    buckets_by_quantile,
    covariance_table,
    plateau_start,
    position_table,
    ppl_bucket_table,
    stage_summary,
)
from epx.cli import app
from epx.recipe import load_recipe
from epx.stage import StageParams
from epx.train import run_training
from epx.train.rollouts import max_bytes_per_step

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny-random.yaml"


def step_rollouts(step, log_ppl, correct, entropy, tokens) -> StepRollouts:
    """tokens: per sample a list of (position, entropy, logprob, advantage)."""
    flat = [(i, *t) for i, sample in enumerate(tokens) for t in sample]
    column = lambda k: np.array([t[k] for t in flat], dtype=np.float64)  # noqa: E731
    return StepRollouts(
        step=step,
        correct=np.array(correct, dtype=np.float64),
        entropy=np.array(entropy, dtype=np.float64),
        log_ppl=np.array(log_ppl, dtype=np.float64),
        advantage=np.zeros(len(correct)),
        length=np.array([len(t) for t in tokens]),
        token_sample=np.array([t[0] for t in flat]),
        token_position=column(1),
        token_entropy=column(2),
        token_logprob=column(3),
        token_advantage=column(4),
    )


# step 1 (rising): log-PPL 0.1 .. 0.4 -> quartile buckets 0, 1, 2, 3 (one sample each)
STEP1 = step_rollouts(
    1, [0.1, 0.2, 0.3, 0.4], [1, 0, 1, 0], [1, 2, 3, 4],
    [[(0.0, 1, -1, 1), (0.5, 3, -2, 1)], [(0.0, 2, -1, -1), (0.5, 2, -1, -1)],
     [(0.0, 5, -3, 1)], [(0.0, 0, -0.5, -1)]],
)  # fmt: skip
# step 5 (plateau from 5): the buckets reversed; sample 3 (bucket 0) now has two tokens
STEP5 = step_rollouts(
    5, [0.4, 0.3, 0.2, 0.1], [0, 0, 1, 1], [4, 3, 2, 1],
    [[(0.0, 1, -2, 1)], [(0.0, 1, -2, -1)], [(0.0, 1, -2, 1)], [(0.0, 1, -0.25, 1), (0.5, 9, -0.75, 1)]],
)  # fmt: skip


def test_ppl_buckets_by_hand():
    assert buckets_by_quantile(np.array([0.1, 0.2, 0.3, 0.4])).tolist() == [0, 1, 2, 3]
    # 8 samples: ranks 0-7 -> floor(4 r / 8); a tie takes its mean rank: 0.1 x3 at ranks 0-2 (mean
    # 1 -> 0), 0.5 x2 at ranks 5-6 (mean 5.5 -> 2)
    assert buckets_by_quantile(np.array([0.1, 0.1, 0.1, 0.2, 0.3, 0.5, 0.5, 0.9])).tolist() == [
        0, 0, 0, 1, 2, 2, 2, 3]
    # 4 identical answers and 4 others: the tie at ranks 0-3 (mean 1.5 -> 0), not pushed up
    assert buckets_by_quantile(np.array([0.2, 0.2, 0.2, 0.2, 0.4, 0.5, 0.6, 0.7])).tolist() == [
        0, 0, 0, 0, 2, 2, 3, 3]
    assert buckets_by_quantile(np.full(8, 0.3)).tolist() == [-1] * 8  # all tie: no order, no bucket
    rows = {(r["stage"], r["bucket"]): r for r in ppl_bucket_table([STEP1, STEP5], boundary=5)}
    # rising = step 1 only: each bucket one sample; token log-prob means -1.5, -1, -3, -0.5
    assert [rows["rising", b]["accuracy"] for b in range(4)] == [1, 0, 1, 0]
    assert [rows["rising", b]["logprob"] for b in range(4)] == [-1.5, -1.0, -3.0, -0.5]
    assert all(math.isnan(rows["rising", b]["logprob_change"]) for b in range(4))  # no pair
    # plateau = step 5: bucket b holds sample 3 - b; log-probs -0.5 (mean of -0.25, -0.75), -2, -2, -2
    assert [rows["plateau", b]["accuracy"] for b in range(4)] == [1, 1, 0, 0]
    assert [rows["plateau", b]["entropy"] for b in range(4)] == [1, 2, 3, 4]
    # the pair (1 -> 5) counts for the plateau: -0.5 - (-1.5), -2 - (-1), -2 - (-3), -2 - (-0.5)
    assert [rows["plateau", b]["logprob_change"] for b in range(4)] == [1.0, -1.0, 1.0, -1.5]


def test_position_deciles_and_high_entropy_share_by_hand():
    rows = {(r["stage"], r["decile"]): r for r in position_table([STEP1, STEP5], boundary=5)}
    # step 1 entropies [1, 3, 2, 2, 5, 0]: 80th percentile (linear) = 3, high = {3, 5}
    # decile 0: entropies 1, 2, 5, 0 -> mean 2, high 1 of 4; decile 5: 3, 2 -> 2.5, 1 of 2
    assert rows["rising", 0] == {"stage": "rising", "decile": 0, "tokens": 4, "entropy": 2.0,
                                 "high_share": 0.25}  # fmt: skip
    assert rows["rising", 5]["entropy"] == 2.5 and rows["rising", 5]["high_share"] == 0.5
    # step 5 entropies [1, 1, 1, 1, 9]: 80th percentile = 1.0 + 0.2 * 8 = 2.6 -> only the 9 is high
    assert rows["plateau", 0]["high_share"] == 0.0 and rows["plateau", 5]["high_share"] == 1.0


def test_covariance_of_log_prob_and_advantage_by_hand():
    rows = covariance_table([STEP1])
    # mean advantage 0, so cov = mean(lp * A) = (-1 - 2 + 1 + 1 - 3 + 0.5) / 6
    assert rows[0]["cov"] == pytest.approx(-3.5 / 6)
    assert rows[0]["cov_high_entropy"] == pytest.approx(0.0)  # tokens (-2, 1) and (-3, 1)
    assert rows[0]["tokens"] == 6


def test_stage_summary_by_hand():
    records = [{"step": s, "reward": 0.1 * s, "entropy": 3.0 - 0.2 * s, "accuracy": 0.1 * s,
                "entropy/positive": 1.0, "entropy/negative": 2.0 - 0.1 * s} for s in range(1, 11)]  # fmt: skip
    rows = stage_summary(records, [STEP1, STEP5], boundary=5)
    rising, plateau = rows
    assert (rising["first_step"], rising["last_step"], plateau["first_step"]) == (1, 4, 5)
    # rising: entropy first 3 (1, 2, 3) mean 2.6, last 3 (2, 3, 4) mean 2.4 -> drop 0.2
    assert rising["entropy_drop"] == pytest.approx(0.2)
    assert rising["accuracy_gain"] == pytest.approx(0.1)  # 0.3 - 0.2
    assert rising["negative_entropy_change"] == pytest.approx(-0.1)
    assert rising["positive_entropy_change"] == 0.0
    assert plateau["last_decile_high_share"] != plateau["last_decile_high_share"]  # no decile 9


def test_plateau_start_is_a_step_not_an_index():
    params = StageParams(window=3, min_steps=0, patience=2)
    rising = [{"step": 2 * (i + 1), "reward": 0.1 * i, "entropy": 2.0 - 0.1 * i} for i in range(10)]
    flat = [{"step": 2 * (i + 11), "reward": 0.9, "entropy": 1.0} for i in range(10)]
    start = plateau_start(rising + flat, params)
    assert start is not None and start % 2 == 0 and 22 <= start <= 30
    assert plateau_start(rising, params) is None


# ---- a real run -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("analyze")
    common = ["logging.mode=disabled", "grpo.max_steps=6", "analysis.every_n_steps=2",
              "analysis.max_samples_per_step=8", "eval.benches=[arithmetic]", "eval.every_n_steps=3",
              "eval.limit=4", "eval.max_tokens=4"]  # fmt: skip
    first, second = root / "grpo", root / "position"
    run_training(load_recipe(TINY, [*common, f"output_dir={first}", "shaping.method=none"]))
    run_training(load_recipe(TINY, [*common, f"output_dir={second}", "shaping.method=position",
                                    "grpo.max_completion_length=12"]))  # fmt: skip
    return first, second


def test_rollout_records_have_the_documented_schema_and_bounded_size(two_runs):
    import pyarrow.parquet as pq

    files = sorted((two_runs[0] / "rollouts").glob("step-*.parquet"))
    assert [f.name for f in files] == ["step-000001.parquet", "step-000002.parquet",
                                       "step-000004.parquet", "step-000006.parquet"]  # fmt: skip
    bound = max_bytes_per_step(8, 16, token_stats=True)
    for path in files:
        assert path.stat().st_size <= bound
        table = pq.read_table(path)
        assert table.column_names == [
            "step", "prompt_id", "sample", "reward", "correct", "advantage", "length", "truncated",
            "log_ppl", "entropy", "token_ids", "token_entropy", "token_logprob", "token_position",
            "token_advantage"]  # fmt: skip
        rows = table.to_pylist()
        assert len(rows) == 8 and [r["sample"] for r in rows] == [0, 1, 2, 3] * 2  # whole groups
        for row in rows:
            assert len(row["token_ids"]) == row["length"] == len(row["token_entropy"])
            assert row["token_position"][0] == 0.0 and all(p < 1 for p in row["token_position"])
            assert row["log_ppl"] == pytest.approx(-np.mean(row["token_logprob"]), rel=1e-5)
            assert row["entropy"] == pytest.approx(np.mean(row["token_entropy"]), rel=1e-5)
            eos = 2  # the tiny tokenizer's
            assert row["truncated"] == (eos not in row["token_ids"])  # cut: no EOS in 16 tokens
            assert row["length"] == 16 if row["truncated"] else row["token_ids"][-1] == eos
        assert rows[0]["prompt_id"] == rows[3]["prompt_id"] != rows[4]["prompt_id"]


def test_analyze_overlays_two_runs_with_every_figure_and_both_stages(two_runs, tmp_path):
    out = tmp_path / "report"
    args = ["analyze", *map(str, two_runs), "--out", str(out), "--html", "--stage-window", "2",
            "--stage-patience", "1", "--stage-min-steps", "2", "--stage-reward-fraction", "1",
            "--stage-entropy-fraction", "1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("accuracy_entropy", "entropy_by_sign", "ppl_buckets", "position_deciles", "covariance"):
        data = (out / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    report = (out / "report.md").read_text()
    assert "grpo (GRPO)" in report and "position (GRPO+Position)" in report
    assert "rising, then plateau from step" in report
    assert "| rising |" in report and "| plateau |" in report
    assert "differs from the run's" in report
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and "<table>" in html
    assert "epx analyze: per stage" in result.stdout and "plateau from step" in result.stdout


def test_analyze_of_a_folder_that_is_no_run_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["analyze", str(tmp_path)])
    assert result.exit_code == 2 and "not an epx train output dir" in result.stderr


@pytest.mark.slow
def test_analysis_re_runs_the_trainers_detector_on_the_series_it_was_fed(tmp_path):
    """`stage/reward` and `stage/entropy` are what the trainer's detector took each optimizer
    step; re-detecting on them gives the plateau the trainer reported (it reports it `patience`
    - 1 steps after the plateau's first step, at the confirming step)."""
    from tests_shared import train_tiny

    run = tmp_path / "run"
    params = StageParams(window=3, min_steps=0, patience=2)
    # a random model is never right: the reward stays flat, the plateau comes with the entropy
    train_tiny(run, 8, ["logging.mode=disabled", "stage.window=3", "stage.min_steps=0",
                        "stage.patience=2", "reward.functions=[{name: correctness}]"])  # fmt: skip
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("stage/reward" in r and "stage/entropy" in r for r in records)
    reported = [r["step"] for r in records if r["stage"] == 1.0]
    begin = plateau_start(records, params)
    assert reported, "the test needs a run that reaches the plateau"
    assert reported[0] == begin + params.patience - 1
    assert reported == list(range(reported[0], 9))  # it never ends


def test_analyze_names_each_line_and_rollout_file_it_skips_and_why(two_runs, tmp_path):
    """A garbage line, a step whose line is corrupt, a cut last line, and cut, garbage and
    empty Parquet files: each is named with why it was left out; the rest is analysed."""
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(two_runs[0], run)
    metrics = run / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    step3 = next(i for i, line in enumerate(lines) if json.loads(line).get("step") == 3
                 and "reward" in json.loads(line))  # fmt: skip
    before3 = json.loads(lines[step3 - 1])["step"]
    lines[step3] = lines[step3][:40] + "#garbage"
    lines.insert(1, "not a record at all")
    metrics.write_text("\n".join(lines) + "\n" + '{"step": 7, "rew')  # a cut last line
    rollouts = run / "rollouts"
    cut = rollouts / "step-000002.parquet"
    cut.write_bytes(cut.read_bytes()[:100])
    (rollouts / "step-000004.parquet").write_text("garbage")
    (rollouts / "step-000006.parquet").write_bytes(b"")
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["analyze", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "--stage" not in result.stderr and "Traceback" not in result.stderr
    expected = [
        f"{metrics}:2: not JSON (the record after step {json.loads(lines[0])['step']}): skipped",
        f"{metrics}:{step3 + 2}: not JSON (the record after step {before3}): skipped",
        f"{metrics}:{len(lines) + 1}: a cut last line (the record after step ",
        f"{rollouts / 'step-000002.parquet'}: a corrupt rollout record file (",
        f"{rollouts / 'step-000004.parquet'}: a corrupt rollout record file (",
        f"{rollouts / 'step-000006.parquet'}: a corrupt rollout record file (",
    ]
    stderr = " ".join(result.stderr.split())  # rich may fold a long line
    for line in expected:
        assert line in stderr, line
    report = (out / "report.md").read_text()
    assert "- rollout records: 1 saved steps" in report  # step 1 only
    assert report.count("- skipped: ") == 6


def test_analyze_into_a_file_or_a_read_only_place_is_one_line(two_runs, tmp_path):
    import os
    import subprocess

    from tests_shared import one_line_error

    a_file = tmp_path / "report.txt"
    a_file.write_text("mine")
    line = one_line_error(CliRunner().invoke(app, ["analyze", str(two_runs[0]), "-o", str(a_file)]))
    assert f"--out: {a_file} is a file, not a folder" in line and a_file.read_text() == "mine"
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes through permission bits: a read-only mount stops it
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(locked)])
        if mounted.returncode != 0:
            pytest.skip("cannot mount a read-only tmpfs here (mount refused)")
    else:
        locked.chmod(0o555)
    try:
        line = one_line_error(
            CliRunner().invoke(app, ["analyze", str(two_runs[0]), "-o", str(locked / "report")])
        )
        assert f"--out: {locked / 'report'} cannot be created: {locked} is not writable" in line
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(locked)])


def test_findings_state_each_observation_with_its_numbers_by_hand():
    from epx.analyze.findings import findings

    # rising stage steps 1-6 (plateau from 7): H- 2.0 -> 1.0 (drop 1.0), H+ 1.0 -> 0.9 (drop 0.1)
    records = [{"step": s, "reward": 0.1 * s,
                "entropy/negative": 2.0 if s <= 3 else 1.0, "entropy/positive": 1.0 if s <= 3 else 0.9,
                "completions/mean_length": 10.0 if s <= 3 else 14.0} for s in range(1, 9)]  # fmt: skip
    tables = {
        "covariance": [{"step": 7, "cov": -0.01, "cov_high_entropy": -0.04},
                       {"step": 8, "cov": 0.03, "cov_high_entropy": 0.02},
                       {"step": 2, "cov": 9.0, "cov_high_entropy": 0.0}],  # rising: left out
        "ppl_buckets": [{"stage": "plateau", "bucket": 0, "samples": 4, "accuracy": 0.75,
                         "logprob_change": 0.02},
                        {"stage": "plateau", "bucket": 3, "samples": 4, "accuracy": 0.25,
                         "logprob_change": 0.01}],
        "position": [{"stage": "plateau", "decile": 0, "high_share": 0.1},
                     {"stage": "plateau", "decile": 9, "high_share": 0.35}],
    }  # fmt: skip
    got = {f.observation: f for f in findings(records, 7, tables)}
    rising = got["rising stage: entropy falls mostly in negative samples"]
    assert rising.verdict == "consistent" and "H- fell +1.000" in rising.shows and "H+ fell +0.100" in rising.shows
    # plateau steps 7, 8: mean |cov| (0.01 + 0.03) / 2 = 0.02; high (0.04 + 0.02) / 2 = 0.03
    covariance = got["plateau: learning concentrates on high-entropy tokens"]
    assert covariance.verdict == "consistent" and "0.03 vs 0.02" in covariance.shows
    low_ppl = got["plateau: ... in low-perplexity samples"]
    assert low_ppl.verdict == "consistent" and "quartile 0 (the lowest holding samples) 0.750 vs quartile 3 0.250" in low_ppl.shows
    # an empty lowest quartile (every plateau sample tied upwards) is skipped, not read as "no correctness"
    empty_low = [{"stage": "plateau", "bucket": 0, "samples": 0, "accuracy": math.nan, "logprob_change": math.nan},
                 {"stage": "plateau", "bucket": 1, "samples": 5, "accuracy": 0.2, "logprob_change": 0.0},
                 {"stage": "plateau", "bucket": 3, "samples": 3, "accuracy": 0.6, "logprob_change": 0.0}]  # fmt: skip
    skipped = {f.observation: f for f in findings(records, 7, {**tables, "ppl_buckets": empty_low})}
    assert skipped["plateau: ... in low-perplexity samples"].verdict == "not consistent"
    assert "quartile 1 (the lowest holding samples) 0.200 vs quartile 3 0.600" in skipped[
        "plateau: ... in low-perplexity samples"].shows
    one_bucket = {f.observation: f for f in findings(records, 7, {**tables, "ppl_buckets": empty_low[:2]})}
    assert one_bucket["plateau: ... in low-perplexity samples"].verdict == (
        "not measurable (fewer than two log-PPL quartiles hold plateau samples)")
    assert "0.350 in the last position decile vs 0.100" in got["plateau: ... late in the sequence"].shows
    # lengths: first 3 logged steps 10, last 3 steps 14
    assert got["responses lengthen over training"].shows.startswith("mean length 10.0 tokens")
    # no plateau: the plateau findings cannot be measured, and say why
    without = {f.observation: f for f in findings(records, None, tables)}
    for observation in ("plateau: learning concentrates on high-entropy tokens",
                        "plateau: ... in low-perplexity samples", "plateau: ... late in the sequence"):
        assert without[observation].verdict == "not measurable (the run never reached the plateau)"
    assert without["rising stage: entropy falls mostly in negative samples"].shows.endswith(
        "over steps 1-8 (no plateau: the whole run)")
    short = {f.observation: f for f in findings(records[:4], None, tables)}
    assert short["responses lengthen over training"].verdict.startswith("not measurable (fewer than 6")


def test_a_pipe_in_a_report_cell_stays_in_its_cell():
    from epx.reports import html_report, markdown_table, table_cells

    markdown = markdown_table(["the paper", "this run"], [["covariance", "mean |Cov| 0.05 vs 0.01"]])
    row = markdown.splitlines()[-1]
    assert row == r"| covariance | mean \|Cov\| 0.05 vs 0.01 |"
    assert table_cells(row) == ["covariance", "mean |Cov| 0.05 vs 0.01"]
    assert "<td>covariance</td><td>mean |Cov| 0.05 vs 0.01</td></tr>" in html_report(markdown, [])
