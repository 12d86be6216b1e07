"""`epx train`: GRPO with PPL- and position-based advantage shaping, from a YAML recipe.

Modules: `command` (the Typer command), `run` (`run_training`, `build_trainer`: recipe, model,
data, rewards, trainer, tracking, the run dir), `trainer` (the GRPOTrainer subclass: its seams),
`batch_shaping` (what the seams do to a batch), `batch_keys` (what a batch carries), `rows`
(per-completion facts, reward counts), `dynamic` and `dynamic_rows` (dynamic sampling),
`observer` (per-step metrics, the stage detector's input, rollout records), `rollouts`,
`clock` (`timing/*`), `callbacks` (the stage detector's state, metrics.jsonl, samples.jsonl,
progress), `eval_callback` (in-training evaluation), `resume` (whether and where a run
continues), `report` (the end of a run: table, curves, held-out check, model card). Importing
this package imports no torch.
"""

from epx.train.run import TrainResult, build_trainer, configure_wandb, run_training

__all__ = ["TrainResult", "build_trainer", "configure_wandb", "run_training"]
