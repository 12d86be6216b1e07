"""GPQA (Rein et al. 2023): graduate-level multiple-choice questions with four choices.

epx ships no questions: the dataset is gated (its terms ask that it not be reposted). The
questions come from a local JSONL or CSV file in the dataset's own columns (``Question``,
``Correct Answer``, ``Incorrect Answer 1`` to ``3``, optional ``Record ID``; the CSV files of its
release have them), or, only when asked, from the hub (`HUB_ID`, config ``gpqa_diamond`` by
default) through ``datasets.load_dataset``, which needs a token of a user who accepted its terms.
Data that cannot be had is one line (`DataError`), never a hub traceback.

The four choices are shuffled per question (`shuffle_choices`): one of the 24 orders, picked by
sha256 of the seed and the question's text, so a question keeps its order across runs, machines
and Python versions while the correct letter spreads evenly over A-D. The problem text lists the
choices as ``A) ...`` to ``D) ...``; `epx.scoring.choice.score_letter` scores the final letter.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epx.data import iter_jsonl
from epx.errors import DataError
from epx.scoring.choice import LETTERS

HUB_ID = "Idavidrein/gpqa"
DEFAULT_CONFIG = "gpqa_diamond"
QUESTION = "Question"
CORRECT = "Correct Answer"
INCORRECT = ("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
RECORD_ID = "Record ID"
TEMPLATE = (
    "{problem}\nPlease reason step by step, and put the letter of your final answer "
    "(A, B, C or D) within \\boxed{}."
)
_ORDERS = tuple(itertools.permutations(range(4)))  # 24; order[i]: which answer goes at letter i


@dataclass(frozen=True)
class ChoiceQuestion:
    """One question as the dataset has it: the correct answer and three incorrect ones."""

    id: str
    question: str
    correct: str
    incorrect: tuple[str, str, str]


@dataclass(frozen=True)
class ShuffledQuestion:
    """A question with its choices in the order the model sees them (A-D) and the letter of
    the correct one."""

    id: str
    question: str
    choices: tuple[str, str, str, str]
    answer: str


def load_gpqa(
    path: str | Path | None = None,
    *,
    hub: bool = False,
    config: str = DEFAULT_CONFIG,
    loader: Callable[..., Any] | None = None,
) -> tuple[ChoiceQuestion, ...]:
    """GPQA's questions from a local ``.jsonl``/``.csv`` file, or from the hub when ``hub`` is
    set (``loader`` replaces ``datasets.load_dataset``; it is called with the hub id, the config
    and ``split="train"``)."""
    if path is not None:
        return read_gpqa_file(Path(path))
    if hub:
        return _load_hub(config, loader)
    raise DataError(
        f"GPQA needs its data: a local JSONL or CSV file with the columns {QUESTION!r}, "
        f"{CORRECT!r}, {INCORRECT[0]!r}-3, or the hub ({HUB_ID}, gated: accept its terms, log in)"
    )


def read_gpqa_file(path: Path) -> tuple[ChoiceQuestion, ...]:
    """Questions of a JSONL or CSV file; a bad row is a DataError naming file and row."""
    if not path.is_file():
        raise DataError(f"GPQA file not found: {path}")
    if path.suffix == ".csv":
        rows = ((f"{path}: row {n}", row) for n, row in enumerate(_read_csv(path), start=2))
    elif path.suffix == ".jsonl":
        rows = ((f"{path}:{n}", row) for n, row in iter_jsonl(path))
    else:
        raise DataError(f"{path}: expected a .jsonl or .csv file of GPQA questions")
    return _questions(rows, path)


def _read_csv(path: Path) -> list[dict[str, Any]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            return list(csv.DictReader(stream))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read {path}: {error}") from None


def _load_hub(config: str, loader: Callable[..., Any] | None) -> tuple[ChoiceQuestion, ...]:
    where = f"hub:{HUB_ID} ({config})"
    try:
        if loader is None:
            from datasets import load_dataset as loader
        rows = list(loader(HUB_ID, config, split="train"))
    except Exception as error:  # any failure of the hub is one line, never its traceback
        text = str(error).strip().splitlines()
        reason = text[0][:200] if text else type(error).__name__
        raise DataError(
            f"GPQA is not available from the hub ({HUB_ID}, {config}): {reason}; it is gated: "
            "accept its terms on the hub and log in (HF_TOKEN), or pass a local JSONL/CSV file"
        ) from None
    return _questions(((f"{where} row {n}", row) for n, row in enumerate(rows)), where)


def _questions(rows: Iterable[tuple[str, Any]], source: object) -> tuple[ChoiceQuestion, ...]:
    questions = []
    for index, (where, row) in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a row with GPQA's columns")
        values = []
        for column in (QUESTION, CORRECT, *INCORRECT):
            value = row.get(column)
            if value is None or str(value).strip() == "":
                problem = "missing" if column not in row else "empty"
                raise DataError(f"{where}: column {column!r} is {problem}")
            values.append(str(value).strip())
        record = str(row.get(RECORD_ID) or "").strip() or f"gpqa-{index}"
        questions.append(ChoiceQuestion(record, values[0], values[1], tuple(values[2:])))  # type: ignore[arg-type]
    if not questions:
        raise DataError(f"{source}: no GPQA questions")
    return tuple(questions)


def shuffle_choices(question: ChoiceQuestion, seed: int = 0) -> ShuffledQuestion:
    """The question's choices in its fixed order for ``seed`` (see the module docstring)."""
    digest = hashlib.sha256(f"{seed}\0{question.question}".encode()).digest()
    order = _ORDERS[int.from_bytes(digest[:8], "big") % len(_ORDERS)]
    answers = (question.correct, *question.incorrect)
    choices = tuple(answers[i] for i in order)
    return ShuffledQuestion(question.id, question.question, choices, LETTERS[order.index(0)])  # type: ignore[arg-type]


def gpqa_problem(shuffled: ShuffledQuestion) -> str:
    """The question followed by its choices, one a line: ``A) ...`` to ``D) ...``."""
    lines = [
        f"{letter}) {choice}" for letter, choice in zip(LETTERS, shuffled.choices, strict=True)
    ]
    return shuffled.question + "\n\n" + "\n".join(lines)


def gpqa_prompt(shuffled: ShuffledQuestion, template: str = TEMPLATE) -> str:
    """The problem text in ``template`` (``{problem}``; default: the paper's math template
    asking for the letter in a box)."""
    return template.replace("{problem}", gpqa_problem(shuffled))
