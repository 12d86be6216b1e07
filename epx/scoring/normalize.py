"""Pure string work before math-verify parses an answer: one cleaning for answers and golds.

`clean_answer` runs once on each extracted answer and each gold, before the form rules
(`forms`) and math-verify see them; nothing downstream cleans notation again. Two stages.

`strip_presentation` removes what changes an answer's look but not its value (issue 15: the
form rules refused correct answers written with it):

- style and size: ``\\displaystyle``, ``\\textstyle``; ``\\left( \\right)``, ``\\bigl( \\bigr)``,
  ``\\Big(``, ``\\left.``                                          -> plain delimiters
- bold: ``\\boldsymbol{9}``, ``\\mathbf{9}``, ``\\bm{9}``                 -> ``9`` (``{...}`` inside)
- fraction variants: ``\\cfrac``, ``\\dfrac``, ``\\tfrac``, ``{a \\over b}``       -> ``\\frac``
- digit groups: ``2\\,220``, ``10,\\!080``, ``2{,}220``                       -> ``2220``
- spacing: ``\\, \\; \\: \\! \\ ``, ``~``, ``\\quad``, ``\\hspace{..}``           -> one space
- text commands: ``\\textnormal``, ``\\textrm``, ``\\textbf``, ``\\mbox``, ...   -> ``\\text``
- a leading ``\\approx``; ``x \\in`` before a set or an interval    -> the value, the set
- a currency sign: ``9\\$``, ``\\$9``, ``1,000.99€``, ``£5``             -> ``9``, ``1,000.99``, ``5``
- a sign in a numerator: ``\\frac{-35}{9}``, ``(-1)/1997``               -> ``-\\frac{35}{9}``, ``-1/1997``
- a list joined by "and": ``1, 3, \\text{and } 5``, ``3 and 5``            -> ``1, 3, 5``, ``3, 5``
- parentheses or braces around a whole single answer: ``(9)``, ``\\left( 9 \\right)``, ``{9}`` -> ``9``
- unicode: ``−2``, ``3×10^{8}``, ``2π``, ``∞``, ``≤``                       -> LaTeX

Then notations that math-verify 0.9.0 reads wrongly in at least one gold of the shared
benchmarks or in an equivalent answer a model may write are rewritten:

- ``4.5e33`` is read as 4.5*e*33 (Euler's e)     -> ``4.5\\times 10^{33}``
- ``27 648`` is read as 27+648                     -> ``27648``
- ``-1./3`` does not parse                        -> ``-1/3``
- ``np.arcsin(x)`` does not parse                 -> ``\\arcsin(x)``
- ``76°`` does not parse                          -> ``76^{\\circ}`` (read as 76)
- ``\\gamma^{2}`` is read as the gamma function    -> ``{\\gamma}^{2}``
- ``E_{1}`` does not parse                        -> ``\\mathrm{E}_{1}``
- ``L_{\\odot}``, ``m_{\\max}`` do not parse        -> ``L_{sun}``, ``m_{max}``
- ``t(0,4]`` (a variable glued to an interval)     -> ``t \\in (0,4]``
- ``\\mathrm{e}``, ``\\text{e}``, ``\\operatorname{e}`` are dropped as units -> ``e`` (Euler's number)
- ``76 cm²`` does not parse, ``76 cm^2`` is c*m    -> ``76`` (a unit word after a number)
- units after a value, of the answer or of each of its parts: ``44 \\mathrm{~km} \\mathrm{~s}^{-1}``,
  ``(45 \\text{ degrees}, 60 \\text{ degrees})`` -> ``44``, ``(45, 60)``; a unit holds letters only
  and no hedge word (``36 \\text{ or 35}`` keeps its hedge, which the form rules refuse)
"""

from __future__ import annotations

import re
from collections.abc import Callable

_DOLLAR = re.compile(r"(?<!\\)\$")
_UNICODE = {
    "\u2212": "-",  # minus sign
    "\u00d7": "\\times ",
    "\u00b7": "\\cdot ",
    "\u22c5": "\\cdot ",
    "\u03c0": "\\pi ",
    "\u221e": "\\infty ",
    "\u2264": "\\le ",
    "\u2265": "\\ge ",
    "\u2260": "\\ne ",
}
_STYLE = re.compile(r"\\(?:display|text|script|scriptscript)style(?![A-Za-z])\s*")
_FRACTION_VARIANT = re.compile(r"\\[cdt]frac(?![A-Za-z])")
_OVER_COMMAND = r"\\over(?![A-Za-z])"
_OVER = re.compile(rf"\{{([^{{}}]*?){_OVER_COMMAND}([^{{}}]*)\}}")
_TOP_OVER = re.compile(rf"^([^{{}}]*?){_OVER_COMMAND}([^{{}}]*)$")
_MEMBERSHIP = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*\\in\s*(?=\\\{|[(\[])")
_INVISIBLE_DELIMITER = re.compile(r"\\(?:left|right|middle)\s*\.")
_DELIMITER_SIZE = re.compile(
    r"\\(?:left|right|middle|[Bb]igg?[lrm]?)(?![A-Za-z])\s*(?=[()\[\]|/<>]|\\[{}|]|\\[A-Za-z])"
)
_BOLD = re.compile(r"\\(?:boldsymbol|mathbf|bm|pmb)\s*\{")
_TEXT_COMMAND = re.compile(
    r"\\(?:textnormal|textrm|textup|textsf|texttt|textit|textbf|mbox|hbox)(?=\s*\{)"
)
_THIN_SPACE_GROUPS = re.compile(
    r"(?<![\d.^_])\d{1,3}(?:(?:\\[,;:! ]|\{,\}|,\\!|\u2009|\u202f)\s*\d{3})+(?!\d)"
)
_SEPARATOR = re.compile(r"\\[,;:! ]|\{,\}|,|\s|\u2009|\u202f")
_SPACING = re.compile(
    r"(?:(?<!\\)\\[,;:! >]|\\(?:q?quad|enspace|thinspace|medspace|thickspace|negthinspace"
    r"|negmedspace|negthickspace)(?![A-Za-z])|\\hspace\*?\s*\{[^{}]*\}|~|\u2009|\u202f|\s)+"
)
_TRAILING_PERIOD = re.compile(r"\s*\.+$")
_EDGE_CURRENCY = re.compile(r"^(?:\\\$\s*)+|(?:\s*\\\$)+$")
_CURRENCY_SIGN = re.compile(r"\s*[\u20ac\u00a3\u00a5]\s*")
_NEGATIVE_NUMERATOR = re.compile(r"\\frac\s*\{\s*-\s*([^{}+\-]+?)\s*\}")
_NEGATIVE_SLASH_NUMERATOR = re.compile(r"(?<![\w)}\]])\(\s*-\s*(\d+(?:\.\d+)?)\s*\)(?=\s*/)")
_AND = re.compile(r"\s*,?\s*(?:\\text\s*\{\s*,?\s*and\s*\}|(?<![A-Za-z\\])and(?![A-Za-z]))\s*")
_HEDGE_WORD = r"\b(?:or|either|maybe|perhaps|possibly|otherwise)\b"
# A unit: a text command of letters (never digits, never a hedge: ``\\text{ or 35}``), a power
_UNIT = (
    rf"\\(?:text|mathrm)\s*\{{(?![^{{}}]*{_HEDGE_WORD})[^{{}}\d]*\}}"
    r"(?:\s*\^\s*\{?\s*-?\d+\s*\}?)?"
)
# Units after a value, at the end of the answer or of one of its parts: ``44 \\mathrm{~km}
# \\mathrm{~s}^{-1}``, ``(45 \\text{ degrees}, 60 \\text{ degrees})``
_TEXT_UNITS = re.compile(rf"(?<=[\w}})\]])(?:\s*{_UNIT})+(?=\s*(?:[,;)\]]|$))")
_APPROXIMATELY = re.compile(r"^\\(?:approx|simeq|sim)(?![A-Za-z])\s*")
_SCI = re.compile(r"(?<![\w.\\])(\d+(?:\.\d*)?|\.\d+)[eE]([+-]?\d+)(?![\w.])")
_SPACE_GROUPED_NUMBER = re.compile(r"-?\d{1,3}(?: \d{3})+(?:\.\d+)?")
_DANGLING_POINT = re.compile(r"(\d)\.(?=[/*)\s,]|$)")
_NUMPY = re.compile(r"\bnp\.(?=[a-z])")
_DEGREE_SIGN = re.compile(r"\s*(?:°|\\degree\b)")
_GAMMA = re.compile(r"(?<!\{)\\gamma(?![A-Za-z])")
_BARE_E_SUBSCRIPT = re.compile(r"(?<![\\A-Za-z])(?<!\\mathrm\{)E_")
_ODOT = re.compile(r"\\odot\b")
_MAX_MIN_SUBSCRIPT = re.compile(r"_\{\s*\\(max|min)\s*\}")
_VARIABLE_INTERVAL = re.compile(r"^([A-Za-z])\s*([(\[][^()\[\]]*,[^()\[\]]*[)\]])$")
_EULER = re.compile(r"\\(?:mathrm|text|operatorname|mathit|rm)\s*\{\s*e\s*\}")
_SUPERSCRIPT = {"\u00b2": "^{2}", "\u00b3": "^{3}"}
_UNIT_WORD = re.compile(
    r"^(?P<value>[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+))\s+"
    rf"(?!{_HEDGE_WORD})[A-Za-z]{{2,15}}(?:\s*\^\{{?[23]\}}?)?$"
)
_PERCENT = re.compile(r"^(?P<value>.*?\S)\s*\\?%$")


def _join_digit_groups(match: re.Match[str]) -> str:
    return _SEPARATOR.sub("", match.group(0))


def _sci_to_latex(match: re.Match[str]) -> str:
    return f"{match.group(1)}\\times 10^{{{int(match.group(2))}}}"


def _glue_interval(match: re.Match[str]) -> str:
    variable, interval = match.group(1), match.group(2)
    if interval[0] == "(" and interval[-1] == ")":
        return match.group(0)  # f(0,4) is a function call, not t in an interval
    return f"{variable} \\in {interval}"


def _depth_zero(text: str, position: int) -> bool:
    return text.count("{", 0, position) == text.count("}", 0, position)


def _join_and_list(text: str) -> str:
    """``1, 3, and 5``, ``3 \\text{ and } 5`` -> ``1, 3, 5``, ``3, 5`` ("and" outside text)."""
    matches = [m for m in _AND.finditer(text) if _depth_zero(text, m.start())]
    if not matches or not matches[0].start() or matches[-1].end() == len(text):
        return text
    for match in reversed(matches):
        text = text[: match.start()] + ", " + text[match.end() :]
    return text


def _strip_outer_groups(text: str) -> str:
    """``(9)``, ``((9))``, ``{9}``, ``{10,080}`` -> ``9``, ``9``, ``9``, ``10,080``: braces (LaTeX
    groups, invisible) or parentheses around the whole of one answer, never a tuple's or an
    interval's parentheses (a comma directly inside). One pass: linear."""
    closer: dict[int, int] = {}
    listed: set[int] = set()  # groups with a comma directly inside
    stack: list[int] = []
    for index, char in enumerate(text):
        if index and text[index - 1] == "\\":
            continue  # ``\\{`` and ``\\}`` are a set's braces
        if char in "([{":
            stack.append(index)
        elif char in ")]}" and stack:
            closer[stack.pop()] = index
        elif char == "," and stack:
            listed.add(stack[-1])
    start, end = 0, len(text) - 1
    while closer.get(start) == end and (
        text[start] == "{" or (text[start] == "(" and start not in listed)
    ):
        start, end = start + 1, end - 1
        while start <= end and text[start].isspace():
            start += 1
        while end >= start and text[end].isspace():
            end -= 1
    return text[start : end + 1]


def _latex_signs(text: str) -> str:
    for character, latex in _UNICODE.items():
        text = text.replace(character, latex)
    return text


def _plain_fractions(text: str) -> str:
    text = _FRACTION_VARIANT.sub(r"\\frac", text)
    return _TOP_OVER.sub(r"\\frac{\1}{\2}", _OVER.sub(r"\\frac{\1}{\2}", text))


def _plain_delimiters(text: str) -> str:
    return _DELIMITER_SIZE.sub("", _INVISIBLE_DELIMITER.sub("", text))


def _strip_edges(text: str) -> str:
    """What surrounds the whole answer: groups, ``\\approx``, ``x \\in``, a currency sign."""
    text = _strip_outer_groups(text)
    text = _MEMBERSHIP.sub("", _APPROXIMATELY.sub("", text))
    text = _CURRENCY_SIGN.sub("", _EDGE_CURRENCY.sub("", text))
    return _strip_outer_groups(text.strip())


def _sign_before_fraction(text: str) -> str:
    return _NEGATIVE_SLASH_NUMERATOR.sub(r"-\1", _NEGATIVE_NUMERATOR.sub(r"-\\frac{\1}", text))


# The rules of `strip_presentation`, in the order they run (named, so that each can be measured
# alone: benchmarks/scorer_agreement.py --ablation)
PRESENTATION_RULES: dict[str, Callable[[str], str]] = {
    "unicode signs": _latex_signs,
    "style commands": lambda text: _STYLE.sub("", text),
    "fraction variants": _plain_fractions,
    "delimiter sizes": _plain_delimiters,
    "text commands": lambda text: _TEXT_COMMAND.sub(r"\\text", text),
    "digit groups": lambda text: _THIN_SPACE_GROUPS.sub(_join_digit_groups, text),
    "spacing commands": lambda text: _SPACING.sub(" ", text).strip(),
    "trailing period": lambda text: _TRAILING_PERIOD.sub("", text),
    "bold": lambda text: _BOLD.sub("{", text),  # the group stays inside an answer
    "edges: groups, approx, x in, currency": _strip_edges,
    "sign in a numerator": _sign_before_fraction,
    "list joined by and": _join_and_list,
}


def strip_presentation(text: str) -> str:
    """Remove what changes an answer's look but not its value (see the module docstring)."""
    for rule in PRESENTATION_RULES.values():
        text = rule(text)
    return text


def strip_text_units(text: str) -> str:
    """Drop the ``\\text{ unit}``s (with their powers) that follow a value at the end of the
    answer or of one of its parts."""
    return _TEXT_UNITS.sub("", text)


def clean_answer(text: str) -> str:
    """Rewrite an answer (gold or extracted) into LaTeX that math-verify and the form rules read
    as intended (see the module docstring)."""
    text = strip_presentation(_DOLLAR.sub("", text))
    text = _EULER.sub("e", text)
    for superscript, power in _SUPERSCRIPT.items():
        text = text.replace(superscript, power)
    text = strip_text_units(text)
    text = _UNIT_WORD.sub(r"\g<value>", text)
    if _SPACE_GROUPED_NUMBER.fullmatch(text):
        text = text.replace(" ", "")
    text = _SCI.sub(_sci_to_latex, text)
    text = _DANGLING_POINT.sub(r"\1", text)
    text = _NUMPY.sub(r"\\", text)
    text = _DEGREE_SIGN.sub(r"^{\\circ}", text)
    text = _GAMMA.sub(r"{\\gamma}", text)
    text = _BARE_E_SUBSCRIPT.sub(r"\\mathrm{E}_", text)
    text = _ODOT.sub("sun", text)
    text = _MAX_MIN_SUBSCRIPT.sub(r"_{\1}", text)
    return _VARIABLE_INTERVAL.sub(_glue_interval, text)


def split_percent(text: str) -> tuple[str, bool]:
    """``('62.5', True)`` for ``62.5\\%``; the text unchanged and False without a percent sign."""
    match = _PERCENT.match(text)
    return (match.group("value"), True) if match else (text, False)


def gold_candidates(gold: str) -> list[str]:
    """The LaTeX forms a gold answer's value may take: one, or two for a percentage.

    A gold ``X\\%`` accepts ``X\\%``, ``X`` (what "what percent" asks for) and ``X/100``; a
    completion's own ``\\%`` keeps its meaning, so ``0.08\\%`` does not match ``8\\%``.
    """
    cleaned = clean_answer(gold)
    value, is_percent = split_percent(cleaned)
    if not is_percent:
        return [cleaned]
    return [value, f"\\frac{{{value}}}{{100}}"]
