"""In-training evaluation: the callback evaluates the trainer's model on schedule, logs namespaced
metrics, reuses the eval core (same numbers as `epx eval`) and leaves the training RNG alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import TrainerControl, TrainerState

from epx.benchmarks import load_benchmark
from epx.data import format_prompt
from epx.eval.report import flat_metrics
from epx.evaluation import evaluate_benchmarks
from epx.generation import HFGenerator, SamplingSettings
from epx.models import load_model_and_tokenizer, resolve_model_ref
from epx.run_dir import RunDir
from epx.train.eval_callback import EvalCallback

DATA_DIR = Path(
    os.environ.get("EPX_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
)


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = load_model_and_tokenizer(resolve_model_ref("tiny-random"))
    model.train()  # as inside a trainer
    return model, tokenizer


def test_callback_evaluates_before_training_and_every_n_steps(tiny, tmp_path):
    model, tokenizer = tiny
    logged = []
    callback = EvalCallback(
        [load_benchmark(b, DATA_DIR) for b in ("aime24", "math500")],
        SamplingSettings(n=2, max_tokens=6, batch_size=4),
        every_n_steps=2,
        limit=2,
        run_dir=RunDir(tmp_path),
        log_fn=lambda metrics, step: logged.append((step, metrics)),
    )
    state, control = TrainerState(), TrainerControl()
    kwargs = {"model": model, "processing_class": tokenizer}

    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    callback.on_train_begin(None, state, control, **kwargs)
    assert torch.equal(torch.rand(3), expected_draw)  # the training RNG stream is untouched
    assert model.training  # back in training mode

    for step in (1, 2, 3):
        state.global_step = step
        callback.on_step_end(None, state, control, **kwargs)
    assert [step for step, _ in logged] == [0, 2]  # before training, then every 2 steps
    metrics = logged[0][1]
    for bench in ("aime24", "math500", "avg"):
        for name in ("acc", "maj", "pass@1", "pass@2", "unparsed"):
            assert 0.0 <= metrics[f"eval/{bench}/{name}"] <= 1.0
    assert RunDir(tmp_path).evaluation(0).records("aime24.jsonl").is_file()
    assert len(RunDir(tmp_path).evaluation(2).read_records("math500.jsonl")) == 2 * 2
    assert logged[0][1] == logged[1][1]  # same weights, same seed: the same numbers

    # the same numbers as the `epx eval` core on the same model and settings
    sampling = SamplingSettings(n=2, max_tokens=6, batch_size=4)
    benches = [load_benchmark(b, DATA_DIR) for b in ("aime24", "math500")]
    results = evaluate_benchmarks(
        HFGenerator(model, tokenizer, sampling),
        benches,
        sampling,
        lambda problem: format_prompt(problem, tokenizer),
        limit=2,
    )
    assert flat_metrics({k: r.metrics for k, r in results.items()}, 2) == metrics


def test_callback_rejects_an_unknown_benchmark_before_training():
    from epx.errors import DataError
    from epx.recipe import load_recipe

    tiny = Path(__file__).resolve().parents[1] / "recipes" / "tiny-random.yaml"
    recipe = load_recipe(tiny, ["eval.benches=[aime2]", f"eval.data_dir={DATA_DIR}"])
    with pytest.raises(DataError, match="unknown benchmark"):
        EvalCallback.from_recipe(recipe)
