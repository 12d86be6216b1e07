"""Two processes compute what one process computes: `trainer.train()` launched alone, under
`torchrun --nproc_per_node 2` (DDP over gloo) and under `accelerate launch` with the shipped
FSDP config on 2 CPU processes (FSDP2: tests/fsdp_cpu.py keeps accelerate's FSDP on a CPU), same
global batch and seeds, same completions (tests/parity_worker.py fixes the rollout by prompt,
index in the group and step).

Per setup (every shaping method, each intervention, dynamic sampling, a generation batch that
feeds two steps, in-training evaluation with more and fewer chunks than ranks):
- metrics.jsonl: the same steps and keys, every value equal up to float-sum order; the shaping
  metrics, entropies and log-PPLs by sign, the stage decisions;
- rollout records: the same rows at the same steps, the shaped token advantages (what the loss
  used) equal to 1e-6 on the first step's fixed batch;
- evaluation: every rank calls `generate` equally often, and the samples equal one process's.

With `steps_per_generation` 2, TRL shuffles each process's rows before splitting them over the
two steps, so a step trains other rows on two processes than on one (and the weights part from
then on): there the first generation batch's values (the shaped advantage of each row, rewards,
shaping weights) are compared, over both of its steps, and the rest only for presence.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from parity_worker import SETUPS
from tests_shared import WALL_TIME, free_port

WORKER = Path(__file__).with_name("parity_worker.py")
FSDP_LAUNCHER = Path(__file__).with_name("fsdp_cpu.py")
REPO = Path(__file__).resolve().parents[1]
FSDP_SETUPS = ["both", "ppl-quantile", "dynamic", "generation-every-2", "eval-3-chunks",
               "eval-1-chunk"]  # fmt: skip
SIDES = [("ddp", setup) for setup in SETUPS] + [("fsdp", setup) for setup in FSDP_SETUPS]
PER_STEP_ONLY = {"generation-every-2"}  # each step trains other rows on 2 processes (see above)
IGNORED = WALL_TIME
GENERATION_KEYS = ("reward", "reward_std", "completions/", "rewards/", "shaping/ppl/",
                   "shaping/position/", "num_tokens", "frac_reward_zero_std", "accuracy")  # fmt: skip


@pytest.fixture(scope="module")
def launches(tmp_path_factory):
    out = tmp_path_factory.mktemp("parity")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled",
           "TRL_EXPERIMENTAL_SILENCE": "1"}  # fmt: skip
    setups = list(SETUPS)
    one = subprocess.run([sys.executable, str(WORKER), str(out / "one"), *setups],
                         capture_output=True, text=True, env=env, timeout=900)  # fmt: skip
    assert one.returncode == 0, one.stderr[-4000:]
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--standalone", str(WORKER), str(out / "ddp"), *setups],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-4000:]
    config = fsdp_config(out / "fsdp.yaml")
    fsdp = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
         "--main_process_port", str(free_port()), str(FSDP_LAUNCHER), str(WORKER), str(out / "fsdp"),
         *FSDP_SETUPS],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert fsdp.returncode == 0, fsdp.stderr[-4000:]
    return {"one": out / "one", "ddp": out / "ddp", "fsdp": out / "fsdp"}


def fsdp_config(path: Path) -> Path:
    """The shipped recipes/accelerate/fsdp.yaml for 2 CPU processes in fp32 (its FSDP settings
    as they are: FSDP2, transformer-layer wrapping, sharded state dicts, reshard after forward)."""
    import yaml

    config = yaml.safe_load((REPO / "recipes" / "accelerate" / "fsdp.yaml").read_text())
    assert config["distributed_type"] == "FSDP" and config["fsdp_config"]["fsdp_version"] == 2
    config.update(num_processes=2, mixed_precision="no", use_cpu=True)
    path.write_text(yaml.safe_dump(config))
    return path


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def records(run: Path) -> dict[int, list[dict]]:
    """step -> the rollout records, in (prompt, index in group, tokens) order."""
    import pyarrow.parquet as pq

    out: dict[int, list[dict]] = {}
    for path in sorted((run / "rollouts").glob("step-*.parquet")):
        for row in pq.read_table(path).to_pylist():
            out.setdefault(row["step"], []).append(row)
    order = lambda r: (r["prompt_id"], r["sample"], list(r["token_ids"]))  # noqa: E731
    return {step: sorted(rows, key=order) for step, rows in out.items()}


def close(a, b, rel: float = 1e-4, abs_: float = 1e-5) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)
    return a == b


@pytest.mark.multiprocess
@pytest.mark.parametrize(("side", "setup"), SIDES)
def test_two_processes_log_what_one_process_logs(launches, side, setup):
    one, two = launches["one"] / setup, launches[side] / setup
    calls = [json.loads((two / f"calls-rank{r}.json").read_text()) for r in (0, 1)]
    assert [c["world"] for c in calls] == [2, 2] and {c["global_step"] for c in calls} == {4}
    assert all(c["sharded"] == (side == "fsdp") for c in calls)  # FSDP2's parameters: DTensors
    ours, theirs = metrics(one), metrics(two)
    before = [0] if setup.startswith("eval") else []  # the evaluation before training: step 0
    assert [r["step"] for r in ours] == [r["step"] for r in theirs] == [*before, 1, 2, 3, 4]
    for a, b in zip(ours, theirs, strict=True):
        assert set(a) == set(b), (a["step"], set(a) ^ set(b))
        for key in sorted(a):
            if key.startswith(IGNORED):
                continue
            first_generation = a["step"] == 1 and key.startswith(GENERATION_KEYS)
            if setup not in PER_STEP_ONLY or first_generation:
                assert close(a[key], b[key]), (a["step"], key, a[key], b[key])
    for key in ("entropy/positive", "entropy/negative", "log_ppl/positive", "stage"):
        assert all(key in r for r in ours if r["step"] > 0), key  # every step (not only logged ones)
    if "ppl" in setup or setup in ("both", "dynamic", "generation-every-2", "ppl-quantile"):
        assert all("shaping/ppl/weight_mean" in r for r in ours if "reward" in r)


@pytest.mark.multiprocess
@pytest.mark.parametrize(("side", "setup"), SIDES)
def test_two_processes_record_and_shape_what_one_process_does(launches, side, setup):
    one, two = records(launches["one"] / setup), records(launches[side] / setup)
    assert sorted(one) == sorted(two) == [1, 2, 3, 4]
    if setup in PER_STEP_ONLY:  # the first generation batch's rows, whichever step had them
        key = lambda r: (r["prompt_id"], r["sample"], list(r["token_ids"]))  # noqa: E731
        one, two = ({1: sorted(side[1] + side[2], key=key)} for side in (one, two))
    for step in one:
        assert len(one[step]) == len(two[step]) == 12, step  # the whole generation batch
        for ours, theirs in zip(one[step], two[step], strict=True):
            assert (ours["prompt_id"], ours["sample"]) == (theirs["prompt_id"], theirs["sample"])
            assert list(ours["token_ids"]) == list(theirs["token_ids"])
            assert ours["reward"] == theirs["reward"]
            tolerance = 1e-6 if step == 1 else 1e-5  # later steps: weights equal up to float sums
            for a, b in zip(ours["token_advantage"], theirs["token_advantage"], strict=True):
                assert abs(a - b) <= tolerance, (step, ours["prompt_id"], a, b)
            if setup not in PER_STEP_ONLY:
                assert close(ours["log_ppl"], theirs["log_ppl"], 1e-5, 1e-6)


@pytest.mark.multiprocess
@pytest.mark.parametrize("side", ["ddp", "fsdp"])
@pytest.mark.parametrize("setup", ["eval-3-chunks", "eval-1-chunk"])
def test_in_training_evaluation_generates_in_step_and_equals_one_process(launches, side, setup):
    one, two = launches["one"] / setup, launches[side] / setup
    calls = [json.loads((two / f"calls-rank{r}.json").read_text())["generate"] for r in (0, 1)]
    single = json.loads((one / "calls-rank0.json").read_text())["generate"]
    # 3 evaluations (steps 0, 2, 4); 3 chunks: rank 0 takes chunks 0 and 2, rank 1 chunk 1 and
    # one idle prompt; 1 chunk: rank 0 takes it, rank 1 one idle prompt
    per_evaluation = {"eval-3-chunks": 2, "eval-1-chunk": 1}[setup]
    assert calls == [3 * per_evaluation] * 2
    assert single == 3 * {"eval-3-chunks": 3, "eval-1-chunk": 1}[setup]
    for step in (0, 2, 4):
        ours = (one / "eval" / f"step-{step}" / "arithmetic.jsonl").read_text().splitlines()
        theirs = (two / "eval" / f"step-{step}" / "arithmetic.jsonl").read_text().splitlines()
        completions = [json.loads(line)["completion"] for line in ours]
        assert len(completions) == 3 and completions == [json.loads(x)["completion"] for x in theirs]
