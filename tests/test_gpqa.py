"""GPQA: questions from a local file in the dataset's own columns (made-up ones in
tests/fixtures: epx ships no real question) or from the hub, one line when they cannot be had,
choices shuffled with a fixed seed per question, and the prompt listing them as A-D."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from epx.errors import DataError
from epx.ood.gpqa import (
    HUB_ID,
    ChoiceQuestion,
    gpqa_problem,
    gpqa_prompt,
    load_gpqa,
    shuffle_choices,
)
from epx.scoring.choice import score_letter

FIXTURES = Path(__file__).parent / "fixtures"
JSONL = FIXTURES / "gpqa_made_up.jsonl"
CSV = FIXTURES / "gpqa_made_up.csv"


def test_a_jsonl_file_in_the_datasets_columns_gives_its_questions():
    questions = load_gpqa(JSONL)
    assert [q.id for q in questions] == [f"made-up-{i}" for i in range(1, 7)]
    first = questions[0]
    assert first.correct == "It doubles"
    assert first.incorrect == ("It halves", "It stays the same", "It quadruples")


def test_a_csv_of_the_release_with_more_columns_and_multiline_fields_gives_the_same():
    assert load_gpqa(CSV) == load_gpqa(JSONL)[:3]


def test_a_row_without_an_id_is_numbered(tmp_path: Path):
    row = json.loads(JSONL.read_text().splitlines()[0])
    del row["Record ID"]
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    assert [q.id for q in load_gpqa(path)] == ["gpqa-0", "gpqa-1"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Incorrect Answer 2": None}, r"q.jsonl:1: column 'Incorrect Answer 2' is missing"),
        ({"Correct Answer": "  "}, r"q.jsonl:1: column 'Correct Answer' is empty"),
    ],
)
def test_a_bad_row_is_one_line_naming_file_row_and_column(tmp_path: Path, change, message):
    row = json.loads(JSONL.read_text().splitlines()[0])
    for column, value in change.items():
        if value is None:
            del row[column]
        else:
            row[column] = value
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=message):
        load_gpqa(path)


def test_a_csv_row_is_named_by_its_row_number(tmp_path: Path):
    path = tmp_path / "q.csv"
    text = CSV.read_text().replace(",It halves,", ",,", 1)  # the first question's first wrong one
    path.write_text(text)
    with pytest.raises(DataError, match=r"q.csv: row 2: column 'Incorrect Answer 1' is empty"):
        load_gpqa(path)


def test_no_data_at_all_says_where_it_can_come_from():
    with pytest.raises(DataError, match="local JSONL or CSV file") as error:
        load_gpqa()
    assert HUB_ID in str(error.value) and "\n" not in str(error.value)


def test_the_hub_unreachable_is_one_line_not_a_traceback(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the real datasets.load_dataset, without network
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError) as error:
        load_gpqa(hub=True)
    message = str(error.value)
    assert message.startswith(f"GPQA is not available from the hub ({HUB_ID}, gpqa_diamond): ")
    assert "gated" in message and "\n" not in message


def test_a_gated_refusal_is_one_line():
    def refuse(*args, **kwargs):
        raise PermissionError("Dataset 'Idavidrein/gpqa' is a gated dataset on the Hub.\nVisit ...")

    with pytest.raises(DataError, match=r"gpqa_main\): Dataset 'Idavidrein/gpqa' is a gated"):
        load_gpqa(hub=True, config="gpqa_main", loader=refuse)


def test_hub_rows_are_read_with_the_datasets_columns():
    calls = []
    rows = [json.loads(line) for line in JSONL.read_text().splitlines()]

    def loader(*args, **kwargs):
        calls.append((args, kwargs))
        return rows

    assert load_gpqa(hub=True, loader=loader) == load_gpqa(JSONL)
    assert calls == [((HUB_ID, "gpqa_diamond"), {"split": "train"})]


def test_a_questions_choices_are_shuffled_by_a_fixed_order():
    first = load_gpqa(JSONL)[0]
    shuffled = shuffle_choices(first, seed=0)
    # sha256("0\0" + question)[:8] mod 24 = 7: the 8th of itertools.permutations(range(4)),
    # (1, 0, 3, 2): A = incorrect 1, B = correct, C = incorrect 3, D = incorrect 2
    assert shuffled.choices == ("It halves", "It doubles", "It quadruples", "It stays the same")
    assert shuffled.answer == "B"
    assert shuffle_choices(first, seed=0) == shuffled  # the same every time


def test_the_correct_letter_spreads_evenly_over_a_to_d():
    made_up = [
        ChoiceQuestion(str(i), f"Made-up question number {i}?", "right", ("w1", "w2", "w3"))
        for i in range(2400)
    ]
    shuffled = [shuffle_choices(q, seed=0) for q in made_up]
    letters = collections.Counter(s.answer for s in shuffled)
    # 600 expected per letter, standard deviation sqrt(2400 * 1/4 * 3/4) = 21.2: within 3 of them
    assert set(letters) == set("ABCD")
    assert all(536 <= count <= 664 for count in letters.values()), letters
    assert len({s.choices for s in shuffled}) == 24  # every order occurs
    other_seed = [shuffle_choices(q, seed=1).choices for q in made_up]
    assert sum(a.choices != b for a, b in zip(shuffled, other_seed, strict=True)) > 2000


def test_the_prompt_lists_the_choices_as_a_to_d_and_asks_for_the_letter():
    shuffled = shuffle_choices(load_gpqa(JSONL)[0], seed=0)
    assert gpqa_problem(shuffled) == (
        "A made-up ideal gas is held at constant volume while its absolute temperature doubles. "
        "By what factor does its pressure change?\n\n"
        "A) It halves\nB) It doubles\nC) It quadruples\nD) It stays the same"
    )
    prompt = gpqa_prompt(shuffled)
    assert prompt.startswith(gpqa_problem(shuffled) + "\nPlease reason step by step")
    assert prompt.endswith("put the letter of your final answer (A, B, C or D) within \\boxed{}.")
    assert gpqa_prompt(shuffled, "Q: {problem}\nA:") == f"Q: {gpqa_problem(shuffled)}\nA:"


def test_each_made_up_question_is_scored_by_its_shuffled_letter():
    for question in load_gpqa(JSONL):
        shuffled = shuffle_choices(question, seed=0)
        right = shuffled.answer
        wrong = next(letter for letter in "ABCD" if letter != right)
        assert score_letter(f"So the answer is \\boxed{{{right}}}.", right).correct
        assert not score_letter(f"So the answer is \\boxed{{{wrong}}}.", right).correct
