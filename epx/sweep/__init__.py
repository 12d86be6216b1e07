"""`epx sweep`: Optuna sweeps over the shaping scales, each trial a real `epx train` run.

Modules: `space` (search space files, pure), `objective` (a trial's value from metrics.jsonl,
pure), `identity` (what defines a study, pure), `storage` (SQLite / journal / PostgreSQL, the
heartbeat, retries of a lost connection), `runner` (`run_sweep`: trials in child processes,
pruning, W&B), `options` (defaults and checks before the first trial), `report` (`--show`: table,
best recipe line, plots), `command` (the Typer command). Nothing heavy is imported here.
"""
