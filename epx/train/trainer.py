"""`EpxGRPOTrainer`: TRL's GRPOTrainer with token-level advantage shaping. Tested against TRL 1.16.

Its seams (TRL's methods it overrides); the loss is never copied:

1. `_generate_and_score_completions` (generation): the parent generates and scores (or dynamic
   sampling does, `epx.train.dynamic`); the per-sequence advantages (B,) become the shaped
   (B, T) ones (`epx.train.batch_shaping`), which TRL's own loss accepts as they are.
2. `_compute_loss` with `_get_per_token_logps_and_entropies` (the loss's own forward): when that
   forward is the behaviour policy's (TRL's default on-policy setup), PPL shaping happens there,
   before TRL reads the advantages, at no extra forward; the interventions mask the advantages
   with the forward's log-probs; the forward goes to the `StepObserver` (metrics, the stage
   detector, rollout records).
3. `_calculate_rewards`: timed only, as the step's scoring (`epx.train.clock`).

Every decision a batch's hooks need travels in the batch (`epx.train.batch_keys`), so nothing is
carried from one batch to the next, and a batch that did not come through seam 1 (TRL's own
evaluation loop) passes seam 2 untouched. Under DDP, DeepSpeed or FSDP the model handed to the
loss may be wrapped; the seams never look at which object it is.
"""

from __future__ import annotations

from typing import Any

import torch
from trl import GRPOTrainer

from epx.errors import RunError
from epx.recipe import AnalysisSection, SamplingSection, ShapingSection
from epx.run_dir import RunDir
from epx.schedule import position_on
from epx.shaping import sequence_log_ppl
from epx.train.batch_keys import POSITION_ON_KEY, ROW_KEY, SHAPE_AT_LOSS_KEY
from epx.train.batch_shaping import restrict_batch, shape_batch
from epx.train.callbacks import SamplesFileCallback, StageCallback
from epx.train.clock import StepClock
from epx.train.dynamic import dynamic_batch, extra_inputs
from epx.train.observer import StepObserver
from epx.train.rollouts import RolloutRecorder
from epx.train.rows import count_metrics, reward_counts, row_info


class EpxGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose advantages carry PPL- and/or position-based shaping (docs/method.md)."""

    def __init__(
        self,
        *args: Any,
        shaping: ShapingSection | None = None,
        max_reward_failure_rate: float = 1.0,
        analysis: AnalysisSection | None = None,
        sampling: SamplingSection | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.shaping = shaping or ShapingSection()
        self.sampling = sampling or SamplingSection()
        analysis = analysis or AnalysisSection(every_n_steps=0)
        self.max_reward_failure_rate = max_reward_failure_rate
        recorder = RolloutRecorder(analysis.every_n_steps, analysis.max_samples_per_step,
                                   analysis.token_stats, self.num_generations)  # fmt: skip
        self.clock = StepClock()
        self.observer = StepObserver(self, recorder, RunDir(self.args.output_dir))
        self.add_callback(self.observer)
        self._loss_inputs: dict[str, Any] | None = None  # the batch of the `_compute_loss` call
        stops = {*self.eos_token_ids, self._tokenizer.pad_token_id} - {None}
        for reward_func in self.reward_funcs:  # a completion without them was cut off
            if hasattr(reward_func, "stop_token_ids"):
                reward_func.stop_token_ids = {int(token) for token in stops}

    # ---- seam 1: generation ----------------------------------------------------------------
    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        self._show_phase("generating")
        with self.clock.phase("generation"):
            output = self._dynamic_batch(inputs) if self.sampling.dynamic else self._scored_round(inputs)
        self._show_phase("optimizing")
        self._write_samples()
        active = self.position_active()
        self.record_metrics({"shaping/position/active": float(active)})
        needs_log_ppl = self.shaping.method in ("ppl", "both") or self.shaping.ppl_quantile is not None
        at_loss = needs_log_ppl and self._loss_forward_is_behaviour(output)
        device = output["advantages"].device
        output[POSITION_ON_KEY] = torch.tensor(active, device=device)
        output[SHAPE_AT_LOSS_KEY] = torch.tensor(at_loss, device=device)
        if not at_loss:
            log_ppl = None
            if needs_log_ppl:
                logps = output.get("old_per_token_logps")
                if logps is None:
                    logps = self._behaviour_logps(output)
                log_ppl = sequence_log_ppl(logps, output["completion_mask"])
            self._shape_batch(output, log_ppl)
        return output

    def _calculate_rewards(self, *args: Any, **kwargs: Any) -> Any:
        with self.clock.phase("scoring"):
            return super()._calculate_rewards(*args, **kwargs)

    def _scored_round(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """TRL's generation and scoring of `inputs`, with epx's reward counts and row facts."""
        output = super()._generate_and_score_completions(inputs)
        counts = torch.tensor(reward_counts(self.reward_funcs), device=self.accelerator.device)
        summed = self.accelerator.gather(counts).view(-1, counts.numel()).sum(0).tolist()
        step = self.state.global_step + 1
        self.record_metrics(
            count_metrics(summed, self.max_reward_failure_rate, step, self.args.output_dir)
        )
        prompts = [x.get("prompt") for x in inputs]
        weights = self.reward_weights.tolist()
        output.update(row_info(output, prompts, self._logs["rewards"], weights, self.eos_token_ids,
                               self.accelerator.process_index, self.accelerator.num_processes))
        return output

    def _dynamic_batch(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """A generation batch of groups whose rewards differ (`epx.train.dynamic`)."""
        step, group = self.state.global_step, self.num_generations
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        draw = lambda r: extra_inputs(self.train_dataset, self.args.seed, step, r, group,  # noqa: E731
                                      len(inputs), rank, world)
        return dynamic_batch(self.sampling, group, inputs, self.accelerator, self._scored_round,
                             draw, self._metrics["train"], self._tokenizer.pad_token_id or 0,
                             step + 1)

    def _loss_forward_is_behaviour(self, output: dict[str, Any]) -> bool:
        """Whether the loss's forward will give the sampling policy's log-probs for this batch:
        TRL keeps no old log-probs (it then uses the loss's own, detached, as the old ones) and
        the loss sees the whole generation batch once (steps_per_generation 1, one iteration)."""
        return (
            "old_per_token_logps" not in output
            and self.args.steps_per_generation == 1
            and self.num_iterations == 1
        )

    def _shape_batch(
        self, batch: dict[str, Any], log_ppl: torch.Tensor | None, rows: Any = None
    ) -> None:
        metrics = shape_batch(batch, log_ppl, self.shaping, self.num_generations, self.accelerator, rows)
        self.record_metrics(metrics)

    @torch.no_grad()
    def _behaviour_logps(self, output: dict[str, Any]) -> torch.Tensor:
        """One no-grad forward of the policy that just sampled, when TRL computed no old log-probs."""
        prompt_completion = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
        attention = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
        logps, _, _ = super()._get_per_token_logps_and_entropies(
            self.model, prompt_completion, attention, output["completion_ids"].size(1),
            batch_size=self.args.per_device_train_batch_size,
        )  # fmt: skip
        return logps

    # ---- seam 2: the loss's forward -----------------------------------------------------------
    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        self._loss_inputs = inputs  # read by the forward below, within this call only
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._loss_inputs = None

    def _get_per_token_logps_and_entropies(self, model: Any, *args: Any, **kwargs: Any) -> Any:
        result = super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
        inputs = self._loss_inputs
        if inputs is None or not kwargs.get("compute_entropy") or ROW_KEY not in inputs:
            return result  # not the loss's forward of a batch from seam 1
        logps, entropies, _ = result  # TRL reads inputs["advantages"] right after this forward
        at_loss = inputs.pop(SHAPE_AT_LOSS_KEY, None)
        if at_loss is not None and at_loss.item():
            log_ppl = sequence_log_ppl(logps.detach(), inputs["completion_mask"])
            self._shape_batch(inputs, log_ppl, inputs[ROW_KEY])
        if self.shaping.restricts_update:
            self.record_metrics(restrict_batch(inputs, logps, self.shaping, self.accelerator))
        self.observer.observe(self.state.global_step + 1, inputs, logps, entropies)
        return result

    # ---- what the seams read and write ---------------------------------------------------------
    def position_active(self) -> bool:
        """Whether the schedule turns the position bonus on for the step being trained (1-based)."""
        plateau = self.stage_callback().tracker.stage == 1
        return position_on(self.shaping, self.state.global_step + 1, plateau)

    def stage_callback(self) -> StageCallback:
        """The stage detector's callback (looked up each time: resume replaces the instance)."""
        callback = self._callback(StageCallback)
        if callback is None:
            raise RunError("the stage detector callback is missing from the trainer")
        return callback

    def record_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Add metrics to the next logged step's record (TRL averages `_metrics` over the logging
        interval and hands them to the console, W&B and metrics.jsonl with its own). Metrics of
        step 0 (the evaluation before training) are a record of their own at step 0, logged now:
        in the next step's record they would be drawn at step 1, or averaged with its own."""
        if step == 0:
            # transformers' log, not TRL's: TRL's would fold in `_metrics` and print completions
            super(GRPOTrainer, self).log({key: float(value) for key, value in metrics.items()})
            return
        for key, value in metrics.items():
            self._metrics["train"][key].append(float(value))

    def _callback(self, kind: type) -> Any:
        return next((c for c in self.callback_handler.callbacks if isinstance(c, kind)), None)

    def _show_phase(self, phase: str) -> None:
        for callback in self.callback_handler.callbacks:
            if hasattr(callback, "set_phase"):
                callback.set_phase(phase)

    def _write_samples(self) -> None:
        """The generation batch's sample to samples.jsonl, under the step it trains."""
        samples = self._callback(SamplesFileCallback)
        if samples is not None and self.accelerator.is_main_process:
            samples.record(self.state.global_step + 1, self._logs, self.reward_weights.tolist())

    # ---- outside the training loop ---------------------------------------------------------------
    def model_for_generation(self) -> Any:
        """A context giving the model to generate with outside TRL's loop (in-training
        evaluation): TRL's own unwrapping (ZeRO-3 parameters gathered, checkpointing off)."""
        from trl.models.utils import unwrap_model_for_generation

        return unwrap_model_for_generation(self.model_wrapped, self.accelerator,
                                           gather_deepspeed3_params=self.args.ds3_gather_for_generation)  # fmt: skip

    def save_final(self, folder: str) -> None:
        """Full weights in Hugging Face format in `folder`, whatever the launch. Under FSDP with
        sharded checkpoints (the shipped fsdp.yaml) transformers' `save_model` writes none: the
        full state dict is gathered (a collective: every process calls this) and saved."""
        plugin = getattr(self.accelerator.state, "fsdp_plugin", None)
        if self.is_fsdp_enabled and "FULL_STATE_DICT" not in str(plugin.state_dict_type):
            self._save(folder, state_dict=self.accelerator.get_state_dict(self.model))
        else:
            self.save_model(folder)

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """None from TRL (it names no base model); `epx train` writes its own in final/."""
