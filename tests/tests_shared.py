"""Helpers shared by several test modules: tiny training runs and their records, reward functions
of the dynamic-sampling tests (and their torchrun worker), the property tests' example counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny-random.yaml"

EXPLORE = os.environ.get("EPX_HYPOTHESIS") == "explore"


def examples(n: int) -> int:
    """A property test's example count: ``n``, ten times that under `make fuzz`."""
    return 10 * n if EXPLORE else n


def free_port() -> int:
    """A TCP port free on loopback now (for a launcher's rendezvous: never a fixed port, which a
    test running beside another could share)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_tiny(run: Path, steps: int, overrides: list[str], resume: bool = False) -> None:
    """Train the tiny recipe into ``run`` for ``steps`` steps (continuing it with ``resume``)."""
    from epx.recipe import load_recipe
    from epx.train import run_training

    recipe = load_recipe(TINY, [*overrides, f"output_dir={run}", f"grpo.max_steps={steps}"])
    run_training(recipe, resume=resume)


WALL_TIME = ("step_time", "timing/")  # metrics that measure wall time (never reproducible)


def without_wall_time(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith(WALL_TIME)}


def step_records(run: Path) -> list[dict]:
    """A run's per-step metrics records without their wall time: what a rerun must reproduce."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [without_wall_time(r) for r in records if "reward" in r]


def answer_of(prompt: str) -> int:
    """The sum a built-in arithmetic prompt asks for ("What is 3 + 4? ..." -> 7)."""
    text = prompt.split("What is ", 1)[1].split("?", 1)[0]
    return sum(int(n) for n in text.split(" + "))


def signal_reward(prompts: list[str], completions: list[str], **kwargs) -> list[float]:
    """Fixed by the prompt and the completion's global row, never by the sampled text:
    sum % 3 == 0 -> every sample 1 (no signal), == 1 -> every sample 0 (no signal),
    == 2 -> 0, 1, 0, 1 within the group (a signal)."""
    rank = int(os.environ.get("RANK", "0"))
    start = rank * len(prompts)
    rewards = []
    for i, prompt in enumerate(prompts):
        kind = answer_of(prompt) % 3
        rewards.append(1.0 if kind == 0 else 0.0 if kind == 1 else float((start + i) % 2))
    return rewards


def sweep_worker(out: Path, storage: str, n_trials: int, *extra: str) -> subprocess.Popen:
    """A real `epx sweep` worker process of the study `shared` (ppl, random sampler, the
    training reward of 3 tiny steps), its stderr piped."""
    args = [sys.executable, "-m", "epx.cli", "sweep", "--method", "ppl", "--recipe", str(TINY),
            "--n-trials", str(n_trials), "--metric", "reward", "--sampler", "random",
            "--storage", storage, "--study-name", "shared", "-o", str(out),
            "--set", "grpo.max_steps=3", *extra]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def one_line_error(result, code: int = 2) -> str:
    """The single stderr line of a failed command (a CliRunner result or a CompletedProcess),
    asserting there is exactly one and no traceback."""
    exit_code = getattr(result, "exit_code", getattr(result, "returncode", None))
    output = getattr(result, "output", "") or getattr(result, "stdout", "") or ""
    assert exit_code == code, (exit_code, output, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("epx: error: "), result.stderr
    assert "Traceback" not in output + result.stderr
    return lines[0]
