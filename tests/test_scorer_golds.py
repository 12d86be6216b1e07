"""The scorer against the shared benchmark golds: every gold scores 1, wrong numbers score 0, and
each notation that occurs in the golds means its value (hand-written equivalents and near misses,
never gold-vs-gold only)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from notation_corpus import load_golds

from epx.scoring import score_answer, score_many

WRONG = "987654321.5"
INTEGER = re.compile(r"-?\d+")


def sentence(answer: str) -> str:
    return f"Putting the steps together, so the final answer is \\boxed{{{answer}}}."


@pytest.fixture(scope="module")
def gold_scores(data_dir: Path) -> dict[str, tuple[str, object, object]]:
    """id -> (gold, Score of the boxed gold, Score of a wrong number), all in one pool call."""
    golds = load_golds(data_dir)
    wrong = [str(int(g) + 1) if INTEGER.fullmatch(g) else WRONG for _, g in golds]  # gold+1
    pairs = [(sentence(g), g) for _, g in golds] + [
        (sentence(w), g) for w, (_, g) in zip(wrong, golds, strict=True)
    ]
    scores = score_many(pairs, workers=2)
    n = len(golds)
    return {i: (g, scores[k], scores[n + k]) for k, (i, g) in enumerate(golds)}


def test_the_shared_files_hold_1629_golds(gold_scores):
    assert len(gold_scores) == 1629


def test_every_gold_in_a_sentence_scores_correct(gold_scores):
    failed = {i: (g, s) for i, (g, s, _) in gold_scores.items() if not s.correct}
    assert failed == {}


def test_a_wrong_number_scores_wrong_against_every_gold(gold_scores):
    accepted = {i: (g, s) for i, (g, _, s) in gold_scores.items() if s.correct}
    assert accepted == {}


# (gold as in the shared files, a completion's boxed answer, whether it is correct)
NOTATIONS = {
    "scientific e notation (58 Minerva golds)": [
        ("4.5e33", "4.5\\times 10^{33}", True),
        ("4.5e33", "4.5 \\cdot 10^{33}", True),
        ("4.5e33", "4.5e33", True),
        ("4.5e33", "45\\times10^{32}", True),
        ("4.5e33", "4.5", False),
        ("4.5e33", "4.5e32", False),
        ("4.5e33", "4.6\\times 10^{33}", False),
        ("1e11", "10^{11}", True),
        ("1e11", "100000000000", True),
        ("1e11", "1e10", False),
        ("6.5e-2", "0.065", True),
        ("6.5e-2", "6.5\\times10^{-2}", True),
        ("6.5e-2", "6.5", False),
        ("3.89e-10", "3.89\\times 10^{-10}", True),
        ("3.89e-10", "0.000000000389", True),
        ("3.89e-10", "3.88e-10", False),
        ("3.89e-10", "0.000000000388", False),  # 6 significant digits, not 6 decimals
        ("3.89e-10", "0", False),
    ],
    "radicals, complex numbers, decimals": [
        ("3\\sqrt{13}", "\\sqrt{117}", True),
        ("3\\sqrt{13}", "3", False),
        ("3\\sqrt{13}", "10.816654", True),  # 6 correct decimals are accepted (math-verify)
        ("3\\sqrt{13}", "10.8", False),
        ("6+9i", "9i+6", True),
        ("6+9i", "3", False),
        ("6+9i", "6", False),
        ("6+9i", "6-9i", False),
        ("\\frac{14}{3}", "14/3", True),
        ("\\frac{14}{3}", "4\\frac{2}{3}", True),
        ("\\frac{14}{3}", "4.67", False),
        (".0000672", "6.72\\times 10^{-5}", True),
        (".0000672", "0.0000673", False),
        ("-1./3", "-\\frac{1}{3}", True),
        ("-1./3", "\\frac{1}{3}", False),
        ("np.arcsin(10/13)", "\\arcsin\\left(\\frac{10}{13}\\right)", True),
        ("np.arcsin(10/13)", "\\arccos(10/13)", False),
    ],
    "bases: the digits are the answer, the base subscript optional": [
        ("2516_8", "2516_8", True),
        ("2516_8", "2516_{8}", True),
        ("2516_8", "2516", True),
        ("2516_8", "1358", False),  # the decimal value is not the base-8 numeral asked for
        ("2516_8", "2517_8", False),
    ],
    "degrees": [
        ("76^\\circ", "76", True),
        ("76^\\circ", "76^{\\circ}", True),
        ("76^\\circ", "76°", True),
        ("76^\\circ", "76 \\text{ degrees}", True),
        ("76^\\circ", "77^\\circ", False),
        ("$90^{\\circ}$,$60^{\\circ}$", "60^\\circ, 90^\\circ", True),
        ("$90^{\\circ}$,$60^{\\circ}$", "90^\\circ", False),
    ],
    "thousands separators versus several answers": [
        ("10,\\!080", "10080", True),
        ("10,\\!080", "10,080", True),
        ("10,\\!080", "10{,}080", True),
        ("10,\\!080", "10\\,080", True),
        ("10,\\!080", "10 080", True),
        ("10,\\!080", "10,081", False),
        ("10,\\!080", "1008", False),
        ("11,\\! 111,\\! 111,\\! 100", "11111111100", True),
        ("\\$32,\\!348", "32348", True),
        ("\\$32,\\!348", "\\$32,348", True),
        ("-2,1", "1, -2", True),
        ("-2,1", "\\{-2, 1\\}", True),
        ("-2,1", "-2", False),
        ("-2,1", "-21", False),
        ("2500,7500", "2500, 7500", True),
        ("2500,7500", "25007500", False),
    ],
    "several answers, tuples and sets": [
        ("(2,32), (8,18)", "(8,18), (2,32)", True),
        ("(2,32), (8,18)", "(2,32)", False),
        ("(2,32), (8,18)", "(2,32), (8,19)", False),
        ("1,3,5", "5, 3, 1", True),
        ("1,3,5", "1, 3", False),
        ("(6,31,-1)", "(6, 31, -1)", True),
        ("(6,31,-1)", "(6, -1, 31)", False),  # a tuple is ordered
        ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}", True),
        ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}", False),
    ],
    "intervals": [
        ("(2,12) \\cup (12,102)", "(12,102) \\cup (2,12)", True),
        ("(2,12) \\cup (12,102)", "(2,12] \\cup (12,102)", False),
        ("(2,12) \\cup (12,102)", "(2,102)", False),
        ("(3,4]", "(3,4]", True),
        ("(3,4]", "(3,4)", False),
        ("(3,4]", "[3,4]", False),
        ("(-\\infty, 0]", "(-\\infty,0]", True),
        ("(-\\infty, 0]", "(-\\infty,0)", False),
        ("$t(0,4]$", "(0,4]", True),
        ("$t(0,4]$", "t \\in (0,4]", True),
        ("$t(0,4]$", "(0,4)", False),
        ("x \\in [-2,7]", "[-2,7]", True),
        ("x \\in [-2,7]", "(-2,7)", False),
        ("$(-\\infty, 0) \\cup\\{1\\}$.", "(-\\infty,0)\\cup\\{1\\}", True),
        ("$(-\\infty, 0) \\cup\\{1\\}$.", "(-\\infty,0)", False),
    ],
    "matrices and vectors": [
        (
            "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}",
            "\\begin{pmatrix}-1&0\\\\0&-1\\end{pmatrix}",
            True,
        ),
        (
            "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}",
            "\\begin{bmatrix}-1&0\\\\0&-1\\end{bmatrix}",
            True,
        ),
        (
            "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}",
            "\\begin{pmatrix}-1&0\\\\0&1\\end{pmatrix}",
            False,
        ),
        (
            "\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}",
            "\\begin{pmatrix} 0.2 \\\\ -3.6 \\end{pmatrix}",
            True,
        ),
        (
            "\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}",
            "\\begin{pmatrix} 1/5 \\\\ 18/5 \\end{pmatrix}",
            False,
        ),
    ],
    "multiple-choice letters": [
        ("\\text{(C)}", "C", True),
        ("\\text{(C)}", "(C)", True),
        ("\\text{(C)}", "\\textbf{(C)}", True),
        ("\\text{(C)}", "\\text{C}", True),
        ("\\text{(C)}", "(D)", False),
        ("\\text{(C)}", "D", False),
    ],
    "percentages: X%, X and X/100 all mean the gold": [
        ("62.5%", "62.5\\%", True),
        ("62.5%", "62.5", True),
        ("62.5%", "0.625", True),
        ("62.5%", "0.625\\%", False),
        ("62.5%", "63.5\\%", False),
        ("$8 \\%$", "8\\%", True),
        ("$8 \\%$", "8", True),
        ("$8 \\%$", "0.08", True),
        ("$8 \\%$", "0.08\\%", False),
        ("$8 \\%$", "9", False),
    ],
    "text answers": [
        ("\\text{Evelyn}", "Evelyn", True),
        ("\\text{Evelyn}", "\\text{evelyn}", True),
        ("\\text{Evelyn}", "\\text{Navin}", False),
        ("\\text{east}", "\\text{East}", True),
        ("\\text{east}", "\\text{west}", False),
        ("\\text{even}", "\\text{odd}", False),
    ],
    "units: stripped after a value, kept when they are variables": [
        ("5.4 \\text{ cents}", "5.4", True),
        ("5.4 \\text{ cents}", "5.4 \\text{ cents}", True),
        ("5.4 \\text{ cents}", "5.5", False),
        ("864 \\mbox{ inches}^2", "864 \\text{ in}^2", True),
        ("15\\mbox{ cm}^2", "15", True),
        ("$6m$", "6m", True),
        ("$6m$", "6", False),  # m is the problem's variable
        ("\\frac{37}{4} m", "\\frac{37m}{4}", True),
        ("\\frac{37}{4} m", "\\frac{37}{4}", False),
        ("\\frac{1}{\\sqrt{2}}c", "\\frac{c}{\\sqrt{2}}", True),
        ("\\frac{1}{\\sqrt{2}}c", "\\frac{1}{\\sqrt{2}}", False),
        ("\\$18.90", "18.9", True),
        ("\\$18.90", "18.91", False),
    ],
    "equations, expressions, physics symbols": [
        ("x=5", "5", True),
        ("x=5", "x = 5", True),
        ("x=5", "6", False),
        ("y = 2x + 3", "y=3+2x", True),
        ("y = 2x + 3", "y = 2x - 3", False),
        ("$f(x)=2 x$", "f(x) = 2x", True),
        ("$f(x)=2 x$", "f(x) = x", False),
        ("p - q", "-q + p", True),
        ("p - q", "q - p", False),
        ("$\\frac{1}{2 n+2}$", "\\frac{1}{2(n+1)}", True),
        ("$\\frac{1}{2 n+2}$", "\\frac{1}{2n}", False),
        (
            "m_{p} c^{2}\\left(\\gamma^{2}-1\\right) \\sin ^{2} \\theta",
            "m_p c^2 (\\gamma^2 - 1) \\sin^2\\theta",
            True,
        ),
        (
            "m_{p} c^{2}\\left(\\gamma^{2}-1\\right) \\sin ^{2} \\theta",
            "m_p c^2 \\gamma^2 \\sin^2\\theta",
            False,
        ),
        ("\\frac{1}{3} E_{1}+\\frac{2}{3} E_{2}", "\\frac{E_1 + 2E_2}{3}", True),
        ("\\frac{1}{3} E_{1}+\\frac{2}{3} E_{2}", "\\frac{E_1 + E_2}{3}", False),
    ],
}

CASES = [
    pytest.param(gold, answer, expected, id=f"{group.split(':')[0]}: {gold} vs {answer}")
    for group, cases in NOTATIONS.items()
    for gold, answer, expected in cases
]


@pytest.mark.parametrize(("gold", "answer", "expected"), CASES)
def test_notation_means_its_value(gold: str, answer: str, expected: bool):
    score = score_answer(sentence(answer), gold)
    assert score.correct is expected, score
    assert score.status in (("correct",) if expected else ("wrong", "unparsed"))
