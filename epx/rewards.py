"""TRL reward functions over the answer scorer (`epx.scoring`): `correctness`, `format` and
`overlong`, looked up by name in `REWARD_FUNCTIONS` and built with `build_reward_function` (from a
recipe: `recipe_rewards`). Each returns one float per completion, never raises to TRL, and counts
its outcomes (`pop_counts`).
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from epx.errors import RecipeError, did_you_mean
from epx.scoring import DEFAULT_STRICTNESS, STRICTNESS, Score, Strictness, score_many
from epx.scoring.pool import as_text

__all__ = [
    "REWARD_FUNCTIONS",
    "RewardFunction",
    "build_reward_function",
    "overlong_penalty",
    "recipe_rewards",
]

logger = logging.getLogger(__name__)
COUNT_KEYS = ("total", "correct", "failures", "timeouts", "unparsed", "truncated")


def overlong_penalty(length: int, max_length: int, buffer: int, factor: float = 1.0) -> float:
    """DAPO's soft overlong penalty for a completion of ``length`` tokens.

    0 up to ``max_length - buffer``; then falling linearly to ``-factor`` at ``max_length``;
    ``-factor`` beyond (e.g. max_length 20, buffer 5: L=15 -> 0, L=18 -> -0.6, L=21 -> -1).
    """
    free = max_length - buffer
    if length <= free:
        return 0.0
    if length <= max_length:
        return (free - length) / buffer * factor
    return -factor


def completion_text(completion: object) -> str:
    """A completion as text: a string, or the last assistant message of a conversation."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[0], dict):
        messages = [m for m in completion if m.get("role", "assistant") == "assistant"]
        content = (messages or list(completion))[-1].get("content", "")
        if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return as_text(content)
    return as_text(completion)


@runtime_checkable
class RewardFunction(Protocol):
    """What TRL 1.16 calls: one float per completion, named by ``__name__``.

    Called as ``fn(prompts=..., completions=..., completion_ids=..., answer=[...],
    trainer_state=..., log_extra=..., log_metric=..., **other dataset columns)``; completions are
    strings or conversations (lists of message dicts). ``pop_counts()`` returns the outcome
    counts since the last pop: total, correct, failures, timeouts, unparsed.
    """

    __name__: str

    def __call__(
        self,
        prompts: list[Any] | None = None,
        completions: list[Any] | None = None,
        completion_ids: list[list[int]] | None = None,
        **kwargs: Any,
    ) -> list[float]: ...

    def pop_counts(self) -> dict[str, int]: ...


class CountingReward:
    """Base of the built-in rewards: never raises to TRL, counts outcomes, logs them.

    A subclass sets ``name`` and implements ``_score(texts, completion_ids, columns)`` returning
    one (reward, outcome) per completion, outcome one of ``COUNT_KEYS`` minus total, or None.
    A completion that cannot be read, or a batch whose scoring raises, earns 0.0 as a failure.
    Counts go to TRL's ``log_metric`` as ``reward/<name>/<outcome>`` and to ``pop_counts()``;
    ``totals`` keeps them since construction.
    """

    name: ClassVar[str]

    def __init__(self) -> None:
        self.__name__ = self.name
        self._lock = threading.Lock()
        self._since_pop: Counter[str] = Counter()
        self.totals: Counter[str] = Counter()

    def __call__(
        self,
        prompts: list[Any] | None = None,
        completions: list[Any] | None = None,
        completion_ids: list[list[int]] | None = None,
        **columns: Any,
    ) -> list[float]:
        completions = list(completions or [])
        texts = [_readable(c) for c in completions]
        try:
            scored = self._score(texts, completion_ids, columns)
        except Exception:
            logger.exception("reward function %s failed on a batch", self.name)
            scored = [(0.0, "failures")] * len(completions)
        counts = Counter(total=len(scored))
        counts.update(outcome for _, outcome in scored if outcome)
        self._record(counts, columns.get("log_metric"))
        return [reward for reward, _ in scored]

    def _score(
        self, texts: list[str | None], completion_ids: Any, columns: dict[str, Any]
    ) -> list[tuple[float, str | None]]:
        raise NotImplementedError

    def _record(self, counts: Counter[str], log_metric: Any) -> None:
        with self._lock:
            self._since_pop.update(counts)
            self.totals.update(counts)
        if callable(log_metric):
            for outcome in COUNT_KEYS[2:]:
                try:
                    log_metric(f"reward/{self.name}/{outcome}", float(counts[outcome]))
                except Exception:
                    logger.debug("log_metric failed", exc_info=True)

    def pop_counts(self) -> dict[str, int]:
        """Outcome counts since the last pop (total, correct, failures, timeouts, unparsed)."""
        with self._lock:
            counts, self._since_pop = self._since_pop, Counter()
        return {key: counts[key] for key in COUNT_KEYS} | dict(counts)


def _readable(completion: object) -> str | None:
    try:
        return completion_text(completion)
    except Exception:
        return None


def _outcome(score: Score) -> str | None:
    return {"correct": "correct", "timeout": "timeouts", "unparsed": "unparsed"}.get(score.status)


class _ScoredReward(CountingReward):
    """A reward computed from `Score`s of the completions against the ``answer`` column.

    A completion cut off by the token limit (its ids end in no stop token) earns 0.0 and counts
    as ``truncated``, whatever its text says: the trainer sets ``stop_token_ids`` (TRL's eos
    ids and the pad id); until then nothing counts as truncated. The ``correctness`` reward also
    hands each completion's extracted answer and status to TRL's ``log_extra``.
    """

    logs_answers: ClassVar[bool] = False

    def __init__(
        self, timeout: float = 10.0, workers: int = 2, strictness: Strictness = DEFAULT_STRICTNESS
    ) -> None:
        super().__init__()
        if strictness not in STRICTNESS:
            raise RecipeError(
                f"reward '{self.name}': strictness must be one of {', '.join(STRICTNESS)}, "
                f"got {strictness!r}"
            )
        self.strictness: Strictness = strictness
        self.stop_token_ids: set[int] | None = None
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise RecipeError(f"reward '{self.name}': timeout must be > 0 seconds, got {timeout!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise RecipeError(
                f"reward '{self.name}': workers must be an integer >= 0, got {workers!r}"
            )
        self.timeout = float(timeout)
        self.workers = workers
        self.batch = LastBatch()  # `recipe_rewards` gives the recipe's scored rewards one

    def _score(
        self, texts: list[str | None], completion_ids: Any, columns: dict[str, Any]
    ) -> list[tuple[float, str | None]]:
        golds = columns.get("answer")
        if golds is None or len(golds) != len(texts):
            logger.warning("reward '%s' needs an 'answer' column, one per completion", self.name)
            return [(0.0, "failures")] * len(texts)
        pairs = [(t or "", as_text(g)) for t, g in zip(texts, golds, strict=True)]
        scores = self.batch.score(pairs, self.workers, self.timeout, self.strictness)
        cut = self._truncated(completion_ids, len(texts))
        scored = [
            (0.0, "failures")
            if text is None
            else (0.0, "truncated")
            if truncated
            else (self._reward(s), _outcome(s))
            for text, s, truncated in zip(texts, scores, cut, strict=True)
        ]
        log_extra = columns.get("log_extra")
        if self.logs_answers and callable(log_extra):
            log_extra("answer", [s.answer for s in scores])
            log_extra(
                "status",
                [
                    o if o == "truncated" else s.status
                    for (_, o), s in zip(scored, scores, strict=True)
                ],
            )
        return scored

    def _truncated(self, completion_ids: Any, count: int) -> list[bool]:
        """Per completion: cut off by the token limit (its last id is no stop token)."""
        stops = self.stop_token_ids
        if stops is None or completion_ids is None or len(completion_ids) != count:
            return [False] * count
        return [bool(ids) and int(ids[-1]) not in stops for ids in completion_ids]

    def _reward(self, score: Score) -> float:
        raise NotImplementedError


class LastBatch:
    """`score_many` that remembers its last batch: the scored rewards of one recipe
    (`correctness`, `format`) share one, so a batch they both read is scored once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[tuple[Any, ...], list[Score]] | None = None

    def score(
        self, pairs: list[tuple[str, str]], workers: int, timeout: float, strictness: Strictness
    ) -> list[Score]:
        key = (tuple(pairs), workers, timeout, strictness)
        with self._lock:
            if self._last is not None and self._last[0] == key:
                return self._last[1]
        scores = score_many(pairs, workers=workers, timeout=timeout, strictness=strictness)
        with self._lock:
            self._last = (key, scores)
        return scores


REWARD_FUNCTIONS: dict[str, type[CountingReward]] = {}
SCORED_REWARDS = ("correctness", "format")  # the rewards that read an answer (take `strictness`)


def _register(cls: type[CountingReward]) -> type[CountingReward]:
    if cls.name in REWARD_FUNCTIONS:
        raise ValueError(f"reward function '{cls.name}' is registered twice")
    REWARD_FUNCTIONS[cls.name] = cls
    return cls


@_register
class CorrectnessReward(_ScoredReward):
    """``correctness``: 1.0 when the final answer equals the gold (``answer`` column), else 0.0.

    Params: ``timeout`` (seconds per completion, default 10), ``workers`` (default 2),
    ``strictness`` (``final``: the last box or a final statement after it; ``boxed``: boxes only).
    A completion cut off by the token limit earns 0 (``truncated``).
    """

    name = "correctness"
    logs_answers = True

    def _reward(self, score: Score) -> float:
        return 1.0 if score.correct else 0.0


@_register
class FormatReward(_ScoredReward):
    """``format``: 1.0 for a non-empty final answer in ``\\boxed{}`` that parses, else 0.0.

    An empty ``\\boxed{}``, an unclosed one, or text that is no mathematical object earns 0
    (a reward for any box was gamed with empty boxes: docs/scorer.md). Params as ``correctness``.
    """

    name = "format"

    def _reward(self, score: Score) -> float:
        return 1.0 if score.boxed and score.status in ("correct", "wrong") else 0.0


@_register
class OverlongReward(CountingReward):
    """``overlong``: DAPO's soft overlong penalty on the completion's token count.

    Params: ``max_length`` (tokens; None until the trainer sets ``fn.max_length`` from
    ``max_completion_length``), ``buffer`` (default 1024, < max_length), ``factor`` (default 1).
    Needs TRL's ``completion_ids``; ``pop_counts`` adds ``penalized`` (completions with r < 0).
    """

    name = "overlong"

    def __init__(self, max_length: int | None = None, buffer: int = 1024, factor: float = 1.0):
        super().__init__()
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
            raise RecipeError(f"reward 'overlong': buffer must be an integer >= 1, got {buffer!r}")
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor >= 0:
            raise RecipeError(f"reward 'overlong': factor must be a number >= 0, got {factor!r}")
        self.buffer = buffer
        self.factor = float(factor)
        self._max_length: int | None = None
        self.max_length = max_length

    @property
    def max_length(self) -> int | None:
        """Completion length limit in tokens; the trainer fills it in when the recipe has None."""
        return self._max_length

    @max_length.setter
    def max_length(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise RecipeError(f"reward 'overlong': max_length must be an integer, got {value!r}")
        if value is not None and not self.buffer < value:
            raise RecipeError(
                f"reward 'overlong': buffer ({self.buffer}) must be < max_length ({value}); "
                "lower reward.functions[].buffer"
            )
        self._max_length = value

    def _score(
        self, texts: list[str | None], completion_ids: Any, columns: dict[str, Any]
    ) -> list[tuple[float, str | None]]:
        if self._max_length is None or completion_ids is None:
            logger.warning("reward 'overlong' needs max_length and TRL's completion_ids")
            return [(0.0, "failures")] * len(texts)
        scored: list[tuple[float, str | None]] = []
        for ids in completion_ids:
            try:
                reward = overlong_penalty(len(ids), self._max_length, self.buffer, self.factor)
                scored.append((reward, "penalized" if reward < 0 else None))
            except Exception:
                scored.append((0.0, "failures"))
        return scored


QUOTE = "'"  # reward and parameter names are quoted in messages


def build_reward_function(name: str, **params: Any) -> RewardFunction:
    """The reward function registered as ``name``, built with ``params``.

    Raises RecipeError for an unknown name (listing the known ones and the nearest), an unknown
    parameter (naming it and the accepted ones) or a bad value.
    """
    cls = REWARD_FUNCTIONS.get(name)
    if cls is None:
        known = ", ".join(sorted(REWARD_FUNCTIONS))
        hint = did_you_mean(name, REWARD_FUNCTIONS, quote=QUOTE)
        raise RecipeError(f"unknown reward function '{name}': known are {known}{hint}")
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in params:
        if key not in accepted:
            raise RecipeError(
                f"reward function '{name}' has no parameter '{key}': accepted are "
                f"{', '.join(accepted)}{did_you_mean(key, accepted, quote=QUOTE)}"
            )
    return cls(**params)


def recipe_rewards(recipe: Any, max_completion_length: int) -> tuple[list[RewardFunction], list[float]]:
    """A recipe's reward functions (its `reward` section) and their weights; `overlong` without
    a `max_length` takes the completion limit. RecipeError names the file and the function."""
    functions, weights = [], []
    batch = LastBatch()  # correctness and format read the same batch: scored once
    for spec in recipe.reward.functions:
        params = dict(spec.params)
        if spec.name in SCORED_REWARDS:
            params.setdefault("strictness", recipe.reward.strictness)
        try:
            function = build_reward_function(spec.name, **params)
            if getattr(function, "max_length", 0) is None:  # overlong: the completion limit
                function.max_length = max_completion_length
            if isinstance(function, _ScoredReward):
                function.batch = batch
        except RecipeError as error:
            raise RecipeError(f"{recipe.source}: reward.functions.{spec.name}: {error}") from None
        functions.append(function)
        weights.append(spec.weight)
    return functions, weights
