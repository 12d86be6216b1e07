"""Honest rewrites of the shared gold answers in the notations strong models write.

Each transform takes a gold answer as a model would box it (`model_form`: the gold without its
``$`` delimiters) and returns the same answer in another notation, or None where the notation
does not apply (units only after a number, ``\\left(...\\right)`` only on brackets, ...). Every
rewrite means exactly the gold: a scorer that refuses one refuses a correct answer.

The transforms are the ten classes of issue 15 (``\\displaystyle``, ``\\cfrac``,
``\\left(...\\right)``, spacing commands, ``\\textnormal`` units, a trailing ``\\$``,
``\\frac{-a}{b}``, ``\\textstyle``/``\\boldsymbol``, thin-space thousands, ``\\bigl(...\\bigr)``)
and the conventions of strong models' completions on these benchmarks (``\\dfrac``, ``x = ...``,
``\\times 10^{n}`` for ``e`` notation, Minerva's ``\\mathrm{~cm}``, ``\\{...\\}`` around a list,
``\\frac12``, ``^{\\circ}``/``°``, ``pmatrix``/``bmatrix``, ...).

Shared by tests/test_scorer_notations.py (a seeded sample) and benchmarks/scorer_agreement.py
(all of it, beside math-verify alone).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

Transform = Callable[[str], "str | None"]

_DOLLAR = re.compile(r"(?<!\\)\$")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)")
_FRACTION = re.compile(r"-?\\[dt]?frac\{\d+\}\{\d+\}")
_SCIENTIFIC = re.compile(r"(-?\d+(?:\.\d+)?)e([-+]?\d+)")
_BIG_INTEGER = re.compile(r"-?\d{4,}(?:\.\d+)?")
_RELATION = re.compile(r"=|<|>|\\[lg]eq?\b|\\[lg]eqslant|\\neq?\b")
_OPEN_BRACKET = re.compile(r"(?<!\\)[(\[]|\\\{")
_CLOSE_BRACKET = re.compile(r"(?<!\\)[)\]]|\\\}")
_COMMA = re.compile(r"\s*,(?!\\!)\s*")
_THOUSANDS_COMMA = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_NEGATIVE_FRACTION = re.compile(r"-\s*\\([dt]?frac)\s*\{([^{}+\-]+)\}")
_DIGIT_BEFORE_COMMAND = re.compile(r"(\d)\s*(\\(?:sqrt|pi)\b)")
_SHORT_FRACTION = re.compile(r"\\([dt]?frac)\{(\d)\}\{(\d)\}")
_SHORT_SQRT = re.compile(r"\\sqrt\{(\d)\}")
_DEGREES = re.compile(r"\^\s*\{?\\circ\}?")
_TEXT_ANSWER = re.compile(r"\\text\{[^{}]*\}")
_UNICODE_MINUS = re.compile(r"(?<![\w}])-(?=\d)")
_PI = re.compile(r"\\pi(?![A-Za-z])")
_COMMAND = re.compile(r"\\[A-Za-z]+")
_DECIMAL_ANSWER = re.compile(r"-?\d*\.\d+|-?\d+(?:\.\d+)?e[-+]?\d+")
_INTERVAL = re.compile(
    r"(?:(?P<variable>[a-z])\s*(?:\\in\s*)?)?(?P<open>[(\[])(?P<low>[^,()\[\]]+),(?P<high>[^,()\[\]]+)"
    r"(?P<close>[)\]])"
)
_DECIMAL = re.compile(r"(?<![\d.])(\d+\.\d+)(?![\d.])")


def model_form(gold: str) -> str:
    """The gold as a model boxes it: without ``$`` delimiters and a final period."""
    return _DOLLAR.sub("", gold).strip().rstrip(".").strip()


def _is_number(answer: str) -> bool:
    """An integer, a decimal or a fraction of integers (where units and currency go)."""
    return bool(_NUMBER.fullmatch(answer) or _FRACTION.fullmatch(answer))


def _top_level_commas(answer: str) -> list[int]:
    """Positions of the commas outside brackets and braces (the separators of a list)."""
    depth, found = 0, []
    for index, char in enumerate(answer):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0 and not answer.startswith(",\\!", index):
            found.append(index)
    return found


def _one_value(answer: str) -> bool:
    """One mathematical value: no list, relation, text or ``\\pm``."""
    return not (
        _top_level_commas(answer)
        or _RELATION.search(answer)
        or "\\text" in answer
        or "\\pm" in answer
        or "\\begin" in answer
    )


def _thousands(answer: str) -> bool:
    return bool(_BIG_INTEGER.fullmatch(answer))


def _group_thousands(answer: str, separator: str) -> str:
    whole, _, decimals = answer.partition(".")
    sign = "-" if whole.startswith("-") else ""
    digits = whole.lstrip("-")
    groups = []
    while digits:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    return sign + separator.join(groups) + (f".{decimals}" if decimals else "")


def _brackets(answer: str, opening: str, closing: str) -> str | None:
    """Every bracket (``(``, ``[``, ``\\{`` and their closings) sized with ``opening``/``closing``
    (``\\left``/``\\right``, ``\\bigl``/``\\bigr``, ...); None without brackets or with sizes."""
    if "\\left" in answer or "\\right" in answer or "\\begin" in answer:
        return None
    opens, closes = _OPEN_BRACKET.findall(answer), _CLOSE_BRACKET.findall(answer)
    if not opens or len(opens) != len(closes):
        return None
    sized = _OPEN_BRACKET.sub(lambda m: opening + m.group(0), answer)
    return _CLOSE_BRACKET.sub(lambda m: closing + m.group(0), sized)


def _spaced_commas(answer: str, space: str) -> str | None:
    """Every comma of a list or tuple followed by ``space`` (a thousands comma is left alone)."""
    if "," not in answer or _THOUSANDS_COMMA.fullmatch(answer):
        return None
    return _COMMA.sub("," + space, answer)


def _unit(template: str) -> Transform:
    return lambda answer: template.format(answer) if _is_number(answer) else None


def _wrap(template: str) -> Transform:
    return lambda answer: template.format(answer)


def _sub(pattern: re.Pattern[str], replacement: str | Callable[[re.Match[str]], str]) -> Transform:
    def transform(answer: str) -> str | None:
        rewritten = pattern.sub(replacement, answer)
        return rewritten if rewritten != answer else None

    return transform


def _when(condition: Callable[[str], bool], template: str) -> Transform:
    return lambda answer: template.format(answer) if condition(answer) else None


def _is_list(answer: str) -> bool:
    """Several answers separated by commas (not a number with thousands commas, not a union)."""
    return bool(_top_level_commas(answer)) and not (
        _THOUSANDS_COMMA.fullmatch(answer) or "\\cup" in answer
    )


def _as_set(answer: str) -> str | None:
    if not _is_list(answer) or answer.startswith("\\{"):
        return None
    return "\\{" + answer + "\\}"


def _and_list(answer: str) -> str | None:
    if not _is_list(answer):
        return None
    commas = _top_level_commas(answer)
    last = commas[-1]
    joiner = (
        " \\text{ and } " if len(commas) == 1 else ", \\text{and } "
    )  # "1 and 2", "1, 2, and 3"
    return answer[:last].rstrip() + joiner + answer[last + 1 :].lstrip()


def _assignment(answer: str) -> str | None:
    if not _one_value(answer) or re.search(r"(?<![\\a-z])x(?![a-z])", answer):
        return None
    if _INTERVAL.fullmatch(answer):
        return None  # ``t(0,4]`` is t in an interval: no value to assign
    return "x = " + answer


def _parenthesised(answer: str) -> str | None:
    if not _one_value(answer) or answer[:1] in "([" or answer.startswith("\\left"):
        return None
    return f"\\left( {answer} \\right)"


def _scientific(times: str) -> Transform:
    def transform(answer: str) -> str | None:
        match = _SCIENTIFIC.fullmatch(answer)
        if match is None:
            return None
        return f"{match.group(1)} {times} 10^{{{int(match.group(2))}}}"

    return transform


def _leading_zero(answer: str) -> str | None:
    return "0" + answer if re.fullmatch(r"\.\d+", answer) else None


def _text_variant(command: str) -> Transform:
    """``\\text{Evelyn}`` -> ``\\textbf{Evelyn}`` (a text answer, not a unit after a value)."""
    return lambda answer: f"\\{command}{answer[5:]}" if _TEXT_ANSWER.fullmatch(answer) else None


def _unicode(answer: str) -> str | None:
    """``−2``, ``2π``, ``3×10^{8}``: the characters a model may type instead of LaTeX."""
    rewritten = _PI.sub("\u03c0", _UNICODE_MINUS.sub("\u2212", answer))
    return rewritten if rewritten != answer else None


def _approximately(answer: str) -> str | None:
    """``\\approx 0.53`` for a decimal (how a rounded physical value is often written)."""
    return f"\\approx {answer}" if _DECIMAL_ANSWER.fullmatch(answer) else None


def _symbolic_unit(answer: str) -> str | None:
    """A unit after a value that is not a plain number (``3\\sqrt{13} \\text{ units}``)."""
    if not _one_value(answer) or _is_number(answer) or _SCIENTIFIC.fullmatch(answer):
        return None
    if "," in answer or "\\circ" in answer or re.search(r"[A-Za-z]", _COMMAND.sub("", answer)):
        return None  # a number written with radicals, pi, ...: not a tuple, an angle, a variable
    return f"{answer} \\text{{ units}}"


def _scientific_unit(answer: str) -> str | None:
    rewritten = _scientific("\\times")(answer)
    return None if rewritten is None else rewritten + " \\ \\text{erg/s}"


def _decimal_fraction(answer: str) -> str | None:
    """``\\frac{3}{8}`` -> ``0.375``: a fraction whose decimal ends within six places."""
    match = re.fullmatch(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}", answer)
    if match is None or int(match.group(3)) == 0:
        return None
    value = Fraction(int(match.group(2)), int(match.group(3)))
    scaled = value * 10**6
    if scaled.denominator != 1:
        return None
    decimal = f"{scaled.numerator // 10**6}.{scaled.numerator % 10**6:06d}".rstrip("0").rstrip(".")
    return match.group(1) + decimal


def _slash_fraction(answer: str) -> str | None:
    """``\\frac{3\\sqrt{3}}{4}`` -> ``(3\\sqrt{3})/4``: one fraction written with a slash."""
    match = re.fullmatch(
        r"(-?)\\[dt]?frac\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}", answer
    )
    if match is None:
        return None
    sign, top, bottom = match.groups()
    top = top if re.fullmatch(r"\w+", top) else f"({top})"
    bottom = bottom if re.fullmatch(r"\w+", bottom) else f"({bottom})"
    return f"{sign}{top}/{bottom}"


def _interval_as_relation(answer: str) -> str | None:
    """``[5, \\infty)`` -> ``x \\geq 5``, ``(3,4]`` -> ``3 < x \\leq 4``: one interval as a relation
    (an open pair ``(a, b)`` may be a point, so it is left alone)."""
    match = _INTERVAL.fullmatch(answer)
    if match is None or (match["open"] == "(" and match["close"] == ")" and "infty" not in answer):
        return None
    variable = match["variable"] or "x"
    low, high = match["low"].strip(), match["high"].strip()
    below = "<" if match["open"] == "(" else "\\leq"
    above = "<" if match["close"] == ")" else "\\leq"
    at_least = "\\geq"
    if "infty" in low and "infty" in high:
        return None
    if "infty" in low:
        return f"{variable} {above} {high}"
    if "infty" in high:
        return f"{variable} {'>' if below == '<' else at_least} {low}"
    return f"{low} {below} {variable} {above} {high}"


TRANSFORMS: dict[str, Transform] = {
    # the ten classes of issue 15
    "\\displaystyle X": _wrap("\\displaystyle {}"),
    "\\cfrac": _sub(re.compile(r"\\[dt]?frac(?![a-z])"), r"\\cfrac"),
    "\\left( X \\right)": _parenthesised,
    "\\left(...\\right) brackets": lambda a: _brackets(a, "\\left", "\\right"),
    "commas spaced with \\,": lambda a: _spaced_commas(a, " \\, "),
    "X\\textnormal{ cm}": _unit("{}\\textnormal{{ cm}}"),
    "X\\,\\text{cm}": _unit("{}\\,\\text{{cm}}"),
    "X~\\text{cm}": _unit("{}~\\text{{cm}}"),
    "X\\$": _unit("{}\\$"),
    "\\frac{-a}{b}": _sub(_NEGATIVE_FRACTION, r"\\\1{-\2}"),
    "\\; X \\!": _wrap("\\; {} \\!"),
    "\\textstyle X": _wrap("\\textstyle {}"),
    "\\boldsymbol{X}": _wrap("\\boldsymbol{{{}}}"),
    "thousands 2\\,220": lambda a: _group_thousands(a, "\\,") if _thousands(a) else None,
    "\\bigl(...\\bigr) brackets": lambda a: _brackets(a, "\\bigl", "\\bigr"),
    "\\Big(...\\Big) brackets": lambda a: _brackets(a, "\\Big", "\\Big"),
    # conventions of strong models' completions
    "\\dfrac": _sub(re.compile(r"\\frac(?![a-z])"), r"\\dfrac"),
    "\\tfrac": _sub(re.compile(r"\\frac(?![a-z])"), r"\\tfrac"),
    "\\frac12 and \\sqrt2 shorthand": lambda a: (
        _SHORT_SQRT.sub(r"\\sqrt\1", _SHORT_FRACTION.sub(r"\\\1\2\3", a))
        if _SHORT_FRACTION.search(a) or _SHORT_SQRT.search(a)
        else None
    ),
    "\\mathbf{X}": _wrap("\\mathbf{{{}}}"),
    "\\, X \\,": _wrap("\\,{}\\,"),
    "~X": _wrap("~{}"),
    "commas spaced with \\ ": lambda a: _spaced_commas(a, "\\ "),
    "3\\,\\sqrt{13} (thin space before a command)": _sub(_DIGIT_BEFORE_COMMAND, r"\1\\,\2"),
    "X \\text{ cm}^2": _unit("{} \\text{{ cm}}^2"),
    "X \\mathrm{~cm} (Minerva)": _unit("{} \\mathrm{{~cm}}"),
    "X \\ \\text{meters}": _unit("{} \\ \\text{{meters}}"),
    "X \\quad \\text{cm}": _unit("{} \\quad \\text{{cm}}"),
    "\\$X": _unit("\\${}"),
    "thousands 2{,}220": lambda a: _group_thousands(a, "{,}") if _thousands(a) else None,
    "thousands 2,220": lambda a: _group_thousands(a, ",") if _thousands(a) else None,
    "x = X": _assignment,
    "\\times 10^{n} for e notation": _scientific("\\times"),
    "\\cdot 10^{n} for e notation": _scientific("\\cdot"),
    "^{\\circ}": _sub(_DEGREES, "^{\\\\circ}"),
    "°": _sub(_DEGREES, "°"),
    "leading zero .5 -> 0.5": _leading_zero,
    "trailing zero 1.6 -> 1.60": _sub(_DECIMAL, r"\g<1>0"),
    "\\{list\\}": _as_set,
    "list with \\text{and}": _and_list,
    "\\textbf{word}": _text_variant("textbf"),
    "\\mathrm{word}": _text_variant("mathrm"),
    "bmatrix": _sub(re.compile(r"\{pmatrix\}"), "{bmatrix}"),
    "without \\left \\right": _sub(re.compile(r"\\(?:left|right)\s*(?=[(\[\]).|]|\\[{}])"), ""),
    "unicode \u2212 and \u03c0": _unicode,
    "\\approx X": _approximately,
    "symbolic X \\text{ units}": _symbolic_unit,
    "X \\text{ degrees}": _sub(_DEGREES, " \\\\text{ degrees}"),
    "X. (a period in the box)": _wrap("{}."),
    "X \\text{ m/s}": _unit("{} \\text{{ m/s}}"),
    "X \\mathrm{~km} \\mathrm{~s}^{-1} (Minerva)": _unit(
        "{} \\mathrm{{~km}} \\mathrm{{~s}}^{{-1}}"
    ),
    "\\times 10^{n} \\ \\text{erg/s}": _scientific_unit,
    "decimal for a fraction": _decimal_fraction,
    "a/b for \\frac{a}{b}": _slash_fraction,
    "interval as a relation": _interval_as_relation,
    "{a \\over b}": _sub(re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}"), r"{\1 \\over \2}"),
    "x \\in \\{list\\}": lambda a: (
        "x \\in " + _as_set(a) if _as_set(a) and not re.search(r"[(=]|x", a) else None
    ),
    "X\\,\\% (spaced percent)": _sub(re.compile(r"\s*\\?%"), r"\\,\\%"),
    "\\geq for \\geqslant": _sub(re.compile(r"\\([lg]e)qslant"), r"\\\1q"),
    "\\left\\{ list \\right\\}": lambda a: (
        ("\\left\\{ " + a + " \\right\\}") if _as_set(a) else None
    ),
}


@dataclass(frozen=True)
class Rewrite:
    """One gold answer rewritten by one transform."""

    transform: str
    gold_id: str
    gold: str
    answer: str

    @property
    def completion(self) -> str:
        return f"We put the steps together. So the final answer is \\boxed{{{self.answer}}}."


def load_golds(data_dir: Path) -> list[tuple[str, str]]:
    """(id, gold) of every record of the shared benchmark files, in file order."""
    return [
        (record["id"], record["answer"])
        for path in sorted(data_dir.glob("*.jsonl"))
        for record in map(json.loads, path.read_text().splitlines())
    ]


def rewrites(golds: list[tuple[str, str]]) -> list[Rewrite]:
    """Every applicable (transform, gold) rewrite, in transform order then gold order."""
    found = []
    for name, transform in TRANSFORMS.items():
        for gold_id, gold in golds:
            answer = transform(model_form(gold))
            if answer is not None:
                found.append(Rewrite(name, gold_id, gold, answer))
    return found


def sample(corpus: list[Rewrite], per_transform: int, seed: int = 0) -> list[Rewrite]:
    """At most ``per_transform`` rewrites of each transform, drawn with a fixed seed."""
    rng = random.Random(seed)
    by_transform: dict[str, list[Rewrite]] = {}
    for rewrite in corpus:
        by_transform.setdefault(rewrite.transform, []).append(rewrite)
    drawn = []
    for group in by_transform.values():
        drawn += group if len(group) <= per_transform else rng.sample(group, per_transform)
    return drawn
