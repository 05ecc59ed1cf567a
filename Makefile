# convbench: `make test` and `make bench` are the whole set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SET    ?= quick

.PHONY: venv venv-distributed venv-extras test test-extras test-thorough test-isa lint bench bench-full clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Dask, for `convbench run --dask ADDRESS` (an optional extra)
venv-distributed: venv
	$(BIN)/pip install -q -e '.[distributed]'

# Every optional extra: PyTorch (the test oracle and a peer; this version's CPU build is the
# one pip takes without a multi-GB download), the engine peers and Dask. A failed install
# fails: CI relies on them.
venv-extras: venv
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[peers,distributed]'

# The tests run on every core (pytest-xdist; each worker keeps its own Numba dispatchers, and
# all share the on-disk kernel cache), files grouped so one file's kernels compile once.
PYTEST = $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile
TEST_WORKERS ?= auto

test: venv
	$(PYTEST)

# The whole suite again with every extra installed (the oracle, peer and distributed tests run
# instead of skipping; a missing extra is a failure, not a skip). `make test-thorough` runs it
# with hypothesis's thorough profile (4x the examples where a test takes the profile's count).
test-extras: venv
	CONVBENCH_REQUIRE_EXTRAS=1 $(PYTEST)

test-thorough: venv
	HYPOTHESIS_PROFILE=thorough $(PYTEST)

# The correctness suite again for every other vector ISA this CPU can run (CONVBENCH_ISA):
# each compiles its own kernels (Numba's cache keeps ISAs apart).
# The tests whose outcome depends on the code Numba generates: every kernel, plan and
# numeric check. The harness, report, peer and history tests run our kernels only as
# workloads, so one ISA covers them.
ISA_TESTS = tests/test_conformance.py tests/test_contract.py tests/test_direct.py \
  tests/test_dilated.py tests/test_fused.py tests/test_group_lanes.py tests/test_lanes.py \
  tests/test_small.py tests/test_subpixel.py tests/test_dilated_blocks.py \
  tests/test_winograd3d.py tests/test_layouts.py tests/test_measured.py \
  tests/test_fft.py tests/test_im2col.py tests/test_memory_guard.py tests/test_numerics.py \
  tests/test_plan.py tests/test_reference.py tests/test_robustness.py tests/test_separable.py \
  tests/test_spec.py tests/test_target.py tests/test_winograd.py

test-isa: venv
	@for isa in $$($(BIN)/python -c "from kernels.target import runnable_isas; print(' '.join(runnable_isas(other=True)))"); do \
	  echo "== CONVBENCH_ISA=$$isa"; CONVBENCH_ISA=$$isa $(PYTEST) $(ISA_TESTS) || exit 1; done

lint: venv
	$(BIN)/ruff check kernels harness tests

bench: venv
	$(BIN)/convbench bench --set $(SET) $(BENCH_ARGS)

bench-full: venv
	$(BIN)/convbench bench --set full --timer pyperf --processes 3 --values 3 --warmups 1 $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .convbench-cache
	-git worktree prune
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# ---------------------------------------------------------------- speed gate
# `make bench-check` times the `ci` set in the working tree and in a worktree of the reference
# commit (results/baseline/reference.txt) on this machine, interleaved process by process
# (convbench ab); flagged benchmarks are timed again and only regressions both passes show fail.
# The reference is the main the change started from (`make begin` records it), so the gate
# judges this change alone. `make baseline` stores a sweep of HEAD per machine class, kept as
# history for `convbench compare`.
MACHINE_CLASS = $(shell $(BIN)/python -c "from harness.machine import machine_class; print(machine_class())")
BASELINE      = results/baseline/$(MACHINE_CLASS).json
CHECK_ALGOS  ?= direct im2col winograd_f4
CHECK_SET    ?= --set ci --threads 1 --algos $(CHECK_ALGOS)
CHECK_PYPERF ?= --processes 3 --values 4 --warmups 1 --min-time 0.02
CHECK_GATE   ?= --estimator min --threshold 1.15
CHECK_OUT    ?= results/bench-check
HISTORY      ?= results/history.sqlite

.PHONY: bench-check baseline begin gate-study gate-study-ab

# On a clean tree (no change to tracked files) the working tree's times also go into the
# history (convbench history), pass or fail, under the commit HEAD and the mode bench-check.
bench-check: venv
	@rm -f $(CHECK_OUT)/new-1.json; status=0; $(BIN)/convbench ab $(CHECK_SET) $(CHECK_PYPERF) $(CHECK_GATE) --out $(CHECK_OUT) \
	  || status=$$?; \
	if [ -f $(CHECK_OUT)/new-1.json ] && [ -z "$$(git status --porcelain --untracked-files=no)" ]; then \
	  $(BIN)/convbench history add $(CHECK_OUT)/new-1.json --commit "$$(git rev-parse HEAD)" \
	    --mode bench-check --db $(HISTORY) || status=$$?; \
	else echo "bench-check: tree not clean (or no results): not added to $(HISTORY)"; fi; \
	exit $$status

baseline: venv
	mkdir -p results/baseline
	rm -f $(BASELINE) $(BASELINE:.json=.skips.json)
	$(BIN)/convbench run $(CHECK_SET) $(CHECK_PYPERF) -o $(BASELINE)
	$(BIN)/python -c "from harness.results import strip_host_metadata as s; s('$(BASELINE)')"
	@echo "baseline: $(BASELINE) -- commit it"

# At the start of a change: HEAD (the main it starts from) becomes the reference that
# `make bench-check` judges the change against. Commit results/baseline/reference.txt with it.
begin: venv
	@$(BIN)/python -c "from harness.abcheck import record_reference as r; \
	  print('bench-check reference:', r(), '(results/baseline/reference.txt: commit it)')"

gate-study: venv
	$(BIN)/python -m harness.gate_study --runs 10 --run-args "--threads 1 --algos direct" \
	  --estimator min --threshold 1.15 --out results/gate-study

gate-study-ab: venv
	$(BIN)/python -m harness.gate_study --ab --runs 10 --run-args "--threads 1 --algos direct" \
	  --estimator min --threshold 1.15 --out results/gate-study-ab
