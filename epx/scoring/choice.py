"""The final letter of a multiple-choice answer (GPQA's A-D): pure string work.

The math scorer's rule holds (`extract`): only a final answer counts, and an answer that offers
several is wrong. The final letter is the last of these in the completion:

- the last ``\\boxed{}`` (with the boxes joined to it, as in `extract.final_box_run`) holding
  a letter: ``C``, ``(C)``, ``\\text{C}``, ``(C) 4.2 eV``;
- after that box, a statement: "Answer: C", "The (correct) answer is (C)", "The correct option
  is C.", "**Final answer:** C", "Option C is correct";
- a letter in parentheses that ends the text ("... so we pick (C).");
- a last line holding only the letter (``C``, ``(C)``, ``**C**``, ``C.``).

A letter stands alone: in parentheses, or followed by punctuation, the end of a line or a clause
("C because ..."); "The answer is A decrease in pressure" holds none. Several letters are a
hedge, wrong whatever they hold: another letter joined by ``,`` ``;`` ``/`` "or" "and" ("A or
B", "A, B, C, D"), boxes with different letters, last lines listing letters one per line, or a
hedge word and another letter after the answer ("C, maybe D"). A choice's text without its
letter is no answer.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from epx.scoring.extract import final_box_run, find_boxes
from epx.scoring.score import Score

LETTERS = "ABCD"
_MAX_TEXT = 4_000  # statements are looked for in the completion's end


@dataclass(frozen=True)
class LetterAnswer:
    """The final letter of a completion: None when there is none or several (``hedged``);
    source: ``box``, ``statement``, ``line`` or None."""

    letter: str | None
    source: str | None = None
    hedged: bool = False


NO_LETTER = LetterAnswer(None)


@dataclass(frozen=True)
class _Patterns:
    token: re.Pattern[str]  # one letter that stands alone, at the start of a text
    more: re.Pattern[str]  # another letter joined to the one before: a list or a hedge
    before: re.Pattern[str]  # a letter and a joiner right before (the end of a text)
    marker: re.Pattern[str]
    verdict: re.Pattern[str]
    closing: re.Pattern[str]
    line: re.Pattern[str]
    box: re.Pattern[str]
    alternative: re.Pattern[str]
    any_letter: re.Pattern[str]


_MARKUP = r"(?:\*\*|__|\*|_|\$)*"
_CLAUSE = r"because|since|as|which|so|for|given|due|with|from|by|or|and|nor|then"
_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")


@functools.cache
def _patterns(letters: str) -> _Patterns:
    """The patterns for one set of letters (case-sensitive: only words ignore case)."""
    one = f"[{re.escape(letters)}]"
    alone = r"(?![A-Za-z0-9])"
    joiner = r"(?:,|;|/|&|\b(?i:or|and|nor)\b)"
    bare_end = rf"(?=\s*$|[.,;:!?*_$)\]]|\s*\n|\s+(?i:{_CLAUSE})\b)"
    token = rf"{_MARKUP}\s*(?:\(\s*(?P<p>{one})\s*\)|(?P<c>{one})\s*\)|(?P<b>{one}){bare_end})"
    return _Patterns(
        token=re.compile(token),
        more=re.compile(rf"^[\s*_$)]*{joiner}\s*{_MARKUP}\(?\s*{one}{alone}"),
        before=re.compile(
            rf"(?<![A-Za-z0-9]){one}\s*\)?{_MARKUP}\s*{joiner}\s*{_MARKUP}\s*\(?\s*$"
        ),
        marker=re.compile(
            r"(?i:\bfinal\s+answer|\banswer|\boption|\bchoice)[*_]*\s*(?i:is\b\s*:?|:|=)"
            r"[*_:\s]*(?:(?i:option|choice)\s+)?"
        ),
        verdict=re.compile(
            rf"(?<![A-Za-z0-9])(?:(?i:option|choice)\s+)?{_MARKUP}\(?\s*({one})\s*\)?{_MARKUP}"
            r"\s+(?i:is\s+(?:the\s+)?(?:correct|right|best))\b"
        ),
        closing=re.compile(rf"\(\s*({one})\s*\)[\s.!*_$]*$"),
        line=re.compile(rf"^{_MARKUP}\s*\(?\s*({one})\s*\)?\s*[.:]?\s*{_MARKUP}$"),
        box=re.compile(rf"^\(?\s*({one})\s*(?:\)|[.:](?=\s|$)|$)"),
        alternative=re.compile(
            r"\b(?i:maybe|perhaps|possibly|alternatively|otherwise|"
            r"(?:could|might)\s+(?:also\s+)?be)\b\s*(?:(?i:option|choice)\s+)?"
            rf"{_MARKUP}\(?\s*({one}){alone}"
        ),
        any_letter=re.compile(rf"(?<![A-Za-z0-9]){one}{alone}"),
    )


def _token_at(text: str, patterns: _Patterns) -> tuple[str, int] | None:
    """The letter that starts ``text`` (markup allowed) and where it ends, or None."""
    match = patterns.token.match(text)
    if match is None:
        return None
    return match.group("p") or match.group("c") or match.group("b"), match.end()


def _box_letter(content: str, patterns: _Patterns) -> tuple[str | None, bool]:
    """The letter a box holds, and whether it holds several."""
    text = content
    while (unwrapped := _WRAPPER.sub(r"\1", text)) != text:
        text = unwrapped
    text = text.replace("$", "").replace("*", "").strip()
    match = patterns.box.match(text)
    if match is not None and not patterns.more.match(text[match.end() :]):
        return match.group(1), False
    return None, len(set(patterns.any_letter.findall(text))) > 1


def _box_answer(completion: str, patterns: _Patterns) -> tuple[LetterAnswer, str]:
    """The letter of the final box run, and the text after it (the whole text without one)."""
    boxes = find_boxes(completion)
    if not boxes:
        return NO_LETTER, completion
    run, hedged = final_box_run(completion, boxes)
    last = run[-1]
    after = completion[last.end + 1 :] if last.end is not None else ""
    if last.content is None or not last.content.strip():  # an empty or unclosed last box
        return LetterAnswer(None, "box"), after
    found: set[str] = set()
    for box in run:
        letter, several = _box_letter(box.content or "", patterns)
        hedged = hedged or several
        if letter is not None:
            found.add(letter)
    if len(found) > 1 or hedged:
        return LetterAnswer(None, "box", hedged=True), after
    if not found:
        return NO_LETTER, after
    return LetterAnswer(found.pop(), "box"), after


def _statements(text: str, patterns: _Patterns) -> list[tuple[int, int, LetterAnswer]]:
    """(start, end, answer) of every statement, closing parenthesis and last line in ``text``."""
    found = []
    for marker in patterns.marker.finditer(text):
        token = _token_at(text[marker.end() :], patterns)
        if token is not None:
            end = marker.end() + token[1]
            hedged = patterns.more.match(text[end:]) is not None
            found.append((marker.start(), end, _answer(token[0], "statement", hedged)))
    for match in [*patterns.verdict.finditer(text), patterns.closing.search(text)]:
        if match is not None:
            hedged = patterns.before.search(text[: match.start(1)]) is not None
            found.append((match.start(), match.end(), _answer(match.group(1), "statement", hedged)))
    lines = [line for line in text.splitlines() if line.strip()]
    last = patterns.line.match(lines[-1].strip()) if lines else None
    if last is not None:
        before = patterns.line.match(lines[-2].strip()) if len(lines) > 1 else None
        hedged = before is not None and before.group(1) != last.group(1)  # a list, one a line
        start = text.rfind(lines[-1])
        found.append((start, start + len(lines[-1]), _answer(last.group(1), "line", hedged)))
    return found


def _answer(letter: str, source: str, hedged: bool) -> LetterAnswer:
    return LetterAnswer(None if hedged else letter, source, hedged)


def final_letter(completion: str, letters: str = LETTERS) -> LetterAnswer:
    """The completion's final letter among ``letters`` (see the module docstring)."""
    patterns = _patterns(letters)
    answer, after = _box_answer(completion, patterns)
    offset = max(0, len(after) - _MAX_TEXT)
    after = after[offset:]
    statements = _statements(after, patterns)
    end = 0
    if statements:
        _, end, answer = max(statements, key=lambda item: (item[0], item[1]))
    if answer.letter is not None:
        for alternative in patterns.alternative.finditer(after[end:]):
            if alternative.group(1) != answer.letter:
                return LetterAnswer(None, answer.source, hedged=True)
    return answer


def score_letter(completion: str, gold: str, letters: str = LETTERS) -> Score:
    """``completion`` scored against the gold letter: ``correct``, ``wrong`` (another letter,
    or several) or ``unparsed`` (no letter); the key is the letter (None when hedged)."""
    if len(gold) != 1 or gold not in letters:
        raise ValueError(
            f"score_letter: the gold must be one of {', '.join(letters)}, got {gold!r}"
        )
    final = final_letter(completion, letters)
    boxed = final.source == "box"
    if final.hedged:
        return Score("wrong", final.letter, boxed)
    if final.letter is None:
        return Score("unparsed", None, boxed)
    status = "correct" if final.letter == gold else "wrong"
    return Score(status, final.letter, boxed, final.letter)
