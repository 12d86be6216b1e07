"""The comparison report on runs with known values: means, Student t intervals and paired
differences computed by hand beside each assertion; the stage and cost tables; and a real
comparison study end to end (`epx sweep --method none,ppl --seeds 0,1` and `--show`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from epx.sweep.compare import (
    benchmarks_of,
    cost_rows,
    interval_text,
    load_run,
    paired_table,
    result_table,
    stage_rows,
)

# final held-out accuracy (aime24, math500) by method and seed
ACCURACY = {
    ("none", 0): (0.10, 0.50), ("none", 1): (0.20, 0.40), ("none", 2): (0.30, 0.60),
    ("ppl", 0): (0.15, 0.52), ("ppl", 1): (0.22, 0.42), ("ppl", 2): (0.37, 0.61),
}  # fmt: skip


def write_run(folder: Path, method: str, seed: int, accuracy=None) -> Path:
    aime, math500 = accuracy or ACCURACY[(method, seed)]
    plateau = 3 if seed != 2 else None  # seed 2 never reaches the plateau
    records = []
    for step in (1, 2, 3, 4):
        record = {"step": step, "reward": 0.5, "stage": 1.0 if plateau and step >= plateau else 0.0,
                  "timing/generation": 2.0, "timing/scoring": 0.5, "timing/optimization": 1.0}  # fmt: skip
        if method in ("position", "both"):
            record["shaping/position/active"] = 1.0 if plateau and step > plateau else 0.0
        records.append(record)
    records[-1].update({"eval/aime24/acc": aime, "eval/math500/acc": math500,
                        "eval/avg/acc": (aime + math500) / 2})  # fmt: skip
    records[0].update({"eval/aime24/acc": 0.0, "eval/math500/acc": 0.0, "eval/avg/acc": 0.0})
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "summary.json").write_text(json.dumps({"train_runtime": 10.0 + seed}))
    return folder


@pytest.fixture
def runs(tmp_path):
    return [load_run(m, s, write_run(tmp_path / f"{m}-{s}", m, s)) for m, s in ACCURACY]


def test_the_table_is_the_mean_over_seeds_with_a_t_interval(runs):
    benches, n = benchmarks_of(runs)
    assert benches == ["aime24", "math500", "avg"] and n == 1
    table = result_table(runs, benches, "acc")
    # GRPO on aime24: 0.1, 0.2, 0.3: mean 0.2, sd 0.1, se 0.1/sqrt(3) = 0.057735,
    # half width t_{0.975, 2} * se = 4.302653 * 0.057735 = 0.248414 -> [-0.048414, 0.448414]
    grpo = table["none"]["aime24"]
    assert grpo.n == 3 and grpo.mean == pytest.approx(0.2)
    assert grpo.low == pytest.approx(-0.048414, abs=1e-6) and grpo.high == pytest.approx(0.448414, abs=1e-6)
    assert interval_text(grpo) == "20.0 [-4.8, 44.8]"
    # the average column: GRPO (0.3, 0.3, 0.45): mean 0.35
    assert table["none"]["avg"].mean == pytest.approx(0.35)


def test_differences_are_paired_by_seed(runs):
    benches, _ = benchmarks_of(runs)
    paired = paired_table(runs, benches, "acc")
    assert list(paired) == ["ppl"]  # GRPO is the baseline
    # aime24: +0.05, +0.02, +0.07: mean 0.046667, sd 0.025166, se 0.014530,
    # half width 4.302653 * 0.014530 = 0.062517 -> [-0.015850, 0.109183]: holds 0
    aime = paired["ppl"]["aime24"]
    assert aime.mean == pytest.approx(0.046667, abs=1e-6)
    assert aime.low == pytest.approx(-0.015850, abs=1e-5) and aime.high == pytest.approx(0.109183, abs=1e-5)
    assert aime.holds_zero()
    # math500: +0.02, +0.02, +0.01: mean 0.016667, sd 0.005774, se 0.003333,
    # half width 4.302653 * 0.003333 = 0.014342 -> [0.002324, 0.031009]: better
    math500 = paired["ppl"]["math500"]
    assert math500.low == pytest.approx(0.002324, abs=1e-5) and not math500.holds_zero()
    assert interval_text(math500, signed=True) == "+1.7 [+0.2, +3.1]"


def test_stages_and_cost_per_run_and_method(tmp_path):
    runs = [load_run("position", s, write_run(tmp_path / f"p{s}", "position", s, (0.1, 0.1)))
            for s in (0, 2)]  # fmt: skip
    rows = stage_rows(runs)
    # seed 0: plateau reported at step 3, the bonus on at step 4 = 3 + 1; seed 2: never
    assert rows[0]["plateau reported at"] == 3 and rows[0]["position on"] == "4-4"
    assert rows[0]["switched on at the plateau"] == "yes"
    assert rows[1]["plateau reported at"] == "never" and rows[1]["switched on at the plateau"] == "never on"
    (cost,) = cost_rows(runs)
    # wall 10 and 12 -> 11; generation 4 steps x 2.0 = 8.0 per run
    assert cost["wall s"] == 11.0 and cost["generation s"] == 8.0 and cost["scoring s"] == 2.0


def test_a_bonus_on_before_the_plateau_or_by_another_schedule_is_said(tmp_path):
    early = write_run(tmp_path / "early", "position", 0, (0.1, 0.1))
    records = [json.loads(line) for line in (early / "metrics.jsonl").read_text().splitlines()]
    records[1]["shaping/position/active"] = 1.0  # on at step 2, before the plateau (step 3)
    (early / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    always = write_run(tmp_path / "always", "position", 0, (0.1, 0.1))
    (always / "recipe.yaml").write_text("shaping: {method: position, position: {schedule: always}}\n")
    rows = stage_rows([load_run("position", 0, early), load_run("position", 1, always)])
    assert rows[0]["switched on at the plateau"] == "no: on from step 2"
    assert rows[1]["switched on at the plateau"] == "on from step 4 (schedule always)"


def test_a_seed_missing_for_a_method_is_left_out_of_its_pairs_and_said(tmp_path):
    runs = [load_run(m, s, write_run(tmp_path / f"{m}-{s}", m, s)) for m, s in ACCURACY
            if (m, s) != ("ppl", 2)]  # fmt: skip
    benches, _ = benchmarks_of(runs)
    aime = paired_table(runs, benches, "acc")["ppl"]["aime24"]
    # seeds 0 and 1 only: +0.05, +0.02: mean 0.035, sd 0.021213, se 0.015,
    # half width t_{0.975, 1} * se = 12.706205 * 0.015 = 0.190593
    assert aime.n == 2 and aime.mean == pytest.approx(0.035)
    assert aime.high == pytest.approx(0.035 + 0.190593, abs=1e-6)
    assert interval_text(aime, signed=True, seeds=3) == "+3.5 [-15.6, +22.6] (2 seeds)"
    assert interval_text(result_table(runs, benches, "acc")["none"]["aime24"], seeds=3) == "20.0 [-4.8, 44.8]"


@pytest.mark.multiprocess
def test_a_comparison_study_runs_every_method_with_every_seed_and_reports(tmp_path):
    from typer.testing import CliRunner

    from epx.cli import app

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "tiny-random.yaml"
    out = tmp_path / "study"
    fast = ["--set", "grpo.max_steps=2", "--set", "eval.benches=[arithmetic]", "--set",
            "eval.limit=4", "--set", "eval.max_tokens=4"]  # fmt: skip
    result = CliRunner().invoke(app, ["sweep", "--method", "none,ppl", "--seeds", "0,1",
                                      "--recipe", str(recipe), "-o", str(out), *fast])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    import optuna

    study = optuna.load_study(study_name="tiny-random-compare", storage=f"sqlite:///{out / 'study.db'}")
    points = sorted((t.params["seed"], t.params["shaping.method"]) for t in study.trials)
    assert points == [(0, "none"), (0, "ppl"), (1, "none"), (1, "ppl")]
    for trial in study.trials:  # each trial's run: its method, and the seed for sampling and data
        seed, method = trial.params["seed"], trial.params["shaping.method"]
        saved = yaml.safe_load((out / f"trial-{trial.number:04d}" / f"seed-{seed}" / "recipe.yaml").read_text())
        assert saved["shaping"]["method"] == method
        assert saved["grpo"]["seed"] == seed and saved["data"]["seed"] == seed
    report = (out / "comparison.md").read_text()
    assert "## Paired differences from GRPO" in report and "GRPO+PPL vs GRPO on arithmetic" in report
    assert (out / "comparison.html").is_file() and (out / "comparison-entropy.png").is_file()


def test_the_drawn_band_is_clipped_to_the_quantitys_range():
    import math

    from epx.stats import Interval
    from epx.sweep.compare import band

    intervals = [Interval(0.266, -0.066, 0.597, 3),  # accuracy: the t interval dips below 0
                 Interval(0.9, 0.7, 1.3, 3),          # and above 1
                 Interval(0.5, 0.4, 0.6, 3),          # inside: unchanged
                 Interval(0.2, math.nan, math.nan, 1)]  # one seed: no band  # fmt: skip
    low, high = band(intervals, (0.0, 1.0))
    assert low[:3] == [0.0, 0.7, 0.4] and high[:3] == [0.597, 1.0, 0.6]
    assert math.isnan(low[3]) and math.isnan(high[3])
    low, high = band([Interval(0.5, -4.1, 6.2, 2)], (0.0, math.inf))  # entropy: >= 0 only
    assert (low, high) == ([0.0], [6.2])
