"""Running untrusted Python programs (generated code) in a sandbox.

- `sandbox`  the public API: `run_programs`, `run_program`, `Limits`, `Execution`, `isolation`;
- `worker`   the standard-library script each worker process runs: the confinement itself.

docs/sandbox.md says what is enforced where.
"""
