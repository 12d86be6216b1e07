"""Training data: prompts built with the paper's template, from the hub, a local file or a built-in task.

Every dataset comes out with the columns `prompt` (the text the model sees), `problem` and `answer`
(the gold string the correctness reward checks), whatever the source's own column names are.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epx.errors import DataError
from epx.recipe import PAPER_TEMPLATE, ArithmeticTask, DataSection

BUILTIN_PREFIX = "builtin:"


def format_prompt(
    problem: str,
    tokenizer: Any,
    template: str | None = None,
    *,
    chat_template: bool | None = None,
    system_prompt: str | None = None,
) -> str:
    """The text the model is prompted with: the template applied, then the chat template if any.

    `chat_template=None` uses the tokenizer's chat template when it has one. Training and evaluation
    both build prompts here, so a model is evaluated with the prompt it was trained on.
    """
    text = (template or PAPER_TEMPLATE).replace("{problem}", problem.strip())
    use_chat = getattr(tokenizer, "chat_template", None) is not None
    if chat_template is not None:
        use_chat = chat_template and use_chat
    if not use_chat:
        return text
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": text})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


@dataclass(frozen=True)
class PromptBuilder:
    """Problem -> prompt as a recipe's `data` section builds it for training (template, chat
    template, system prompt), so that a model is evaluated with the prompt it was trained on.
    `template` replaces the recipe's for a benchmark that asks for something else (a letter, a
    function); `chat` says whether prompts go through the tokenizer's chat template."""

    tokenizer: Any
    template: str | None = None
    chat_template: bool | None = None
    system_prompt: str | None = None

    def __call__(self, problem: str, template: str | None = None) -> str:
        return format_prompt(problem, self.tokenizer, template or self.template,
                             chat_template=self.chat_template, system_prompt=self.system_prompt)  # fmt: skip

    @property
    def chat(self) -> bool:
        has_template = getattr(self.tokenizer, "chat_template", None) is not None
        return has_template and self.chat_template is not False


def prompt_function(data: DataSection | None, tokenizer: Any) -> PromptBuilder:
    """The `PromptBuilder` of a recipe's `data` section; None: the paper's prompt through the
    tokenizer's chat template."""
    if data is None:
        return PromptBuilder(tokenizer)
    return PromptBuilder(tokenizer, data.template, data.chat_template, data.system_prompt)


def _operands(task: ArithmeticTask, rng: random.Random) -> list[int]:
    if task.max_value is not None:
        return [rng.randint(0, task.max_value) for _ in range(task.terms)]
    numbers = []
    for _ in range(task.terms):
        digits = rng.choice(task.digits)
        numbers.append(rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1))
    return numbers


def is_held_out(numbers: list[int], share: float) -> bool:
    """Whether a sum belongs to the held-out split: a hash of its sorted operands, so
    ``3 + 33`` and ``33 + 3`` fall on the same side, whatever seed drew them."""
    text = "+".join(map(str, sorted(numbers)))
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 2**32 < share


def _arithmetic_row(index: int, numbers: list[int], prefix: str) -> dict[str, str]:
    return {
        "id": f"{prefix}-{index}",
        "problem": f"What is {' + '.join(map(str, numbers))}?",
        "answer": str(sum(numbers)),
    }


def arithmetic_problems(task: ArithmeticTask, seed: int) -> list[dict[str, str]]:
    """Training sums of `task.terms` numbers (never a held-out one); exact answers."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for _ in range(task.size * 100):
        if len(rows) == task.size:
            return rows
        numbers = _operands(task, rng)
        if not is_held_out(numbers, task.held_out):
            rows.append(_arithmetic_row(len(rows), numbers, "arithmetic"))
    raise DataError("data.task: almost every sum is held out; lower data.task.held_out")


HELD_OUT_SEED = "epx-arithmetic-held-out"
HELD_OUT_PROBLEMS = 200


def arithmetic_held_out(
    task: ArithmeticTask, count: int = HELD_OUT_PROBLEMS
) -> list[dict[str, str]]:
    """Up to `count` distinct held-out sums of the task (the `arithmetic` benchmark), in a
    fixed order: the same problems for every run of the same task settings."""
    rng = random.Random(HELD_OUT_SEED)
    possible = _distinct_operand_tuples(task)
    drawn: set[tuple[int, ...]] = set()
    rows: list[dict[str, str]] = []
    for _ in range(count * 500):
        numbers = _operands(task, rng)
        key = tuple(numbers)
        if key in drawn:
            continue
        drawn.add(key)
        if is_held_out(numbers, task.held_out):
            rows.append(_arithmetic_row(len(rows), numbers, "arithmetic-test"))
        if len(rows) == count or len(drawn) == possible:
            break  # every tuple drawn: later draws are repeats (the same rows, sooner)
    return rows


def _distinct_operand_tuples(task: ArithmeticTask) -> int:
    """How many different operand tuples `_operands` can draw."""
    if task.max_value is not None:
        values = task.max_value + 1
    else:
        values = sum(10 if digits == 1 else 9 * 10 ** (digits - 1) for digits in set(task.digits))
    return values**task.terms


BUILTIN_TASKS = {"arithmetic": arithmetic_problems}


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-empty line (of a gzip file for ``.gz``); a bad line is
    a DataError naming file:line."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as stream:
                lines = stream.read().splitlines()
        else:
            lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError, EOFError) as error:
        raise DataError(f"cannot read {path}: {error}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: malformed JSON line ({error.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{number}: expected a JSON object per line")
        yield number, row


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file (see `iter_jsonl` for the errors)."""
    return [row for _, row in iter_jsonl(path)]


Located = tuple[str, dict[str, Any]]  # (where the row is, e.g. "train.jsonl:12", the row)


def load_rows(cfg: DataSection, first: int | None = None) -> list[Located]:
    """Raw rows of the configured source with where each one is (not yet renamed or limited);
    `first` reads only that many where the source allows it (a dry run's check)."""
    if cfg.source.startswith(BUILTIN_PREFIX):
        name = cfg.source.removeprefix(BUILTIN_PREFIX)
        if name not in BUILTIN_TASKS:
            known = ", ".join(BUILTIN_PREFIX + task for task in BUILTIN_TASKS)
            raise DataError(f"data.source: unknown built-in task '{cfg.source}'; known are {known}")
        rows = BUILTIN_TASKS[name](cfg.task, cfg.seed)
        return [(f"{cfg.source} row {i}", row) for i, row in enumerate(rows[:first])]
    path = Path(cfg.source)
    if path.suffix in (".jsonl", ".json", ".parquet"):
        if not path.is_file():
            raise DataError(f"data.source: file not found: {path}")
        if path.suffix == ".parquet":
            import datasets

            table = datasets.Dataset.from_parquet(str(path))
            count = len(table) if first is None else min(first, len(table))
            return [(f"{path} row {i}", table[i]) for i in range(count)]
        located = []
        for number, row in iter_jsonl(path):
            if first is not None and len(located) == first:
                break
            located.append((f"{path}:{number}", row))
        return located
    return [(f"{cfg.source} row {i}", row) for i, row in enumerate(_hub_rows(cfg))]


def _hub_rows(cfg: DataSection) -> list[dict[str, Any]]:
    from epx.hub import prepare_hub_access

    prepare_hub_access()
    import datasets

    try:
        return list(datasets.load_dataset(cfg.source, split=cfg.split))
    except Exception as error:  # datasets raises many types for a missing or unreachable dataset
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"data.source: cannot load hub dataset '{cfg.source}': {first}") from None


def row_problem(where: str, row: dict[str, Any], cfg: DataSection) -> dict[str, str] | str:
    """The row's problem and answer, or what is wrong with it (a field missing, null, empty)."""
    values = {}
    for key, field in (("problem", cfg.problem_field), ("answer", cfg.answer_field)):
        if field not in row:
            fields = ", ".join(map(str, row)) or "none"
            return (
                f"{where}: no field '{field}' (its fields are {fields}; set "
                f"data.{key}_field)"
            )
        value = row[field]
        if value is None:
            return f"{where}: field '{field}' is null"
        if isinstance(value, list | tuple):  # some datasets hold several gold answers
            value = value[0] if value else ""
        text = str(value).strip()
        if not text:
            return f"{where}: field '{field}' is empty"
        values[key] = str(value)
    return values


def select_rows(rows: list[Located], cfg: DataSection) -> tuple[list[dict[str, str]], int]:
    """Check every row, rename the problem/answer fields, shuffle with the seed, apply the limit.

    A row without a usable problem or answer is a DataError naming file:line, or (with
    `data.bad_rows: skip`) left out and counted; returns the rows and how many were skipped.
    """
    if not rows:
        raise DataError(f"data.source: '{cfg.source}' has no rows")
    selected, skipped = [], 0
    for where, row in rows:
        checked = row_problem(where, row, cfg)
        if isinstance(checked, str):
            if cfg.bad_rows == "error":
                raise DataError(f"{checked} (or set data.bad_rows: skip)")
            skipped += 1
            continue
        selected.append(checked)
    if not selected:
        raise DataError(f"data.source: '{cfg.source}': every one of {len(rows)} rows was skipped")
    if cfg.shuffle:
        random.Random(cfg.seed).shuffle(selected)
    return (selected[: cfg.limit] if cfg.limit else selected), skipped


def check_data_source(cfg: DataSection, first: int = 5) -> str:
    """What a dry run can check of the training data without loading it all: the source exists
    and its first rows have a problem and an answer. Returns what was checked."""
    if not (cfg.source.startswith(BUILTIN_PREFIX) or Path(cfg.source).suffix):
        return f"{cfg.source}: a hub dataset, loaded at launch"
    rows = load_rows(cfg, first=first)
    if not rows:
        raise DataError(f"data.source: '{cfg.source}' has no rows")
    for where, row in rows:
        checked = row_problem(where, row, cfg)
        if isinstance(checked, str) and cfg.bad_rows == "error":
            raise DataError(f"{checked} (or set data.bad_rows: skip)")
    return f"{cfg.source}: found, first {len(rows)} rows have {cfg.problem_field}/{cfg.answer_field}"


def build_train_dataset(cfg: DataSection, tokenizer: Any) -> Any:
    """A `datasets.Dataset` with `prompt`, `problem` and `answer` columns, ready for GRPOTrainer."""
    import datasets

    rows, skipped = select_rows(load_rows(cfg), cfg)
    if skipped:
        from rich.console import Console

        Console(stderr=True).print(f"data: skipped {skipped} rows without a problem or answer")
    for row in rows:
        row["prompt"] = format_prompt(
            row["problem"],
            tokenizer,
            cfg.template,
            chat_template=cfg.chat_template,
            system_prompt=cfg.system_prompt,
        )
    return datasets.Dataset.from_list(rows)
