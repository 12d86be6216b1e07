"""Out-of-domain evaluation through the eval core and `epx eval`, as the paper runs it: HumanEval
(programs run in the sandbox) and GPQA Diamond (a letter), registered beside the math benchmarks,
resumable, in the summary, the W&B keys and in-training evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from epx.benchmarks import load_benchmark
from epx.cli import app
from epx.data import PromptBuilder
from epx.evaluation import evaluate_benchmarks, flat_metrics
from epx.generation import Completion, SamplingSettings
from epx.models import load_tokenizer, resolve_model_ref

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).with_name("fixtures")
TINY = str(REPO / "recipes" / "tiny-random.yaml")


@pytest.fixture(scope="module")
def gpqa_dir(tmp_path_factory) -> Path:
    """A data dir with GPQA Diamond as a user would put it there (made-up questions)."""
    folder = tmp_path_factory.mktemp("data")
    shutil.copy(FIXTURES / "gpqa_made_up.jsonl", folder / "gpqa_diamond.jsonl")
    return folder


class Answers:
    """A generator that answers from a table (problem text -> reply): the scoring path alone,
    with the real scorer and sandbox; real generation is tested through `epx eval` below."""

    backend = "fixed"

    def __init__(self, replies: dict[str, str], tokenizer) -> None:
        self.replies, self.tokenizer = replies, tokenizer

    def generate(self, prompts, seed):
        return [Completion(next(r for key, r in self.replies.items() if key in p), 8, True)
                for p in prompts]  # fmt: skip


def test_humaneval_scores_by_running_the_tests_in_the_sandbox():
    bench = load_benchmark("humaneval")
    assert bench.kind == "code" and len(bench.problems) == 164
    problems = bench.problems[:2]
    tokenizer = load_tokenizer(resolve_model_ref("tiny-random"))
    builder = PromptBuilder(tokenizer, chat_template=False)  # a base model: raw prompts
    right, wrong = problems[0].payload.canonical_solution, "    return None\n"
    replies = {problems[0].problem: right, problems[1].problem: wrong}
    sampling = SamplingSettings(n=1, max_tokens=8, batch_size=2)
    results = evaluate_benchmarks(Answers(replies, tokenizer), [bench], sampling, builder, limit=2)
    records = results["humaneval"].records
    assert [r["status"] for r in records] == ["correct", "wrong"]
    metrics = flat_metrics({k: r.metrics for k, r in results.items()}, 1)
    assert metrics["eval/humaneval/pass@1"] == 0.5  # one of two programs passes its tests


def test_gpqa_scores_the_final_letter(gpqa_dir):
    bench = load_benchmark("gpqa_diamond", gpqa_dir)
    assert bench.kind == "choice" and {p.answer for p in bench.problems} - set("ABCD") == set()
    first, second = bench.problems[:2]
    assert "A) " in first.problem and "D) " in second.problem  # the choices listed A-D
    tokenizer = load_tokenizer(resolve_model_ref("tiny-random"))
    wrong_letter = next(letter for letter in "ABCD" if letter != second.answer)
    replies = {first.problem.split("\n")[0]: f"The answer is \\boxed{{{first.answer}}}.",
               second.problem.split("\n")[0]: f"Either A or {wrong_letter}."}  # fmt: skip
    sampling = SamplingSettings(n=1, max_tokens=8, batch_size=2)
    results = evaluate_benchmarks(Answers(replies, tokenizer), [bench], sampling,
                                  PromptBuilder(tokenizer), limit=2)  # fmt: skip
    # a hedge between letters is no answer at all
    assert [r["status"] for r in results["gpqa_diamond"].records] == ["correct", "unparsed"]
    assert results["gpqa_diamond"].metrics["acc"] == 0.5


def test_epx_eval_runs_both_on_the_tiny_model_resumes_and_logs_their_keys(tmp_path, gpqa_dir):
    out = tmp_path / "out"
    args = ["eval", "--bench", "humaneval,gpqa_diamond", "--model", TINY, "--data-dir",
            str(gpqa_dir), "--limit", "2", "--n", "2", "--max-tokens", "8", "--batch-size", "2",
            "-o", str(out), "--wandb-mode", "disabled"]  # fmt: skip
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["benches"]) == {"humaneval", "gpqa_diamond"}
    for key in ("eval/humaneval/pass@1", "eval/humaneval/pass@2", "eval/gpqa_diamond/acc",
                "eval/gpqa_diamond/maj"):  # fmt: skip
        assert key in summary["metrics"]
    records = (out / "humaneval.jsonl").read_text()
    again = CliRunner().invoke(app, args)  # resumes: nothing generated again
    assert again.exit_code == 0 and (out / "humaneval.jsonl").read_text() == records


def test_a_missing_gpqa_is_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["eval", "--bench", "gpqa_diamond", "--model", TINY,
                                      "--data-dir", str(empty), "-o", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.count("\n") == 1 and "GPQA" in result.stderr


@pytest.mark.slow
def test_training_evaluates_both_on_schedule(tmp_path, gpqa_dir):
    from tests_shared import train_tiny

    run = tmp_path / "run"
    train_tiny(run, 2, ["logging.mode=disabled", "eval.benches=[humaneval, gpqa_diamond]",
                        f"eval.data_dir={gpqa_dir}", "eval.limit=2", "eval.max_tokens=8",
                        "eval.every_n_steps=2"])  # fmt: skip
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r for r in records if "eval/humaneval/pass@1" in r]
    assert [r["step"] for r in evaluated] == [0, 2]  # before training (step 0), after step 2
    assert all("eval/gpqa_diamond/acc" in r for r in evaluated)
