"""`epx train`: GRPO with PPL- and position-based advantage shaping, from a YAML recipe.

Modules: `run` (`run_training`, `build_trainer`: recipe, model, data, rewards, trainer, tracking
and the run dir), `trainer` (the GRPOTrainer subclass: one seam on the advantages), `callbacks`
(stage detector state, metrics.jsonl, samples.jsonl, progress), `grpo_args` (recipe -> GRPOConfig),
`preflight` (the checks a launch runs before weights load), `resume` (whether and where a run
continues), `report` (the end of a run: table, curves, held-out check, model card), `command`
(the Typer command). Importing this package imports no torch.
"""

from epx.train.run import TrainResult, build_trainer, configure_wandb, run_training

__all__ = ["TrainResult", "build_trainer", "configure_wandb", "run_training"]
