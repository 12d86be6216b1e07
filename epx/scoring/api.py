"""The scorer's public calls: score completions against gold answers, in this process or in
worker processes with a hard time limit. One scorer serves training (`epx.rewards`) and
evaluation (`epx.evaluation`); its rules are in docs/scorer.md."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from epx.scoring.extract import DEFAULT_STRICTNESS, STRICTNESS, Strictness
from epx.scoring.pool import as_item, as_text, default_workers, run_in_pool
from epx.scoring.score import Score


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def score_many(
    pairs: Iterable[tuple[str, str]],
    workers: int | None = None,
    timeout: float = 10.0,
    strictness: Strictness = DEFAULT_STRICTNESS,
) -> list[Score]:
    """Score (completion, gold) pairs in worker processes; never hangs, never raises on input.

    ``workers``: processes (default one per core, at most 8); 0 scores in this process, which
    only the main thread may do (elsewhere 0 means one worker). ``timeout``: seconds per pair for
    math-verify; a pair still running ``GRACE_SECONDS`` later has its worker killed and scores
    ``Score("timeout")``. ``strictness``: ``final`` (the last box or an explicit final statement
    after it) or ``boxed`` (boxes only); see `epx.scoring.extract`.
    """
    check_strictness(strictness)
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if workers == 0 and _on_main_thread():
        from epx.scoring.local import score_local

        return [score_local(*as_item(pair), timeout, strictness) for pair in pairs]
    size = default_workers() if workers is None else max(1, workers)
    return run_in_pool(pairs, size, timeout, strictness)


def check_strictness(strictness: object) -> None:
    """ValueError unless ``strictness`` is one of `STRICTNESS`."""
    if strictness not in STRICTNESS:
        raise ValueError(f"strictness must be one of {', '.join(STRICTNESS)}, got {strictness!r}")


def score_answer(
    completion: str, gold: str, timeout: float = 10.0, strictness: Strictness = DEFAULT_STRICTNESS
) -> Score:
    """Score one completion in this process (through a worker when not on the main thread)."""
    check_strictness(strictness)
    if not _on_main_thread():
        return score_many([(completion, gold)], 1, timeout, strictness)[0]
    from epx.scoring.local import score_local

    return score_local(as_text(completion), as_text(gold), timeout, strictness)


def math_correct(completion: str, gold: str, strictness: Strictness = DEFAULT_STRICTNESS) -> float:
    """1.0 when the completion's final answer equals the gold, else 0.0."""
    return 1.0 if score_answer(completion, gold, strictness=strictness).correct else 0.0


def answer_key(completion: str) -> str | None:
    """Canonical key of the completion's final answer (equal for equivalent answers), or None."""
    return score_answer(completion, "").key
