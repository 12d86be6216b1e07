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
            help="Hub id, local dir, .gguf file, recipe YAML, or an `epx train` output dir; "
            "several, comma-separated, give one table in the paper's layout.",
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
    models = [m.strip() for m in model.split(",") if m.strip()]
    options = [
        EvalOptions(
            model=one,
            benches=(bench,),
            sampling=sampling,
            data_dir=str(data_dir) if data_dir is not None else None,
            limit=limit,
            backend=backend,
            output_dir=str(model_dir(output_dir, one, several=len(models) > 1)) if output_dir else None,
            workers=workers,
            wandb_mode=wandb_mode,
            resume=resume,
            strictness=strictness,
        )
        for one in models
    ]
    results = [run_eval(option) for option in options]
    if len(results) > 1:
        show_models_table(models, results, n, output_dir)


def model_dir(output_dir: Path, model: str, several: bool) -> Path:
    """Where one model's results go: `--output-dir` itself, or with several models a folder per
    model in it (named after the model)."""
    if not several:
        return output_dir
    import re

    name = Path(model.rstrip("/")).name if Path(model).exists() else model.replace("/", "--")
    return output_dir / (re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model")


def show_models_table(models: list[str], results: list, n: int, output_dir: Path | None) -> None:
    """The paper's table of several models on the terminal (and in `--output-dir`/table.md)."""
    from rich.console import Console

    from epx.console import table_console
    from epx.eval.report import paper_table_markdown, render_paper_table

    summaries = [(model, result.summary) for model, result in zip(models, results, strict=True)]
    table_console(160).print(render_paper_table(summaries, n))
    if output_dir is not None:
        path = output_dir / "table.md"
        path.write_text(paper_table_markdown(summaries, n))
        Console(stderr=True).print(f"table: {path}", highlight=False)
