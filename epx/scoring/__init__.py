"""The answer scorer behind `epx.rewards`, one module per job.

- `score`      the `Score` record every scorer returns;
- `normalize`  pure string work: the last box, and notations math-verify misreads;
- `keys`       canonical keys of parsed answers, for majority voting;
- `local`      scoring in this process with math-verify's own (signal-based) timeouts;
- `pool`       worker processes with a hard wall-clock limit: `score_many`;
- `warmup`     imported by the pool's forkserver: math-verify loaded and warmed once.

Import the public names from `epx.rewards`; this package keeps no heavy imports at its top.
"""
