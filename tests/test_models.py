"""One place builds models: tiny-random, random shapes, recipes, train output dirs (LoRA merged)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from epx.errors import ModelError
from epx.models import (
    latest_checkpoint,
    load_model_and_tokenizer,
    resolve_model_ref,
    resolve_package_path,
    resolve_reference,
)
from epx.recipe import ModelSection, load_recipe
from epx.train import run_training

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny-random.yaml"


def test_tiny_random_is_deterministic_and_round_trips_text():
    first, tokenizer = load_model_and_tokenizer(ModelSection(name_or_path="tiny-random"))
    second, _ = load_model_and_tokenizer(ModelSection(name_or_path="tiny-random"))
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
    text = "What is 12 + 7? \\boxed{19}"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert tokenizer.padding_side == "left" and tokenizer.pad_token != tokenizer.eos_token


def write_checkpoint(folder, step: int) -> None:
    """The files a usable checkpoint has: trainer_state.json and whole safetensors weights."""
    import json
    import struct

    folder.mkdir()
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)


def test_latest_checkpoint_skips_saves_cut_short(tmp_path):
    for step, complete in ((2, True), (10, True), (12, False)):  # 12: killed while saving
        if complete:
            write_checkpoint(tmp_path / f"checkpoint-{step}", step)
        else:
            (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-x").mkdir()
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-10"  # 10 > 2 numerically
    assert latest_checkpoint(tmp_path / "missing") is None


def test_recipe_file_as_model_reference():
    assert resolve_model_ref(str(TINY)).name_or_path == "tiny-random"


def test_unknown_references_fail_in_one_line(tmp_path):
    with pytest.raises(ModelError, match="unknown random architecture 'qwen9'; known are"):
        load_model_and_tokenizer(ModelSection(name_or_path="random:qwen9"))
    with pytest.raises(ModelError, match="GGUF file not found"):
        load_model_and_tokenizer(ModelSection(name_or_path=str(tmp_path / "x.gguf")))
    with pytest.raises(ModelError, match="package 'no_such_pkg' is not installed"):
        resolve_package_path("pkg://no_such_pkg/model.gguf")
    with pytest.raises(ModelError, match="missing-dir: no such local file or folder"):
        load_model_and_tokenizer(ModelSection(name_or_path=str(tmp_path / "missing-dir")))


def test_lora_run_output_loads_merged_for_generation(tmp_path):
    overrides = [
        f"output_dir={tmp_path / 'run'}",
        "logging.mode=disabled",
        "model.lora={r: 4, alpha: 8, dropout: 0.0, target_modules: [q_proj, v_proj]}",
        "grpo.max_steps=2",
    ]
    run_training(load_recipe(TINY, overrides))
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert (checkpoint / "adapter_config.json").is_file()
    cfg, data = resolve_reference(str(tmp_path / "run"))
    assert cfg.adapter == str(checkpoint) and cfg.name_or_path == "tiny-random"
    assert data.template == load_recipe(TINY).data.template  # eval prompts as training did
    assert resolve_model_ref(str(checkpoint)) == cfg  # a checkpoint folder names itself
    model, tokenizer = load_model_and_tokenizer(cfg)
    assert type(model).__name__ == "Qwen2ForCausalLM"  # merged: no peft wrapper left
    base, _ = load_model_and_tokenizer(ModelSection(name_or_path="tiny-random"))
    changed = [
        not torch.equal(a, b)
        for (name, a), b in zip(model.named_parameters(), base.parameters(), strict=True)
        if "q_proj" in name or "v_proj" in name
    ]
    assert any(changed)  # the trained adapters were merged into the weights
    ids = tokenizer(["What is 1 + 1?"], return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 4
