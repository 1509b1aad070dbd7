# Two commands for a fresh clone: `make demo` and `make test` (and `make bench`).
# Each creates .venv with the machine's python3 if it is missing and installs
# what it needs; a stamp file re-installs when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,examples]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python examples/small_batch.py

test: $(VENV)/.installed
	$(BIN)/python -m pytest -n 2 --durations=10

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) results
