"""Evaluation during training: a TrainerCallback that runs the eval core (`epx.evaluation`) on
the trainer's model.

It evaluates before training (step 0), every `every_n_steps` global steps and after the last
step (unless that step was just evaluated), with the same core, scorer and prompt as `epx eval`,
and hands `eval/<bench>/acc`, `eval/<bench>/maj`, `eval/<bench>/pass@1`, `eval/<bench>/pass@<n>`,
... to `log_fn(metrics, step)` (the trainer's `record_metrics`: the values reach W&B and
metrics.jsonl with the step's own, those before training as a record at step 0); its wall time
is the step clock's `evaluation` phase. Sampling uses a fixed seed at every evaluation (the same
draws each time, so differences between steps come from the model) inside a forked RNG, so the
training's random stream is left as it was. With several processes every rank
runs the callback (they share the chunks, and call `generate` equally often); only the main
process writes. Inside a trainer, `model_for_generation` is the trainer's (TRL's unwrapping for
generation: ZeRO-3's parameters gathered, gradient checkpointing off) and `clock` its step clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from transformers import TrainerCallback

from epx.benchmarks import LoadedBenchmark, load_benchmark, parse_bench_list
from epx.evaluation import evaluate_benchmarks, flat_metrics
from epx.generation import HFGenerator, SamplingSettings
from epx.run_dir import RunDir

LogFn = Callable[[dict[str, float], int], None]


class EvalCallback(TrainerCallback):
    """Evaluate on benchmarks before training and every N steps; see the module docstring."""

    def __init__(
        self,
        benches: Sequence[LoadedBenchmark],
        sampling: SamplingSettings,
        *,
        every_n_steps: int = 10,
        before_training: bool = True,
        after_training: bool = True,
        limit: int | None = None,
        data: Any = None,
        run_dir: RunDir | None = None,
        workers: int | None = None,
        strictness: str = "final",
        log_fn: LogFn | None = None,
        tokenizer: Any = None,
    ) -> None:
        """`data`: the recipe's data section the prompt is built with (`epx.data.
        prompt_function`; None: the paper's prompt); `run_dir` keeps each evaluation's samples
        (`RunDir.evaluation(step)`); `tokenizer` defaults to the trainer's processing class."""
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.benches = list(benches)
        self.sampling = sampling
        self.every_n_steps = every_n_steps
        self.before_training = before_training
        self.after_training = after_training
        self.limit = limit
        self.data = data
        self.run_dir = run_dir
        self.workers = workers
        self.strictness = strictness
        self.log_fn = log_fn
        self.tokenizer = tokenizer
        self.history: list[tuple[int, dict[str, float]]] = []
        self._last_step: int | None = None
        self.model_for_generation: Callable[[Any], AbstractContextManager[Any]] = nullcontext
        self.clock: Any = None  # the trainer's StepClock: evaluation is not optimization

    @classmethod
    def from_recipe(cls, recipe: Any, **overrides: Any) -> EvalCallback | None:
        """From a recipe's `eval:` section (max_tokens defaults to grpo.max_completion_length),
        prompting exactly as its `data:` section does; None if it lists no benches. The
        benchmarks are loaded here, so a bad name fails before training starts."""
        from epx.data import BUILTIN_PREFIX

        section = recipe.eval
        if not section.benches:
            return None
        task = recipe.data.task if recipe.data.source == BUILTIN_PREFIX + "arithmetic" else None
        benches = [
            load_benchmark(name, section.data_dir, task=task)
            for name in parse_bench_list(section.benches)
        ]
        sampling = SamplingSettings(
            n=section.n,
            temperature=section.temperature,
            top_p=section.top_p,
            max_tokens=section.max_tokens or recipe.grpo.get("max_completion_length") or 512,
            seed=section.seed,
            batch_size=section.batch_size,
        )
        kwargs: dict[str, Any] = {
            "every_n_steps": section.every_n_steps,
            "before_training": section.before_training,
            "after_training": section.after_training,
            "limit": section.limit,
            "data": recipe.data,
            "run_dir": RunDir(recipe.output_dir) if recipe.output_dir else None,
            "strictness": recipe.reward.strictness,
        }
        return cls(benches, sampling, **{**kwargs, **overrides})

    def evaluate(self, model: Any, tokenizer: Any, step: int) -> dict[str, float]:
        """Evaluate `model` now, record and log the metrics for `step`."""
        from epx.data import prompt_function

        output_dir = self.run_dir.evaluation(step).path if self.run_dir else None
        if output_dir is not None:
            output_dir.mkdir(parents=True, exist_ok=True)
        results = evaluate_benchmarks(
            HFGenerator(model, tokenizer, self.sampling),
            self.benches,
            self.sampling,
            prompt_function(self.data, tokenizer),
            limit=self.limit,
            output_dir=output_dir,
            resume=False,
            workers=self.workers,
            strictness=self.strictness,
        )
        metrics = flat_metrics({name: r.metrics for name, r in results.items()}, self.sampling.n)
        self.history.append((step, metrics))
        self._last_step = step
        if self.log_fn is not None:
            self.log_fn(dict(metrics), step)
        return metrics

    def _run(self, state: Any, kwargs: dict[str, Any]) -> None:
        if self._last_step == state.global_step:  # already evaluated at this step
            return
        tokenizer = self.tokenizer or kwargs.get("processing_class")
        if tokenizer is None:
            raise ValueError("EvalCallback needs a tokenizer (pass tokenizer=...)")
        timed = self.clock.phase("evaluation") if self.clock is not None else nullcontext()
        with timed, self.model_for_generation(kwargs["model"]) as model:
            self.evaluate(model, tokenizer, state.global_step)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.before_training and state.global_step == 0:
            self._run(state, kwargs)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step > 0 and state.global_step % self.every_n_steps == 0:
            self._run(state, kwargs)
        elif self.after_training and state.global_step == state.max_steps:
            self._run(state, kwargs)  # logged with this last step's metrics
