"""`epx eval`: math benchmark evaluation with Acc@n, Maj@n and Pass@k.

Modules: `benchmarks` (registry and loaders), `generate` (HF and vLLM backends), `runner` (the
core: generate -> score -> per-sample JSONL -> metrics), `evaluate` (`run_eval`: the command end
to end), `report` (table, summary JSON, W&B), `command` (the Typer command), `callback`
(evaluation during `epx train`). Nothing heavy is imported here, so `epx --help` stays instant.
"""
