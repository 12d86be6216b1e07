"""`epx train` launched as users launch it on several processes (CPU, gloo): torchrun (DDP) and
accelerate with the shipped FSDP config (FSDP2 on 2 CPU processes through tests/fsdp_cpu.py),
compared with one process; a rank killed mid-run; checkpoints, `--resume` and `final/`.
(Numeric parity of every setup on a fixed rollout: tests/test_parity.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_parity import fsdp_config
from tests_shared import free_port, without_wall_time

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny-random.yaml"
FSDP_LAUNCHER = Path(__file__).with_name("fsdp_cpu.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
COMMON = ["--set", "logging.mode=disabled", "--set", "grpo.lr_scheduler_type=constant",
          "--set", "analysis.every_n_steps=1"]  # fmt: skip
SHAPED = ("shaping/ppl/weight_mean", "shaping/position/bonus_abs_mean", "entropy/positive",
          "entropy/negative", "log_ppl/positive", "log_ppl/negative", "stage")  # fmt: skip


def torchrun() -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
            "--standalone", "-m", "epx.cli"]  # fmt: skip


def train(launcher: list[str], run: Path, *sets: str, resume: bool = False, timeout: int = 600):
    command = [*launcher, "train", str(TINY), "--set", f"output_dir={run}", *COMMON]
    for item in sets:
        command += ["--set", item]
    command += ["--resume"] if resume else []
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=timeout)


def steps(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.multiprocess
def test_torchrun_epx_train_shapes_and_records_like_one_process(tmp_path):
    one = train([sys.executable, "-m", "epx.cli"], tmp_path / "one", "shaping.method=both",
                "grpo.max_steps=3")  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    both = train(torchrun(), tmp_path / "both", "shaping.method=both", "grpo.max_steps=3")
    assert both.returncode == 0, both.stderr[-3000:]
    none = train(torchrun(), tmp_path / "none", "shaping.method=none", "grpo.max_steps=3")
    assert none.returncode == 0, none.stderr[-3000:]
    assert both.stderr.count("epx train: ") == 1  # only the main process prints the header
    assert "2 processes (DDP, gloo)" in both.stderr
    for record in steps(tmp_path / "both"):  # every step has what one process logs
        assert all(key in record for key in SHAPED), sorted(set(SHAPED) - set(record))
    assert [set(r) - {"step_time"} for r in steps(tmp_path / "both")] == [
        set(r) - {"step_time"} for r in steps(tmp_path / "one")
    ]
    rollouts = sorted(p.name for p in (tmp_path / "both" / "rollouts").iterdir())
    assert rollouts == sorted(p.name for p in (tmp_path / "one" / "rollouts").iterdir())
    assert rollouts == [f"step-00000{s}.parquet" for s in (1, 2, 3)]
    # the method is on: same seeds and batches, other losses than plain GRPO's
    losses = [[r["loss"] for r in steps(tmp_path / name)] for name in ("both", "none")]
    assert losses[0] != losses[1]


@pytest.mark.multiprocess
def test_a_killed_rank_ends_the_launch_in_one_line_and_resume_continues(tmp_path):
    run = tmp_path / "run"
    command = [*torchrun(), "train", str(TINY), "--set", f"output_dir={run}", *COMMON,
               "--set", "grpo.max_steps=400", "--set", "grpo.save_steps=2"]  # fmt: skip
    launch = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=ENV, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(run.glob("checkpoint-4")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert list(run.glob("checkpoint-4")), "the launch never reached a checkpoint"
    ranks = [int(pid) for pid in subprocess.run(
        ["pgrep", "-f", f"output_dir={run}"], capture_output=True, text=True).stdout.split()
        if int(pid) != launch.pid]  # fmt: skip
    assert len(ranks) == 2
    killed = time.monotonic()
    os.kill(max(ranks), signal.SIGKILL)
    _, stderr = launch.communicate(timeout=120)
    assert time.monotonic() - killed < 60  # the survivor did not hang
    epx_lines = [line for line in stderr.splitlines() if line.startswith("epx: ")]
    assert len(epx_lines) == 1, epx_lines  # the surviving rank: one line, no traceback
    assert "another process of this launch stopped" in epx_lines[0] or "SIGTERM" in epx_lines[0]
    assert "[rank0]: Traceback" not in stderr
    last = max(int(p.name.split("-")[1]) for p in run.glob("checkpoint-*"))
    resumed = train(torchrun(), run, "grpo.max_steps=" + str(last + 3), "grpo.save_steps=2",
                    resume=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    logged = [r["step"] for r in steps(run)]
    assert logged == list(range(1, last + 4))  # every step once: the lost ones trained again


@pytest.mark.multiprocess
def test_fsdp_on_two_cpu_processes_checkpoints_resumes_and_saves_full_weights(tmp_path):
    config = fsdp_config(tmp_path / "fsdp.yaml")
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
                "--main_process_port", str(free_port()), str(FSDP_LAUNCHER), "-m", "epx.cli"]  # fmt: skip
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    first = train(launcher, whole, "grpo.max_steps=4", "grpo.save_steps=2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "2 processes (FSDP2, gloo)" in first.stderr
    half = train(launcher, cut, "grpo.max_steps=2", "grpo.save_steps=2")
    assert half.returncode == 0, half.stderr[-3000:]
    layout = sorted(p.name for p in (cut / "checkpoint-2").iterdir())
    assert {"pytorch_model_fsdp_0", "optimizer_0", "trainer_state.json"} <= set(layout)
    assert "model.safetensors" not in layout  # sharded: torch.distributed.checkpoint folders
    resumed = train(launcher, cut, "grpo.max_steps=4", "grpo.save_steps=2", resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming checkpoint-2" in resumed.stderr
    assert [without_wall_time(r) for r in steps(cut)] == [without_wall_time(r) for r in steps(whole)]
    import torch
    from safetensors.torch import load_file

    weights = [load_file(run / "final" / "model.safetensors") for run in (whole, cut)]
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 10
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # the final weights load as an ordinary model (full tensors, not shards)
    evaluated = subprocess.run(
        [sys.executable, "-m", "epx.cli", "eval", "--model", str(cut / "final"), "--bench",
         "arithmetic", "--limit", "2", "--n", "1", "--max-tokens", "4", "-o", str(tmp_path / "e")],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    # without the test launcher accelerate falls back to DDP on a CPU: refused in one line
    plain = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
             "--main_process_port", str(free_port()), "-m", "epx.cli"]  # fmt: skip
    refused = train(plain, tmp_path / "refused", "grpo.max_steps=1")
    lines = [line for line in refused.stderr.splitlines() if line.startswith("epx: error: ")]
    assert refused.returncode != 0 and len(lines) == 1
    assert "FSDP was asked for" in lines[0] and "2 processes (DDP, gloo)" in lines[0]
    assert not (tmp_path / "refused").exists()  # nothing written
