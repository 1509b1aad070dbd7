# Two commands for a fresh clone: `make demo` and `make test` (and `make bench`).
# Each creates .venv with the machine's python3 if it is missing and installs
# what it needs; a stamp file re-installs when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo study pilot test bench clean docs lint help l2sp fedprox
.DEFAULT_GOAL := help

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,examples]'
	touch $@

demo: $(VENV)/.installed  ## SGD, TRSGD, Adam and TRAdam on real digits at batch 8, as a story (examples/small_batch.py)
	$(BIN)/python -m examples.small_batch

study: $(VENV)/.installed  ## the replicated converged study (about 51 min on 2 cores), into docs/results, docs/results.md and the summaries in README.md and docs/index.md
	$(BIN)/python -m examples.study --out docs/results --workers 2 --page docs/results.md --summary README.md docs/index.md

pilot: $(VENV)/.installed  ## the pilot that chose the study's epochs, into docs/results/pilot.json (what it lacks; about 27 min of training in all, on 2 workers)
	$(BIN)/python -m examples.study --pilot --out docs/results --workers 2

test: $(VENV)/.installed  ## run the whole test suite, doctests and docs snippets included
	$(BIN)/python -m pytest -n 2 --dist worksteal --durations=10

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


l2sp: $(VENV)/.installed  ## L2-SP fine-tuning on real digits, as a story (examples/finetune_l2sp.py, about 1.5 min on 2 cores), into docs/results
	$(BIN)/python -m examples.finetune_l2sp --out docs/results

fedprox: $(VENV)/.installed  ## FedProx against FedAvg with stragglers, as a story (examples/federated_fedprox.py, about 2 min on 2 cores), into docs/results
	$(BIN)/python -m examples.federated_fedprox --out docs/results
