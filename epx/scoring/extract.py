"""Find a completion's final answer: pure string work, no math-verify.

The final answer is the *last* of these:

- the last ``\\boxed{}``/``\\fbox{}``; a final run of boxes joined only by ``,``, ``;``, ``and``,
  ``\\quad`` (and spaces, ``$``) is kept as one answer of several parts (one part when every box
  holds the same text), and a run joined by ``or`` is a hedge;
- an explicit final statement after that box: "the (final) answer is X", "Answer: X", a line
  holding "Answer" and one displayed value (``Answer \\( 9 \\)``, ``Answer $$ 9 $$``: nothing else
  on the line), a closing "= X" / "equals X" / "is X" (the end of the completion), or a last
  line that holds only the answer (a hedge when the line before holds only another number: a
  list of candidates);
- in a completion without any box, a final relation in math after a concluding word ("so
  $x \\geq 5$.", "Therefore $x > 5$ is the solution."; a hedge when its sentence holds "or"); after
  a box a relation is a remark ("\\boxed{5}. So $x \\geq 4$.") and the box stands.

Without either there is no answer: an expression found somewhere in the text is never one.
With ``strictness="boxed"`` only boxes count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from epx.scoring import forms
from epx.scoring.normalize import clean_answer

Strictness = Literal["final", "boxed"]
STRICTNESS: tuple[Strictness, ...] = ("final", "boxed")
DEFAULT_STRICTNESS: Strictness = "final"

_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
_MAX_BOX_CHARS = 20_000
_MAX_STATEMENT_TEXT = 4_000  # statements are looked for in the completion's end

# Between two boxes of one multi-part answer: nothing but these.
_JOINER = re.compile(
    r"(?:\s|\$|,|;|&|\\[,;:! ]|\\q?quad|\\\\|\band\b|\\text\s*\{\s*(?:and|,)?\s*\}|\\(?:text|mbox)"
    r"\s*\{\s*and\s*\})*",
    re.IGNORECASE,
)
_HEDGE_JOINER = re.compile(
    r"^(?:\s|\$|,|;|\.|\\[,;:! ]|\\q?quad|\\text\s*\{[^{}]*\}|\b(?:or|either|maybe|perhaps|"
    r"alternatively|possibly|otherwise)\b)*$",
    re.IGNORECASE,
)
_HEDGE_WORD = re.compile(r"\b(?:or|either|maybe|perhaps|alternatively|possibly|otherwise)\b", re.I)

_MARKER = re.compile(r"(?:\bfinal\s+answer|\banswer)[*_]*\s*(?:is\b|:|=)[*_:\s]*", re.IGNORECASE)
_CLOSING = re.compile(r"(?:(?<![<>!=])=(?!=)|\bequals\b|\bis\b)\s*", re.IGNORECASE)
# A line holding the word "Answer" and one displayed value, no colon: "Answer \\( 9 \\)"
_ANSWER_LINE = re.compile(
    r"^[ \t#*_>]*(?:final[ \t]+)?answer[*_]*[ \t]*(?:\$\$(?P<display>(?:\\\$|[^$])+?)\$\$"
    r"|\\\[(?P<bracket>(?:(?!\\\]).)+?)\\\]|\$(?P<inline>(?:\\\$|[^$\n])+)\$"
    r"|\\\((?P<paren>(?:(?!\\\))[^\n])+?)\\\))[ \t.!*_]*$",
    re.IGNORECASE | re.MULTILINE | re.DOTALL,
)
# A final relation: "so $x \\geq 5$.", "Therefore $x > 5$ is the solution."
_INLINE_MATH = re.compile(r"\$(?P<dollar>(?:\\\$|[^$])+)\$|\\\((?P<paren>.+?)\\\)", re.DOTALL)
_RELATION = re.compile(r"\\(?:geq?|leq?|geqslant|leqslant|gt|lt|neq?)(?![A-Za-z])|[<>]|!=")
_CONCLUSION = re.compile(
    r"(?:\b(?:so|thus|therefore|hence|get|have|obtain|find|is|are|that)|:)[\s,]*$", re.IGNORECASE
)
_MATH_CLOSE = re.compile(r"(?<!\\)\$|\\\)|\\\]")
# What may follow a final value: "is the solution", "is our answer"
_ANSWER_TAIL = re.compile(
    r"^(?:\s*(?:is|are)\s+(?:the|our)\s+(?:final\s+)?(?:solution|answer)(?:\s+set)?)?[\s.!]*$",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"\n|(?<!\d)\.(?=\s)|\.(?=\s+[A-Z])|[!?;](?=\s)")
_CLAUSE = re.compile(
    r",\s+(?=[A-Za-z]{2})|\s+(?:because|since|as|which|so|for|when|where|if|but|"
    r"in|from|by|using|after|with)\b",
    re.IGNORECASE,
)
_TRAILING = re.compile(r"(?:\s|\*|_|\.|!|\\\]|\\\)|\$|[\"'\u201c\u201d])+$")
_LEADING = re.compile(r"^(?:\s|\*|_|:|\\\[|\\\(|\$|[\"'\u201c\u201d])+")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]{2,}")
_MATH_CONTENT = re.compile(r"\d|\\(?:frac|dfrac|tfrac|sqrt|pi|infty|begin|pm|cdot|times)\b")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathbf|mathrm|mbox)\s*\{([^{}]*)\}")


@dataclass(frozen=True)
class Box:
    """One ``\\boxed{...}``: where it opens, where its closing brace is (None if it never
    closes) and its content."""

    start: int
    end: int | None
    content: str | None


@dataclass(frozen=True)
class FinalAnswer:
    """The final answer of a completion.

    text: the answer (the parts joined by ``, `` for a run of boxes); None when there is none.
    parts: the boxes of a final run (one element for a single box or a statement).
    source: ``box``, ``statement`` or None. hedged: the run of boxes was joined by "or" (or a
    like word). found_box: whether the completion has any box (an empty or unclosed last one
    included).
    """

    text: str | None
    parts: tuple[str, ...] = ()
    source: str | None = None
    hedged: bool = False
    found_box: bool = False

    @property
    def boxed(self) -> bool:
        return self.source == "box"


NO_ANSWER = FinalAnswer(None)


def find_boxes(text: str) -> list[Box]:
    """Every box opening in order, with its closing brace (nested braces kept, ``\\{`` skipped)."""
    found = []
    for opening in _BOX_OPEN.finditer(text):
        start, depth, index = opening.end(), 1, opening.end()
        stop = min(len(text), start + _MAX_BOX_CHARS)
        end = None
        while index < stop:
            char = text[index]
            if char == "\\":
                index += 2
                continue
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    end = index
                    break
            index += 1
        found.append(Box(opening.start(), end, text[start:end] if end is not None else None))
    return found


def last_box(text: str) -> tuple[str | None, bool]:
    """Content of the last box and whether a box was found at all ((None, True): unclosed)."""
    boxes = find_boxes(text)
    if not boxes:
        return None, False
    return boxes[-1].content, True


def final_box_run(text: str, boxes: list[Box]) -> tuple[list[Box], bool]:
    """The last box and the boxes joined to it by separators only; whether "or" joined them."""
    run = [boxes[-1]]
    hedged = False
    for previous in reversed(boxes[:-1]):
        current = run[0]
        if previous.end is None or previous.end > current.start:
            break  # unclosed, or a box holding the one after it
        between = text[previous.end + 1 : current.start]
        if _JOINER.fullmatch(between):
            run.insert(0, previous)
        elif len(between) <= 40 and _HEDGE_JOINER.match(between) and _HEDGE_WORD.search(between):
            run.insert(0, previous)
            hedged = True
        else:
            break
    return run, hedged


def _sentence_text(text: str) -> tuple[str, str]:
    """X of a statement (up to the end of its sentence or the start of a subordinate clause),
    and the rest of its sentence."""
    stripped = text.lstrip()
    for opening, closing in (("$$", "$$"), ("$", "$"), ("\\[", "\\]"), ("\\(", "\\)")):
        if stripped.startswith(opening):
            end = stripped.find(closing, len(opening))
            if end >= 0:
                rest = stripped[end + len(closing) :]
                sentence_end = _SENTENCE_END.search(rest)
                tail = rest[: sentence_end.start()] if sentence_end else rest
                return _LEADING.sub("", stripped[len(opening) : end]).strip(), tail
    text = _LEADING.sub("", text)
    end = _SENTENCE_END.search(text)
    text = text[: end.start()] if end else text
    cuts = [m.start() for m in (_CLAUSE.search(text), _MATH_CLOSE.search(text)) if m]
    cut = min(cuts, default=len(text))  # a clause, or the end of the math the statement is in
    return _TRAILING.sub("", text[:cut]).strip(), text[cut:]


def _question(text: str) -> bool:
    end = _SENTENCE_END.search(text + " ")
    return bool(end) and text[end.start()] == "?"


def _looks_like_math(text: str) -> bool:
    """A value, not prose: it has a digit or a math command."""
    return bool(_MATH_CONTENT.search(text))


def answer_only(line: str) -> str | None:
    """A line that holds only an answer (``36``, ``$\\frac{1}{2}$``, ``x = 5``, ``36 cm``)."""
    text = _TRAILING.sub("", _LEADING.sub("", line)).strip()
    if not text or text.endswith("?") or not _looks_like_math(text):
        return None
    prose = _WORD.findall(_LATEX_COMMAND.sub(" ", _TEXT_WRAPPER.sub(r"\1", text)))
    if len(prose) > 1 or (prose and not re.search(rf"\s{prose[0]}\W*$", " " + text)):
        return None  # words other than one trailing unit
    return text


def _listed_after_another(value: str, before: list[str]) -> bool:
    """Whether a last-line number follows a line holding only another number: a list of
    candidates ("34\\n35\\n36"), which offers several values."""
    number = forms.number_core(clean_answer(value))
    previous = answer_only(before[-1]) if before and number is not None else None
    other = forms.number_core(clean_answer(previous)) if previous is not None else None
    return other is not None and other != number


@dataclass(frozen=True)
class _Candidate:
    start: int
    rank: int  # within one sentence: marker 2 > closing 1 > last line 0
    text: str
    hedged: bool = False


def final_statement(text: str, relations: bool = True) -> _Candidate | None:
    """The last explicit final statement in ``text`` (see the module docstring), or None;
    hedged when the rest of its sentence offers another value ("..., otherwise 35").
    ``relations``: whether a final relation ("so $x \\geq 5$.") counts as a statement."""
    offset = max(0, len(text) - _MAX_STATEMENT_TEXT)
    text = text[offset:]
    candidates: list[_Candidate] = []
    for marker in _MARKER.finditer(text):
        rest = text[marker.end() :]
        value, tail = _sentence_text(rest)
        if value and not _question(rest):
            hedged = _HEDGE_WORD.search(tail) is not None
            candidates.append(_Candidate(marker.end(), 2, value, hedged))
    for line in _ANSWER_LINE.finditer(text):
        group = next(name for name, value in line.groupdict().items() if value is not None)
        if line.group(group).strip():
            candidates.append(_Candidate(line.start(group), 2, line.group(group).strip()))
    for closing in (_closing_statement(text), _relation_statement(text) if relations else None):
        if closing is not None:
            candidates.append(closing)
    lines = [line for line in text.splitlines() if line.strip()]
    if lines:
        value = answer_only(lines[-1])
        if value is not None:
            hedged = _listed_after_another(value, lines[:-1])
            candidates.append(_Candidate(text.rfind(lines[-1]), 0, value, hedged))
    if not candidates:
        return None
    sentence_starts = [end.end() for end in _SENTENCE_END.finditer(text)]

    def order(candidate: _Candidate) -> tuple[int, int, int]:  # later sentence, then rank
        sentence = sum(start <= candidate.start for start in sentence_starts)
        return sentence, candidate.rank, candidate.start

    return max(candidates, key=order)


def _last_sentence_start(body: str) -> int:
    """Where the last sentence of ``body`` starts."""
    starts = [end.end() for end in _SENTENCE_END.finditer(body)]
    return starts[-1] if starts else 0


def _closing_statement(text: str) -> _Candidate | None:
    """The "= X" / "equals X" / "is X" that ends the completion's last sentence."""
    body = _TRAILING.sub("", text)
    if not body or body.rstrip().endswith("?"):
        return None
    start = _last_sentence_start(body)
    sentence = body[start:]
    for match in reversed(list(_CLOSING.finditer(sentence))):
        rest = sentence[match.end() :]
        value, tail = _sentence_text(rest)
        if value and _looks_like_math(value) and _ends_sentence(rest, value):
            hedged = _HEDGE_WORD.search(tail) is not None
            return _Candidate(start + match.end(), 1, value, hedged)
    return None


def _relation_statement(text: str) -> _Candidate | None:
    """A relation in math that ends the completion after a concluding word ("so $x \\geq 5$.",
    "Therefore $x > 5$ is the solution."); hedged when its sentence holds a hedge word."""
    body = text.rstrip()
    start = _last_sentence_start(body)
    sentence = body[start:]
    maths = list(_INLINE_MATH.finditer(sentence))
    if not maths:
        return None
    math = maths[-1]
    value = (math.group("dollar") or math.group("paren") or "").strip()
    if (
        not _RELATION.search(value)
        or not re.search(r"[A-Za-z]", _LATEX_COMMAND.sub(" ", value))  # a variable
        or not _CONCLUSION.search(sentence[: math.start()])
        or not _ANSWER_TAIL.match(sentence[math.end() :])
    ):
        return None
    hedged = _HEDGE_WORD.search(sentence) is not None
    return _Candidate(start + math.start(), 1, value, hedged)


def _ends_sentence(rest: str, value: str) -> bool:
    """Whether ``value`` is followed by nothing but a subordinate clause in ``rest``."""
    tail = rest[rest.find(value) + len(value) :] if value in rest else ""
    tail = _TRAILING.sub("", tail.replace("$", "")).strip()
    if not tail or _ANSWER_TAIL.match(tail):
        return True
    return bool(_CLAUSE.match(" " + tail if not tail.startswith(",") else tail))


def final_answer(completion: str, strictness: Strictness = DEFAULT_STRICTNESS) -> FinalAnswer:
    """The completion's final answer (see the module docstring)."""
    boxes = find_boxes(completion)
    after = completion
    answer = NO_ANSWER
    if boxes:
        run, hedged = final_box_run(completion, boxes)
        last = run[-1]
        contents = [box.content.strip() if box.content else "" for box in run]
        if last.content is None or not contents[-1]:
            answer = FinalAnswer(None, found_box=True)  # an empty or unclosed last box
        else:
            parts = tuple(part for part in contents if part)
            if len(set(parts)) == 1:  # one answer boxed again (``\\boxed{36} \\boxed{36}``)
                parts, hedged = parts[:1], False
            answer = FinalAnswer(", ".join(parts), parts, "box", hedged, True)
        after = completion[last.end + 1 :] if last.end is not None else ""
    if strictness == "boxed":
        return answer
    statement = final_statement(after, relations=not boxes)
    if statement is None:
        return answer
    return FinalAnswer(
        statement.text, (statement.text,), "statement", statement.hedged, bool(boxes)
    )
