"""`epx analyze`: the paper's stage, instance and token-level analysis of one or more runs.

Modules: `core` (the tables from a run's records, pure), `load` (a run dir's metrics, rollout
records and recipe), `figures` (PNG, one colour per run), `report` (`analyze_runs`: Markdown and
self-contained HTML, the terminal table), `command` (the Typer command). Nothing heavy is
imported here.
"""
