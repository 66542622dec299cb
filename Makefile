# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install system-deps docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m redistill_study run

# PostgreSQL, Chromium and Fashion-MNIST for the tests that use them (Debian, as root).
system-deps:
	@tools/system-deps.sh

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q

# ruff (lint + format) on everything, mypy (with the pydantic plugin) on the package.
lint: $(STAMP)
	$(BIN)/ruff check redistill_study tests tools
	$(BIN)/ruff format --check redistill_study tests tools
	$(BIN)/mypy

# Regenerate docs/config.md from the schema (a test fails when it is out of date).
docs: $(STAMP)
	$(BIN)/python -m redistill_study.config.reference > docs/config.md

clean:
	rm -rf $(VENV) default
