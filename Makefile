# Set-up and everyday commands. `make test` and `make demo` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_STAMP := $(VENV)/.system-installed
# checkov (the policy scanner the deploy tests run) pins dozens of packages of its own: it lives in
# its own venv under the git-ignored tools/, never in the serving environment.
CHECKOV := tools/checkov/bin/checkov
CHECKOV_VERSION := 3.3.30
export PYTHONUNBUFFERED := 1
# Triton's CPU-only start-up warnings stay out of test logs.
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: help install lock system-deps shared-data models models-synthetic release experiments evaluate serve demo test lint bench loadtest clean

help:
	@echo "make demo      install, build models if missing, serve them and print the demo page's address"
	@echo "make test      install and run the whole test suite (ruff and mypy included)"
	@echo "make lint      ruff and mypy only"
	@echo "make models | serve | bench | loadtest | release | experiments | evaluate"

# constraints.txt (the lock file) holds every package the install resolves to, at the version the tests ran with.
$(STAMP): pyproject.toml client/pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt --upgrade pip
	$(PY) -m pip install -q -c constraints.txt --build-constraint constraints.txt -e '.[dev]' -e './client[demo,dicom,fhir]'
	touch $@

install: $(STAMP)

# Resolve the install afresh (the newest versions pyproject.toml's pins allow), in a venv of its own, and write the
# lock file from it; then `make install test` (the suite checks the environment against the lock).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip
	.lock-venv/bin/python -m pip install -q -e '.[dev]' -e './client[demo,dicom,fhir]'
	.lock-venv/bin/python -m dermassist.lockfile --write
	rm -rf .lock-venv

# Debian packages the tests drive: headless Chromium (browser tests), docker-compose (compose
# config check), kubectl (kustomize rendering; the machine image ships 1.32, Debian's is a fallback),
# and Orthanc (the PACS), dicom3tools (dciodvfy) and dcmtk (storescu) for the DICOM round trip.
$(SYSTEM_STAMP): | $(STAMP)
	if ! command -v chromium >/dev/null || ! command -v docker-compose >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium docker-compose; fi
	if ! command -v Orthanc >/dev/null || ! command -v dciodvfy >/dev/null || ! command -v storescu >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends orthanc dicom3tools dcmtk; fi
	command -v kubectl >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends kubernetes-client; }
	touch $@

system-deps: $(SYSTEM_STAMP)

$(CHECKOV):
	$(PYTHON) -m venv tools/checkov
	tools/checkov/bin/pip install -q 'checkov==$(CHECKOV_VERSION)'

# The released real-data models (training/release) -> model_repository/, in seconds.
models: $(STAMP)
	$(VENV)/bin/dermassist models

# A small release trained on the synthetic set, for machines without the release.
models-synthetic: $(STAMP)
	$(VENV)/bin/dermassist models --synthetic

# Retrain a release from ../shared/data with the shipped recipe and prove it: about 1.5 hours (rebuilt alone, RUNS.md; 2 hours with the cores shared) on two AVX-512 cores
# (bfloat16); on CPUs without AVX-512 training falls back to float32 and takes several times longer (RUNS.md).
release: $(STAMP)
	$(VENV)/bin/dermassist release --data ../shared/data --recipe training/release/release.json --out data/release

experiments: $(STAMP)
	$(VENV)/bin/dermassist experiments --data ../shared/data

# Site validation of the served models on a labelled folder: make evaluate DATA="path/to/folder"
# [EVALUATE_ARGS='--url host:8001 --name site1']; make reports evaluate's exit status as "Error N" (3: labelled images
# are not in the figures; `dermassist evaluate --help`).
# Without --url, evaluate serves the project's model repository itself, so the released models are exported into it
# first (`dermassist models`: seconds when it is current; it writes model_repository/ and reports/latest/). With --url
# (or DERMASSIST_EVALUATE_URL) it evaluates a running DermAssist, and with --repository another repository: this
# project's repository is not what is evaluated, so it is neither exported nor touched.
evaluate: $(STAMP)
	@test -n "$(DATA)" || { echo 'usage: make evaluate DATA="path/to/folder" [EVALUATE_ARGS="--url HOST:PORT --name NAME"]' >&2; exit 2; }
	$(if $(filter --url --url=% --repository --repository=%,$(EVALUATE_ARGS)),,test -n "$$DERMASSIST_EVALUATE_URL$$DERMASSIST_EVALUATE_REPOSITORY" || $(VENV)/bin/dermassist models)
	$(VENV)/bin/dermassist evaluate --data "$(DATA)" $(EVALUATE_ARGS)

serve: $(STAMP)
	$(VENV)/bin/dermassist serve

demo: models
	$(VENV)/bin/dermassist demo

# The suite runs ruff and mypy too (tests/test_lint.py; both pinned in the dev extras).
# The data is checked first, so a machine without it is told so before minutes of installing.
test: shared-data $(STAMP) $(SYSTEM_STAMP) $(CHECKOV)
	$(PY) -m pytest

shared-data:
	@test -d ../shared/data || { echo "make test: the suite runs on the real dermoscopy samples, expected at ../shared/data beside this checkout; README.md, section Data, lists the sets and their layouts: put them there and run make test again" >&2; exit 2; }

lint: $(STAMP)
	$(PY) -m pytest -q tests/test_lint.py

bench: models
	$(VENV)/bin/dermassist bench

loadtest: models
	$(PY) -m loadtest.run

clean:
	rm -rf reports .pytest_cache
