"""Prompts and training data: the paper's instruction, chat templates, the built-in task."""

from __future__ import annotations

import json

import pytest

from epx.data import arithmetic_problems, build_train_dataset, format_prompt, read_jsonl
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
        DataError, match=r"field\(s\) problem not in .*its fields are question, answer"
    ):
        build_train_dataset(DataSection(source=str(good)), NoChatTemplate())
    with pytest.raises(DataError, match="unknown built-in task 'builtin:nope'"):
        build_train_dataset(DataSection(source="builtin:nope"), NoChatTemplate())
