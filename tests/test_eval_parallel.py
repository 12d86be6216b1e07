"""Data-parallel eval: two CPU ranks (torchrun, gloo) share the chunks and write exactly the
samples a single process writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("EPX_DATA_DIR") or REPO.parent / "shared" / "benchmarks")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from epx.data import format_prompt
    from epx.benchmarks import load_benchmark
    from epx.generation import HFGenerator, SamplingSettings
    from epx.evaluation import Processes, evaluate_benchmarks
    from epx.models import load_model_and_tokenizer, resolve_model_ref


    def main():
        out, data_dir = Path(sys.argv[1]), sys.argv[2]
        processes = Processes()
        model, tokenizer = load_model_and_tokenizer(resolve_model_ref("tiny-random"))
        sampling = SamplingSettings(n=3, max_tokens=8, batch_size=2)
        generator = HFGenerator(model, tokenizer, sampling)
        calls = []
        generate = generator.generate
        generator.generate = lambda prompts, seed: calls.append(len(prompts)) or generate(
            prompts, seed
        )
        results = evaluate_benchmarks(
            generator, [load_benchmark("aime24", data_dir)], sampling,
            lambda problem: format_prompt(problem, tokenizer), limit=3, output_dir=out,
            processes=processes, workers=1,
        )
        report = {"rank": processes.index, "world": processes.count, "generated": sum(calls),
                  "calls": len(calls), "acc": results["aime24"].metrics["acc"]}
        (out / f"rank{processes.index}.json").write_text(json.dumps(report))


    if __name__ == "__main__":  # the scorer's worker processes import this file again
        main()
    """
)


def run(tmp_path: Path, name: str, launcher: list[str]) -> Path:
    out = tmp_path / name
    out.mkdir()
    script = tmp_path / "eval_script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*launcher, str(script), str(out), str(DATA_DIR)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.multiprocess
def test_two_ranks_split_the_chunks_and_match_one_process(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    two = run(tmp_path, "two", [*torchrun, "--standalone"])
    one = run(tmp_path, "one", [sys.executable])
    reports = [json.loads((two / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [(r["rank"], r["world"]) for r in reports] == [(0, 2), (1, 2)]
    # 3 problems x 3 samples = 9 in chunks of 2: [0,2) [2,4) [4,6) [6,8) [8,9); dealt round-robin,
    # and in the last round rank 1, with no chunk left, generates one prompt to keep in step
    assert [r["generated"] for r in reports] == [2 + 2 + 1, 2 + 2 + 1]
    assert [r["calls"] for r in reports] == [3, 3]  # generate called equally often
    assert reports[0]["acc"] == reports[1]["acc"]  # both ranks see every record
    assert (two / "aime24.jsonl").read_text() == (one / "aime24.jsonl").read_text()
    assert not (two / "aime24.jsonl.partial").exists()
