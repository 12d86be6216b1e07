"""How an answer is written, before its value is compared: parts, number literals and hedges.

Pure string work on cleaned answers (`normalize.clean_answer` has removed presentation:
``\\left``, spacing, ``\\dfrac``, bold, ...; the rules here never see it):

- `split_parts`: the top-level parts of an answer list (``1, 3, 5``; ``(2,2), (6,2)``; ``x=1 or
  x=2``); a thousands group (``10,080``), a tuple, a set or an interval is one part;
- `is_number_literal`: a number *written as a number* (integer, decimal, fraction, mixed number,
  percentage, scientific notation, a base subscript, with or without a unit, a currency sign or
  ``x =`` in front), not an unevaluated expression of numbers (``3 + 33``, ``2 \\cdot 18``,
  ``6^2``);
- `is_hedge`: an answer that offers several values ("35 or 36", "either 35 or 36").
"""

from __future__ import annotations

import re

_OPEN, _CLOSE = "([{", ")]}"
_OR = re.compile(r"\s*(?:\\text\s*\{\s*or\s*\}|\\(?:lor|vee)\b|\bor\b)\s*", re.IGNORECASE)
_HEDGE = re.compile(
    r"\\text\s*\{\s*or\s*\}|\\(?:lor|vee)\b|\b(?:or|either|maybe|perhaps|possibly|otherwise)\b",
    re.IGNORECASE,
)
_THOUSANDS_HEAD = re.compile(r"^(?:.*[^\d.])?-?\d{1,3}$")
_THOUSANDS_TAIL = re.compile(r"^\d{3}(?:\D.*)?$", re.DOTALL)

_SIGN = r"[-+\u2212]?"
_DECIMAL = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+"
_POWER_OF_TEN = r"10\s*\^\s*(?:\{\s*[-+]?\d+\s*\}|[-+]?\d)"
_SCIENTIFIC = rf"(?:{_DECIMAL})\s*(?:\\times|\\cdot|\*|\u00d7)\s*{_POWER_OF_TEN}|{_POWER_OF_TEN}"
_FRACTION = r"(?:\d+\s*)?\\frac\s*(?:\{\s*\d+\s*\}|\d)\s*(?:\{\s*\d+\s*\}|\d)|\d+\s*/\s*\d+"
_BASE = rf"(?:{_DECIMAL})_\s*(?:\{{\s*\d+\s*\}}|\d+)"
_NUMBER = re.compile(rf"{_SIGN}\s*(?:{_SCIENTIFIC}|{_FRACTION}|{_BASE}|{_DECIMAL})")

_WRAPPER = re.compile(r"^\\(?:text|mathrm|boxed)\s*\{(.*)\}$", re.DOTALL)
_LHS = re.compile(r"^(?:[A-Za-z](?:_\{?\w+\}?)?|\\[A-Za-z]+)\s*=\s*")
_CURRENCY = re.compile(
    r"^(?:\\\$|\$|\u20ac|\u00a3|\u00a5|\\euro\b|USD|EUR)\s*|\s*(?:\\\$|\u20ac|\u00a3|\u00a5|\\euro|USD|EUR|dollars?|euros?|cents?)$",
    re.IGNORECASE,
)
_PERCENT = re.compile(r"\s*(?:\\%|%|\\text\s*\{\s*percent\s*\}|\s+percent)$")
_DEGREES = re.compile(r"\s*(?:\^\s*\{?\s*\\circ\s*\}?|\u00b0|\\degree\b|\s*degrees?)$")
_UNIT = re.compile(
    r"\s*(?:\\(?:text|mathrm|rm)\s*\{[^{}]*\}|\s[A-Za-z]{1,15}(?:\s[A-Za-z]{1,15})?)"
    r"(?:\s*\^\s*\{?\s*[23]\s*\}?|\u00b2|\u00b3)?$"
)
_SET = re.compile(r"\\?\{(.*?)\\?\}", re.DOTALL)
_WORD_UNIT = re.compile(
    r"\s*(?:\\(?:text|mathrm|rm)\s*\{[^{}]*\}|\s[A-Za-z]{2,15}(?:\s[A-Za-z]{2,15})?)"
    r"(?:\s*\^\s*\{?\s*[23]\s*\}?|\u00b2|\u00b3)?$"
)
_GROUP = re.compile(r"[(\[](.*)[)\]]", re.DOTALL)
_RELATION_SIGN = re.compile(
    r"<=|>=|!=|<|>|\\(?:leq?|geq?|leqslant|geqslant|lt|gt|neq?)(?![A-Za-z])"
)
_VARIABLE = re.compile(r"[A-Za-z](?:_\{?\w+\}?)?")
_INTERVAL = re.compile(
    r"\\infty|\\cup|\[[^()\[\]]*,[^()\[\]]*[)\]]|[(\[][^()\[\]]*,[^()\[\]]*\]"
)


def _unwrap_set(text: str) -> str:
    """``\\{1, 2\\}`` (or ``{1, 2}``) -> ``1, 2``; else the text."""
    text = text.strip()
    match = _SET.fullmatch(text)
    if match is None or not _balanced(match.group(1)):
        return text
    return match.group(1).strip()


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += (char in _OPEN) - (char in _CLOSE)
        if depth < 0:
            return False
    return depth == 0


def split_parts(text: str) -> list[str]:
    """Top-level comma/semicolon (or "or") separated parts, a set's elements included; a
    thousands group stays whole."""
    text = _unwrap_set(text)
    parts, depth, current = [], 0, []
    for char in _OR.sub(",", text) if _OR.search(text) else text:
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth = max(0, depth - 1)
        if char in ",;" and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    merged: list[str] = []
    for part in parts:
        if merged and _THOUSANDS_HEAD.match(merged[-1]) and _THOUSANDS_TAIL.match(part):
            merged[-1] += "," + part
        else:
            merged.append(part)
    return [part.strip() for part in merged if part.strip()]


def _strip_decorations(text: str, letter_units: bool) -> str:
    text = text.strip().strip("$").strip()
    while (match := _WRAPPER.match(text)) is not None:
        text = match.group(1).strip()
    text = _LHS.sub("", text)
    previous = None
    while previous != text:
        previous = text
        for pattern in (_CURRENCY, _PERCENT, _DEGREES, _UNIT if letter_units else _WORD_UNIT):
            text = pattern.sub("", text).strip()
    return text


def is_number_literal(text: str, letter_units: bool = True) -> bool:
    """Whether ``text`` is one number written as a number (see the module docstring).

    ``letter_units=False`` reads a single letter after the number as a variable (``6 m`` is no
    number): how a gold is read, since there a letter is more often the problem's variable.
    """
    core = _strip_decorations(text, letter_units)
    return bool(core) and _NUMBER.fullmatch(core) is not None


def number_core(text: str) -> str | None:
    """The number of a number literal without its decorations (``x = 36 cm`` -> ``36``); None
    for anything else."""
    core = _strip_decorations(text, letter_units=True)
    return core if core and _NUMBER.fullmatch(core) else None


def is_numeric(text: str, letter_units: bool = True) -> bool:
    """Whether every part of ``text`` is a number literal, inside tuples and intervals too
    (``1,3,5``, ``(2,32), (8,18)``, ``(3,4]`` yes; ``3\\sqrt{13}``, ``(3+1, 2)`` no)."""
    parts = split_parts(text)
    return bool(parts) and all(_numeric_part(part, letter_units) for part in parts)


def _numeric_part(part: str, letter_units: bool) -> bool:
    inner = _GROUP.fullmatch(part.strip())
    if inner is not None and _balanced(inner.group(1)) and "," in inner.group(1):
        return is_numeric(inner.group(1), letter_units)
    return is_number_literal(part, letter_units)


def is_numeric_relation(text: str) -> bool:
    """Whether ``text`` bounds one variable by number literals (``x \\geq 5``, ``3 < x \\leq 4``)."""
    sides = [side.strip() for side in _RELATION_SIGN.split(text)]
    if not 2 <= len(sides) <= 3:
        return False
    variables = [side for side in sides if _VARIABLE.fullmatch(side)]
    numbers = [side for side in sides if is_number_literal(side, letter_units=False)]
    return len(variables) == 1 and len(numbers) == len(sides) - 1


def is_interval(text: str) -> bool:
    """Whether ``text`` is written as an interval or a union: ``[a, b)``, ``(a, b]``, ``\\infty``,
    ``\\cup`` (an open pair ``(a, b)`` may be a point)."""
    return _INTERVAL.search(text) is not None


def is_hedge(text: str) -> bool:
    """Whether ``text`` offers alternatives ("35 or 36", "either 35 or 36", "maybe 36")."""
    return _HEDGE.search(text) is not None


def part_count(text: str) -> int:
    """How many answers ``text`` gives: its parts, two for a ``\\pm``."""
    parts = split_parts(text)
    return max(len(parts), 2 if "\\pm" in text or "\\mp" in text else 1)
