# The two commands a newcomer needs (see README.md):
#   make demo   a three-tier cascade of real local models answering real questions
#   make test   lint, type checks, the whole test suite (real-model tests included)
#               and the docstring examples of the package (doctests)
# Each sets itself up: a virtual environment in .venv, pinned dependencies, the models.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint unit integration benchmarks clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c constraints.txt -e ".[test,lint]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy langchain_cascade tests examples benchmarks

test: lint
	$(BIN)/python -m pytest tests langchain_cascade

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit_tests

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration_tests

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
