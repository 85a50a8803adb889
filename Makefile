# Two commands matter: `make demo` and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test lint typecheck unit services bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Everything the test suite exercises (the local provider pulls PyTorch).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,local,demo,plots,console,postgres,clients]'
	touch $(STAMP) $(DEMO_STAMP)

# The demo needs the core and the official SDK only: no PyTorch, no matplotlib.
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[demo]'
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/hybridgate demo

lint: $(STAMP)
	$(BIN)/ruff check --no-cache src tests benchmarks
	$(BIN)/ruff format --no-cache --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# What the suite talks to: PostgreSQL and Redis (started when absent) and Debian's
# Chromium for the console's browser tests (installed when absent). Idempotent.
services:
	.ci/test-setup-services
	.ci/test-setup-console

# Coverage is measured and reported (line and branch), not gated.
unit: $(STAMP) services
	$(BIN)/pytest --cov=hybridgate --cov-branch --cov-report=term:skip-covered

test: lint typecheck unit

clean:
	rm -rf $(VENV) build dist *.egg-info
