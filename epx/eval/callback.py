"""Evaluation during training: a TrainerCallback that runs the eval core on the trainer's model.

It evaluates before training (step 0), every `every_n_steps` global steps and after the last
step (unless that step was just evaluated), with the same core,
scorer and prompt as `epx eval`, and hands `eval/<bench>/acc`, `eval/<bench>/maj`,
`eval/<bench>/pass@1`, `eval/<bench>/pass@<n>`, ... to `log_fn(metrics, step)`; wire it to the
trainer's own logging (e.g. `lambda metrics, step: trainer.log(metrics)`) so the values reach W&B
and metrics.jsonl with everything else. Sampling uses a fixed seed at every evaluation (the same
draws each time, so differences between steps come from the model) inside a forked RNG, so the
training's random stream is left as it was. With several processes every rank must run the
callback (they share the chunks, and call `generate` equally often); only the main process
writes. Inside a trainer, `model_for_generation` is the trainer's (TRL's unwrapping for
generation: ZeRO-3's parameters gathered, gradient checkpointing off).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from epx.eval.benchmarks import LoadedBenchmark, load_benchmark, parse_bench_list
from epx.eval.generate import HFGenerator, SamplingSettings
from epx.eval.report import flat_metrics
from epx.eval.runner import PromptFn, evaluate_benchmarks

LogFn = Callable[[dict[str, float], int], None]


def evaluate_model(
    model: Any,
    tokenizer: Any,
    benches: Sequence[LoadedBenchmark],
    sampling: SamplingSettings,
    prompt_fn: PromptFn,
    *,
    limit: int | None = None,
    output_dir: Path | None = None,
    workers: int | None = None,
    strictness: str = "final",
) -> dict[str, float]:
    """Evaluate an in-memory model (HF backend, no resume); the flat `eval/...` metrics."""
    generator = HFGenerator(model, tokenizer, sampling)
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
    results = evaluate_benchmarks(
        generator,
        benches,
        sampling,
        prompt_fn,
        limit=limit,
        output_dir=output_dir,
        resume=False,
        workers=workers,
        strictness=strictness,
    )
    return flat_metrics({name: r.metrics for name, r in results.items()}, sampling.n)


class EvalCallback(TrainerCallback):
    """Evaluate on benchmarks before training and every N steps; see the module docstring."""

    def __init__(
        self,
        benches: str | Sequence[str],
        *,
        every_n_steps: int = 10,
        before_training: bool = True,
        after_training: bool = True,
        n: int = 1,
        limit: int | None = None,
        data_dir: str | None = None,
        temperature: float = 0.6,
        top_p: float = 0.95,
        max_tokens: int = 512,
        batch_size: int = 16,
        seed: int = 0,
        prompt_fn: Callable[[str, Any], str] | None = None,
        output_dir: str | Path | None = None,
        workers: int | None = None,
        log_fn: LogFn | None = None,
        tokenizer: Any = None,
        task: Any = None,
        strictness: str = "final",
    ) -> None:
        """`prompt_fn(problem, tokenizer)` builds the prompt (default: `epx.data.format_prompt`,
        pass the recipe's template); `output_dir` keeps each evaluation's samples in
        `<output_dir>/step-<N>/`; `tokenizer` defaults to the trainer's processing class;
        `task` is the built-in task whose held-out split `arithmetic` is; `strictness` the
        scorer's (`epx.rewards`). Benchmarks are loaded here, so a bad name fails before
        training starts."""
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.benches = [
            load_benchmark(name, data_dir, task=task) for name in parse_bench_list(benches)
        ]
        self.every_n_steps = every_n_steps
        self.before_training = before_training
        self.after_training = after_training
        self.strictness = strictness
        self.limit = limit
        self.sampling = SamplingSettings(
            n=n,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            seed=seed,
            batch_size=batch_size,
        )
        self.prompt_fn = prompt_fn
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.workers = workers
        self.log_fn = log_fn
        self.tokenizer = tokenizer
        self.history: list[tuple[int, dict[str, float]]] = []
        self._last_step: int | None = None
        self.model_for_generation: Callable[[Any], AbstractContextManager[Any]] = nullcontext
        self.clock: Any = None  # the trainer's StepClock: evaluation is not optimization

    @classmethod
    def from_recipe(cls, recipe: Any, *, log_fn: LogFn | None = None, **overrides: Any):
        """From a recipe's `eval:` section (max_tokens defaults to grpo.max_completion_length),
        prompting exactly as the recipe's `data:` section does. None if it lists no benches."""
        section = recipe.eval
        if not section.benches:
            return None
        from functools import partial

        from epx.data import format_prompt

        data = recipe.data
        from epx.data import BUILTIN_PREFIX

        builtin_task = data.task if data.source == BUILTIN_PREFIX + "arithmetic" else None
        prompt_fn = partial(
            _format_with,
            format_prompt=format_prompt,
            template=data.template,
            chat_template=data.chat_template,
            system_prompt=data.system_prompt,
        )
        max_tokens = section.max_tokens or recipe.grpo.get("max_completion_length") or 512
        output_dir = Path(recipe.output_dir) / "eval" if recipe.output_dir else None
        kwargs: dict[str, Any] = {
            "every_n_steps": section.every_n_steps,
            "before_training": section.before_training,
            "after_training": section.after_training,
            "task": builtin_task,
            "strictness": recipe.reward.strictness,
            "n": section.n,
            "limit": section.limit,
            "data_dir": section.data_dir,
            "temperature": section.temperature,
            "top_p": section.top_p,
            "max_tokens": max_tokens,
            "batch_size": section.batch_size,
            "seed": section.seed,
            "prompt_fn": prompt_fn,
            "output_dir": output_dir,
            "log_fn": log_fn,
        }
        kwargs.update(overrides)
        return cls(section.benches, **kwargs)

    def evaluate(self, model: Any, tokenizer: Any, step: int) -> dict[str, float]:
        """Evaluate `model` now, record and log the metrics for `step`."""
        if self.prompt_fn is None:
            from epx.data import format_prompt

            prompt_fn: PromptFn = lambda problem: format_prompt(problem, tokenizer)  # noqa: E731
        else:
            user_fn = self.prompt_fn
            prompt_fn = lambda problem: user_fn(problem, tokenizer)  # noqa: E731
        metrics = evaluate_model(
            model,
            tokenizer,
            self.benches,
            self.sampling,
            prompt_fn,
            limit=self.limit,
            output_dir=self.output_dir / f"step-{step}" if self.output_dir else None,
            workers=self.workers,
            strictness=self.strictness,
        )
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


def _format_with(problem: str, tokenizer: Any, *, format_prompt: Callable[..., str], **kw: Any):
    return format_prompt(problem, tokenizer, **kw)
