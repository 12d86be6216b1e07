"""Dynamic sampling's extra memory per process, against one process's generation batch.

Launches itself under torchrun (gloo, CPU) for each process count. Every process feeds the same
rounds to two implementations side by side:

- epx's `DynamicBatch`: per-row numbers gathered, only the rows a process trains sent to it;
- the earlier one (kept here as the baseline): every per-row tensor of every round gathered
  onto every process (accelerate's `gather`, per-token tensors padded first), the kept rows
  copied out of it.

A round is shaped like TRL's output for one process (`--rows` completions of up to `--tokens`
tokens, prompts of 128: ids, masks, fp32 old log-probs, advantages and epx's per-row facts).
The groups with a signal follow a fixed pattern (`--keep` of them), so filling the batch takes
several rounds. Measured: the most bytes each implementation holds at once besides the round
being scored (its kept rows and buffers, the first round while nothing is kept; a tensor's
storage counted once), as a multiple of one round's output (one process's generation batch).
Target: at most 1.5 for epx.

    .venv/bin/python benchmarks/dynamic_memory.py [--processes 2 4] [--rows 64] [--tokens 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from meta import print_header  # benchmarks/meta.py: date, commit, machine, command

GROUP = 8
PROMPT = 128


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind `tensors` (views of one buffer counted once)."""
    seen = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def fake_round(round_index: int, rows: int, tokens: int, rank: int, keep: float):
    """One process's rows of a scored round (TRL's keys and epx's), deterministic per round."""
    import torch

    generator = torch.Generator().manual_seed(1000 * round_index + rank)
    lengths = torch.randint(tokens // 4, tokens + 1, (rows,), generator=generator)
    completion_mask = (torch.arange(tokens)[None, :] < lengths[:, None]).long()
    groups_here = rows // GROUP
    signal = torch.rand(groups_here, generator=generator) < keep
    reward = torch.zeros(rows)
    for g in range(groups_here):
        if signal[g]:
            reward[g * GROUP : (g + 1) * GROUP : 2] = 1.0  # 1, 0, 1, 0, ...: a signal
    return {
        "prompt_ids": torch.randint(4, 1000, (rows, PROMPT), generator=generator),
        "prompt_mask": torch.ones(rows, PROMPT, dtype=torch.long),
        "completion_ids": torch.randint(4, 1000, (rows, tokens), generator=generator),
        "completion_mask": completion_mask,
        "old_per_token_logps": -torch.rand(rows, tokens, generator=generator),
        "advantages": reward - 0.5,
        "num_items_in_batch": completion_mask.sum(),
        "epx_row": torch.arange(rank * rows, (rank + 1) * rows),
        "epx_prompt": torch.arange(rows) // GROUP + 10_000 * round_index,
        "epx_reward": reward,
        "epx_correct": reward,
        "epx_advantage": reward - 0.5,
        "epx_truncated": lengths == tokens,
    }


def epx_peak(rounds, accelerator, config) -> int:
    """The most bytes held at once: the rows kept so far (and the first round while nothing is
    kept), plus, while rows travel, the send copies of one key (`move_rows` packs and sends
    one key at a time; counted as the largest `processes - 1` consecutive packs, a bound)."""
    from epx.train import dynamic, dynamic_rows
    from epx.train.dynamic import DynamicBatch

    batch = DynamicBatch(config, GROUP, len(rounds[0]["advantages"]), accelerator.process_index,
                         accelerator.num_processes)  # fmt: skip
    packs: list[int] = []
    moving = {"on": False}
    pad_stack, move_rows = dynamic_rows._pad_stack, dynamic.move_rows

    def counted_pad_stack(*args, **kwargs):
        out = pad_stack(*args, **kwargs)
        if moving["on"]:
            packs.append(out.untyped_storage().nbytes())
        return out

    def counted_move_rows(*args, **kwargs):
        moving["on"] = True
        try:
            return move_rows(*args, **kwargs)
        finally:
            moving["on"] = False

    def held() -> int:
        tensors = [t for row in batch.mine.rows.values() for t in row.values()]
        tensors += list(batch.first.values()) if batch.first is not None else []
        return storage_bytes(tensors)

    dynamic_rows._pad_stack, dynamic.move_rows = counted_pad_stack, counted_move_rows
    peers = accelerator.num_processes - 1
    peak = 0
    try:
        for output in rounds:
            before, packs[:] = held(), []
            done = batch.add_round(output, accelerator)
            windows = [sum(packs[i : i + peers]) for i in range(max(1, len(packs) - peers + 1))]
            in_flight = max(windows, default=0)
            peak = max(peak, before + in_flight, held())
            if done:
                break
    finally:
        dynamic_rows._pad_stack, dynamic.move_rows = pad_stack, move_rows
    batch.finish(accelerator, 0, 1)
    return peak


def gather_everything_peak(rounds, accelerator) -> int:
    """The earlier implementation's holdings: each round gathered whole, kept rows copied."""
    import torch

    from epx.train.dynamic import groups_with_signal

    local = len(rounds[0]["advantages"])
    total = local * accelerator.num_processes
    parts, first, kept, peak = [], None, 0, 0
    for output in rounds:
        gathered = {}
        for key, value in output.items():
            if not isinstance(value, torch.Tensor) or value.dim() == 0:
                continue
            kind = value.dtype
            value = value.to(torch.uint8) if kind == torch.bool else value
            if value.dim() >= 2:
                value = accelerator.pad_across_processes(value, dim=1, pad_first=key.startswith("prompt"))
            gathered[key] = accelerator.gather(value)
        first = first or gathered
        chosen = groups_with_signal(gathered["epx_reward"], GROUP).repeat_interleave(GROUP)
        rows = chosen.nonzero().squeeze(1)
        if rows.numel():
            parts.append({k: v[rows] for k, v in gathered.items()})
            kept += rows.numel()
        held = [t for part in parts for t in part.values()] + list(gathered.values())
        held += list(first.values()) if first is not gathered else []
        peak = max(peak, storage_bytes(held))
        if kept >= total:
            break
    return peak


def worker(args: argparse.Namespace) -> None:
    import torch
    from accelerate import PartialState

    from epx.recipe import SamplingSection

    state = PartialState(cpu=True)
    rank = state.process_index

    class Accel:  # what DynamicBatch uses of an Accelerator
        process_index, num_processes, device = rank, state.num_processes, torch.device("cpu")

        @staticmethod
        def gather(tensor):
            from accelerate.utils import gather

            return gather(tensor)

        @staticmethod
        def pad_across_processes(tensor, dim, pad_first):
            from accelerate.utils import pad_across_processes

            return pad_across_processes(tensor, dim=dim, pad_first=pad_first)

    config = SamplingSection(dynamic=True, max_generation_batches=20, on_exhausted="train")
    rounds = [fake_round(r, args.rows, args.tokens, rank, args.keep) for r in range(20)]
    generation_batch = storage_bytes(v for v in rounds[0].values())
    result = {
        "processes": state.num_processes,
        "generation_batch": generation_batch,
        "epx": epx_peak(rounds, Accel, config),
        "gather": gather_everything_peak(rounds, Accel),
    }
    if rank == 0:
        Path(args.out).write_text(json.dumps(result))
    state.wait_for_everyone()
    state.destroy_process_group()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--rows", type=int, default=64, help="completions per process per round")
    parser.add_argument("--tokens", type=int, default=1024, help="longest completion")
    parser.add_argument("--keep", type=float, default=0.3, help="share of groups with a signal")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0
    print_header()
    print(f"rounds of {args.rows} completions per process, up to {args.tokens} tokens, "
          f"{args.keep:.0%} of groups kept; extra bytes held at the peak / one process's "
          "generation batch (target for epx: <= 1.5)")  # fmt: skip
    print(f"{'processes':>9}  {'generation batch':>16}  {'epx':>12}  {'gather all':>12}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for count in args.processes:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "result.json"
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       "--nproc_per_node", str(count), __file__, "--worker", "--out", str(out),
                       "--rows", str(args.rows), "--tokens", str(args.tokens),
                       "--keep", str(args.keep)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            r = json.loads(out.read_text())
        base = r["generation_batch"]
        print(f"{count:>9}  {base / 2**20:>13.1f} MB  {r['epx'] / base:>11.2f}x  "
              f"{r['gather'] / base:>11.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
