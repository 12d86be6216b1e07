"""score_answer's extraction rules (last box, garbage) and the TRL-shaped reward functions."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epx.errors import RecipeError
from epx.rewards import REWARD_FUNCTIONS, RewardFunction, build_reward_function, overlong_penalty
from epx.scoring import Score, answer_key, math_correct, score_answer
from epx.scoring.extract import last_box
from epx.scoring.normalize import clean_answer

# ---- extraction: the last box -------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        # a final run of boxes is one answer of several parts: right for a two-part gold only
        ("\\boxed{3}, \\boxed{5}", "5", 0.0),
        ("\\boxed{3}, \\boxed{5}", "3", 0.0),
        ("\\boxed{3} and \\boxed{5}", "3, 5", 1.0),
        ("\\boxed{3}, then adding 2 gives \\boxed{5}", "5", 1.0),  # text between: the last box
        ("First \\boxed{12} is a guess; checking again gives 13, so \\boxed{13}.", "13", 1.0),
        ("First \\boxed{12} is a guess; checking again gives 13, so \\boxed{13}.", "12", 0.0),
        ("The answer is \\fbox{7}.", "7", 1.0),
        ("So \\boxed{\\frac{1}{2}}.", "0.5", 1.0),  # nested braces
        ("So \\boxed{\\left\\{1, 2\\right\\}}.", "1,2", 1.0),  # escaped braces inside
        ("$\\boxed{x = \\boxed{4}}$", "4", 1.0),
        ("We get 23 + 48 = 71.", "71", 1.0),  # no box: a closing "= X" is a final statement
    ],
)
def test_the_answer_is_the_last_box(completion: str, gold: str, expected: float):
    assert math_correct(completion, gold) == expected


def test_last_box_returns_content_and_whether_a_box_was_seen():
    assert last_box("a \\boxed{1} b \\fbox{\\frac{2}{3}} c") == ("\\frac{2}{3}", True)
    assert last_box("no box") == (None, False)
    assert last_box("\\boxed{1} then \\boxed{2") == (None, True)  # truncated final box


BRACE_FREE = st.text(alphabet=st.characters(blacklist_characters="{}\\"), max_size=40)


@given(before=st.text(max_size=60), inner=BRACE_FREE, after=BRACE_FREE)
def test_last_box_finds_a_final_box_after_any_text(before: str, inner: str, after: str):
    content, found = last_box(f"{before} \\boxed{{{{{inner}}}}} {after}")
    assert found and content == f"{{{inner}}}"


def test_score_reports_answer_text_and_boxed():
    assert score_answer("so \\boxed{ 42 }.", "42") == Score("correct", "42", True, "n:42")
    unboxed = score_answer("The sum is 23 + 48 = 71", "71")
    assert (unboxed.status, unboxed.boxed) == ("correct", False)


def test_clean_answer_rewrites_what_math_verify_misreads():
    assert clean_answer("4.5e33") == "4.5\\times 10^{33}"
    assert clean_answer("6.5e-2") == "6.5\\times 10^{-2}"
    assert clean_answer("3e^{-2t}") == "3e^{-2t}"  # e as Euler's number stays
    assert clean_answer("27\\,648") == clean_answer("27 648") == "27648"
    assert clean_answer("$-1./3$.") == "-1/3"
    assert clean_answer("5.4 \\text{ cents}") == "5.4"
    assert clean_answer("\\text{(C)}") == "\\text{(C)}"  # nothing before it: not a unit


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("\\displaystyle \\frac{14}{3}", "\\frac{14}{3}"),
        ("\\textstyle 9", "9"),
        ("\\cfrac{14}{3}", "\\frac{14}{3}"),
        ("{14 \\over 3}", "\\frac{14 }{ 3}"),
        ("\\overline{AB}", "\\overline{AB}"),
        ("x \\in \\{1, 3\\}", "\\{1, 3\\}"),
        ("\\boldsymbol{x \\in [-2,7]}", "[-2,7]"),  # the edge rules see inside the wrapper
        ("\\left( 9 \\right)", "9"),
        ("(9)", "9"),
        ("(a+5)(b+2)", "(a+5)(b+2)"),  # two groups: no outer parentheses
        ("\\left(3,4\\right]", "(3,4]"),
        ("\\bigl(6,31\\bigr)", "(6,31)"),
        ("\\Big(6,31\\Big)", "(6,31)"),
        ("\\left\\lfloor x \\right\\rfloor", "\\lfloor x \\rfloor"),
        ("(6, \\, 31, \\, -1)", "(6, 31, -1)"),
        ("\\; 9 \\!", "9"),
        ("9\\textnormal{ cm}", "9"),
        ("9~\\text{cm}", "9"),
        ("44 \\mathrm{~km} \\mathrm{~s}^{-1}", "44"),
        ("(45 \\text{ degrees}, 60 \\text{ degrees})", "(45, 60)"),
        ("36 \\text{ or 35}", "36 \\text{ or 35}"),  # a hedge is no unit
        ("9\\$", "9"),
        ("\\$9", "9"),
        ("\\frac{-35}{9}", "-\\frac{35}{9}"),
        ("\\frac{-1+\\sqrt{5}}{2}", "\\frac{-1+\\sqrt{5}}{2}"),  # a sum's sign stays
        ("(-1)/1997", "-1/1997"),
        ("f(-1)/2", "f(-1)/2"),  # an argument is no numerator
        ("\\boldsymbol{9}", "9"),
        ("2\\mathbf{x+1}", "2{x+1}"),  # inside an answer the group is kept
        ("2\\,220", "2220"),
        ("1, 3, \\text{and } 5", "1, 3, 5"),
        ("3 \\text{ and } 5", "3, 5"),
        ("\\text{east and west}", "\\text{east and west}"),  # "and" inside text stays
        ("\\approx 0.53", "0.53"),
        ("\u22122\u03c0", "-2\\pi"),
    ],
)
def test_clean_answer_removes_presentation_that_changes_nothing(raw: str, cleaned: str):
    assert clean_answer(raw) == cleaned


# ---- extraction: final statements without a box --------------------------------------------


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        # "Answer" and one displayed value on a line, no colon (math-verify's own test cases)
        ("Answer \\( 9 \\)", "9", 1.0),
        ("Answer $$ 9 $$", "9", 1.0),
        ("Answer $ 9 $", "9", 1.0),
        ("Answer \\[ \n 9 \n \\]", "9", 1.0),  # display math may span lines
        ("Answer $ \n 9 \n $", "9", 0.0),  # inline math may not
        ("**Final Answer** $\\frac{14}{3}$", "\\frac{14}{3}", 1.0),
        ("Answer $36$ or $35$", "36", 0.0),  # more than the value on the line: no answer line
        # a final relation after a concluding word, for a relation or an interval gold
        ("Therefore $x \\geq 5$ is the solution.", "x \\geq 5", 1.0),
        ("Since the function grows, so $x \\geq 5$.", "[5, \\infty)", 1.0),
        ("We find that $x \\lt 3$.", "(-\\infty, 3)", 1.0),
        ("Thus $x <= 2$ is our answer.", "x \\leq 2", 1.0),
        ("We find that $x \\neq 3$.", "x \\neq 3", 1.0),
        ("so $3 < x \\leq 4$.", "(3,4]", 1.0),
        ("Therefore $x < 5$ is the solution.", "x > 5", 0.0),
        ("The solution is $x \\leq 5$", "x \\geq 5", 0.0),
        ("\\boxed{5}. So $x \\geq 4$.", "5", 1.0),  # after a box a relation is a remark
        ("Therefore $x = 36$ is the solution.", "36", 1.0),  # the value ends with its math
    ],
)
def test_a_final_statement_without_a_colon_or_a_final_relation_is_the_answer(
    completion: str, gold: str, expected: float
):
    assert math_correct(completion, gold) == expected, score_answer(completion, gold)


# ---- garbage -------------------------------------------------------------------------------


def _noise(n: int) -> str:
    return bytes(random.Random(7).getrandbits(8) for _ in range(n)).decode("utf-8", "replace")


@pytest.mark.parametrize(
    "completion",
    [
        "",
        "   \n ",
        "The answer is \\boxed{",
        "\\boxed{5} but wait, the final answer is \\boxed{",
        "\\boxed{}",
        "\\boxed{   }",
        "word " * 200_000,  # 1 MB of text
        _noise(20_000),
        "\\boxed{\\frac{\\frac{\\frac{}{}}{}}{}}",
    ],
    ids=[
        "empty",
        "spaces",
        "unclosed",
        "final-unclosed",
        "empty-box",
        "blank-box",
        "1MB",
        "noise",
        "empty-fracs",
    ],
)
def test_garbage_scores_zero_without_raising(completion: str):
    score = score_answer(completion, "5")
    assert score.status in ("unparsed", "wrong")
    assert math_correct(completion, "5") == 0.0


def test_answer_key_groups_equivalent_forms():
    keys = {answer_key(f"so \\boxed{{{a}}}") for a in ["0.5", "\\frac12", "1/2", "\\frac{1}{2}"]}
    assert len(keys) == 1
    assert answer_key("\\boxed{2}") != answer_key("\\boxed{3}")
    assert answer_key("no answer at all") is None


# ---- reward functions ----------------------------------------------------------------------


def test_registry_holds_the_three_rewards():
    assert set(REWARD_FUNCTIONS) == {"correctness", "format", "overlong"}


def test_unknown_name_lists_known_ones_and_the_nearest():
    with pytest.raises(RecipeError) as error:
        build_reward_function("corectness")
    message = str(error.value)
    assert "correctness, format, overlong" in message and "did you mean 'correctness'" in message


def test_unknown_or_bad_parameter_is_a_recipe_error():
    with pytest.raises(RecipeError, match=r"'timeot'.*did you mean 'timeout'"):
        build_reward_function("correctness", timeot=5)
    with pytest.raises(RecipeError, match="timeout must be > 0"):
        build_reward_function("correctness", timeout=0)
    with pytest.raises(RecipeError, match=r"buffer \(1024\) must be < max_length \(512\)"):
        build_reward_function("overlong", max_length=512)


def trl_call(fn: RewardFunction, completions: list, answers: list | None = None, **extra):
    """Call a reward the way TRL 1.16's _calculate_rewards does."""
    metrics: list[tuple[str, float]] = []
    columns = {} if answers is None else {"answer": answers}
    rewards = fn(
        prompts=["p"] * len(completions),
        completions=completions,
        completion_ids=extra.pop("completion_ids", [[1]] * len(completions)),
        trainer_state=None,
        log_extra=lambda column, values: None,
        log_metric=lambda name, value: metrics.append((name, value)),
        problem=["q"] * len(completions),
        **columns,
    )
    return rewards, dict(metrics)


def test_correctness_pays_for_the_right_answer_and_counts_outcomes():
    fn = build_reward_function("correctness", workers=1)
    assert isinstance(fn, RewardFunction) and fn.__name__ == "correctness"
    completions = ["so \\boxed{4}", "so \\boxed{5}", "no answer here", "\\boxed{}"]
    rewards, metrics = trl_call(fn, completions, ["4", "4", "4", "4"])
    assert rewards == [1.0, 0.0, 0.0, 0.0]
    assert metrics == {
        "reward/correctness/failures": 0.0,
        "reward/correctness/timeouts": 0.0,
        "reward/correctness/unparsed": 2.0,
        "reward/correctness/truncated": 0.0,
    }
    counts = fn.pop_counts()
    assert counts == {
        "total": 4, "correct": 1, "failures": 0, "timeouts": 0, "unparsed": 2, "truncated": 0
    }
    assert fn.pop_counts()["total"] == 0  # popped
    assert fn.totals["total"] == 4  # cumulative


def test_conversational_completions_use_the_last_assistant_message():
    fn = build_reward_function("correctness", workers=1)
    chat = [
        [
            {"role": "assistant", "content": "draft \\boxed{1}"},
            {"role": "assistant", "content": "\\boxed{2}"},
        ],
        [{"role": "assistant", "content": [{"type": "text", "text": "so \\boxed{3}"}]}],
    ]
    rewards, _ = trl_call(fn, chat, ["2", "3"])
    assert rewards == [1.0, 1.0]


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text here")


def test_a_completion_that_cannot_be_read_is_a_failure_not_an_exception():
    fn = build_reward_function("correctness", workers=1)
    rewards, metrics = trl_call(fn, ["\\boxed{1}", Unprintable()], ["1", "1"])
    assert rewards == [1.0, 0.0]
    assert metrics["reward/correctness/failures"] == 1.0
    rewards, _ = trl_call(fn, ["\\boxed{1}"], answers=None)  # no answer column at all
    assert rewards == [0.0]
    assert fn.pop_counts()["failures"] == 2


def test_format_pays_only_for_a_parseable_non_empty_box():
    fn = build_reward_function("format", workers=1)
    completions = [
        "so \\boxed{17}",  # right: 1
        "so \\boxed{18}",  # wrong but well formed: 1
        "so \\boxed{}",  # the empty-box hack: 0
        "so \\boxed{ }",
        "so \\boxed{17",  # unclosed: 0
        "so it is 17",  # no box: 0
        "so \\boxed{?!}",  # no mathematical object: 0
    ]
    rewards, _ = trl_call(fn, completions, ["17"] * len(completions))
    assert rewards == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("length", "expected"),
    [(10, 0.0), (15, 0.0), (16, -0.2), (18, -0.6), (20, -1.0), (21, -1.0), (400, -1.0)],
)
def test_overlong_penalty_by_hand(length: int, expected: float):
    # max_length 20, buffer 5: free up to 15; then (15 - L) / 5; beyond 20: -1
    assert overlong_penalty(length, max_length=20, buffer=5) == pytest.approx(expected)


@given(
    lengths=st.lists(st.integers(0, 300), min_size=2, max_size=2),
    max_length=st.integers(2, 200),
    factor=st.floats(0, 10),
    data=st.data(),
)
def test_overlong_penalty_is_monotone_and_bounded(lengths, max_length, factor, data):
    buffer = data.draw(st.integers(1, max_length - 1))
    short, long = sorted(lengths)
    penalty = [overlong_penalty(n, max_length, buffer, factor) for n in (short, long)]
    assert -factor <= penalty[1] <= penalty[0] <= 0.0


def test_overlong_reward_reads_completion_ids_and_takes_its_limit_from_the_trainer():
    fn = build_reward_function("overlong", buffer=5, factor=0.5)
    assert fn.max_length is None
    rewards, _ = trl_call(fn, ["a", "b"], completion_ids=[[0] * 15, [0] * 18])
    assert rewards == [0.0, 0.0] and fn.pop_counts()["failures"] == 2  # no limit yet
    fn.max_length = 20  # what the trainer does with max_completion_length
    rewards, _ = trl_call(fn, ["a", "b", "c"], completion_ids=[[0] * 15, [0] * 18, [0] * 21])
    assert rewards == pytest.approx([0.0, -0.3, -0.5])
    assert fn.pop_counts() == {
        "total": 3,
        "correct": 0,
        "failures": 0,
        "timeouts": 0,
        "unparsed": 0,
        "truncated": 0,
        "penalized": 2,
    }
    with pytest.raises(RecipeError):
        fn.max_length = 5  # buffer 5 must stay below it


def test_quiet_libraries_hides_library_warnings_but_not_the_users():
    import warnings

    from epx.quiet import quiet_libraries

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_libraries()
        warnings.warn_explicit("deprecated inside", FutureWarning, "training_args.py", 1,
                               module="transformers.training_args")  # fmt: skip
        warnings.warn("the user's own warning", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["the user's own warning"]
