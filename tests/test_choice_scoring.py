"""The letter scorer of multiple-choice answers (GPQA): the forms of a final letter it reads, and a
gaming corpus: each attempt scores 0 and its honest twin (the same answer given plainly) scores
1. Most answer a made-up question whose correct choice is C, "A) 2.4 eV  B) 3.1 eV  C) 4.2 eV
D) 5.0 eV"; the classes are what a policy under RL pressure could be expected to try."""

from __future__ import annotations

import pytest

from epx.scoring.choice import LetterAnswer, final_letter, score_letter

GOLD = "C"


@pytest.mark.parametrize(
    ("completion", "letter", "source"),
    [
        ("The gap is 4.2 eV, so \\boxed{C}", "C", "box"),
        ("\\boxed{(C)}", "C", "box"),
        ("\\boxed{\\text{C}}", "C", "box"),
        ("$\\boxed{\\textbf{(C)}}$", "C", "box"),
        ("\\boxed{C) 4.2 eV}", "C", "box"),
        ("\\boxed{C} \\boxed{C}", "C", "box"),  # one letter boxed twice
        ("Answer: C", "C", "statement"),
        ("**Answer:** (C)", "C", "statement"),
        ("The answer is (C).", "C", "statement"),
        ("The correct answer is C because the gap is 4.2 eV.", "C", "statement"),
        ("The correct option is C.", "C", "statement"),
        ("Final Answer: C) 4.2 eV", "C", "statement"),
        ("Option C is correct.", "C", "statement"),
        ("Only 4.2 eV fits, so we pick (C).", "C", "statement"),
        ("4.2 eV fits.\n\nC", "C", "line"),
        ("4.2 eV fits.\n**C**", "C", "line"),
        ("4.2 eV fits.\n(C)", "C", "statement"),  # a closing parenthesis
        ("\\boxed{B}\nOn reflection B is too small.\nAnswer: C", "C", "statement"),
        ("Answer: C. Option A is also wrong.", "C", "statement"),
    ],
)
def test_the_final_letter_is_read_in_each_of_its_forms(completion, letter, source):
    assert final_letter(completion) == LetterAnswer(letter, source)


def test_the_score_says_correct_wrong_or_unparsed_and_keys_votes_by_letter():
    assert score_letter("Answer: C", GOLD).status == "correct"
    assert score_letter("Answer: C", GOLD).key == "C"
    wrong = score_letter("Answer: D", GOLD)
    assert (wrong.status, wrong.answer, wrong.key) == ("wrong", "D", "D")
    hedge = score_letter("Answer: C or D", GOLD)
    assert (hedge.status, hedge.key) == ("wrong", None)  # a hedge never wins a vote
    assert score_letter("The gap is 4.2 eV.", GOLD).status == "unparsed"


def test_other_letter_sets_work_and_a_gold_outside_them_is_an_error():
    assert score_letter("Answer: F", "F", letters="ABCDEFGHIJ").correct
    assert score_letter("Answer: F", "C").status == "unparsed"  # F is no choice of A-D
    with pytest.raises(ValueError, match="gold must be one of A, B, C, D"):
        score_letter("Answer: C", "E")


# (class, attempt, honest twin); gold C unless a fourth element says otherwise
CORPUS = [
    # every letter listed
    ("every letter listed", "A, B, C, D", "C"),
    ("every letter listed", "Answer: A, B, C, D", "Answer: C"),
    ("every letter listed", "The answer is A, B, C or D.", "The answer is C."),
    ("every letter listed", "\\boxed{A}\\boxed{B}\\boxed{C}\\boxed{D}", "\\boxed{C}"),
    ("every letter listed", "\\boxed{A, B, C, D}", "\\boxed{C}"),
    ("every letter listed", "A\nB\nC\nD", "4.2 eV\nC"),
    ("every letter listed", "ABCD", "C"),
    # a hedge between two letters
    ("hedge", "Answer: B or C", "Answer: C"),
    ("hedge", "The answer is either B or C.", "The answer is C."),
    ("hedge", "B or C", "C"),
    ("hedge", "\\boxed{B} or \\boxed{C}", "\\boxed{C}"),
    ("hedge", "\\boxed{B \\text{ or } C}", "\\boxed{C}"),
    ("hedge", "So we pick (B) or (C).", "So we pick (C)."),
    ("hedge", "B or C is correct.", "C is correct, so the answer is C."),
    ("hedge", "Answer: C, maybe B.", "Answer: C, since B is too small."),
    ("hedge", "\\boxed{C} (or possibly B)", "\\boxed{C} (4.2 eV)"),
    ("hedge", "Answer: C. It could also be D.", "Answer: C. It could not be D."),
    # a list of letters
    ("list of letters", "Answer: B and C", "Answer: C"),
    ("list of letters", "Answer: B/C", "Answer: C"),
    ("list of letters", "\\boxed{B}, \\boxed{C}", "\\boxed{C}"),
    ("list of letters", "\\boxed{B, C}", "\\boxed{C}"),
    ("list of letters", "4.2 eV\nB\nC", "4.2 eV\nC"),
    # the first choice restated, with or without its letter
    ("first choice restated", "A) 2.4 eV", "Answer: A) 2.4 eV", "A"),
    ("first choice restated", "The answer is 2.4 eV.", "The answer is (A) 2.4 eV.", "A"),
    ("first choice restated", "\\boxed{2.4 \\text{ eV}}", "\\boxed{A}", "A"),
    ("choice text without its letter", "The answer is 4.2 eV.", "The answer is C: 4.2 eV."),
    ("choice text without its letter", "\\boxed{4.2}", "\\boxed{C}"),
    (
        "a choice starting with A",
        "The answer is A decrease in pressure.",
        "The answer is (A), a decrease in pressure.",
        "A",
    ),
    # the prompt's choices echoed
    (
        "choices echoed",
        "A) 2.4 eV\nB) 3.1 eV\nC) 4.2 eV\nD) 5.0 eV",
        "A) 2.4 eV\nB) 3.1 eV\nC) 4.2 eV\nD) 5.0 eV\nAnswer: C",
    ),
    # text after the final answer that changes it
    ("text after the final answer", "\\boxed{C}\nAnswer: B", "\\boxed{C}\nAnswer: C"),
    (
        "text after the final answer",
        "Answer: C.\n\nWait, actually the answer is B.",
        "Answer: B.\n\nWait, actually the answer is C.",
    ),
    ("text after the final answer", "\\boxed{C}\nB", "\\boxed{C}\nC"),
    # no letter at all
    ("a question", "Is it C?", "It is C.\nAnswer: C"),
    ("empty box", "\\boxed{}", "\\boxed{C}"),
    ("empty box", "\\boxed{C}\n\n\\boxed{ }", "\\boxed{C}\n\nDone."),
    ("a letter that is no choice", "Answer: E", "Answer: C"),
    ("lowercase letter in a sentence", "the answer is c", "the answer is C"),
]

CASES = [
    pytest.param(
        case[1], case[2], case[3] if len(case) > 3 else GOLD, id=f"{case[0]}: {case[1][:40]}"
    )
    for case in CORPUS
]


def test_the_corpus_holds_at_least_30_attempts_in_at_least_10_classes():
    assert len(CORPUS) >= 30
    assert len({case[0] for case in CORPUS}) >= 10


@pytest.mark.parametrize(("attempt", "honest", "gold"), CASES)
def test_an_attempt_to_game_the_letter_scores_zero_and_its_honest_twin_one(attempt, honest, gold):
    assert not score_letter(attempt, gold).correct, final_letter(attempt)
    assert score_letter(honest, gold).correct, final_letter(honest)
