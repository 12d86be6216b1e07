"""The paper's out-of-domain benchmarks, as self-contained pieces: one module each.

- `humaneval`  HumanEval's problems, prompts for base and chat models, the programs that judge a
               completion (run in `epx.execution.sandbox`), Pass@k;
- `gpqa`       GPQA's questions from a local file or the hub, the choices shuffled per question,
               the prompt; its letter scorer is `epx.scoring.choice`.
"""
