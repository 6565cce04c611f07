# Two commands do all the set-up on a fresh machine:
#   make run    create .venv, install the pinned dependencies, run the pipeline (dvc repro)
#   make test   the same set-up, then the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Stages call `python` and `dvc`: the venv's, whoever starts make.
export PATH := $(abspath $(BIN)):$(PATH)
# Nothing phones home.
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1

.PHONY: run setup test ui exps compare promote serve rerun predict reset tune bench stress plots-template clean-venv

run: $(STAMP)
	dvc repro

# The environment alone (.venv), e.g. before `dvc pull` in a teammate's clone
setup: $(STAMP)

# On every core, a test module to a worker (its fixtures are built once), longest first (tests/conftest.py;
# pytest-xdist would otherwise deal the modules with the most tests first); the slowest ten are listed at the end
test: $(STAMP)
	pytest -n auto --dist loadfile --no-loadscope-reorder

# The MLflow UI on the default store (mlflow.db at the repository root); prints the address of the runs table
ui: $(STAMP)
	python -m softmax_regression.commands.ui

# The experiments side by side: impl, optimizer, lr, l2, validation metrics, MLflow run id
exps: $(STAMP)
	python -m softmax_regression.commands.experiments

# params.yaml and every pipeline output back to the last commit (after a failed experiment); nothing else
reset: $(STAMP)
	python -m softmax_regression.commands.reset

# The three implementations on the same params, all at once, as one table. ARGS='-S train.optimizer=lbfgs'
compare: $(STAMP)
	python -m softmax_regression.commands.compare $(ARGS)

# A search over train.* params (params.yaml's tune: section) ARGS='--trials 40 --parallel 2 --storage URL'
tune: $(STAMP)
	python -m softmax_regression.commands.tune $(ARGS)

# The best run on validation rows becomes the registered champion if it beats the current one.
# ARGS='--metric val_accuracy' or ARGS=--force
promote: $(STAMP)
	python -m softmax_regression.commands.promote $(ARGS)

# The champion over HTTP, on 127.0.0.1:$(PORT)/invocations
PORT ?= 5001
serve: $(STAMP)
	python -m softmax_regression.commands.serve --port $(PORT)

# Any MLflow run back in the workspace (its DVC experiment, or its commit and params), re-run and compared
# bit for bit with its logged weights: make rerun RUN=<MLflow run id>
rerun: $(STAMP)
	@test -n "$(RUN)" || { echo "usage: make rerun RUN=<MLflow run id>" >&2; exit 2; }
	python -m softmax_regression.commands.rerun "$(RUN)"

# The trained model on a new CSV: make predict INPUT=new.csv [OUTPUT=predictions.csv] [ARGS='--keep Id']
OUTPUT ?= predictions.csv
predict: $(STAMP)
	@test -n "$(INPUT)" || { echo "usage: make predict INPUT=new.csv [OUTPUT=predictions.csv] [ARGS='--keep Id']" >&2; exit 2; }
	python -m softmax_regression.commands.predict "$(INPUT)" --output "$(OUTPUT)" $(ARGS)

# Every benchmark in one run: bench/results.json and docs/benchmarks.md, which says how long it took.
# python bench/run.py --only PART runs parts (limit, solvers, loop, tune, memory, ranks) without writing
bench: $(STAMP)
	python bench/run.py

# The rank-failure tests 20 times in a row beside CPU-hungry processes: which rank is blamed must not
# depend on timing
stress: $(STAMP)
	python bench/stress.py

# vendor/vega/plots.html again from the npm packages vendor/vega/package.json pins (needs Node.js and npm)
plots-template:
	cd vendor/vega && npm ci --no-audit --no-fund && python3 build.py

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

clean-venv:
	rm -rf $(VENV)
