"""Score one completion against one gold in this process, with math-verify's own timeouts.

math-verify times out with ``signal.alarm``, which works only in a main thread: `score_local`
refuses to run anywhere else. `epx.rewards.score_answer` calls it on the main thread and the
pool's worker processes call it in theirs; everything else goes through the pool.

The answer is the last box's content (cut here, so earlier boxes never merge into it), cleaned
by `normalize.clean_answer` and parsed as ``\\boxed{answer}``, once with math-verify's unit
stripping and once without (``6m`` is 6 metres or 6 times m: either reading may match). With no
box, math-verify's lenient parse of the completion's tail is the answer (``boxed=False``). The
gold is parsed without unit stripping (``6m`` stays 6m), as each of `normalize.gold_candidates`.
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

from epx.scoring.keys import canonical_key
from epx.scoring.normalize import clean_answer, gold_candidates, last_box
from epx.scoring.score import Score

UNBOXED_TAIL_CHARS = 4_000  # an unboxed final answer is looked for in the completion's end
DEFAULT_DECIMALS = 6  # math-verify's float_rounding
_CACHE_SIZE = 4_096  # parses kept per cache; a full cache is emptied
_gold_cache: dict[str, tuple[object, ...]] = {}
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


def _parse(text: str, deadline: Deadline, config: LatexExtractionConfig | None) -> list[object]:
    """math-verify's parse; [] on an error, TimeoutException passes through."""
    try:
        if config is None:  # the lenient default: LaTeX and plain expressions, any match
            return parse(text, parsing_timeout=deadline.seconds(), raise_on_error=True)
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


def _gold_parses(gold: str, deadline: Deadline) -> tuple[object, ...]:
    """Parses of every form of the gold (cached: golds repeat across samples)."""
    cached = _gold_cache.get(gold)
    if cached is None:
        found: list[object] = []
        for latex in gold_candidates(gold):
            found += _parse(latex, deadline, _NO_UNITS)
        if len(_gold_cache) >= _CACHE_SIZE:
            _gold_cache.clear()
        cached = _gold_cache[gold] = tuple(found)
    return cached


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


def _matches(golds: tuple[object, ...], answers: list[object], deadline: Deadline) -> bool:
    """Whether any answer parse verifies against any gold parse (strings only against strings)."""
    for gold in golds:
        decimals = _float_rounding(gold)
        for answer in answers:
            if isinstance(gold, str) != isinstance(answer, str):
                continue
            try:
                if verify(
                    gold,
                    answer,
                    float_rounding=decimals,
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
    """A completion's final answer: its text, whether boxed, its parses so far, and the cleaned
    text still to parse without unit stripping (None when that reads the same)."""

    text: str | None
    boxed: bool = False
    parses: list[object] = field(default_factory=list)
    unitless: str | None = None


def _locate(completion: str) -> tuple[str | None, bool]:
    """(text of the last box, True); (None, True) for an empty or unclosed one; (None, False)."""
    content, has_box = last_box(completion)
    text = content.strip() if content else ""
    return (text or None), has_box


def _extract(completion: str, boxed_text: str | None, has_box: bool, deadline: Deadline) -> _Answer:
    """Parse the final answer: the boxed text, else math-verify's find in the completion's end."""
    if has_box:  # an empty or unclosed last box is no answer (no fallback to unboxed text)
        if boxed_text is None:
            return _Answer(None)
        cleaned = clean_answer(boxed_text)
        unitless = cleaned if _reads_differently_without_units(cleaned) else None
        return _Answer(boxed_text, True, _parse_boxed(cleaned, deadline, units=True), unitless)
    tail = completion[-UNBOXED_TAIL_CHARS:]
    if not tail.strip():
        return _Answer(None)
    found = _parse(tail, deadline, None)
    text = next((f for f in found if isinstance(f, str)), None)
    if text is None and found:
        text = str(found[0])
    return _Answer(text, False, found)


def _is_correct(answer: _Answer, gold: str, deadline: Deadline) -> bool:
    """Whether the answer matches the gold; parses it without unit stripping only if needed."""
    golds = _gold_parses(gold, deadline)
    if _matches(golds, answer.parses, deadline):
        return True
    if answer.unitless is None:
        return False
    more = _parse_boxed(answer.unitless, deadline, units=False)
    answer.parses += more
    return _matches(golds, more, deadline)


def score_local(completion: str, gold: str, timeout: float = 10.0) -> Score:
    """Score in this process; never raises on input. Main thread only (math-verify's alarms)."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("score_local needs the main thread (math-verify uses signal.alarm)")
    deadline = Deadline(timeout)
    text, boxed = _locate(completion)
    try:
        answer = _extract(completion, text, boxed, deadline)
        text, boxed = answer.text, answer.boxed
        if text is None:
            return Score("unparsed", None, False)
        if _is_correct(answer, gold, deadline):
            status = "correct"
        elif any(not isinstance(a, str) for a in answer.parses):
            status = "wrong"
        else:  # no mathematical object, and not literally the gold: no key (it never wins a vote)
            return Score("unparsed", text, boxed)
        return Score(status, text, boxed, _key(answer.parses, deadline))
    except (TimeoutException, MemoryError):
        return Score("timeout", text, boxed and text is not None)
    except Exception:
        return Score("unparsed", text, boxed and text is not None)
