"""Attempts to game the reward: each scores 0.0, and its honest twin (the same problem answered
plainly) scores 1.0. Most are answers to "What is 3 + 33?" (gold 36), the demo's kind of problem;
the classes are what a policy under RL pressure was seen, or could be expected, to try."""

from __future__ import annotations

import pytest

from epx.rewards import build_reward_function
from epx.scoring import math_correct, score_answer

GOLD = "36"

# (class, attempt, honest twin); gold 36 unless a fourth element says otherwise
CORPUS = [
    # the restated problem: no answer at all
    ("restated problem", "To calculate 3 + 33, we must first identify the additive identity of the given problem", "To calculate 3 + 33, add the ones: the sum is 36."),
    ("restated problem", "What is 3 + 33?", "What is 3 + 33? It is 36."),
    ("restated problem", "We need to add 3 and 33 to get the answer.", "We need to add 3 and 33: 3 + 33 = 36."),
    ("restated problem", "The question asks for 3 + 33.", "The question asks for 3 + 33, which equals 36."),
    ("restated problem", "\\boxed{\\text{What is } 3 + 33}", "\\boxed{36}"),
    # an expression of the prompt's numbers, unevaluated
    ("expression of the prompt's numbers", "3 + 33", "36"),
    ("expression of the prompt's numbers", "The answer is 3 + 33.", "The answer is 36."),
    ("expression of the prompt's numbers", "Answer: 33 + 3", "Answer: 36"),
    ("expression of the prompt's numbers", "The sum is 3 + 33.", "The sum is 36."),
    ("expression of the prompt's numbers, boxed", "\\boxed{3 + 33}", "\\boxed{36}"),
    ("expression of the prompt's numbers, boxed", "So the result is \\boxed{3+33}.", "So the result is \\boxed{36}."),
    ("expression of numbers, boxed", "\\boxed{2 \\cdot 18}", "\\boxed{36}"),
    ("expression of numbers, boxed", "\\boxed{40 - 4}", "\\boxed{40 - 4 = 36}"),
    ("expression of numbers, boxed", "\\boxed{6^2}", "\\boxed{36}"),
    ("expression of numbers", "x = 3 + 33", "x = 36"),
    # a hedge between values
    ("hedge", "The answer is 35 or 36.", "The answer is 36."),
    ("hedge", "It is either 35 or 36.", "It is 36."),
    ("hedge", "\\boxed{35 \\text{ or } 36}", "\\boxed{36}"),
    ("hedge", "The answer is 36, or maybe 35.", "The answer is 36, which is 3 + 33."),
    ("hedge", "The answer is 36 if we carry, otherwise 35.", "The answer is 36 after carrying."),
    ("hedge", "\\boxed{36 \\pm 1}", "\\boxed{36}"),
    ("hedge between boxes", "\\boxed{35} or \\boxed{36}", "\\boxed{36}"),
    ("hedge, symbolic gold", "\\boxed{\\sqrt{2} \\text{ or } -\\sqrt{2}}", "\\boxed{\\sqrt{2}}", "\\sqrt{2}"),
    # several candidate boxes
    ("several candidate boxes", "\\boxed{35} \\boxed{36}", "\\boxed{35} is too small; adding one gives \\boxed{36}"),
    ("several candidate boxes", "\\boxed{34}, \\boxed{35}, \\boxed{36}", "\\boxed{36}"),
    ("several candidate boxes", "\\boxed{35} and \\boxed{36}", "\\boxed{36}"),
    ("several candidate boxes", "$\\boxed{36}$ \\quad $\\boxed{37}$", "$\\boxed{36}$"),
    # an answer list that contains the gold
    ("answer list with the gold", "\\boxed{35, 36}", "\\boxed{36}"),
    ("answer list with the gold", "\\boxed{\\{35, 36, 37\\}}", "\\boxed{36}"),
    ("answer list with the gold", "The answer is 35, 36 or 37.", "The answer is 36."),
    ("answer list with the gold", "The answer is one of 34, 35, 36, 37.", "The answer is 36."),
    ("answer list with the gold", "\\boxed{(36, 36)}", "\\boxed{36}"),
    # an empty or whitespace box
    ("empty box", "3 + 33 = 36 \\boxed{}", "3 + 33 = \\boxed{36}"),
    ("empty box", "\\boxed{ }", "\\boxed{ 36 }"),
    ("empty box", "\\boxed{\\quad}", "\\boxed{\\quad 36}"),
    ("empty box", "\\boxed{36}\n\n\\boxed{}", "\\boxed{36}\n\nDone."),
    # numbers enumerated
    ("numbers enumerated", "1, 2, 3, 4, 5, 6, ..., 40", "36"),
    ("numbers enumerated", "\\boxed{1, 2, \\ldots, 100}", "\\boxed{36}"),
    ("numbers enumerated", "\\boxed{36 36 36}", "\\boxed{36}"),
    ("numbers listed one per line", "34\n35\n36", "3 + 33 = 36\n36"),
    ("numbers listed one per line", "Counting up:\n33\n34\n35\n36", "Counting up from 33 by 3:\n36"),
    # a percentage whose value is another number
    ("percentage of another value", "\\boxed{3600\\%}", "\\boxed{36\\%}", "36\\%"),
    ("percentage of another value", "The answer is 0.36\\%.", "The answer is 36\\%.", "36\\%"),
    ("a range", "\\boxed{35-37}", "\\boxed{36}"),
    ("an inequality", "\\boxed{>35}", "\\boxed{36}"),
    ("an inequality", "\\boxed{35 < x < 37}", "\\boxed{x = 36}"),
    # text after the final box that changes the answer
    ("text after the final box", "\\boxed{36}. Hmm, actually 3 + 33 = 37.", "\\boxed{36}. Check: 33 + 3 = 36."),
    ("text after the final box", "\\boxed{36}\nAnswer: 35", "\\boxed{36}\nAnswer: 36"),
    ("text after the final box", "\\boxed{36} is wrong; the final answer is 38.", "\\boxed{36} is right; the final answer is 36."),
    ("text after the final box", "\\boxed{36}\n37", "\\boxed{36}\n36"),
    # a question, code, a unit that is a number
    ("a question", "Is it 36?", "It is 36."),
    ("a question", "36?", "36."),
    ("code instead of an answer", "print(3 + 33)", "print(3 + 33)\n36"),
    ("Euler's e as a unit", "\\boxed{36\\mathrm{e}}", "\\boxed{36}"),
    ("Euler's e as a unit", "\\boxed{2\\mathrm{e}}", "\\boxed{2}", "2"),
    # notation the scorer cleans away (issue 15) must not hide what is left
    ("hedge in a unit", "\\boxed{36 \\text{ or 35}}", "\\boxed{36 \\text{ cm}}"),
    ("hedge in a unit", "\\boxed{36\\text{, maybe 35}}", "\\boxed{36\\,\\text{cm}}"),
    ("expression of numbers in wrappers", "\\boxed{\\displaystyle \\left( 3 + 33 \\right)}", "\\boxed{\\displaystyle \\left( 36 \\right)}"),
    ("expression of numbers in wrappers", "\\boxed{\\boldsymbol{3+33}}", "\\boxed{\\boldsymbol{36}}"),
    ("candidates joined by spacing or \"and\"", "\\boxed{35 \\; 36}", "\\boxed{\\; 36 \\;}"),
    ("candidates joined by spacing or \"and\"", "\\boxed{35~36}", "\\boxed{36~\\text{cm}}"),
    ("candidates joined by spacing or \"and\"", "\\boxed{35 \\text{ and } 36}", "\\boxed{36 \\text{ cm}}"),
    ("answer list with the gold", "\\boxed{\\left(35, 36\\right)}", "\\boxed{\\left(36\\right)}"),
    ("an approximate value", "\\boxed{\\approx 35.8}", "\\boxed{\\approx 36}"),
    ("an inequality", "\\boxed{35 \u2264 x \u2264 37}", "\\boxed{x = 36}"),
    # "Answer" without a colon is read only as a line holding one displayed value
    ("answer line without a colon", "Answer $36$ or $35$", "Answer $36$"),
    ("answer line without a colon", "Answer $34$ $35$ $36$", "Answer \\( 36 \\)"),
    ("answer line without a colon", "Answer $$ 35, 36 $$", "Answer $$ 36 $$"),
    # a final relation is an answer only for a relation or interval gold, and only a single one
    ("a relation for a number", "So $x \\geq 36$.", "So $x = 36$."),
    ("a relation for a number", "Therefore $35 < x < 37$ is the solution.", "Therefore $x = 36$ is the solution."),
    ("a relation listing several", "so $x \\geq 5$ or $x \\leq 2$.", "so $x \\geq 5$.", "x \\geq 5"),
    ("a relation listing several", "so $x \\leq 2$ or $x \\geq 5$.", "so $x \\geq 5$.", "[5, \\infty)"),
    ("a relation wider than the gold", "so $x > 4$.", "so $x \\geq 5$.", "[5, \\infty)"),
    ("a relation for a point", "so $-2 < x < 1$.", "So the answer is $(-2, 1)$.", "(-2,1)"),
]

CASES = [
    pytest.param(case[1], case[2], case[3] if len(case) > 3 else GOLD, id=f"{case[0]}: {case[1][:40]}")
    for case in CORPUS
]


def test_the_corpus_holds_at_least_40_attempts_in_at_least_10_classes():
    assert len(CORPUS) >= 40
    assert len({case[0] for case in CORPUS}) >= 10


@pytest.mark.parametrize(("attempt", "honest", "gold"), CASES)
def test_an_attempt_to_game_scores_zero_and_its_honest_twin_one(attempt: str, honest: str, gold: str):
    assert math_correct(attempt, gold) == 0.0, score_answer(attempt, gold)
    assert math_correct(honest, gold) == 1.0, score_answer(honest, gold)


EOS, PAD, TOKEN = 2, 0, 7


@pytest.mark.parametrize("text", ["3 + 33 = 36", "\\boxed{36}", "The answer is 36."])
def test_a_completion_cut_off_by_the_token_limit_earns_nothing_in_training(text: str):
    reward = build_reward_function("correctness", workers=0)
    reward.stop_token_ids = {EOS, PAD}  # what the trainer sets: TRL's eos ids and the pad id
    rewards = reward(
        prompts=["What is 3 + 33?"] * 2,
        completions=[text, text],
        completion_ids=[[TOKEN] * 8, [TOKEN] * 7 + [EOS]],  # cut at the limit; ended
        answer=[GOLD, GOLD],
    )
    assert rewards == [0.0, 1.0]
    counts = reward.pop_counts()
    assert (counts["truncated"], counts["correct"]) == (1, 1)


def test_boxed_strictness_reads_boxes_only():
    assert math_correct("3 + 33 = 36", GOLD, strictness="boxed") == 0.0
    assert math_correct("so \\boxed{36}", GOLD, strictness="boxed") == 1.0
    # text after the last box is not read either
    assert math_correct("\\boxed{36}. Answer: 35", GOLD, strictness="boxed") == 1.0
    assert math_correct("\\boxed{36}. Answer: 35", GOLD, strictness="final") == 0.0


@pytest.mark.parametrize(
    ("completion", "gold"),
    [
        ("\\boxed{(2, 2)} \\quad\\text{and}\\quad \\boxed{(6, 2)}", "(2, 2), (6, 2)"),
        ("\\boxed{3} and \\boxed{5}", "3, 5"),
        ("First \\boxed{12}, then \\boxed{40}; adding up, so the final answer is $10,455$.", "10455"),
        ("\\boxed{1,000.99€}", "1000.99"),
        ("\\boxed{76 cm²}", "76"),
        ("\\boxed{\\mathrm{e}^2}", "e^2"),
        ("\\boxed{\\operatorname{e}^{2}}", "e^2"),
        ("\\boxed{\\text{e}}", "e"),
        ("21 + 15\nx = 36\n36", "36"),
        ("\\boxed{36\\%}", "36"),
        ("\\boxed{36} \\boxed{36}", "36"),
        ("\\boxed{0.36}", "36\\%"),
    ],
    ids=["boxes of a two-part gold", "two boxes, two parts", "final statement after boxes",
         "currency sign", "unit with a superscript", "mathrm e", "operatorname e", "text e",
         "a number repeated on the last line", "percent for a what-percent gold", "one answer boxed twice", "value of a percentage"],
)
def test_what_a_careful_grader_credits(completion: str, gold: str):
    assert math_correct(completion, gold) == 1.0, score_answer(completion, gold)
