"""The result of scoring one completion against one gold answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["correct", "wrong", "unparsed", "timeout"]
STATUSES: tuple[Status, ...] = ("correct", "wrong", "unparsed", "timeout")


@dataclass(frozen=True)
class Score:
    """One completion scored against one gold answer.

    status: ``correct``; ``wrong`` (an answer was parsed and differs); ``unparsed`` (no answer,
    or one that is no mathematical object and not literally the gold); ``timeout`` (the scorer
    ran out of time or its worker was killed; counts as wrong).
    answer: the extracted answer text (the last box's content, or math-verify's unboxed final
    answer), None if there is none. boxed: whether it came from a ``\\boxed{}``/``\\fbox{}``.
    key: canonical equivalence key of the parsed answer (equal keys ~ equivalent answers).
    """

    status: Status
    answer: str | None
    boxed: bool
    key: str | None = None

    @property
    def correct(self) -> bool:
        """Whether the answer matches the gold."""
        return self.status == "correct"
