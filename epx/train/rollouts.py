"""Rollout records for `epx analyze`: a bounded sample of each saved step's completions, as
Parquet in the run dir (`rollouts/step-000010.parquet`), from what the loss's own forward already
computed (no extra forward).

One row per completion (whole prompt groups, in generation order, at most
`analysis.max_samples_per_step` of them):

| column | type | what |
|---|---|---|
| step | int32 | the global step the completion was trained at |
| prompt_id | int64 | crc32 of the prompt text (the same prompt has the same id at every step) |
| sample | int16 | index of the completion in its prompt group (0..G-1) |
| reward | float32 | the weighted sum of the reward functions |
| correct | float32 | the correctness reward (1/0), NaN without one |
| advantage | float32 | TRL's group advantage, before shaping |
| length | int32 | response tokens (EOS included) |
| truncated | bool | cut off by the token limit |
| log_ppl | float32 | -(1/|o|) sum log pi(o_t), from the loss's forward |
| entropy | float32 | mean token entropy over the response |

and with `analysis.token_stats` five lists of `length` values each: `token_ids` (int32),
`token_entropy`, `token_logprob`, `token_position` (t/|o|) and `token_advantage` (after shaping
and the interventions: what the loss used), all float32.

Bytes per step are bounded by `max_bytes_per_step`: at most 34 bytes per completion plus 20 per
token (uncompressed; Parquet compresses), plus 16 KiB of file overhead.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from epx.run_dir import RunDir
from epx.train.batch_keys import INFO_NAMES, INFO_PREFIX, ROW_KEY

ROW_BYTES = 34  # step 4, prompt_id 8, sample 2, reward/correct/advantage/log_ppl/entropy 4 x 5, length 4 (+1 bool, rounded)
TOKEN_BYTES = 20  # token id 4 + entropy, log-prob, position, advantage 4 x 4
FILE_OVERHEAD = 16 * 1024


def max_bytes_per_step(max_samples: int, max_completion_length: int, token_stats: bool) -> int:
    """The most bytes one step's file takes (see the module docstring)."""
    per_row = ROW_BYTES + (TOKEN_BYTES * max_completion_length if token_stats else 0)
    return FILE_OVERHEAD + max_samples * per_row


def prompt_id(prompt: Any) -> int:
    """A stable id for a prompt (text, or a conversation's string form)."""
    return zlib.crc32(str(prompt).encode("utf-8")) & 0x7FFFFFFF


def rollout_rows(
    *,
    step: int,
    rows: Any,
    group_size: int,
    info: dict[str, Any],
    completion_ids: Any,
    mask: Any,
    logps: Any,
    entropies: Any,
    advantages: Any,
    token_stats: bool,
) -> list[dict[str, Any]]:
    """One record per completion of a loss micro-batch (tensors (B,) / (B, T), on any device)."""
    import torch

    from epx.shaping import relative_positions, sequence_log_ppl

    valid = mask.bool()
    lengths = valid.sum(dim=1)
    log_ppl = sequence_log_ppl(logps.detach(), mask).float()
    entropy = (entropies.detach().float() * valid).sum(1) / lengths.clamp(min=1)
    full = advantages.unsqueeze(1).expand_as(mask) if advantages.dim() == 1 else advantages
    scalars = {  # one transfer each, then plain numpy per row
        "row": rows.cpu().numpy(),
        "length": lengths.cpu().numpy(),
        "log_ppl": log_ppl.cpu().numpy(),
        "entropy": entropy.cpu().numpy(),
        **{
            name: info[name].detach().float().cpu().numpy()
            for name in ("prompt", "reward", "correct", "advantage")
        },
        "truncated": info["truncated"].cpu().numpy(),
    }
    if token_stats:
        keep = valid.cpu().numpy()
        tokens = {
            "token_ids": completion_ids.to(torch.int32).cpu().numpy(),
            "token_entropy": entropies.detach().float().cpu().numpy(),
            "token_logprob": logps.detach().float().cpu().numpy(),
            "token_position": relative_positions(mask).float().cpu().numpy(),
            "token_advantage": full.detach().float().cpu().numpy(),
        }
    records = []
    for i in range(mask.size(0)):
        row = int(scalars["row"][i])
        record = {
            "step": step,
            "row": row,
            "prompt_id": int(scalars["prompt"][i]),
            "sample": row % group_size,
            "reward": float(scalars["reward"][i]),
            "correct": float(scalars["correct"][i]),
            "advantage": float(scalars["advantage"][i]),
            "length": int(scalars["length"][i]),
            "truncated": bool(scalars["truncated"][i]),
            "log_ppl": float(scalars["log_ppl"][i]),
            "entropy": float(scalars["entropy"][i]),
        }
        if token_stats:
            record.update({name: values[i][keep[i]] for name, values in tokens.items()})
        records.append(record)
    return records


SCALARS = (("step", "int32"), ("prompt_id", "int64"), ("sample", "int16"), ("reward", "float32"),
           ("correct", "float32"), ("advantage", "float32"), ("length", "int32"),
           ("truncated", "bool"), ("log_ppl", "float32"), ("entropy", "float32"))  # fmt: skip
TOKENS = (("token_ids", "int32"), ("token_entropy", "float32"), ("token_logprob", "float32"),
          ("token_position", "float32"), ("token_advantage", "float32"))  # fmt: skip


def write_rollouts(
    run_dir: RunDir, step: int, records: list[dict[str, Any]], limit: int
) -> Path | None:
    """Keep the first `limit` records in generation order and write them as one Parquet file
    (written to a temporary name, then renamed: a crash never leaves half a file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    chosen = sorted(records, key=lambda r: r["row"])[:limit]
    if not chosen:
        return None
    columns = {name: pa.array([r[name] for r in chosen], type=kind) for name, kind in SCALARS}
    if "token_ids" in chosen[0]:
        for name, kind in TOKENS:
            columns[name] = pa.array(
                [r[name] for r in chosen], type=pa.list_(pa.type_for_alias(kind))
            )
    path = run_dir.rollout_file(step)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".parquet.partial")
    pq.write_table(pa.table(columns), partial, compression="zstd")
    partial.replace(path)
    return path


class RolloutRecorder:
    """Collects a step's records from the loss's micro-batches (each completion once, at most
    `max_samples` of them) and writes them at the logged step."""

    def __init__(self, every_n_steps: int, max_samples: int, token_stats: bool, group_size: int):
        self.every_n_steps = every_n_steps
        self.max_samples = max_samples
        self.token_stats = token_stats
        self.group_size = group_size
        self.step = -1
        self.records: list[dict[str, Any]] = []
        self.rows: set[int] = set()

    def due(self, step: int) -> bool:
        """Records are kept at step 1 and every `every_n_steps` steps (0: never)."""
        return bool(self.every_n_steps) and (step == 1 or step % self.every_n_steps == 0)

    def collect(self, step: int, inputs: dict[str, Any], logps: Any, entropies: Any) -> None:
        """Add the micro-batch's completions not seen yet this step (tensors of TRL's loss)."""
        import torch

        if not self.due(step) or f"{INFO_PREFIX}prompt" not in inputs:
            return
        if self.step != step:
            self.step, self.records, self.rows = step, [], set()
        rows = inputs[ROW_KEY]
        fresh = [i for i, row in enumerate(rows.tolist()) if row not in self.rows]
        if not fresh or len(self.records) >= self.max_samples:
            return  # a second iteration over the same completions, or enough of them
        pick = torch.tensor(fresh, device=rows.device)
        self.records += rollout_rows(
            step=step,
            rows=rows[pick],
            group_size=self.group_size,
            info={name: inputs[f"{INFO_PREFIX}{name}"][pick] for name in INFO_NAMES},
            completion_ids=inputs["completion_ids"][pick],
            mask=inputs["completion_mask"][pick],
            logps=logps[pick],
            entropies=entropies[pick],
            advantages=inputs["advantages"][pick],
            token_stats=self.token_stats,
        )
        self.rows.update(int(rows[i]) for i in fresh)

    def write(self, step: int, accelerator: Any, run_dir: RunDir) -> Path | None:
        """At a logged step: every process's records to the main one, which writes them."""
        if self.step != step:
            return None
        records = self.records
        if accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            records = list(gather_object(records))
        path = (
            write_rollouts(run_dir, step, records, self.max_samples)
            if accelerator.is_main_process
            else None
        )
        self.step, self.records, self.rows = -1, [], set()
        return path
