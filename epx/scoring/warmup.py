"""Imported by the pool's forkserver: math-verify loaded and its LaTeX parser warmed, once.

latex2sympy's ANTLR parser fills its prediction caches as it meets constructs (the first parse of
a fraction, a set, a matrix... is several times slower than later ones). Scoring a few typical
answers here, before any worker is forked, gives every worker (and every replacement of a killed
one) those caches for free. Importing this module anywhere else costs about a second.
"""

from __future__ import annotations

from epx.scoring.local import score_local

_TYPICAL_ANSWERS = (
    ("\\boxed{\\frac{3\\sqrt{3}}{4}}", "\\frac{3\\sqrt{3}}{4}"),
    ("\\boxed{(2,12) \\cup (12,102)}", "(2,12) \\cup (12,102)"),
    ("\\boxed{\\begin{pmatrix} -1 \\\\ 2 \\end{pmatrix}}", "\\begin{pmatrix}-1\\\\2\\end{pmatrix}"),
    ("\\boxed{(1,8,19), (2,7,13)}", "$(1,8,19), (2,7,13)$"),
    ("\\boxed{4.5\\times 10^{33}}", "4.5e33"),
    ("\\boxed{x^5 - x^4 + 3x - 1}", "x^5 - x^4 + 3x - 1"),
    ("\\boxed{f(x)=2x}", "$f(x)=2 x$"),
    ("\\boxed{\\text{(C)}}", "\\text{(C)}"),
    ("\\boxed{6+9i}", "6+9i"),
    ("so the answer is 23 + 48 = 71", "71"),
)

for _completion, _gold in _TYPICAL_ANSWERS:
    score_local(_completion, _gold)
