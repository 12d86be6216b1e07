"""Score one completion against one gold in this process, with math-verify's own timeouts.

math-verify times out with ``signal.alarm``, which works only in a main thread: `score_local`
refuses to run anywhere else. `epx.scoring.score_answer` calls it on the main thread and the
pool's worker processes call it in theirs; everything else goes through the pool.

The answer is the completion's final answer (`extract.final_answer`: the last box or an explicit
final statement after it; never an expression found elsewhere), cleaned by
`normalize.clean_answer` and parsed as ``\\boxed{answer}``, once with math-verify's unit stripping
and once without (``6m`` is 6 metres or 6 times m: either reading may match). Its form is judged
before its value (`forms`): a hedge, a list for a one-part gold, or an expression for a gold
written as a number is wrong whatever its value. The gold is parsed once, without unit stripping
(``6m`` stays 6m), as each of `normalize.gold_candidates`. A gold written as an interval
(``[a, b)``, ``(a, b]``, ``\\infty``, ``\\cup``) also accepts a relation in one variable (``x \\geq 5`` for
``[5, \\infty)``, ``3 < x \\leq 4`` for ``(3,4]``); an open pair ``(-2, 1)`` may be a point, so
it does not.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import sympy
from latex2sympy2_extended.latex2sympy2 import NormalizationConfig, normalize_latex
from math_verify import parse, verify
from math_verify.errors import TimeoutException
from math_verify.parser import LatexExtractionConfig
from math_verify.utils import timeout as signal_timeout

from epx.scoring import forms
from epx.scoring.extract import DEFAULT_STRICTNESS, FinalAnswer, Strictness, final_answer
from epx.scoring.keys import canonical_key
from epx.scoring.normalize import clean_answer, gold_candidates, split_percent
from epx.scoring.score import Score

DEFAULT_DECIMALS = 6  # math-verify's float_rounding
_CACHE_SIZE = 4_096  # parses kept per cache; a full cache is emptied
_gold_cache: dict[str, object] = {}  # gold -> _Gold, or _UNREADABLE
_answer_cache: dict[tuple[str, bool], tuple[object, ...]] = {}


def _latex_config(units: bool) -> LatexExtractionConfig:
    normalization = NormalizationConfig(
        basic_latex=True, units=units, malformed_operators=True, nits=True, boxed="all"
    )
    return LatexExtractionConfig(boxed_match_priority=0, normalization_config=normalization)


_WITH_UNITS = _latex_config(units=True)
_NO_UNITS = _latex_config(units=False)


class Deadline:
    """One item's time budget, handed to math-verify as its integer-second timeouts."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def seconds(self) -> int:
        """Whole seconds left (at least 1); raises TimeoutException once the budget is spent."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutException("scoring budget spent")
        return max(1, round(left))


def _parse(text: str, deadline: Deadline, config: LatexExtractionConfig) -> list[object]:
    """math-verify's parse of ``\\boxed{text}``; [] on an error, TimeoutException passes through."""
    try:
        return parse(
            "\\boxed{" + text + "}",
            extraction_config=[config],
            extraction_mode="first_match",
            parsing_timeout=deadline.seconds(),
            raise_on_error=True,
        )
    except Exception:
        return []


def _parse_boxed(cleaned: str, deadline: Deadline, units: bool) -> list[object]:
    """Parses of a boxed answer's cleaned text (cached: samples of one prompt often agree)."""
    key = (cleaned, units)
    cached = _answer_cache.get(key)
    if cached is None:
        if len(_answer_cache) >= _CACHE_SIZE:
            _answer_cache.clear()
        config = _WITH_UNITS if units else _NO_UNITS
        cached = _answer_cache[key] = tuple(_parse(cleaned, deadline, config))
    return list(cached)


def _reads_differently_without_units(cleaned: str) -> bool:
    with_units = normalize_latex(cleaned, _WITH_UNITS.normalization_config)
    return with_units != normalize_latex(cleaned, _NO_UNITS.normalization_config)


def _float_rounding(gold: object) -> int:
    """Decimals for comparing floats: math-verify's 6, more for a gold below 0.1 in size.

    With 6 decimals every answer below 5e-7 equals 3.89e-10; this keeps 6 significant digits.
    """
    try:
        if isinstance(gold, sympy.Basic) and gold.is_number:
            size = abs(float(sympy.N(gold.doit(), 15)))
            if 0 < size < 1:
                return DEFAULT_DECIMALS + math.floor(-math.log10(size))
    except Exception:
        pass
    return DEFAULT_DECIMALS


def _all_roundings(parses: list[object]) -> tuple[int, ...]:
    return tuple(_float_rounding(parse) for parse in parses)


def _matches(gold: _Gold, answers: list[object], deadline: Deadline, percent: bool) -> bool:
    """Whether any answer parse verifies against any gold parse (strings only against strings).

    ``percent``: the answer carries its own percent sign; then a percentage gold's bare number
    (``36`` for ``36\\%``) is not compared, only its value (``3600\\%`` is 36, not 36%).
    """
    for parsed, decimals, bare in zip(gold.parses, gold.decimals, gold.bare, strict=True):
        if percent and bare:
            continue
        for answer in answers:
            if isinstance(parsed, str) != isinstance(answer, str):
                continue
            try:
                if verify(
                    parsed,
                    answer,
                    float_rounding=decimals,
                    allow_set_relation_comp=gold.interval,
                    timeout_seconds=deadline.seconds(),
                    raise_on_error=True,
                ):
                    return True
            except Exception:
                continue
    return False


def _key(answers: list[object], deadline: Deadline) -> str | None:
    """Canonical key of the first mathematical parse (else of the text); None on timeout."""
    first = next((a for a in answers if not isinstance(a, str)), answers[0] if answers else None)
    if first is None:
        return None
    try:
        return signal_timeout(deadline.seconds())(canonical_key)(first)
    except TimeoutException:
        return None


@dataclass
class _Answer:
    """A completion's final answer: its cleaned text, its parses so far, the cleaned text still to
    parse without unit stripping (None when that reads the same), whether it has a percent sign."""

    final: FinalAnswer
    cleaned: str
    parses: list[object] = field(default_factory=list)
    unitless: str | None = None
    percent: bool = False


@dataclass(frozen=True)
class _Gold:
    """A gold answer, read once: its parses, how many parts it has, whether it is written as a
    number (then only a number answers it), whether it is itself a choice ("A or B") and whether
    it is written as an interval (then a relation answers it: ``x \\geq 5`` for ``[5, \\infty)``).
    """

    parses: tuple[object, ...]
    decimals: tuple[int, ...]  # per parse: decimals its value is compared to
    bare: tuple[bool, ...]  # per parse: the bare number of a percentage gold (36 of 36%)
    parts: int
    numeric: bool
    hedge: bool
    interval: bool


_UNREADABLE = object()  # in the gold cache: a gold whose parsing ran out of time


def _gold(gold: str, timeout: float) -> _Gold:
    """The gold read once, with a time budget of its own (cached: golds repeat across samples).

    A gold that runs out of time is remembered as such: every later sample of it times out at
    once instead of parsing it again (a garbage gold costs one timeout, not one per sample).
    """
    cached = _gold_cache.get(gold)
    if cached is _UNREADABLE:
        raise TimeoutException("the gold answer could not be parsed in time")
    if cached is None:
        if len(_gold_cache) >= _CACHE_SIZE:
            _gold_cache.clear()
        deadline = Deadline(timeout)
        try:
            found: list[object] = []
            bare: list[bool] = []
            cleaned = clean_answer(gold)
            value, is_percent = split_percent(cleaned)
            for latex in gold_candidates(gold):
                parses = _parse(latex, deadline, _NO_UNITS)
                found += parses
                bare += [is_percent and latex == value] * len(parses)
            # evaluating the value is where a power tower hangs: here, once, not per sample
            decimals = signal_timeout(deadline.seconds())(_all_roundings)(found)
        except (TimeoutException, MemoryError):
            _gold_cache[gold] = _UNREADABLE
            raise
        cached = _Gold(
            tuple(found),
            decimals,
            tuple(bare),
            forms.part_count(cleaned),
            forms.is_numeric(cleaned, letter_units=False),
            forms.is_hedge(cleaned),
            forms.is_interval(cleaned),
        )
        _gold_cache[gold] = cached
    return cached  # type: ignore[return-value]


def read_gold(gold: str, timeout: float = 10.0) -> bool:
    """Parse the gold now (cached); False when it cannot be parsed in time. Main thread only."""
    try:
        _gold(gold, timeout)
        return True
    except (TimeoutException, MemoryError):
        return False
    except Exception:
        return True  # a gold that fails to parse is compared as text later


def _parse_answer(final: FinalAnswer, deadline: Deadline) -> _Answer:
    """Parse the final answer's cleaned text (with unit stripping first)."""
    cleaned = clean_answer(final.text or "")
    unitless = cleaned if _reads_differently_without_units(cleaned) else None
    percent = split_percent(cleaned)[1]
    return _Answer(final, cleaned, _parse_boxed(cleaned, deadline, units=True), unitless, percent)


def _form_verdict(answer: _Answer, gold: _Gold) -> str | None:
    """ "wrong" when the answer's form already rules it out (a hedge, a list for one answer, an
    expression for a number); None when its value decides."""
    final, text = answer.final, answer.cleaned
    if gold.parts == 1 and not gold.hedge and (final.hedged or forms.is_hedge(text)):
        return "wrong"
    if gold.parts == 1 and (len(final.parts) > 1 or forms.part_count(text) > 1):
        return "wrong"
    if gold.numeric:
        value = text.rsplit("=", 1)[-1] if "=" in text else text
        relation = gold.interval and forms.is_numeric_relation(text)
        if not (forms.is_numeric(value) or relation):
            return "wrong"
    return None


def _is_correct(answer: _Answer, gold: _Gold, deadline: Deadline) -> bool:
    """Whether the answer matches the gold; parses it without unit stripping only if needed."""
    if _matches(gold, answer.parses, deadline, answer.percent):
        return True
    if answer.unitless is None:
        return False
    more = _parse_boxed(answer.unitless, deadline, units=False)
    answer.parses += more
    return _matches(gold, more, deadline, answer.percent)


def score_local(
    completion: str, gold: str, timeout: float = 10.0, strictness: Strictness = DEFAULT_STRICTNESS
) -> Score:
    """Score in this process; never raises on input. Main thread only (math-verify's alarms)."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("score_local needs the main thread (math-verify uses signal.alarm)")
    final = final_answer(completion, strictness)
    text, boxed = final.text, final.boxed
    if text is None:
        return Score("unparsed", None, False)
    try:
        gold_info = _gold(gold, timeout)  # first: a gold known to be unreadable costs nothing
        deadline = Deadline(timeout)
        answer = _parse_answer(final, deadline)
        is_math = any(not isinstance(a, str) for a in answer.parses)
        verdict = _form_verdict(answer, gold_info)
        if verdict is not None and is_math:  # hedges get no key: they never win a vote
            key = None if final.hedged else _key(answer.parses, deadline)
            return Score(verdict, text, boxed, key)
        if verdict is not None:
            return Score("unparsed", text, boxed)
        if _is_correct(answer, gold_info, deadline):
            status = "correct"
        elif is_math:
            status = "wrong"
        else:  # no mathematical object, and not literally the gold: no key (it never wins a vote)
            return Score("unparsed", text, boxed)
        return Score(status, text, boxed, _key(answer.parses, deadline))
    except (TimeoutException, MemoryError):
        return Score("timeout", text, boxed)
    except Exception:
        return Score("unparsed", text, boxed)
