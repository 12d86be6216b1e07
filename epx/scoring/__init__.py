"""The answer scorer, one module per job; its public calls are below (from `api`).

- `score`      the `Score` record every scorer returns;
- `extract`    the final answer of a completion (the last box or an explicit final statement);
- `normalize`  pure string work: the presentation cleaned once, and notations math-verify misreads;
- `forms`      the form rules (a number gold needs a number answer, hedges, multi-part answers);
- `keys`       canonical keys of parsed answers, for majority voting;
- `local`      scoring in this process with math-verify's own (signal-based) timeouts;
- `pool`       worker processes with a hard wall-clock limit;
- `choice`     the final letter of a multiple-choice answer;
- `warmup`     imported by the pool's forkserver: math-verify loaded and warmed once.

No heavy import at the top: math-verify loads in the workers, or on the first local call.
"""

from epx.scoring.api import answer_key, check_strictness, math_correct, score_answer, score_many
from epx.scoring.extract import DEFAULT_STRICTNESS, STRICTNESS, Strictness
from epx.scoring.score import Score

__all__ = ["DEFAULT_STRICTNESS", "STRICTNESS", "Score", "Strictness", "answer_key",
           "check_strictness", "math_correct", "score_answer", "score_many"]  # fmt: skip
