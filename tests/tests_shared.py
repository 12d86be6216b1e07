"""Helpers shared by several test modules: reward functions of the dynamic-sampling tests (and
their torchrun worker), and the property tests' example counts."""

from __future__ import annotations

import os

EXPLORE = os.environ.get("EPX_HYPOTHESIS") == "explore"


def examples(n: int) -> int:
    """A property test's example count: ``n``, ten times that under `make fuzz`."""
    return 10 * n if EXPLORE else n


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
