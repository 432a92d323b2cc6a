# Every target works on a fresh machine with only python3: it makes .venv if it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv demo demo-chain test lint bench clean

help:
	@echo "make demo        the whole job on the built-in TMDB emulator and a local S3 (moto)"
	@echo "make demo-chain  the same as a chain of short Lambda invocations that resume"
	@echo "make test        install and run the test suite"
	@echo "make lint        ruff, mypy --strict, cfn-lint (also on the template as SAM translates it)"
	@echo "make bench       benchmarks side by side with baselines; results in docs/benchmarks.md"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,demo,bench]'
	$(BIN)/python -m pip check
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/tmdb-ingest demo

demo-chain: $(STAMP)
	$(BIN)/python examples/lambda_chain_demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -n 2

lint: $(STAMP)
	$(BIN)/ruff check tmdb_ingest tests examples benchmarks
	$(BIN)/ruff format --check tmdb_ingest tests examples benchmarks
	$(BIN)/mypy
	$(BIN)/cfn-lint examples/aws/template.yaml
	$(BIN)/python examples/aws/lint_template.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
