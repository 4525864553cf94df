# Set-up and everyday commands. `make test` and `make demo` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_STAMP := $(VENV)/.system-installed
export PYTHONUNBUFFERED := 1
# Triton's CPU-only start-up warnings stay out of test logs.
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: help install system-deps models serve demo test test-fast bench loadtest clean

help:
	@echo "make demo      install, build models if missing, serve them and open the demo page"
	@echo "make test      install and run the whole test suite"
	@echo "make models | serve | bench | loadtest"

$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' -e './client[demo]'
	touch $@

install: $(STAMP)

# Debian packages the tests drive: headless Chromium (browser tests), docker-compose (compose
# config check) and kubectl (kustomize rendering; the machine image ships 1.32, Debian's is a fallback).
$(SYSTEM_STAMP): | $(STAMP)
	if ! command -v chromium >/dev/null || ! command -v docker-compose >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium docker-compose; fi
	command -v kubectl >/dev/null || apt-get install -y -qq --no-install-recommends kubernetes-client
	touch $@

system-deps: $(SYSTEM_STAMP)

models: $(STAMP)
	$(VENV)/bin/dermassist models

serve: $(STAMP)
	$(VENV)/bin/dermassist serve

demo: models
	$(VENV)/bin/dermassist demo

test: $(STAMP) $(SYSTEM_STAMP)
	$(PY) -m pytest

bench: models
	$(VENV)/bin/dermassist bench

loadtest: models
	$(PY) -m loadtest.run

clean:
	rm -rf reports .pytest_cache
