# Two commands for a fresh clone: `make demo` and `make test` (and `make bench`).
# Each creates .venv with the machine's python3 if it is missing and installs
# what it needs; a stamp file re-installs when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo study test bench clean docs lint help l2sp fedprox
.DEFAULT_GOAL := help

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,examples]'
	touch $@

demo: $(VENV)/.installed  ## SGD, TRSGD, Adam and TRAdam on real digits at batch 8, as a story (examples/small_batch.py)
	$(BIN)/python -m examples.small_batch

study: $(VENV)/.installed  ## tune, then confirm on fresh seeds (its time is on docs/results.md), into docs/results, docs/results.md and the summaries in README.md and docs/index.md
	$(BIN)/python -m examples.study --out docs/results --workers 2 --page docs/results.md --summary README.md docs/index.md

test: $(VENV)/.installed  ## run the whole test suite, doctests and docs snippets included; the update rules under XLA's default flags
	@status=0; \
	$(BIN)/python -m pytest -n 2 --dist worksteal --durations=10 \
	  --ignore=tests/test_update_rules.py --ignore=tests/test_proximal.py \
	  --ignore=tests/test_common.py || status=1; \
	echo "The update rules under XLA's default flags:"; \
	OPTAX_PROX_XLA=default $(BIN)/python -m pytest -n 2 --dist worksteal \
	  tests/test_update_rules.py tests/test_proximal.py tests/test_common.py \
	  || status=1; \
	exit $$status

bench: $(VENV)/.installed  ## time our update and training steps against the bare optimizers, into benchmarks/results.md (a GPU: results-gpu.md)
	$(BIN)/python -m benchmarks.run

clean:  ## remove .venv and results/
	rm -rf $(VENV) results

$(VENV)/.installed-docs: pyproject.toml | $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $@

$(VENV)/.installed-lint: pyproject.toml | $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[lint]'
	touch $@

docs: $(VENV)/.installed-docs  ## build the documentation site into docs/_build/html (warnings fail it)
	$(BIN)/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html
	@echo "docs/_build/html/index.html"

lint: $(VENV)/.installed-lint  ## ruff check and ruff format --check on the tree, mypy on optax_prox/
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/ruff format --check --output-format concise . || status=1; \
	$(BIN)/mypy || status=1; \
	exit $$status

help:  ## list the targets
	@grep -E '^[a-z0-9]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z0-9]+):.*## (.*)/  make \1\t\2/' | expand -t 14


l2sp: $(VENV)/.installed  ## L2-SP and EWC against forgetting, and L2-SP's transfer, tuned then confirmed on real digits (examples/finetune_l2sp.py, its time on docs/results/l2sp.md), into docs/results and docs/anchors.md
	$(BIN)/python -m examples.finetune_l2sp --out docs/results --workers 2 --summary docs/anchors.md

fedprox: $(VENV)/.installed  ## FedProx against FedAvg with stragglers in the paper's regime (synthetic data) and on digits, tuned then confirmed (examples/federated_fedprox.py; 454 s on 2 cores), into docs/results and docs/anchors.md
	$(BIN)/python -m examples.federated_fedprox --out docs/results --workers 2 --summary docs/anchors.md
