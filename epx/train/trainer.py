"""`EpxGRPOTrainer`: TRL's GRPOTrainer with token-level advantage shaping. One seam, nothing else.

The seam is `_generate_and_score_completions`: the parent computes per-sequence advantages (B,);
this class replaces them by the shaped (B, T) ones, which TRL's own loss accepts as they are. The
loss is never copied. `_get_per_token_logps_and_entropies` is wrapped to read what the loss's own
forward computed: the metrics on positive/negative samples, and, when that forward is the
behaviour policy's (TRL's default on-policy setup), the log-PPL, so PPL shaping then happens just
before TRL reads the advantages and costs no extra forward. Tested against TRL 1.16 (pinned).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from trl import GRPOTrainer

from epx.errors import RunError
from epx.interventions import group_quantile_mask, restriction_mask
from epx.recipe import AnalysisSection, SamplingSection, ShapingSection
from epx.shaping import apply_shaping, ppl_weights, sequence_log_ppl
from epx.train.batch_keys import INFO_PREFIX, KEEP_ROW_KEY, ORIGINAL_KEY, ROW_KEY
from epx.train.callbacks import SamplesFileCallback, StageCallback
from epx.train.dynamic import dynamic_batch
from epx.train.rollouts import RolloutRecorder, prompt_id

ROLLOUTS_DIR = "rollouts"


class EpxGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose advantages carry PPL- and/or position-based shaping (PAPER.md)."""

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
        self.analysis = analysis or AnalysisSection(every_n_steps=0)
        self._at_loss = False
        self.rollouts = RolloutRecorder(
            self.analysis.every_n_steps,
            self.analysis.max_samples_per_step,
            self.analysis.token_stats,
            self.num_generations,
        )
        self.max_reward_failure_rate = max_reward_failure_rate
        self._loss_inputs: dict[str, Any] | None = None
        self._position_on = False
        self._new_samples = False  # a generation batch not yet written to samples.jsonl
        stops = {*self.eos_token_ids, self._tokenizer.pad_token_id} - {None}
        for reward_func in self.reward_funcs:  # a completion without them was cut off
            if hasattr(reward_func, "stop_token_ids"):
                reward_func.stop_token_ids = {int(token) for token in stops}

    # ---- the seam -------------------------------------------------------------------------
    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        self._show_phase("generating")
        if self.sampling.dynamic:  # only groups whose rewards differ (epx.train.dynamic)
            output = dynamic_batch(self, inputs)
        else:
            output = self._scored_round(inputs)
        self._show_phase("optimizing")
        self._new_samples = True
        method, shaping = self.shaping.method, self.shaping
        self._position_on = self.position_active()
        self._metrics["train"]["shaping/position/active"].append(float(self._position_on))
        needs_log_ppl = method in ("ppl", "both") or shaping.ppl_quantile is not None
        self._at_loss = needs_log_ppl and self._loss_forward_is_behaviour(output)
        if self._at_loss:
            return output  # shaped in the loss's own forward, which is the behaviour policy's
        log_ppl = None
        if needs_log_ppl:
            logps = output.get("old_per_token_logps")
            if logps is None:
                logps = self._behaviour_logps(output)
            log_ppl = sequence_log_ppl(logps, output["completion_mask"])
        self._shape_batch(output, log_ppl)
        return output

    def _shape_batch(
        self, batch: dict[str, Any], log_ppl: torch.Tensor | None, rows: torch.Tensor | None = None
    ) -> None:
        """Shape ``batch["advantages"]`` (PPL weights from ``log_ppl``, then the position bonus)
        and mark the rows inside `shaping.ppl_quantile`; ``rows``: the batch is TRL-shuffled."""
        method = self.shaping.method
        if method != "none":
            weights = self._ppl_weights(log_ppl, rows) if method in ("ppl", "both") else None
            batch["advantages"] = self._shape(batch["advantages"], batch["completion_mask"], weights)
        if self.shaping.ppl_quantile is not None:
            batch[KEEP_ROW_KEY] = self._ppl_keep(log_ppl, rows)

    def _scored_round(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """TRL's generation and scoring of `inputs`, with epx's reward counts and row info."""
        output = super()._generate_and_score_completions(inputs)
        self._record_reward_counts()
        self._add_row_info(output, inputs)
        return output

    def _add_row_info(self, output: dict[str, Any], inputs: list[dict[str, Any]]) -> None:
        """Per completion, for the loss-time seam and the rollout records: its index in the
        generation batch, its prompt's id, reward, correctness, TRL's advantage, whether cut."""
        advantages = output["advantages"]
        device, local = advantages.device, advantages.size(0)
        start = self.accelerator.process_index * local
        output[ROW_KEY] = torch.arange(start, start + local, device=device)
        rewards = {name: list(values) for name, values in self._logs["rewards"].items()}
        total = local * self.accelerator.num_processes  # TRL logged every process's rows

        def this_batch(values: list[float]) -> list[float]:
            return values[len(values) - total :][start : start + local]

        summed = [0.0] * local
        for weight, values in zip(self.reward_weights.tolist(), rewards.values(), strict=False):
            part = this_batch(values)
            summed = [
                acc + weight * v if v == v else acc for acc, v in zip(summed, part, strict=True)
            ]
        correct = (
            this_batch(rewards["correctness"]) if "correctness" in rewards else [math.nan] * local
        )
        ids = output["completion_ids"]
        stops = torch.tensor(self.eos_token_ids, device=ids.device)
        info = {
            "prompt": torch.tensor([prompt_id(x.get("prompt")) for x in inputs], device=device),
            "reward": torch.tensor(summed, device=device),
            "correct": torch.tensor(correct, device=device, dtype=torch.float32),
            "advantage": advantages.detach().clone() if advantages.dim() == 1 else advantages[:, 0],
            "truncated": ~torch.isin(ids, stops).any(dim=1),
        }
        for name, value in info.items():
            output[f"{INFO_PREFIX}{name}"] = value

    def _loss_forward_is_behaviour(self, output: dict[str, Any]) -> bool:
        """Whether the loss's forward will give the sampling policy's log-probs for this batch.

        True when TRL keeps no old log-probs (it then uses the loss's own, detached, as old ones)
        and the loss sees the whole generation batch in one go (steps_per_generation 1, one
        iteration): the PPL weights are then computed from that forward, with no extra one.
        """
        return (
            "old_per_token_logps" not in output
            and self.args.steps_per_generation == 1
            and self.num_iterations == 1
        )

    def _shape(
        self, advantages: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None
    ) -> torch.Tensor:
        """The shaped (B, T) advantages: PPL weights (if given) first, then the position bonus."""
        position = self.shaping.position
        shaped, info = apply_shaping(
            advantages,
            None,
            mask,
            self.num_generations,
            self.shaping.method,
            pos_alpha=position.alpha,
            k=position.k,
            center=position.center,
            position_active=self._position_on,
            weights=weights,
        )
        self._record_shaping(info, mask)
        return shaped.to(advantages.dtype)

    def _on_groups(
        self, values: torch.Tensor, fn: Any, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`fn` over whole prompt groups of a per-completion value (B,); this process's part.

        A group may be spread over processes, so the values are gathered the way TRL gathers
        rewards (process-major), `fn` sees the whole batch, and each process keeps its slice.
        `rows` are the completions' indices in the generation batch when TRL has shuffled them
        (loss time): the values go back to generation order (groups consecutive) and return.
        """
        gathered = self.accelerator.gather(values)
        if rows is None:
            result = fn(gathered)
        else:
            order = self.accelerator.gather(rows).argsort()
            ordered = fn(gathered[order])
            result = torch.empty_like(ordered)
            result[order] = ordered
        local = values.size(0)
        start = self.accelerator.process_index * local
        return result[start : start + local]

    def _ppl_weights(self, log_ppl: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """PPL weights (B,) of this process's completions, computed on whole prompt groups."""
        cfg = self.shaping.ppl
        weigh = lambda v: ppl_weights(v, self.num_generations, cfg.alpha, cfg.clip, cfg.favour)  # noqa: E731
        return self._on_groups(log_ppl, weigh, rows)

    def _ppl_keep(self, log_ppl: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """1.0 for completions inside `shaping.ppl_quantile` of their group's log-PPL, else 0.0."""
        low, high = self.shaping.ppl_quantile  # type: ignore[misc]
        keep = lambda v: group_quantile_mask(v, self.num_generations, low, high).to(v.dtype)  # noqa: E731
        return self._on_groups(log_ppl.float(), keep, rows)

    @torch.no_grad()
    def _behaviour_logps(self, output: dict[str, Any]) -> torch.Tensor:
        """One no-grad forward of the policy that just sampled, when TRL computed no old log-probs."""
        prompt_completion = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
        attention = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
        logps, _, _ = super()._get_per_token_logps_and_entropies(
            self.model,
            prompt_completion,
            attention,
            output["completion_ids"].size(1),
            batch_size=self.args.per_device_train_batch_size,
        )
        return logps

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """None from TRL (it names no base model); `epx train` writes its own in final/."""

    def _show_phase(self, phase: str) -> None:
        for callback in self.callback_handler.callbacks:
            if hasattr(callback, "set_phase"):
                callback.set_phase(phase)

    def position_active(self) -> bool:
        """Whether the schedule turns the position bonus on for the step being trained (1-based)."""
        position = self.shaping.position
        if self.shaping.method not in ("position", "both"):
            return False
        if position.schedule == "always":
            return True
        if position.schedule == "window":
            step = self.state.global_step + 1
            return position.window[0] <= step <= position.window[1]
        return self.stage_callback().tracker.stage == 1

    def stage_callback(self) -> StageCallback:
        """The stage detector's callback (looked up each time: resume replaces the instance)."""
        callback = self._callback(StageCallback)
        if callback is None:
            raise RunError("the stage detector callback is missing from the trainer")
        return callback

    def _callback(self, kind: type) -> Any:
        return next((c for c in self.callback_handler.callbacks if isinstance(c, kind)), None)

    # ---- metrics --------------------------------------------------------------------------
    def _record_reward_counts(self) -> None:
        """accuracy and reward/failures|timeouts from the reward functions' counters; abort when
        failures and timeouts together pass reward.max_failure_rate."""
        totals = {"correct": 0, "total": 0, "failures": 0, "timeouts": 0, "scored": 0}
        has_correctness = False
        for reward_func in self.reward_funcs:
            pop = getattr(reward_func, "pop_counts", None)
            if pop is None:
                continue
            counts = pop()
            totals["failures"] += counts.get("failures", 0)
            totals["timeouts"] += counts.get("timeouts", 0)
            totals["scored"] += counts.get("total", 0)
            if getattr(reward_func, "__name__", "") == "correctness":
                has_correctness = True
                totals["correct"] += counts.get("correct", 0)
                totals["total"] += counts.get("total", 0)
        keys = list(totals)
        device = self.accelerator.device
        local = torch.tensor([float(totals[key]) for key in keys], device=device)
        summed = dict(
            zip(
                keys,
                self.accelerator.gather(local).view(-1, len(keys)).sum(0).tolist(),
                strict=True,
            )
        )
        metrics = self._metrics["train"]
        if has_correctness and summed["total"]:
            metrics["accuracy"].append(summed["correct"] / summed["total"])
        metrics["reward/failures"].append(summed["failures"])
        metrics["reward/timeouts"].append(summed["timeouts"])
        failed = summed["failures"] + summed["timeouts"]  # a timeout is a scoring that failed
        if summed["scored"] and failed / summed["scored"] > self.max_reward_failure_rate:
            raise RunError(
                f"reward functions failed on {int(failed)} of {int(summed['scored'])} scorings "
                f"({int(summed['timeouts'])} timeouts) at step {self.state.global_step + 1}, "
                f"above reward.max_failure_rate={self.max_reward_failure_rate}; the last "
                f"checkpoint in {self.args.output_dir} is kept"
            )

    def _record_shaping(self, info: dict[str, torch.Tensor], mask: torch.Tensor) -> None:
        metrics = self._metrics["train"]
        if "ppl_weight" in info:
            weights = self.accelerator.gather(info["ppl_weight"].float())
            metrics["shaping/ppl/weight_min"].append(weights.min().item())
            metrics["shaping/ppl/weight_mean"].append(weights.mean().item())
            metrics["shaping/ppl/weight_max"].append(weights.max().item())
        if "position_bonus" in info:
            valid = mask.bool()
            bonus = info["position_bonus"].float()
            stats = torch.stack([bonus[valid].abs().sum(), valid.sum().float()])
            total, count = self.accelerator.gather(stats).view(-1, 2).sum(0).tolist()
            metrics["shaping/position/bonus_abs_mean"].append(total / max(count, 1.0))

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        self._loss_inputs = inputs
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._loss_inputs = None

    def _get_per_token_logps_and_entropies(self, model: Any, *args: Any, **kwargs: Any) -> Any:
        result = super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
        inputs = self._loss_inputs
        if inputs is not None and kwargs.get("compute_entropy") and model is self.model:
            logps, entropies, _ = result  # TRL reads inputs["advantages"] right after this forward
            mask = inputs["completion_mask"]
            if self._at_loss and ORIGINAL_KEY not in inputs:
                self._shape_batch(inputs, sequence_log_ppl(logps.detach(), mask), inputs[ROW_KEY])
            if self.shaping.restricts_update:
                inputs["advantages"] = self._restrict(inputs, logps)
            self._record_sample_stats(logps.detach(), entropies.detach(), inputs)
            self.rollouts.collect(self.state.global_step + 1, inputs, logps, entropies)
        return result

    def _restrict(self, inputs: dict[str, Any], logps: torch.Tensor) -> torch.Tensor:
        """The advantages with every token outside the interventions' subset set to 0 (from the
        unrestricted ones each time: a second iteration over the batch masks afresh)."""
        shaping = self.shaping
        original = inputs.setdefault(ORIGINAL_KEY, inputs["advantages"])
        mask = inputs["completion_mask"]
        full = original.unsqueeze(1).expand_as(mask) if original.dim() == 1 else original
        keep = restriction_mask(
            full,
            mask,
            logps,
            update_only=shaping.update_only,
            max_token_prob=shaping.max_token_prob,
            position_range=shaping.position_range,
            keep_rows=inputs.get(KEEP_ROW_KEY),
        )
        stats = torch.stack([(keep & mask.bool()).sum(), mask.bool().sum()]).float()
        kept, total = self.accelerator.gather(stats).view(-1, 2).sum(0).tolist()
        self._metrics["train"]["shaping/update/kept_share"].append(kept / total if total else 1.0)
        return full * keep.to(full.dtype)

    def _record_sample_stats(
        self, logps: torch.Tensor, entropies: torch.Tensor, inputs: dict[str, Any]
    ) -> None:
        """Mean token entropy and mean log-PPL of positive and of negative samples (by sign of A)."""
        mask = inputs["completion_mask"].bool()
        advantages = inputs.get(ORIGINAL_KEY, inputs["advantages"])  # the sample's sign, unmasked
        sign = (advantages if advantages.dim() == 1 else advantages.sum(dim=1)).sign()  # (B,)
        log_ppl = sequence_log_ppl(logps, mask).float()  # (B,)
        stats = []
        for selected in (sign > 0, sign < 0):
            token_mask = mask & selected.unsqueeze(1)
            stats += [
                (entropies.float() * token_mask).sum(),
                token_mask.sum().float(),
                log_ppl[selected].sum(),
                selected.sum().float(),
            ]
        gathered = self.accelerator.gather(torch.stack(stats)).view(-1, 8).sum(0).tolist()
        metrics = self._metrics["train"]
        for offset, name in ((0, "positive"), (4, "negative")):
            ent_sum, ent_count, ppl_sum, ppl_count = gathered[offset : offset + 4]
            # NaN (null in metrics.jsonl) when no sample has that sign: the columns stay stable
            metrics[f"entropy/{name}"].append(ent_sum / ent_count if ent_count else math.nan)
            metrics[f"log_ppl/{name}"].append(ppl_sum / ppl_count if ppl_count else math.nan)

    def record_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Add metrics (e.g. in-training eval) to the next logged step's record and reporters.

        TRL averages `_metrics` over the logging interval, so they reach the console, W&B and
        metrics.jsonl with the step's own metrics (an evaluation before training, with step 1's).
        """
        for key, value in metrics.items():
            self._metrics["train"][key].append(float(value))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Before TRL averages the step's metrics, feed the stage detector and log `stage`."""
        metrics = self._metrics["train"]
        if self.model.training and metrics.get("reward"):
            reward = _nanmean(metrics["reward"])
            entropy = _nanmean(metrics.get("entropy", []))
            stage = self.stage_callback().update(reward, entropy)
            metrics["stage"].append(float(stage))
            self._write_samples()
            self.rollouts.write(
                self.state.global_step, self.accelerator, Path(self.args.output_dir) / ROLLOUTS_DIR
            )
        super().log(logs, start_time)

    def _write_samples(self) -> None:
        """The newest generation batch's sample to samples.jsonl (main process, once each)."""
        samples = self._callback(SamplesFileCallback)
        if samples is None or not self._new_samples or not self.accelerator.is_main_process:
            return
        self._new_samples = False
        weights = self.reward_weights.tolist()
        samples.record(self.state.global_step, self._logs, weights)


def _nanmean(values: list[float]) -> float:
    finite = [value for value in values if value == value]
    return sum(finite) / len(finite) if finite else float("nan")
