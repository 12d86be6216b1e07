"""Honest notations strong models write score 1: the shared golds, rewritten by each transform of
`notation_corpus`, boxed after "So the final answer is" (a seeded sample of each transform here;
all of them, beside math-verify alone, in benchmarks/scorer_agreement.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from notation_corpus import TRANSFORMS, load_golds, model_form, rewrites, sample

from epx.scoring import score_many

PER_TRANSFORM = 30  # rewrites scored per transform (seeded), ~1,550 in all

# one hand-written rewrite per transform: (gold as in the shared files, expected rewrite)
EXAMPLES = {
    "\\displaystyle X": ("9", "\\displaystyle 9"),
    "\\cfrac": ("\\frac{14}{3}", "\\cfrac{14}{3}"),
    "\\left( X \\right)": ("\\frac{14}{3}", "\\left( \\frac{14}{3} \\right)"),
    "\\left(...\\right) brackets": ("(3,4]", "\\left(3,4\\right]"),
    "commas spaced with \\,": ("(6,31,-1)", "(6, \\, 31, \\, -1)"),
    "X\\textnormal{ cm}": ("9", "9\\textnormal{ cm}"),
    "X\\,\\text{cm}": ("9", "9\\,\\text{cm}"),
    "X~\\text{cm}": ("9", "9~\\text{cm}"),
    "X\\$": ("9", "9\\$"),
    "\\frac{-a}{b}": ("-\\frac{35}{9}", "\\frac{-35}{9}"),
    "\\; X \\!": ("9", "\\; 9 \\!"),
    "\\textstyle X": ("9", "\\textstyle 9"),
    "\\boldsymbol{X}": ("9", "\\boldsymbol{9}"),
    "thousands 2\\,220": ("2220", "2\\,220"),
    "\\bigl(...\\bigr) brackets": ("(-2,1)", "\\bigl(-2,1\\bigr)"),
    "\\Big(...\\Big) brackets": ("(-2,1)", "\\Big(-2,1\\Big)"),
    "\\dfrac": ("\\frac{14}{3}", "\\dfrac{14}{3}"),
    "\\tfrac": ("\\frac{14}{3}", "\\tfrac{14}{3}"),
    "\\frac12 and \\sqrt2 shorthand": ("\\frac{\\sqrt{2}}{2}", "\\frac{\\sqrt2}{2}"),
    "\\mathbf{X}": ("9", "\\mathbf{9}"),
    "\\, X \\,": ("9", "\\,9\\,"),
    "~X": ("9", "~9"),
    "commas spaced with \\ ": ("1,3,5", "1,\\ 3,\\ 5"),
    "3\\,\\sqrt{13} (thin space before a command)": ("3\\sqrt{13}", "3\\,\\sqrt{13}"),
    "X \\text{ cm}^2": ("9", "9 \\text{ cm}^2"),
    "X \\mathrm{~cm} (Minerva)": ("1.6", "1.6 \\mathrm{~cm}"),
    "X \\ \\text{meters}": ("9", "9 \\ \\text{meters}"),
    "X \\quad \\text{cm}": ("9", "9 \\quad \\text{cm}"),
    "\\$X": ("9", "\\$9"),
    "thousands 2{,}220": ("-12345.5", "-12{,}345.5"),
    "thousands 2,220": ("1000000", "1,000,000"),
    "x = X": ("\\frac{14}{3}", "x = \\frac{14}{3}"),
    "\\times 10^{n} for e notation": ("4.5e33", "4.5 \\times 10^{33}"),
    "\\cdot 10^{n} for e notation": ("3.89e-10", "3.89 \\cdot 10^{-10}"),
    "^{\\circ}": ("76^\\circ", "76^{\\circ}"),
    "°": ("$90^{\\circ}$,$60^{\\circ}$", "90°,60°"),
    "leading zero .5 -> 0.5": (".35625", "0.35625"),
    "trailing zero 1.6 -> 1.60": ("1.6", "1.60"),
    "\\{list\\}": ("1,3,5", "\\{1,3,5\\}"),
    "list with \\text{and}": ("1,3,5", "1,3, \\text{and } 5"),
    "\\textbf{word}": ("\\text{Evelyn}", "\\textbf{Evelyn}"),
    "\\mathrm{word}": ("\\text{(C)}", "\\mathrm{(C)}"),
    "bmatrix": (
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        "\\begin{bmatrix} 1 \\\\ 2 \\end{bmatrix}",
    ),
    "without \\left \\right": ("\\left( 3, \\frac{\\pi}{2} \\right)", "( 3, \\frac{\\pi}{2} )"),
    "unicode \u2212 and \u03c0": ("-\\frac{\\pi}{6}", "-\\frac{\u03c0}{6}"),
    "\\approx X": ("0.53", "\\approx 0.53"),
    "symbolic X \\text{ units}": ("3\\sqrt{13}", "3\\sqrt{13} \\text{ units}"),
    "X \\text{ degrees}": ("76^\\circ", "76 \\text{ degrees}"),
    "X. (a period in the box)": ("9", "9."),
    "X \\text{ m/s}": ("9", "9 \\text{ m/s}"),
    "X \\mathrm{~km} \\mathrm{~s}^{-1} (Minerva)": ("9", "9 \\mathrm{~km} \\mathrm{~s}^{-1}"),
    "\\times 10^{n} \\ \\text{erg/s}": ("4e33", "4 \\times 10^{33} \\ \\text{erg/s}"),
    "decimal for a fraction": ("-\\frac{3}{8}", "-0.375"),
    "a/b for \\frac{a}{b}": ("\\frac{3\\sqrt{3}}{4}", "(3\\sqrt{3})/4"),
    "interval as a relation": ("(3,4]", "3 < x \\leq 4"),
    "{a \\over b}": ("-\\frac{35}{9}", "-{35 \\over 9}"),
    "x \\in \\{list\\}": ("1,3,5", "x \\in \\{1,3,5\\}"),
    "X\\,\\% (spaced percent)": ("62.5%", "62.5\\,\\%"),
    "\\geq for \\geqslant": ("$k \\geqslant 2$", "k \\geq 2"),
    "\\left\\{ list \\right\\}": ("-2,1", "\\left\\{ -2,1 \\right\\}"),
}

# (transform, gold as in the shared files): the transform does not apply, so it must say None
NOT_APPLICABLE = [
    ("X\\textnormal{ cm}", "3\\sqrt{13}"),  # units only after a plain number
    ("\\left(...\\right) brackets", "9"),  # no brackets to size
    ("interval as a relation", "(-2,1)"),  # an open pair may be a point
    ("\\{list\\}", "58,500"),  # a number with a thousands comma is no list
    ("commas spaced with \\,", "58,500"),
    ("decimal for a fraction", "\\frac{14}{3}"),  # 4.666... does not end
    ("x = X", "x=5"),  # already an equation
    ("x = X", "$t(0,4]$"),  # t in an interval: no value to assign
]


def test_every_transform_has_a_hand_written_example():
    assert set(EXAMPLES) == set(TRANSFORMS)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_a_transform_rewrites_its_example_as_written_by_hand(name: str):
    gold, expected = EXAMPLES[name]
    assert TRANSFORMS[name](model_form(gold)) == expected


@pytest.mark.parametrize(("name", "gold"), NOT_APPLICABLE)
def test_a_transform_leaves_a_gold_it_does_not_fit_alone(name: str, gold: str):
    assert TRANSFORMS[name](model_form(gold)) is None


@pytest.fixture(scope="module")
def corpus(data_dir: Path):
    return rewrites(load_golds(data_dir))


def test_every_transform_rewrites_some_shared_gold(corpus):
    assert {rewrite.transform for rewrite in corpus} == set(TRANSFORMS)


def test_every_sampled_rewrite_of_every_gold_scores_correct(corpus):
    drawn = sample(corpus, PER_TRANSFORM, seed=0)
    scores = score_many([(rewrite.completion, rewrite.gold) for rewrite in drawn], workers=2)
    credited: dict[str, list[int]] = {}
    refused = []
    for rewrite, score in zip(drawn, scores, strict=True):
        counts = credited.setdefault(rewrite.transform, [0, 0])
        counts[0] += score.correct
        counts[1] += 1
        if not score.correct:
            refused.append(f"[{rewrite.transform}] {rewrite.gold!r}: {rewrite.answer!r} {score}")
    table = "\n".join(
        f"{n / total:7.1%} {n:4d}/{total:<4d} {name}" for name, (n, total) in credited.items()
    )
    print(f"\ncredited share per transform ({len(drawn)} rewrites, seed 0):\n{table}")
    assert refused == [], "\n".join(refused)
