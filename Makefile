# convbench: `make test` and `make bench` are the whole set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SET    ?= quick

.PHONY: venv test lint bench bench-full clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check kernels harness tests

bench: venv
	$(BIN)/convbench bench --set $(SET) $(BENCH_ARGS)

bench-full: venv
	$(BIN)/convbench bench --set full $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# ---------------------------------------------------------------- speed gate
# `make bench-check` times the `ci` set and compares it with the committed baseline of this
# machine class; a flagged sweep is re-run once and only a regression both sweeps show fails.
MACHINE_CLASS = $(shell $(BIN)/python -c "from harness.compare import machine_class; print(machine_class())")
BASELINE      = results/baseline/$(MACHINE_CLASS).json
CHECK_ALGOS  ?= direct im2col winograd_f4
CHECK_RUN    ?= --set ci --threads 1 --algos $(CHECK_ALGOS) --processes 3 --values 4 --warmups 1 --min-time 0.02
CHECK_GATE   ?= --estimator min --threshold 1.15 --alpha 0.01
CHECK_OUT    ?= results/bench-check

.PHONY: bench-check baseline gate-study

bench-check: venv
	@if [ ! -f "$(BASELINE)" ]; then \
	  echo "bench-check: SKIPPED, no baseline $(BASELINE) for this machine class (make baseline)"; \
	  exit 0; fi; \
	rm -f $(CHECK_OUT)-1.json $(CHECK_OUT)-1.skips.json $(CHECK_OUT)-2.json $(CHECK_OUT)-2.skips.json; \
	$(BIN)/convbench run $(CHECK_RUN) -o $(CHECK_OUT)-1.json; \
	test -f $(CHECK_OUT)-1.json || exit 2; \
	$(BIN)/convbench compare $(BASELINE) $(CHECK_OUT)-1.json $(CHECK_GATE) --markdown $(CHECK_OUT).md; \
	rc=$$?; \
	if [ $$rc -eq 1 ]; then \
	  echo "bench-check: regression flagged; re-running the set to confirm it"; \
	  $(BIN)/convbench run $(CHECK_RUN) -o $(CHECK_OUT)-2.json; \
	  test -f $(CHECK_OUT)-2.json || exit 2; \
	  $(BIN)/convbench compare $(BASELINE) $(CHECK_OUT)-1.json $(CHECK_OUT)-2.json $(CHECK_GATE) \
	    --markdown $(CHECK_OUT).md; \
	  rc=$$?; \
	fi; \
	exit $$rc

baseline: venv
	mkdir -p results/baseline
	rm -f $(BASELINE) $(BASELINE:.json=.skips.json)
	$(BIN)/convbench run $(CHECK_RUN) -o $(BASELINE)
	$(BIN)/python -c "from harness.compare import strip_host_metadata as s; s('$(BASELINE)')"
	@echo "baseline: $(BASELINE) -- commit it"

gate-study: venv
	$(BIN)/python -m harness.gate_study --runs 10 --run-args "--threads 1 --algos direct" \
	  --estimator min --threshold 1.15 --alpha 0.01 --out results/gate-study
