# BlitzMask Deploy: two commands do everything on a fresh machine — `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: install test test-fast lint bench demo apk docs wheel clean

install: $(STAMP)

# torch is pinned in the same pip command as everything that depends on it (else pip pulls a CUDA build).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0 -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not e2e"

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python -m benchmarks

demo: install
	$(BIN)/blitzmask demo --out $(DEMO_OUT)

apk:
	bash android_bench/build_apk.sh

# docs/cli.md is generated from the CLI (a test checks it is up to date)
docs: install
	$(BIN)/python scripts/cli_reference.py

# a wheel that carries the model cards: dist/blitzmask_deploy-*.whl
wheel: install
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation -q -w dist .

clean:
	rm -rf $(VENV) .cache build dist *.egg-info
