"""`epx eval`: the Typer command. Imports only typer and the standard library at the top, so that
`epx --help` stays instant; the work happens in `epx.eval.evaluate.run_eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

BENCH_HELP = (
    "Comma-separated benchmarks (aime24, aime25, amc, amc23, math500, minerva, olympiadbench, "
    "arithmetic: the built-in task's held-out sums) or paths to JSONL files with "
    "problem/answer fields."
)


def eval_command(
    bench: Annotated[str, typer.Option("--bench", "-b", help=BENCH_HELP)],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Hub id, local dir, .gguf file, recipe YAML, or an `epx train` output dir.",
        ),
    ],
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Folder with <bench>.jsonl files (default: $EPX_DATA_DIR, else the hub).",
        ),
    ] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Samples per problem (paper: 8).")] = 8,
    temperature: Annotated[
        float, typer.Option(min=0.0, help="Sampling temperature; 0 is greedy (paper: 0.6).")
    ] = 0.6,
    top_p: Annotated[
        float, typer.Option("--top-p", min=0.0, max=1.0, help="Top-p (paper: 0.95).")
    ] = 0.95,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", min=1, help="Most tokens per completion (paper: 8192).")
    ] = 8192,
    seed: Annotated[int, typer.Option(help="Sampling seed; same seed, same samples.")] = 0,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Only the first N problems of each benchmark.")
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size", min=1, help="Samples generated together (part of the settings)."
        ),
    ] = 16,
    backend: Annotated[
        str, typer.Option(help="hf | vllm | auto (vllm if installed and a GPU is present).")
    ] = "auto",
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir", "-o", help="Results (default: runs/eval/<model>-<settings hash>)."
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume",
            help="Skip samples already in the output dir (its settings must match); "
            "--no-resume deletes them first.",
        ),
    ] = True,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Scorer processes (default: the scorer's choice).")
    ] = None,
    strictness: Annotated[
        str,
        typer.Option(
            help="Which answer is scored: final (the last \\boxed{} or an explicit final "
            "statement after it) or boxed (boxes only). Part of the settings."
        ),
    ] = "final",
    wandb_mode: Annotated[
        str | None,
        typer.Option(
            "--wandb-mode", help="offline | online | disabled (default: $WANDB_MODE, else offline)."
        ),
    ] = None,
) -> None:
    """Evaluate a model on math benchmarks: Acc@n, Maj@n, Pass@1 and Pass@n."""
    from epx.errors import EpxError
    from epx.eval.evaluate import EvalOptions, run_eval
    from epx.generation import SamplingSettings

    try:
        sampling = SamplingSettings(
            n=n,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            seed=seed,
            batch_size=batch_size,
        )
    except ValueError as error:
        raise EpxError(str(error)) from None
    run_eval(
        EvalOptions(
            model=model,
            benches=(bench,),
            sampling=sampling,
            data_dir=str(data_dir) if data_dir is not None else None,
            limit=limit,
            backend=backend,
            output_dir=str(output_dir) if output_dir is not None else None,
            workers=workers,
            wandb_mode=wandb_mode,
            resume=resume,
            strictness=strictness,
        )
    )
