"""Prompts and training data: the paper's instruction, chat templates, the built-in task."""

from __future__ import annotations

import itertools
import json
import random

import pytest

import epx.data
from epx.data import (
    HELD_OUT_SEED,
    _distinct_operand_tuples,
    _operands,
    arithmetic_held_out,
    arithmetic_problems,
    build_train_dataset,
    format_prompt,
    is_held_out,
    read_jsonl,
)
from epx.errors import DataError
from epx.recipe import ArithmeticTask, DataSection
from epx.tiny import build_tiny_tokenizer

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


class NoChatTemplate:
    chat_template = None


def test_paper_prompt_is_the_problem_then_the_instruction_verbatim():
    assert format_prompt("What is 2+2?", NoChatTemplate()) == f"What is 2+2?\n{INSTRUCTION}"


def test_chat_template_wraps_the_prompt_when_the_tokenizer_has_one():
    prompt = format_prompt("What is 2+2?", build_tiny_tokenizer(), system_prompt="Be brief.")
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        f"<|im_start|>user\nWhat is 2+2?\n{INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n"
    )
    plain = format_prompt("x", build_tiny_tokenizer(), "{problem}!", chat_template=False)
    assert plain == "x!"


def test_arithmetic_task_has_exact_answers_and_is_seeded():
    rows = arithmetic_problems(ArithmeticTask(digits=[2], terms=3, size=50), seed=3)
    for row in rows:
        numbers = [int(n) for n in row["problem"].removeprefix("What is ").rstrip("?").split(" + ")]
        assert len(numbers) == 3 and all(10 <= n <= 99 for n in numbers)
        assert row["answer"] == str(sum(numbers))
    assert rows == arithmetic_problems(ArithmeticTask(digits=[2], terms=3, size=50), seed=3)


def test_local_jsonl_with_other_field_names(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps({"q": f"P{i}", "a": str(i)}) for i in range(5)))
    cfg = DataSection(source=str(path), problem_field="q", answer_field="a", limit=3, shuffle=False)
    dataset = build_train_dataset(cfg, NoChatTemplate())
    assert dataset["answer"] == ["0", "1", "2"] and dataset["prompt"][0].startswith("P0\n")


def test_data_errors_name_file_line_and_fields(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "a", "answer": "1"}\n{"problem": \n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: malformed JSON line"):
        read_jsonl(bad)
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"question": "a", "answer": "1"}))
    with pytest.raises(
        DataError, match=r"good.jsonl:1: no field 'problem' \(its fields are question, answer"
    ):
        build_train_dataset(DataSection(source=str(good)), NoChatTemplate())
    with pytest.raises(DataError, match="unknown built-in task 'builtin:nope'"):
        build_train_dataset(DataSection(source="builtin:nope"), NoChatTemplate())


def operands(row: dict) -> tuple[int, ...]:
    return tuple(int(n) for n in row["problem"].removeprefix("What is ").rstrip("?").split(" + "))


@pytest.mark.parametrize(
    "task",
    [ArithmeticTask(), ArithmeticTask(digits=[1]), ArithmeticTask(max_value=25, held_out=0.2)],
    ids=["default", "one digit", "demo"],
)
def test_held_out_sums_never_occur_in_training_in_either_order(task: ArithmeticTask):
    held_out = arithmetic_held_out(task)
    held = {tuple(sorted(operands(row))) for row in held_out}
    for seed in (0, 1, 2):
        trained = {tuple(sorted(operands(row))) for row in arithmetic_problems(task, seed)}
        assert not held & trained
    assert len({operands(row) for row in held_out}) == len(held_out)  # distinct problems
    assert held_out == arithmetic_held_out(task)  # whatever the run's seed


def held_out_by_exhaustive_draws(task: ArithmeticTask, count: int = 200) -> list[tuple[int, ...]]:
    """The held-out operands as every draw of the fixed budget finds them (no early stop)."""
    rng = random.Random(HELD_OUT_SEED)
    found: list[tuple[int, ...]] = []
    for _ in range(count * 500):
        numbers = tuple(_operands(task, rng))
        if numbers not in found and is_held_out(list(numbers), task.held_out):
            found.append(numbers)
            if len(found) == count:
                break
    return found


@pytest.mark.parametrize(
    "task",
    [ArithmeticTask(digits=[1]), ArithmeticTask(digits=[1, 1], terms=3), ArithmeticTask(max_value=3, held_out=0.5),
     ArithmeticTask(max_value=25, held_out=0.2), ArithmeticTask(digits=[1, 2], terms=2, held_out=0.01)],
    ids=["one digit", "repeated digits", "max 3", "demo", "rare held-out"],
)  # fmt: skip
def test_stopping_once_every_tuple_was_drawn_keeps_the_same_problems(task: ArithmeticTask, monkeypatch):
    expected = held_out_by_exhaustive_draws(task)
    draws = []
    monkeypatch.setattr(epx.data, "_operands", lambda *args: draws.append(1) or _operands(*args))
    assert [operands(row) for row in arithmetic_held_out(task)] == expected
    if _distinct_operand_tuples(task) <= 1_000:  # each tuple drawn long before the 100,000th draw
        assert len(draws) < 20_000


@pytest.mark.parametrize(
    ("task", "values"),
    [(ArithmeticTask(digits=[1]), range(10)), (ArithmeticTask(digits=[2, 1, 2]), range(100)),
     (ArithmeticTask(digits=[3], terms=2), range(100, 1000)), (ArithmeticTask(max_value=25), range(26))],
    ids=["one digit", "repeated digits", "three digits", "max 25"],
)  # fmt: skip
def test_the_count_of_distinct_operand_tuples_is_what_the_draws_can_reach(task: ArithmeticTask, values):
    assert _distinct_operand_tuples(task) == sum(1 for _ in itertools.product(values, repeat=task.terms))


def test_the_demo_task_holds_out_at_least_100_problems_of_its_range():
    rows = arithmetic_held_out(ArithmeticTask(max_value=25))
    assert len(rows) >= 100
    assert all(0 <= n <= 25 for row in rows for n in operands(row))


def test_held_out_is_decided_by_the_sorted_operands():
    for numbers in ([3, 33], [17, 4], [0, 25]):
        assert is_held_out(numbers, 0.5) == is_held_out(numbers[::-1], 0.5)
    share = sum(is_held_out([a, b], 0.2) for a in range(60) for b in range(a, 60)) / 1830
    assert 0.15 < share < 0.25  # 1,830 unordered pairs, about a fifth held out
