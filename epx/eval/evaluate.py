"""`epx eval` end to end: options -> benchmarks, model and settings -> the core -> the report.

Bad input (a benchmark, a model, settings that do not match the output dir) fails before any
generation, as an EpxError. The output dir holds `settings.json` (what every sample there was
generated with; resuming requires the same), one JSONL per benchmark (`<name>.jsonl`, or
`<stem>-<hash>.jsonl` for a file: `LoadedBenchmark.records_file`), `summary.json` (the
benchmarks of the latest call), `wandb/`, and `.epx.lock`: one `epx eval` writes there at a time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from epx.errors import EpxError, ModelError, RunError, RunStateError
from epx.evaluation import BenchResult, Processes, PromptFn, evaluate_benchmarks
from epx.generation import Generator, SamplingSettings
from epx.run_dir import EvalDir

BACKENDS = ("auto", "hf", "vllm")
WANDB_MODES = ("offline", "online", "disabled")


@dataclass(frozen=True)
class EvalOptions:
    """Everything `epx eval` takes (the CLI options, one for one)."""

    model: str
    benches: tuple[str, ...]
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    data_dir: str | None = None  # default: $EPX_DATA_DIR, else the hub
    limit: int | None = None  # first N problems of each benchmark
    backend: str = "auto"  # vllm when importable with a GPU, else hf
    output_dir: str | None = None  # default: runs/eval/<model-slug>-<settings-hash>
    workers: int | None = None  # scorer processes (epx.scoring.score_many)
    wandb_mode: str | None = None  # default: $WANDB_MODE, else offline
    resume: bool = True  # False: discard earlier samples of these benchmarks
    strictness: str = "final"  # the scorer's: final (box or final statement) or boxed


@dataclass
class EvalResult:
    output_dir: Path
    summary: dict[str, Any]
    benches: dict[str, BenchResult]
    wandb_dir: str | None = None


def run_eval(options: EvalOptions, console: Any = None) -> EvalResult:
    """`epx eval`: load benchmarks and model, evaluate (resuming), write and show the results."""
    from rich.console import Console

    from epx.benchmarks import load_benchmark, parse_bench_list
    from epx.quiet import quiet_libraries

    quiet_libraries()
    console = console or Console(stderr=True)
    if options.backend not in BACKENDS:
        raise EpxError(f"--backend must be one of {', '.join(BACKENDS)}, got {options.backend!r}")
    wandb_mode = options.wandb_mode or os.environ.get("WANDB_MODE") or "offline"
    if wandb_mode not in WANDB_MODES:
        raise EpxError(f"W&B mode must be one of {', '.join(WANDB_MODES)}, got {wandb_mode!r}")
    if options.limit is not None and options.limit < 1:
        raise EpxError(f"--limit must be >= 1, got {options.limit}")
    from epx.scoring import STRICTNESS

    if options.strictness not in STRICTNESS:
        raise EpxError(
            f"--strictness must be one of {', '.join(STRICTNESS)}, got {options.strictness!r}"
        )
    processes = Processes()
    from epx.models import resolve_reference

    notes: list[str] = []
    model_cfg, trained_data = resolve_reference(options.model, notes)
    for note in notes if processes.is_main else []:
        console.print(f"[yellow]{note}[/]", highlight=False, soft_wrap=True)  # one line
    task = trained_data.task if trained_data is not None else None  # for `arithmetic`
    benches = [
        load_benchmark(name, options.data_dir, task=task)
        for name in parse_bench_list(options.benches)
    ]
    backend = _choose_backend(options.backend, processes)
    settings: dict[str, Any] = {
        "model": _model_identity(model_cfg),
        "backend": backend,
        "sampling": options.sampling.to_dict(),
        "scoring": {"strictness": options.strictness},
    }
    output_dir = (
        Path(options.output_dir)
        if options.output_dir
        else default_output_dir(options.model, settings)
    )
    from epx.paths import check_output_dir

    check_output_dir(output_dir, "--output-dir")
    bench_data = {b.identity: {"fingerprint": b.fingerprint, "source": b.source} for b in benches}
    check_settings(output_dir, settings, bench_data, resume=options.resume)
    with output_lock(output_dir, processes):
        generator, prompt_fn, loaded = _load_generator(
            model_cfg, trained_data, backend, options.sampling, output_dir, processes
        )
        settings.update(loaded)
        stored = check_settings(output_dir, settings, bench_data, resume=options.resume)
        if processes.is_main:
            from epx.eval.report import write_json

            if not options.resume:  # start over: no samples from other settings may stay
                for old in output_dir.glob("*.jsonl"):
                    old.unlink()
            write_json(EvalDir(output_dir).settings, stored)
        processes.wait()

        from epx.console import progress_bar

        with progress_bar(console, disable=not processes.is_main) as progress:
            results = evaluate_benchmarks(
                generator,
                benches,
                options.sampling,
                prompt_fn,
                limit=options.limit,
                output_dir=output_dir,
                resume=options.resume,
                workers=options.workers,
                progress=progress,
                processes=processes,
                strictness=options.strictness,
            )
        return _report(results, settings, output_dir, options, wandb_mode, processes, console)


def output_lock(output_dir: Path, processes: Processes) -> Any:
    """The output dir's lock (`epx.locks`), held by the main process: one `epx eval` writes
    there at a time. The folder is created here (and removed again if nothing was written)."""
    import contextlib

    from epx.locks import exclusive_lock

    if not processes.is_main:
        return contextlib.nullcontext()
    return exclusive_lock(output_dir, "epx eval", "--output-dir")


def _report(
    results: dict[str, BenchResult],
    settings: dict[str, Any],
    output_dir: Path,
    options: EvalOptions,
    wandb_mode: str,
    processes: Processes,
    console: Any,
) -> EvalResult:
    from epx.eval.report import build_summary, log_to_wandb, render_table, write_json

    n = options.sampling.n
    per_bench = {name: result.metrics for name, result in results.items()}
    paths = {name: str(r.records_path) if r.records_path else None for name, r in results.items()}
    summary = build_summary({**settings, "limit": options.limit}, per_bench, paths, n)
    wandb_dir = None
    if processes.is_main:
        write_json(EvalDir(output_dir).summary, summary)

        from epx.console import table_console

        table_console(120).print(render_table(summary, n, title=f"epx eval: {options.model}"))
        wandb_dir = log_to_wandb(summary, n, output_dir, wandb_mode)
        console.print(f"results: {output_dir}")
    return EvalResult(output_dir=output_dir, summary=summary, benches=results, wandb_dir=wandb_dir)


def _choose_backend(requested: str, processes: Processes) -> str:
    from epx.generation import vllm_available

    backend = requested
    if requested == "auto":
        backend = "vllm" if vllm_available() else "hf"
    elif requested == "vllm" and not vllm_available():
        raise ModelError("--backend vllm needs vllm installed and a CUDA GPU; use --backend hf")
    if backend == "vllm" and processes.count > 1:
        raise RunError(
            "--backend vllm runs in one process (vLLM manages its GPUs); "
            "launch without accelerate, or use --backend hf for data-parallel processes"
        )
    return backend


def _model_identity(cfg: Any) -> dict[str, Any]:
    """The model section with local paths made absolute (the same model, however it was named)."""
    identity = cfg.model_dump(exclude={"lora"})
    for key in ("name_or_path", "tokenizer", "adapter"):
        value = identity.get(key)
        if value and Path(value).exists():
            identity[key] = str(Path(value).resolve())
    return identity


def default_output_dir(model_ref: str, settings: dict[str, Any]) -> Path:
    """runs/eval/<model-slug>-<8 hex of the settings>."""
    import hashlib
    import re

    ref = model_ref.rstrip("/\\")
    path = Path(ref)
    name = path.stem if path.suffix in (".yaml", ".yml", ".gguf") else path.name
    if not path.exists() and "/" in ref:
        name = ref.replace("/", "--")  # a hub id
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return Path("runs") / "eval" / f"{slug}-{digest}"


def check_settings(
    output_dir: Path,
    settings: dict[str, Any],
    bench_data: dict[str, dict[str, str]],
    *,
    resume: bool,
) -> dict[str, Any]:
    """Compare with the output dir's settings.json; return what it should hold now.

    Every setting known now must equal the stored one, and a benchmark evaluated before must have
    the same data; otherwise a RunError (unless `resume` is False, which starts over).
    """
    path = EvalDir(output_dir).settings
    stored: dict[str, Any] = {}
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            message = f"{path} is not valid JSON; remove it or pass another --output-dir"
            raise RunStateError(message) from None
    stored_benches = dict(stored.get("benches", {}))
    if resume:
        for key, value in settings.items():
            if key in stored and stored[key] != value:
                difference = _difference(key, stored[key], value)
                raise RunStateError(
                    f"{output_dir} holds an eval with other settings ({difference}); "
                    "pass another --output-dir, or --no-resume to start over there"
                )
        for name, data in bench_data.items():
            old = stored_benches.get(name)
            if old is not None and old.get("fingerprint") != data["fingerprint"]:
                raise RunStateError(
                    f"{output_dir}: benchmark {name} has changed since it was evaluated there "
                    f"({old.get('source')} -> {data['source']}); pass another --output-dir "
                    "or --no-resume"
                )
    else:
        stored, stored_benches = {}, {}
    stored_benches.update(bench_data)
    return {**stored, **settings, "benches": stored_benches}


def _difference(key: str, old: Any, new: Any) -> str:
    """The first differing leaf, as `key.sub: old != new`."""
    if isinstance(old, dict) and isinstance(new, dict):
        for sub in sorted(set(old) | set(new)):
            if old.get(sub) != new.get(sub):
                return _difference(f"{key}.{sub}", old.get(sub), new.get(sub))
    return f"{key}: {old!r} there, {new!r} now"


def _load_generator(
    model_cfg: Any,
    trained_data: Any,
    backend: str,
    sampling: SamplingSettings,
    output_dir: Path,
    processes: Processes,
) -> tuple[Generator, PromptFn, dict[str, Any]]:
    """The generator, the prompt function and the settings only known after loading."""
    import hashlib

    from epx.data import prompt_function
    from epx.generation import HFGenerator, VLLMGenerator
    from epx.models import load_model_and_tokenizer, load_tokenizer

    if backend == "vllm":
        tokenizer = load_tokenizer(model_cfg)
        generator: Generator = VLLMGenerator(
            _vllm_model_path(model_cfg, output_dir), tokenizer, sampling
        )
        loaded = {"dtype": "auto", "device": "cuda"}
    else:
        model, tokenizer = load_model_and_tokenizer(model_cfg, device=processes.device)
        generator = HFGenerator(model, tokenizer, sampling)
        loaded = {"dtype": str(model.dtype).removeprefix("torch."), "device": model.device.type}
    prompt_fn = prompt_function(trained_data, tokenizer)
    probe = prompt_fn("{problem}")
    loaded["prompt"] = hashlib.sha256(probe.encode()).hexdigest()[:16]
    return generator, prompt_fn, loaded


def _vllm_model_path(cfg: Any, output_dir: Path) -> str:
    """A path vLLM can load: the model itself, or (adapters, GGUF, tiny-random) a merged HF copy
    saved once under the output dir."""
    name = cfg.name_or_path
    if (
        not cfg.adapter
        and not name.endswith(".gguf")
        and not name.startswith(("pkg://", "tiny-", "random:"))
    ):
        return name
    from epx.models import load_model_and_tokenizer

    target = output_dir / "merged-model"
    if not (target / "config.json").is_file():
        model, tokenizer = load_model_and_tokenizer(cfg)
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
    return str(target)
