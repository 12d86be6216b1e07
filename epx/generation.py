"""Generation backends: a list of prompts and a seed -> one completion per prompt.

The unit of work is a chunk of prompts with one seed. The outputs of a chunk depend only on its
prompts and its seed, never on what ran before it, which is what lets an interrupted eval resume
and still reproduce an uninterrupted run:

- `HFGenerator`: transformers `generate` (left padding, KV cache), the chunk sampled under
  `torch.manual_seed(seed)` inside a forked RNG, so the caller's random state (a trainer's) is
  left untouched.
- `VLLMGenerator`: vLLM with one request per prompt, each seeded from (seed, position in the chunk).

Sampling is exactly temperature + top-p (as vLLM's `SamplingParams`): no top-k, no repetition
penalty, whatever the model's own `generation_config` suggests. Temperature 0 is greedy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from epx.errors import ModelError


@dataclass(frozen=True)
class SamplingSettings:
    """How completions are sampled; every field changes the outputs (all go in settings.json)."""

    n: int = 8  # samples per problem
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 8192  # the paper's response limit
    seed: int = 0
    batch_size: int = 16  # prompts per chunk (HF: one generate call)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Completion:
    """One generated completion: its text, its token count (incl. the stop token) and whether it
    stopped on its own (False: cut at max_tokens)."""

    text: str
    tokens: int
    finished: bool


class Generator(Protocol):
    """What the runner needs from a backend."""

    backend: str
    tokenizer: Any

    def generate(self, prompts: Sequence[str], seed: int) -> list[Completion]: ...


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (stable across processes and Python versions)."""
    text = "/".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The model's eos ids (generation_config may list several) plus the tokenizer's eos."""
    ids: list[int] = []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (configured, tokenizer.eos_token_id):
        for token in value if isinstance(value, list | tuple) else [value]:
            if token is not None and int(token) not in ids:
                ids.append(int(token))
    return ids


def completion_lengths(tokens: Any, stop_ids: Sequence[int]) -> tuple[list[int], list[bool]]:
    """Per row of generated ids (B, T): length up to and including the first stop token, and
    whether a stop token was found."""
    import torch

    is_stop = torch.isin(tokens, torch.tensor(list(stop_ids), device=tokens.device))  # (B, T)
    found = is_stop.any(dim=1)  # (B,)
    first = torch.where(found, is_stop.int().argmax(dim=1) + 1, tokens.shape[1])  # (B,)
    return first.tolist(), found.tolist()


class HFGenerator:
    """Batched transformers `generate` with left padding and the KV cache."""

    backend = "hf"

    def __init__(self, model: Any, tokenizer: Any, settings: SamplingSettings) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.stop_ids = stop_token_ids(model, tokenizer)
        if not self.stop_ids:
            raise ModelError("the tokenizer has no eos token: generation could never stop")
        # The prompt text already holds the chat template's special tokens (as in TRL).
        self.add_special_tokens = not getattr(tokenizer, "chat_template", None)

    def generation_kwargs(self) -> dict[str, Any]:
        """The exact `generate` arguments (also used by the throughput benchmark's bare loop)."""
        s = self.settings
        kwargs: dict[str, Any] = {
            "max_new_tokens": s.max_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.stop_ids,
            "use_cache": True,
            "top_k": 0,  # transformers' default is 50; vLLM and the paper use none
            "repetition_penalty": 1.0,
        }
        if s.temperature > 0:
            kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p)
        else:
            kwargs.update(do_sample=False, temperature=1.0, top_p=1.0)
        return kwargs

    def encode(self, prompts: Sequence[str]) -> Any:
        return self.tokenizer(
            list(prompts),
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=self.add_special_tokens,
        ).to(self.model.device)

    def generate(self, prompts: Sequence[str], seed: int) -> list[Completion]:
        import torch

        batch = self.encode(prompts)
        devices = [self.model.device] if self.model.device.type == "cuda" else []
        was_training = self.model.training
        self.model.eval()
        kwargs = self.generation_kwargs()
        if is_sharded(self.model):  # every process decodes until all are done (collective forwards)
            kwargs["synced_gpus"] = True
        try:  # no_grad, not inference_mode: the latter breaks ZeRO-3's parameter hooks
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                torch.manual_seed(seed)
                output = self.model.generate(**batch, **kwargs)
        finally:
            self.model.train(was_training)
        generated = output[:, batch["input_ids"].shape[1] :]  # (B, T)
        lengths, finished = completion_lengths(generated, self.stop_ids)
        rows = generated.tolist()
        return [
            Completion(
                text=self.tokenizer.decode(row[:length], skip_special_tokens=True),
                tokens=length,
                finished=done,
            )
            for row, length, done in zip(rows, lengths, finished, strict=True)
        ]


def is_sharded(model: Any) -> bool:
    """Whether `model`'s parameters are sharded over processes (FSDP, or ZeRO-3 without gathered
    parameters), so that its forwards are collective: every process must call them equally often."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return False
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    if is_deepspeed_zero3_enabled():
        return True
    from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel

    return any(isinstance(m, FSDPModule | FullyShardedDataParallel) for m in model.modules())


def vllm_available() -> bool:
    """vLLM importable and a CUDA GPU present."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


class VLLMGenerator:
    """vLLM offline generation; each request seeded from (chunk seed, position in the chunk).

    Untested in this repository's CI (no vLLM, no GPU). `model_path` must be something vLLM loads
    itself: a hub id or a local HF-format dir (merged weights, no adapters).
    """

    backend = "vllm"

    def __init__(self, model_path: str, tokenizer: Any, settings: SamplingSettings, **llm: Any):
        try:
            from vllm import LLM
        except ImportError as error:
            raise ModelError(f"--backend vllm: vllm cannot be imported ({error})") from None
        self.tokenizer = tokenizer
        self.settings = settings
        self.llm = LLM(model=model_path, seed=settings.seed, **llm)

    def generate(self, prompts: Sequence[str], seed: int) -> list[Completion]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        s = self.settings
        params = [
            SamplingParams(
                n=1,
                temperature=s.temperature,
                top_p=s.top_p if s.temperature > 0 else 1.0,
                top_k=-1,
                max_tokens=s.max_tokens,
                seed=derive_seed(seed, index),
            )
            for index in range(len(prompts))
        ]
        # Tokenise ourselves so the prompt ids equal the HF backend's (no extra BOS).
        add_special = not getattr(self.tokenizer, "chat_template", None)
        inputs = [
            TokensPrompt(
                prompt_token_ids=self.tokenizer(p, add_special_tokens=add_special)["input_ids"]
            )
            for p in prompts
        ]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        completions = []
        for output in outputs:
            sample = output.outputs[0]
            completions.append(
                Completion(
                    text=sample.text,
                    tokens=len(sample.token_ids),
                    finished=sample.finish_reason == "stop",
                )
            )
        return completions
