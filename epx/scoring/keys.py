"""Canonical keys of parsed answers, so majority voting groups equivalent answers without verify.

A key is a short string; two answers math-verify calls equivalent should get the same key.
Numbers are rounded where the scorer's verify compares them: 6 decimals, 6 significant digits
below 0.1, 15 significant digits from 1e15 up (``0.5``, ``\\frac12``, ``1/2`` -> ``n:0.5``;
``1234567`` and ``1234568`` differ). Expressions with variables are evaluated at two fixed points
(each variable's value comes from a hash of its name, so ``x+1`` and ``y+1`` differ) and rounded
to 6 significant digits. Sets, tuples, intervals and matrices are keyed element by element (sets
sorted), assignments ``x=5`` by their right side (as verify unwraps them), words by their
lowercased letters. A percentage ``X\\%`` is keyed as X, so "8%" and "8" vote together.
Known disagreements with verify are listed and measured in tests/test_answer_keys.py.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal

import sympy
from latex2sympy2_extended.logic import And
from math_verify.grader import is_assignment_relation, take_last_relation
from sympy import Basic, Interval, MatrixBase, Symbol, Tuple, Union
from sympy.core.relational import Relational

DIGITS = 6
_POINT_SALTS = ("p1", "p2")
_SPACES = re.compile(r"\s+")
_PERCENT_FACTOR = sympy.UnevaluatedExpr(sympy.Rational(1, 100))


def _squash(text: str) -> str:
    return _SPACES.sub("", text.lower())


def _variable_value(name: str, salt: str) -> sympy.Float:
    """A fixed value in [0.5, 1.5) for a variable, from a hash of its name."""
    return sympy.Float(0.5 + (zlib.crc32(f"{salt}:{name}".encode()) % 10007) / 10007)


def _round_like_verify(real: Basic) -> str:
    """A real number at the precision the scorer's verify compares it (see the module doc)."""
    if real == 0:
        return "0"
    value = Decimal(str(sympy.N(real, 40)))
    magnitude = value.adjusted()
    if magnitude >= 15 or not value.is_finite():
        return f"{value:.14e}"
    decimals = DIGITS + max(0, -magnitude - 1)
    rounded = value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
    return format(rounded.normalize(), "f") if rounded else "0"


def _significant(real: Basic) -> str:
    return "0" if real == 0 else str(sympy.N(real, DIGITS))


def _format_number(value: Basic, rounding: Callable[[Basic], str]) -> str | None:
    """A numeric value through ``rounding`` (complex as ``re,im``); None if it is no number."""
    value = sympy.N(value, 30)
    if not value.is_number or value.has(sympy.nan, sympy.zoo):
        return None
    if value.has(sympy.oo, -sympy.oo):  # an interval's open end
        return str(value)
    real, imag = value.as_real_imag()
    return ",".join(rounding(part) for part in ([real] if imag == 0 else [real, imag]))


def _strip_percent(expr: Basic) -> Basic:
    if isinstance(expr, sympy.Mul) and len(expr.args) == 2 and expr.args[1] == _PERCENT_FACTOR:
        return expr.args[0]
    return expr


def _is_text(expr: Basic) -> bool:
    """A word: one symbol, or letters multiplied together as the parser reads ``Evelyn``."""
    if isinstance(expr, Symbol):
        return True
    return (
        isinstance(expr, sympy.Mul)
        and len(expr.args) > 1
        and all(isinstance(arg, Symbol) or arg == sympy.E for arg in expr.args)
    )


def _text_key(expr: Basic) -> str:
    if isinstance(expr, Symbol):
        return "t:" + expr.name.lower()
    return "t:" + "".join("e" if arg == sympy.E else arg.name.lower() for arg in expr.args)


def _values_at_points(expr: Basic) -> list[Basic]:
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    return [
        sympy.N(expr, 15, subs={s: _variable_value(s.name, salt) for s in symbols})
        for salt in _POINT_SALTS
    ]


def _expr_key(expr: Basic) -> str:
    """Numbers by value; expressions by their values at fixed points; else their text."""
    expr = _strip_percent(expr)
    if _is_text(expr):
        return _text_key(expr)
    if not expr.free_symbols:
        number = _format_number(expr, _round_like_verify)
        return "n:" + number if number is not None else "x:" + _squash(str(expr))
    formatted = [_format_number(value, _significant) for value in _values_at_points(expr)]
    if any(value is None for value in formatted):
        return "x:" + _squash(str(expr))
    return "f:" + ";".join(formatted)  # type: ignore[arg-type]


def _scaled_key(prefix: str, expr: Basic, positive_only: bool) -> str:
    """Key of ``expr = 0`` (or ``expr > 0``) up to a constant factor (a positive one for ``>``)."""
    values = _values_at_points(expr)
    if not all(value.is_number for value in values) or values[0] == 0:
        return prefix + _squash(str(expr))
    scale = abs(values[0]) if positive_only else values[0]
    formatted = [_format_number(value / scale, _significant) for value in values]
    if any(value is None for value in formatted):
        return prefix + _squash(str(expr))
    return prefix + ";".join(formatted)  # type: ignore[arg-type]


def _relation_key(relation: Relational) -> str:
    if is_assignment_relation(relation):
        return canonical_key(take_last_relation(relation).rhs)
    if isinstance(relation, sympy.Eq):
        return _scaled_key("eq:", relation.lhs - relation.rhs, positive_only=False)
    strict = isinstance(relation, (sympy.StrictGreaterThan, sympy.StrictLessThan))
    greater_side = isinstance(relation, (sympy.StrictGreaterThan, sympy.GreaterThan))
    difference = relation.lhs - relation.rhs if greater_side else relation.rhs - relation.lhs
    return _scaled_key("gt:" if strict else "ge:", difference, positive_only=True)


def _interval_key(interval: Interval) -> str:
    left = "(" if interval.left_open else "["
    right = ")" if interval.right_open else "]"
    return f"{left}{canonical_key(interval.start)},{canonical_key(interval.end)}{right}"


def _set_key(items: tuple[Basic, ...]) -> str:
    """Sorted element keys; a one-element set of a plain value is that value (as in verify)."""
    keys = sorted({canonical_key(item) for item in items})
    if len(keys) == 1 and not isinstance(items[0], (sympy.Set, Tuple, MatrixBase)):
        return keys[0]
    return "{" + ",".join(keys) + "}"


def _matrix_key(matrix: MatrixBase) -> str:
    entries = ",".join(canonical_key(entry) for entry in matrix)
    return f"m{matrix.rows}x{matrix.cols}[{entries}]"


def _structured_key(value: Basic | MatrixBase) -> str:
    if isinstance(value, MatrixBase):
        return _matrix_key(value)
    if isinstance(value, Interval):
        return _interval_key(value)
    if isinstance(value, Union):
        return "U{" + ",".join(sorted(canonical_key(part) for part in value.args)) + "}"
    if isinstance(value, sympy.FiniteSet):
        return _set_key(value.args)
    if isinstance(value, Tuple):
        return "(" + ",".join(canonical_key(item) for item in value.args) + ")"
    if isinstance(value, And):
        return "&{" + ",".join(sorted(canonical_key(r) for r in value._unsorted_args)) + "}"
    if isinstance(value, Relational):
        return _relation_key(value)
    return _expr_key(value)


def canonical_key(value: object) -> str:
    """The canonical key of one parsed answer (a sympy object, or a string math-verify kept)."""
    if isinstance(value, (Basic, MatrixBase)):
        try:
            return _structured_key(value)
        except Exception:  # sympy raises many kinds on odd input; the text is the fallback key
            pass
    return ("s:" if isinstance(value, str) else "x:") + _squash(str(value))
