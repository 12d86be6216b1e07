"""The eval core: for each benchmark, generate -> score -> append per-sample JSONL -> metrics.

`evaluate_benchmarks` is shared by `epx eval` (`epx.eval.evaluate.run_eval`) and the in-training
callback.
Work is cut into chunks of `batch_size` samples over the flat list (problem, sample index), problem
major. A chunk's outputs depend only on its prompts and its seed, derived from (seed, benchmark,
chunk start), so a chunk is either done (all its samples on disk, written with the same chunk
span) or redone from scratch: an interrupted run resumes to what an uninterrupted run gives
(bit for bit on CPU; on a GPU only as far as its kernels are deterministic: on an H100 in bf16,
SDPA attention was not, even greedy, while eager attention with
`torch.use_deterministic_algorithms(True)` and `CUBLAS_WORKSPACE_CONFIG=:4096:8` was). Changing
`--limit` keeps every complete chunk on disk, also those past the new limit (a later run with the
old limit finds them); only a chunk that straddles the old end is redone, so a sample can be
there under two spans, and the metrics read the spans of the current limit.

Several processes (`accelerate launch`, one per GPU): chunks are dealt round-robin by process
index; after each round the records are gathered to every process and the main process writes
them. In a round with fewer chunks left than processes, a process without a chunk generates one
prompt and throws it away: every process calls `generate` equally often, which a sharded model
(ZeRO-3, FSDP) needs, since each of its forwards is a collective. Only the main process prints,
writes and logs.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from epx.benchmarks import LoadedBenchmark, Problem, distinct_names
from epx.errors import RunError
from epx.generation import Completion, Generator, SamplingSettings, derive_seed
from epx.metrics import ProblemSamples, bench_metrics, eval_metric_names, rate_names
from epx.records import read_records
from epx.scoring import Score

RECORD_FIELDS = ("problem_id", "sample", "status", "correct", "key", "tokens", "batch")
PromptFn = Callable[[str], str]


# ---------------------------------------------------------------- processes


class Processes:
    """This process's index among the data-parallel ones, and a gather over them.

    One process unless launched with several (WORLD_SIZE > 1), then accelerate's PartialState.
    """

    def __init__(self) -> None:
        self.state: Any = None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch
            from accelerate import PartialState

            # without a GPU, accelerate only forms a process group (gloo) when told cpu=True
            self.state = PartialState(cpu=not torch.cuda.is_available())
        self.index = self.state.process_index if self.state else 0
        self.count = self.state.num_processes if self.state else 1
        self.is_main = self.index == 0

    def gather(self, items: list[Any]) -> list[Any]:
        """Every process's items, concatenated in process order, on every process."""
        if self.count == 1:
            return items
        from accelerate.utils import gather_object

        return list(gather_object(items))

    def wait(self) -> None:
        if self.count > 1:
            self.state.wait_for_everyone()

    @property
    def device(self) -> Any:
        return self.state.device if self.state else None


# ---------------------------------------------------------------- records on disk


def chunk_spans(total: int, size: int) -> list[tuple[int, int]]:
    """[start, stop) spans of `size` over `total` items (the last may be shorter)."""
    return [(start, min(start + size, total)) for start in range(0, total, size)]


def read_sample_records(path: Path) -> list[dict[str, Any]]:
    """The sample records in a per-sample JSONL (`epx.records`, tolerant: a half-written last
    line of a killed run is skipped, so its chunk is redone); records missing a field are too."""
    return [r for r in read_records(path) if all(name in r for name in RECORD_FIELDS)]


def complete_chunks(records: Sequence[dict[str, Any]]) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """The records by chunk span (their `batch`), of every chunk whose samples are all there."""
    chunks: dict[tuple[int, int], dict[tuple[str, int], dict[str, Any]]] = {}
    for record in records:
        start, stop = (int(bound) for bound in record["batch"])
        chunks.setdefault((start, stop), {})[(str(record["problem_id"]), int(record["sample"]))] = record
    return {
        span: list(items.values())
        for span, items in sorted(chunks.items())
        if len(items) == span[1] - span[0]
    }


def completed_records(
    records: Sequence[dict[str, Any]],
    problems: Sequence[Problem],
    n: int,
    spans: Sequence[tuple[int, int]],
) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """The records of every complete chunk among `spans`, by span (stale or partial chunks are
    dropped: their items are not the problems' at those places, or some are missing)."""
    by_item = {
        (str(r["problem_id"]), int(r["sample"]), *(int(bound) for bound in r["batch"])): r
        for r in records
    }
    done = {}
    for start, stop in spans:
        chunk = [by_item.get((problems[i // n].id, i % n, start, stop)) for i in range(start, stop)]
        if all(record is not None for record in chunk):
            done[(start, stop)] = chunk
    return done


def write_records(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Replace `path` with exactly these records (atomic)."""
    partial = path.with_suffix(path.suffix + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(partial, path)


# ---------------------------------------------------------------- the core


@dataclass
class BenchResult:
    """A benchmark's metrics (see `epx.metrics.bench_metrics`) and where its samples are."""

    name: str
    metrics: dict[str, float]
    records_path: Path | None
    records: list[dict[str, Any]] = field(repr=False)
    generated: int  # samples generated in this call (the rest were resumed)


def evaluate_benchmarks(
    generator: Generator,
    benches: Sequence[LoadedBenchmark],
    sampling: SamplingSettings,
    prompt_fn: PromptFn,
    *,
    limit: int | None = None,
    output_dir: Path | None = None,
    resume: bool = True,
    workers: int | None = None,
    progress: Any = None,
    processes: Processes | None = None,
    strictness: str = "final",
) -> dict[str, BenchResult]:
    """Evaluate each benchmark in turn; see the module docstring. `progress` is a rich Progress.

    Results are keyed by name, records kept per benchmark identity (`LoadedBenchmark`): two
    files called `good.jsonl` are two benchmarks, `a/good` and `b/good`."""
    processes = processes or Processes()
    results = {}
    for bench in distinct_names(list(benches)):
        path = output_dir / bench.records_file if output_dir is not None else None
        results[bench.name] = evaluate_benchmark(
            generator,
            bench,
            sampling,
            prompt_fn,
            limit=limit,
            records_path=path,
            resume=resume,
            workers=workers,
            progress=progress,
            processes=processes,
            strictness=strictness,
        )
    return results


def evaluate_benchmark(
    generator: Generator,
    bench: LoadedBenchmark,
    sampling: SamplingSettings,
    prompt_fn: PromptFn,
    *,
    limit: int | None,
    records_path: Path | None,
    resume: bool,
    workers: int | None,
    progress: Any,
    processes: Processes,
    strictness: str = "final",
) -> BenchResult:
    problems = bench.problems[:limit] if limit else bench.problems
    n = sampling.n
    spans = chunk_spans(len(problems) * n, sampling.batch_size)
    existing = read_sample_records(records_path) if records_path is not None and resume else []
    done = completed_records(existing, problems, n, spans)
    processes.wait()  # everyone has read the file before the main process rewrites it
    if records_path is not None and processes.is_main:  # every complete chunk stays, any --limit
        write_records(records_path, [r for chunk in complete_chunks(existing).values() for r in chunk])
    todo = [span for span in spans if span not in done]
    prompts = [benchmark_prompt(bench.kind, problem, prompt_fn) for problem in problems]

    task = None
    if progress is not None and processes.is_main:
        resumed = sum(stop - start for start, stop in done)
        task = progress.add_task(bench.name, total=len(problems) * n, completed=resumed)
    new_records: list[dict[str, Any]] = []
    with _appender(records_path if processes.is_main else None) as append:
        for round_start in range(0, len(todo), processes.count):
            index = round_start + processes.index
            mine = []
            if index < len(todo):
                span = todo[index]
                mine = _run_chunk(
                    generator, bench, problems, prompts, span, sampling, workers, strictness,
                    chat=getattr(prompt_fn, "chat", False),
                )
            else:  # keep step with the processes that generate (see the module docstring)
                generator.generate(prompts[:1], derive_seed(sampling.seed, bench.name, "idle"))
            gathered = processes.gather(mine)
            append(gathered)
            new_records.extend(gathered)
            if task is not None:
                progress.advance(task, len(gathered))
    records = [r for span in spans if span in done for r in done[span]] + new_records
    return BenchResult(
        name=bench.name,
        metrics=summarize_records(records, problems, n, bench.kind),
        records_path=records_path,
        records=records,
        generated=len(new_records),
    )


def benchmark_prompt(kind: str, problem: Problem, prompt_fn: PromptFn) -> str:
    """The prompt of one problem. Math: the recipe's prompt (`prompt_fn`); multiple choice: the
    question and its lettered choices, asking for the letter in a box; code: a base model gets
    HumanEval's prompt as it is (its completion continues the function), a chat model a request
    for the function, through its chat template."""
    if kind == "math":
        return prompt_fn(problem.problem)
    if not hasattr(prompt_fn, "chat"):
        raise RunError(f"a {kind} benchmark needs an epx.data.PromptBuilder to build its prompts")
    if kind == "choice":
        from epx.ood.gpqa import TEMPLATE

        return prompt_fn(problem.problem, template=TEMPLATE)
    from epx.ood.humaneval import humaneval_prompt

    if prompt_fn.chat:  # type: ignore[attr-defined]
        return prompt_fn(humaneval_prompt(problem.payload, chat=True), template="{problem}")
    return humaneval_prompt(problem.payload, chat=False)


def score_chunk(
    kind: str,
    texts: Sequence[str],
    problems: Sequence[Problem],
    workers: int | None,
    strictness: str,
    chat: bool,
) -> list[Score]:
    """Score each completion against its problem: math by the answer scorer, multiple choice
    by its final letter, code by running it with the problem's tests in the sandbox (`status`
    correct, wrong, timeout or error; no answer key: code has no majority vote)."""
    from epx.scoring import score_many

    if kind == "math":
        pairs = [(text, p.answer) for text, p in zip(texts, problems, strict=True)]
        return score_many(pairs, workers=workers, strictness=strictness)  # type: ignore[arg-type]
    if kind == "choice":
        from epx.scoring.choice import score_letter

        return [score_letter(text, p.answer) for text, p in zip(texts, problems, strict=True)]
    from epx.ood.humaneval import completion_from_reply, run_completions

    code = [[completion_from_reply(p.payload, text, chat)] for text, p in zip(texts, problems, strict=True)]
    runs = run_completions([p.payload for p in problems], code, workers)
    status = {"passed": "correct", "failed": "wrong", "timeout": "timeout", "error": "wrong"}
    return [Score(status[run.status], answer=None, boxed=False) for (run,) in runs]  # type: ignore[arg-type]


def _run_chunk(
    generator: Generator,
    bench: LoadedBenchmark,
    problems: Sequence[Problem],
    prompts: Sequence[str],
    span: tuple[int, int],
    sampling: SamplingSettings,
    workers: int | None,
    strictness: str,
    chat: bool = False,
) -> list[dict[str, Any]]:
    """Generate and score one chunk; its records in item order."""
    start, stop = span
    n = sampling.n
    items = [(item // n, item % n) for item in range(start, stop)]
    completions: list[Completion] = generator.generate(
        [prompts[p] for p, _ in items], derive_seed(sampling.seed, bench.name, start)
    )
    if len(completions) != len(items):
        raise RunError(f"{generator.backend} backend returned {len(completions)} of {len(items)}")
    scores = score_chunk(bench.kind, [c.text for c in completions], [problems[p] for p, _ in items],
                         workers, strictness, chat)  # fmt: skip
    return [
        {
            "problem_id": problems[p].id,
            "sample": s,
            "completion": completion.text,
            "answer": score.answer,
            "key": score.key,
            "status": score.status,
            "correct": bool(score.correct),
            "boxed": bool(score.boxed),
            "tokens": completion.tokens,
            "finished": completion.finished,
            "gold": problems[p].answer,
            "problem": problems[p].problem,
            "batch": [start, stop],
        }
        for (p, s), completion, score in zip(items, completions, scores, strict=True)
    ]


@contextmanager
def _appender(path: Path | None) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
    """Append records as JSON lines, flushed to disk after each call (nothing if path is None)."""
    if path is None:
        yield lambda records: None
        return
    with path.open("a", encoding="utf-8") as handle:

        def append(records: list[dict[str, Any]]) -> None:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

        yield append


def summarize_records(
    records: Sequence[dict[str, Any]], problems: Sequence[Problem], n: int, kind: str = "math"
) -> dict[str, float]:
    """Metrics from the per-sample records (what the JSONL holds), in problem and sample order;
    a code benchmark has no Maj@n (NaN: programs are not voted on)."""
    by_problem: dict[str, list[dict[str, Any]]] = {problem.id: [] for problem in problems}
    for record in records:
        by_problem[str(record["problem_id"])].append(record)
    samples = []
    for problem in problems:
        rows = sorted(by_problem[problem.id], key=lambda r: int(r["sample"]))
        if [int(r["sample"]) for r in rows] != list(range(n)):
            raise RunError(
                f"problem {problem.id}: samples {[r['sample'] for r in rows]}, not 0..{n - 1}"
            )
        samples.append(
            ProblemSamples(
                keys=tuple(r["key"] for r in rows),
                correct=tuple(bool(r["correct"]) for r in rows),
                statuses=tuple(str(r["status"]) for r in rows),
                tokens=tuple(int(r["tokens"]) for r in rows),
                finished=tuple(bool(r.get("finished", True)) for r in rows),
            )
        )
    metrics = bench_metrics(samples, n)
    if kind == "code":
        metrics["maj"] = math.nan
    return metrics


# ---------------------------------------------------------------- metrics of several benchmarks

COUNTS = ("problems", "samples", "timeouts")
AVERAGE = "avg"


def average_metrics(per_bench: Mapping[str, Mapping[str, float]], n: int) -> dict[str, float]:
    """Unweighted mean of each rate over benchmarks; counts summed."""
    if not per_bench:
        return {}
    rows = list(per_bench.values())
    averaged = {name: sum(row[name] for row in rows) / len(rows) for name in rate_names(n)}
    averaged.update({name: sum(row[name] for row in rows) for name in COUNTS})
    return averaged


def flat_metrics(per_bench: Mapping[str, Mapping[str, float]], n: int) -> dict[str, float]:
    """`eval/<bench>/<metric>` for every benchmark and for their average (`eval/avg/...`)."""
    flat: dict[str, float] = {}
    table = dict(per_bench)
    if len(table) > 1:
        table[AVERAGE] = average_metrics(per_bench, n)
    for bench, metrics in table.items():
        for name in eval_metric_names(n):
            flat[f"eval/{bench}/{name}"] = metrics[name]
    return flat
