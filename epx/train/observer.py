"""What the loss's forwards of each optimizer step saw: metrics, the stage detector's input and
the rollout records, taken per step whatever the batch geometry.

The trainer's loss seam hands every micro-batch's forward (log-probs, entropies, the batch) to
`StepObserver.observe`; at the end of each optimizer step (`on_step_end`) the sums are added over
processes once, and the step gets:

- `entropy/positive|negative`, `log_ppl/positive|negative`: token-weighted mean entropy and mean
  log-PPL of the samples with positive / negative advantage (NaN when there are none);
- the stage detector's update with the step's own data: the mean total reward of the completions
  trained at this step and their mean token entropy, so its windows count optimizer steps also
  when one generation batch feeds several steps (`steps_per_generation` > accumulation);
- `stage` (0 rising, 1 plateau) with the detector's inputs `stage/reward` and `stage/entropy`
  (so that `epx analyze` re-runs it on the same series), and the rollout records of due steps
  (`epx.train.rollouts`);
- the step's `timing/*` (`epx.train.clock`).

Sums over all processes make every value the one a single process would compute on the same
completions, however they are spread over processes and micro-batches.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from transformers import TrainerCallback

from epx.run_dir import RunDir
from epx.shaping import sequence_log_ppl
from epx.train.batch_keys import INFO_PREFIX, ORIGINAL_KEY
from epx.train.rollouts import RolloutRecorder

SUMS = ("reward", "rewarded", "entropy", "tokens",
        "entropy+", "tokens+", "log_ppl+", "samples+",
        "entropy-", "tokens-", "log_ppl-", "samples-")  # fmt: skip


def forward_sums(
    reward: Tensor, sign: Tensor, logps: Tensor, entropies: Tensor, mask: Tensor
) -> Tensor:
    """The SUMS of one micro-batch (float64, (len(SUMS),)).

    reward, sign: (B,) total reward (NaN: unscored) and the advantage's sign; logps, entropies,
    mask: (B, T). A completion with no response token has no log-PPL and counts for none."""
    valid = mask.bool()
    entropy = entropies.detach().double() * valid
    log_ppl = sequence_log_ppl(logps.detach(), mask).double()
    has_log_ppl = ~torch.isnan(log_ppl)
    scored = ~torch.isnan(reward)
    values = [torch.where(scored, reward.double(), 0.0).sum(), scored.sum(),
              entropy.sum(), valid.sum()]  # fmt: skip
    for chosen in (sign > 0, sign < 0):
        rows = chosen & has_log_ppl
        values += [
            entropy[chosen].sum(),
            valid[chosen].sum(),
            torch.where(rows, log_ppl, 0.0).sum(),
            rows.sum(),
        ]
    return torch.stack([v.double() for v in values])


def step_values(sums: list[float]) -> dict[str, float]:
    """Means from a step's SUMS (every process's): `reward` and `entropy` (the detector's
    inputs) and the metrics by sign; NaN where nothing was counted."""
    s = dict(zip(SUMS, sums, strict=True))

    def ratio(num: str, den: str) -> float:
        return s[num] / s[den] if s[den] else math.nan

    return {
        "reward": ratio("reward", "rewarded"),
        "entropy": ratio("entropy", "tokens"),
        "entropy/positive": ratio("entropy+", "tokens+"),
        "entropy/negative": ratio("entropy-", "tokens-"),
        "log_ppl/positive": ratio("log_ppl+", "samples+"),
        "log_ppl/negative": ratio("log_ppl-", "samples-"),
    }


class StepObserver(TrainerCallback):
    """Sums what each optimizer step's loss forwards saw and turns it into the step's metrics,
    stage decision and rollout records (see the module docstring).

    `trainer` gives the accelerator, `record_metrics` and the stage detector's callback."""

    def __init__(self, trainer: Any, recorder: RolloutRecorder, run_dir: RunDir) -> None:
        self.trainer = trainer
        self.recorder = recorder
        self.run_dir = run_dir
        self.sums: Tensor | None = None

    def observe(self, step: int, inputs: dict[str, Any], logps: Tensor, entropies: Tensor) -> None:
        """One micro-batch of the loss at `step` (1-based, the step being trained)."""
        advantages = inputs.get(ORIGINAL_KEY, inputs["advantages"])  # the sample's sign, unmasked
        sign = (advantages if advantages.dim() == 1 else advantages.sum(dim=1)).sign()  # (B,)
        reward = inputs[f"{INFO_PREFIX}reward"]
        sums = forward_sums(reward, sign, logps, entropies, inputs["completion_mask"])
        self.sums = sums if self.sums is None else self.sums + sums
        self.recorder.collect(step, inputs, logps, entropies)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.trainer.clock.start_step()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        timing = self.trainer.clock.finish_step()
        if self.sums is None:
            return  # a step without epx's loss seam (TRL evaluation only)
        accelerator = self.trainer.accelerator
        sums = accelerator.gather(self.sums.to(accelerator.device)).view(-1, len(SUMS)).sum(0)
        self.sums = None
        values = step_values(sums.tolist())
        reward, entropy = values.pop("reward"), values.pop("entropy")
        stage = self.trainer.stage_callback().update(reward, entropy)
        detector = {"stage/reward": reward, "stage/entropy": entropy, "stage": float(stage)}
        self.trainer.record_metrics({**values, **detector, **timing})
        self.recorder.write(state.global_step, accelerator, self.run_dir)
