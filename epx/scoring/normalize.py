"""Pure string work before math-verify parses an answer: notations it misreads.

Each rewrite below exists because math-verify 0.9.0 reads that notation wrongly in at least one
gold of the shared benchmarks (see STACK.md) or in an equivalent answer a model may write:

- ``4.5e33`` is read as 4.5*e*33 (Euler's e)     -> ``4.5\\times 10^{33}``
- ``27\\,648`` and ``27 648`` are read as 27+648   -> ``27648``
- ``-1./3`` does not parse                        -> ``-1/3``
- ``np.arcsin(x)`` does not parse                 -> ``\\arcsin(x)``
- ``76°`` does not parse                          -> ``76^{\\circ}`` (read as 76)
- ``\\gamma^{2}`` is read as the gamma function    -> ``{\\gamma}^{2}``
- ``E_{1}`` does not parse                        -> ``\\mathrm{E}_{1}``
- ``L_{\\odot}``, ``m_{\\max}`` do not parse        -> ``L_{sun}``, ``m_{max}``
- ``t(0,4]`` (a variable glued to an interval)     -> ``t \\in (0,4]``
- ``\\mathrm{e}``, ``\\text{e}``, ``\\operatorname{e}`` are dropped as units -> ``e`` (Euler's number)
- ``1,000.99€``, ``£5`` do not parse              -> ``1,000.99``, ``5`` (a currency sign is no value)
- ``76 cm²`` does not parse, ``76 cm^2`` is c*m    -> ``76`` (a unit word after a number)
- ``$...$`` wrapping, ``\\quad``, a trailing period, a trailing ``\\text{ unit}``: removed
"""

from __future__ import annotations

import re

_DOLLAR = re.compile(r"(?<!\\)\$")
_EDGE_SPACES = re.compile(r"^(?:\s|\\[,;: ]|\\q?quad)+|(?:\s|\\[,;: ]|\\q?quad)+$")
_TRAILING_PERIOD = re.compile(r"(?:\s|\\[,;: ])*\.+$")
_TEXT_UNIT = re.compile(
    r"^(?P<value>.*?[\w})\]])\s*\\(?:text|mbox|mathrm)\s*\{[^{}]*\}(?:\^\{?\d\}?)?$"
)
_SCI = re.compile(r"(?<![\w.\\])(\d+(?:\.\d*)?|\.\d+)[eE]([+-]?\d+)(?![\w.])")
_THIN_SPACE_GROUPS = re.compile(
    r"(?<![\d.^_])\d{1,3}(?:(?:\\[,;:! ]|\{,\}|,\\!|\u2009|\u202f)\s*\d{3})+(?!\d)"
)
_SPACE_GROUPED_NUMBER = re.compile(r"-?\d{1,3}(?: \d{3})+(?:\.\d+)?")
_SEPARATOR = re.compile(r"\\[,;:! ]|\{,\}|,|\s|\u2009|\u202f")
_DANGLING_POINT = re.compile(r"(\d)\.(?=[/*)\s,]|$)")
_NUMPY = re.compile(r"\bnp\.(?=[a-z])")
_DEGREE_SIGN = re.compile(r"\s*(?:°|\\degree\b)")
_GAMMA = re.compile(r"(?<!\{)\\gamma(?![A-Za-z])")
_BARE_E_SUBSCRIPT = re.compile(r"(?<![\\A-Za-z])(?<!\\mathrm\{)E_")
_ODOT = re.compile(r"\\odot\b")
_MAX_MIN_SUBSCRIPT = re.compile(r"_\{\s*\\(max|min)\s*\}")
_VARIABLE_INTERVAL = re.compile(r"^([A-Za-z])\s*([(\[][^()\[\]]*,[^()\[\]]*[)\]])$")
_EULER = re.compile(r"\\(?:mathrm|text|operatorname|mathit|rm)\s*\{\s*e\s*\}")
_CURRENCY_SIGN = re.compile(r"\s*[\u20ac\u00a3\u00a5]\s*")
_SUPERSCRIPT = {"\u00b2": "^{2}", "\u00b3": "^{3}"}
_UNIT_WORD = re.compile(
    r"^(?P<value>[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+))\s+[A-Za-z]{2,15}(?:\s*\^\{?[23]\}?)?$"
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


def strip_text_unit(text: str) -> str:
    """Drop a trailing ``\\text{ unit}`` (with an optional power) that follows a value."""
    match = _TEXT_UNIT.match(text)
    return match.group("value") if match else text


def clean_answer(text: str) -> str:
    """Rewrite an answer (gold or extracted) into LaTeX that math-verify reads as intended."""
    text = _DOLLAR.sub("", text)
    text = _EULER.sub("e", text)
    text = _CURRENCY_SIGN.sub("", text)
    for superscript, power in _SUPERSCRIPT.items():
        text = text.replace(superscript, power)
    text = _EDGE_SPACES.sub("", text)
    text = _TRAILING_PERIOD.sub("", text)
    text = _EDGE_SPACES.sub("", text)
    text = strip_text_unit(text)
    text = _UNIT_WORD.sub(r"\g<value>", text)
    if _SPACE_GROUPED_NUMBER.fullmatch(text):
        text = text.replace(" ", "")
    text = _THIN_SPACE_GROUPS.sub(_join_digit_groups, text)
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
