"""`epx eval` end to end: the tiny random model, the real scorer, real files; resume; bad input."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from epx.cli import app
from epx.eval.evaluate import EvalOptions, run_eval
from epx.eval.report import table_rows
from epx.generation import SamplingSettings
from epx.metrics import majority_vote, pass_at_k

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("EPX_DATA_DIR") or REPO.parent / "shared" / "benchmarks")
MODEL = str(REPO / "recipes" / "tiny-random.yaml")
FIELDS = {"problem_id", "sample", "completion", "answer", "status", "correct", "tokens"}
# 2 problems x 3 samples = 6 per benchmark in chunks of 4: [0, 4) and [4, 6)
SMALL = ["--limit", "2", "--n", "3", "--max-tokens", "12", "--batch-size", "4"]


def eval_args(output_dir: Path, *extra: str, bench: str = "aime24,math500") -> list[str]:
    return [
        "eval",
        "--bench",
        bench,
        "--model",
        MODEL,
        "--data-dir",
        str(DATA_DIR),
        "--output-dir",
        str(output_dir),
        "--wandb-mode",
        "disabled",
        *SMALL,
        *extra,
    ]


def invoke(args: list[str]):
    return CliRunner().invoke(app, args)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_end_to_end_summary_matches_the_samples(tmp_path):
    result = invoke(eval_args(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    settings = json.loads((out / "settings.json").read_text())
    assert settings["sampling"]["n"] == 3 and settings["backend"] == "hf"
    assert set(summary["benches"]) == {"aime24", "math500"}
    for bench in ("aime24", "math500"):
        records = read_jsonl(out / f"{bench}.jsonl")
        assert len(records) == 2 * 3
        assert all(set(r) >= FIELDS for r in records)
        assert {r["status"] for r in records} <= {"correct", "wrong", "unparsed", "timeout"}
        assert all(0 < r["tokens"] <= 12 for r in records)
        # recompute every metric from the per-sample lines
        by_problem: dict[str, list[dict]] = {}
        for r in sorted(records, key=lambda r: r["sample"]):
            by_problem.setdefault(r["problem_id"], []).append(r)
        assert list(by_problem) == [f"{bench}-0", f"{bench}-1"]  # the first two problems
        correct = [[r["correct"] for r in rs] for rs in by_problem.values()]
        metrics = summary["benches"][bench]
        assert metrics["acc"] == pytest.approx(sum(map(sum, correct)) / 6)
        assert metrics["pass@3"] == pytest.approx(sum(pass_at_k(3, sum(c), 3) for c in correct) / 2)
        maj = [
            majority_vote([r["key"] for r in rs], [r["correct"] for r in rs]).correct
            for rs in by_problem.values()
        ]
        assert metrics["maj"] == pytest.approx(sum(maj) / 2)
        unparsed = sum(r["status"] == "unparsed" for r in records) / 6
        assert metrics["unparsed"] == pytest.approx(unparsed)
        assert summary["metrics"][f"eval/{bench}/acc"] == metrics["acc"]
    assert summary["metrics"]["eval/avg/acc"] == pytest.approx(
        (summary["benches"]["aime24"]["acc"] + summary["benches"]["math500"]["acc"]) / 2
    )
    for column in ("aime24", "math500", "avg", "Acc@3", "Maj@3", "Pass@1", "Pass@3", "unparsed"):
        assert column in result.stdout


def _options(output_dir: Path, **changes) -> EvalOptions:
    sampling = SamplingSettings(n=3, temperature=1.0, top_p=1.0, max_tokens=12, batch_size=4)
    values = {
        "model": MODEL,
        "benches": ("aime24", "math500"),
        "sampling": sampling,
        "data_dir": str(DATA_DIR),
        "limit": 2,
        "output_dir": str(output_dir),
        "wandb_mode": "disabled",
    }
    values.update(changes)
    return EvalOptions(**values)


def test_resume_after_kill_gives_the_uninterrupted_summary(tmp_path):
    whole = run_eval(_options(tmp_path / "whole"))
    assert {name: r.generated for name, r in whole.benches.items()} == {"aime24": 6, "math500": 6}

    killed = tmp_path / "killed"
    run_eval(_options(killed))
    # the kill: aime24 lost its second chunk and half of a line; math500 never started
    lines = (killed / "aime24.jsonl").read_text().splitlines(keepends=True)
    (killed / "aime24.jsonl").write_text("".join(lines[:4]) + lines[4][: len(lines[4]) // 2])
    (killed / "math500.jsonl").unlink()
    (killed / "summary.json").unlink()

    resumed = run_eval(_options(killed))
    assert resumed.benches["aime24"].generated == 2  # only the lost chunk [4, 6) is redone
    assert resumed.benches["math500"].generated == 6
    assert resumed.summary["benches"] == {
        name: {**metrics, "records": str(killed / f"{name}.jsonl")}
        for name, metrics in ((n, whole.benches[n].metrics) for n in ("aime24", "math500"))
    }
    for bench in ("aime24", "math500"):  # the same samples, line for line
        assert read_jsonl(killed / f"{bench}.jsonl") == read_jsonl(
            tmp_path / "whole" / f"{bench}.jsonl"
        )
    again = run_eval(_options(killed))  # nothing left to do
    assert {r.generated for r in again.benches.values()} == {0}


def test_raising_the_limit_keeps_complete_chunks(tmp_path):
    first = run_eval(_options(tmp_path / "out", benches=("aime24",), limit=1))
    assert first.benches["aime24"].generated == 3  # one chunk [0, 3): too short for limit 2
    grown = run_eval(_options(tmp_path / "out", benches=("aime24",), limit=2))
    assert grown.benches["aime24"].generated == 6  # [0, 4) and [4, 6) are new chunks
    fresh = run_eval(_options(tmp_path / "fresh", benches=("aime24",), limit=2))
    assert grown.benches["aime24"].metrics == fresh.benches["aime24"].metrics


def test_lowering_the_limit_keeps_every_complete_chunk_and_raising_it_again_reuses_them(tmp_path):
    out = tmp_path / "out"
    whole = run_eval(_options(out, benches=("aime24",), limit=2))  # chunks [0, 4) and [4, 6)
    before = read_jsonl(out / "aime24.jsonl")
    lowered = run_eval(_options(out, benches=("aime24",), limit=1))
    assert lowered.benches["aime24"].generated == 3  # [0, 3) straddles the old chunk [0, 4)
    kept = read_jsonl(out / "aime24.jsonl")
    assert kept[: len(before)] == before  # nothing finished was deleted
    assert [r["batch"] for r in kept[len(before) :]] == [[0, 3]] * 3
    raised = run_eval(_options(out, benches=("aime24",), limit=2))
    assert raised.benches["aime24"].generated == 0  # both chunks of limit 2 are still there
    assert raised.benches["aime24"].metrics == whole.benches["aime24"].metrics
    order = lambda r: (r["batch"], r["problem_id"], r["sample"])  # noqa: E731
    assert sorted(read_jsonl(out / "aime24.jsonl"), key=order) == sorted(kept, key=order)


def test_two_benchmark_files_with_one_name_are_two_benchmarks(tmp_path):
    """`--bench a/good.jsonl,b/good.jsonl`: two rows, two record files keyed by each file's
    resolved path; a rerun regenerates nothing and changes no record."""
    for folder, source in (("a", "aime24"), ("b", "math500")):
        (tmp_path / folder).mkdir()
        lines = (DATA_DIR / f"{source}.jsonl").read_text().splitlines()[:2]
        (tmp_path / folder / "good.jsonl").write_text("\n".join(lines) + "\n")
    benches = f"{tmp_path / 'a' / 'good.jsonl'},{tmp_path / 'b' / 'good.jsonl'}"
    out = tmp_path / "out"
    result = invoke(eval_args(out, bench=benches))
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    names = [str(tmp_path / "a" / "good"), str(tmp_path / "b" / "good")]
    assert sorted(summary["benches"]) == names
    files = sorted(out.glob("good-*.jsonl"))
    assert len(files) == 2
    problems = [{r["problem"] for r in read_jsonl(path)} for path in files]
    assert problems[0].isdisjoint(problems[1]) and all(len(p) == 2 for p in problems)
    records = {path.name: path.read_text() for path in files}
    cli_sampling = SamplingSettings(n=3, temperature=0.6, top_p=0.95, max_tokens=12, batch_size=4)
    rerun = run_eval(_options(out, benches=(benches,), sampling=cli_sampling))
    assert {r.generated for r in rerun.benches.values()} == {0}
    assert {path.name: path.read_text() for path in files} == records
    assert sorted(rerun.summary["benches"]) == names


def test_settings_mismatch_is_one_line_and_exit_2(tmp_path):
    assert invoke(eval_args(tmp_path, bench="aime24")).exit_code == 0
    result = invoke(eval_args(tmp_path, "--temperature", "0.7", bench="aime24"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "sampling.temperature: 0.6 there, 0.7 now" in result.stderr
    assert (
        invoke(eval_args(tmp_path, "--temperature", "0.7", "--no-resume", bench="aime24")).exit_code
        == 0
    )


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    """A real `epx` process, to see exactly what a person sees on stderr."""
    code = "import sys; from epx.cli import app; sys.argv[0] = 'epx'; app()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


@pytest.mark.parametrize(
    ("bench", "data_dir", "expected"),
    [
        ("aime2", DATA_DIR, "unknown benchmark 'aime2': known are aime24, aime25"),
        ("aime24", "EMPTY", "benchmark file missing: "),
        ("BAD", DATA_DIR, "bad.jsonl:2: malformed JSON line"),
    ],
)
def test_bad_benchmark_input_is_one_line_and_exit_2(tmp_path, bench, data_dir, expected):
    (tmp_path / "EMPTY").mkdir()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?", "answer": 4\n')
    bench = str(bad) if bench == "BAD" else bench
    data_dir = tmp_path / "EMPTY" if data_dir == "EMPTY" else data_dir
    result = _run_cli(
        "eval",
        "--bench",
        bench,
        "--model",
        MODEL,
        "--data-dir",
        str(data_dir),
        "--output-dir",
        str(tmp_path / "out"),
        "--wandb-mode",
        "disabled",
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("epx: error: ") and result.stderr.count("\n") == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # it failed before loading a model or writing


def test_wandb_offline_run_gets_the_table(tmp_path):
    result = invoke(eval_args(tmp_path, "--wandb-mode", "offline", bench="aime24"))
    assert result.exit_code == 0, result.output
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))
    # wandb 0.31 keeps metrics in its binary run file; the logged table is plain JSON
    table = json.loads(next(runs[0].rglob("*.table.json")).read_text())
    summary = json.loads((tmp_path / "summary.json").read_text())
    columns, rows = table_rows(summary, 3)
    assert table == {"columns": columns, "data": rows}
    assert table["data"][0][0] == "aime24"


def test_arithmetic_bench_reports_the_truncated_share_and_strictness_is_a_setting(tmp_path):
    out = tmp_path / "out"
    args = ["eval", "--bench", "arithmetic", "--model", MODEL, "--output-dir", str(out)]
    args += ["--wandb-mode", "disabled", "--limit", "3", "--n", "2", "--max-tokens", "6"]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    records = read_jsonl(out / "arithmetic.jsonl")
    assert summary["settings"]["scoring"] == {"strictness": "final"}
    assert len(records) == 6 and records[0]["problem"].startswith("What is ")
    cut = sum(not r["finished"] for r in records) / 6  # a random model rarely stops in 6 tokens
    assert summary["benches"]["arithmetic"]["truncated"] == pytest.approx(cut)
    assert summary["metrics"]["eval/arithmetic/truncated"] == pytest.approx(cut)
    assert "truncated %" in result.stdout
    other = invoke([*args, "--strictness", "boxed"])  # another scorer: the dir's samples differ
    assert other.exit_code == 2 and "scoring.strictness: 'final' there, 'boxed' now" in other.stderr
    assert invoke([*args[:-2], "--strictness", "loose"]).exit_code == 2


def test_strictness_changes_the_default_output_dir():
    from epx.eval.evaluate import default_output_dir

    settings = {"model": {"name_or_path": "m"}, "scoring": {"strictness": "final"}}
    boxed = {**settings, "scoring": {"strictness": "boxed"}}
    assert default_output_dir("m", settings) != default_output_dir("m", boxed)


def test_the_papers_table_of_several_models_by_hand():
    from epx.eval.report import paper_table

    def summary(acc_a: float, acc_b: float) -> dict:
        bench = lambda acc: {"acc": acc, "maj": acc / 2, "pass@4": 1.0}  # noqa: E731
        return {"benches": {"aime24": bench(acc_a), "math500": bench(acc_b)},
                "average": bench((acc_a + acc_b) / 2)}  # fmt: skip

    columns, rows = paper_table([("grpo", summary(0.1, 0.5)), ("ppl", summary(0.2, 0.6))], 4)
    assert columns == ["model", "aime24", "math500", "avg"]
    # ppl: Acc 20.0 (Maj 10.0 / Pass@4 100.0), 60.0 (30.0 / 100.0), average 40.0 (20.0 / 100.0)
    assert rows[1] == ["ppl", "20.0 (10.0 / 100.0)", "60.0 (30.0 / 100.0)", "40.0 (20.0 / 100.0)"]
    _, single = paper_table([("grpo", summary(0.1, 0.5))], 1)
    assert single == [["grpo", "10.0", "50.0", "30.0"]]
    # code has no majority vote: its Maj@n is "n/a", in this table and in the terminal's
    code = {"benches": {"humaneval": {"acc": 0.03, "maj": math.nan, "pass@4": 0.05}},
            "average": {"acc": 0.03, "maj": math.nan, "pass@4": 0.05}}  # fmt: skip
    assert paper_table([("smol", code)], 4)[1] == [["smol", "3.0 (n/a / 5.0)", "3.0 (n/a / 5.0)"]]


def test_the_terminal_table_says_n_a_for_a_metric_that_does_not_apply():
    from rich.console import Console

    from epx.eval.report import render_table

    bench = {"problems": 164, "samples": 164, "acc": 0.0305, "maj": math.nan, "pass@1": 0.0305,
             "unparsed": 0.0, "truncated": 0.207, "timeouts": 0}  # fmt: skip
    console = Console(width=200, record=True)
    console.print(render_table({"benches": {"humaneval": bench}, "average": bench}, 1))
    row = next(line for line in console.export_text().splitlines() if "humaneval" in line)
    assert [c.strip() for c in row.split("│")[2:9]] == ["164", "164", "3.0", "n/a", "3.0", "0.0", "20.7"]


def test_several_models_give_one_table_and_a_folder_each(tmp_path):
    out = tmp_path / "out"
    args = eval_args(out)
    args[args.index(MODEL)] = f"{MODEL},tiny-random"
    result = invoke(args)
    assert result.exit_code == 0, result.output
    table = (out / "table.md").read_text()
    assert table.count("\n| ") == 3  # the header and two models
    assert {p.name for p in out.iterdir()} == {"table.md", "tiny-random", Path(MODEL).name}
    assert (out / "tiny-random" / "summary.json").is_file()
