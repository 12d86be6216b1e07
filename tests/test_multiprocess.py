"""Two CPU ranks (gloo, torchrun): a prompt group spread over processes gets the single-process weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from epx.shaping import ppl_weights

WORKER = Path(__file__).with_name("two_rank_worker.py")


@pytest.mark.slow
def test_two_ranks_weight_a_spread_group_like_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", "29533", str(WORKER), str(tmp_path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in records] == [0, 1] and {r["world"] for r in records} == {2}
    assert all(r["global_step"] == 2 for r in records)  # both ranks trained the tiny recipe
    whole_group = torch.tensor(records[0]["log_ppl"] + records[1]["log_ppl"])
    expected = ppl_weights(whole_group, group_size=4, alpha=0.5)
    got = torch.tensor(records[0]["weights"] + records[1]["weights"])
    torch.testing.assert_close(got, expected.to(got.dtype))
    # shaped at loss time (from the loss's forward, rows shuffled): the same weights
    advantages = torch.tensor(records[0]["advantages"] + records[1]["advantages"])
    loss_time = torch.tensor(records[0]["loss_time_weights"] + records[1]["loss_time_weights"])
    nonzero = advantages != 0
    assert nonzero.any()
    torch.testing.assert_close(
        loss_time[nonzero], expected.to(got.dtype)[nonzero], atol=1e-5, rtol=1e-5
    )
    # per-rank weighting would standardise each half on its own: a different answer
    per_rank = torch.cat(
        [ppl_weights(whole_group[:2], 2, 0.5), ppl_weights(whole_group[2:], 2, 0.5)]
    )
    assert not torch.allclose(per_rank.to(got.dtype), got)
