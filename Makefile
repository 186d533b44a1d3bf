# rostersync: the two commands of the README (make demo, make test) set everything up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# One Python for the venv, the Lambda runtime (python3.13) and `sam build`. pyenv shims need
# PYENV_VERSION to expose python3.13 next to the default 3.11 (pyenv exposes one Python per name otherwise).
export PYENV_VERSION ?= $(shell pyenv versions --bare 2>/dev/null | grep -E '^3\.1[123]\.[0-9]+$$' | sort -rV | tr '\n' ':' | sed 's/:$$//')
PYTHON ?= python3.13
VENV := .venv
STAMP := $(VENV)/.installed
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
CHECKOV_VENV := .tools/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
PIP_TOOLS_VENV := .tools/pip-tools
PIP_COMPILE := $(PIP_TOOLS_VENV)/bin/pip-compile
export CHROMIUM ?= /usr/bin/chromium
export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

help:
	@echo "make demo   - run a full roster sync on the embedded local stack (moto + Canvas simulator)"
	@echo "make test   - lint, type-check and run the test suite"
	@echo "make bench  - rostersync against a canvasapi baseline at 1k/5k/20k enrollments, under both Canvas cost models (JSON + PNG)"
	@echo "make faults - the slow fault-injection tests (crashes, storms, expiring tokens) on the local stack"
	@echo "make lock   - lock the Lambda layer's requirements (with hashes) from pyproject's runtime pins"
	@echo "make sam-check - sam validate --lint, checkov over the template, and sam build (tools in their own venvs)"

$(STAMP): pyproject.toml layers/common/requirements.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev,local]'
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/python -m rostersync_local.demo $(ARGS)

bench: $(STAMP)
	$(VENV)/bin/python -m rostersync_local.bench $(ARGS)

bench-live-events: $(STAMP)
	$(VENV)/bin/python -m rostersync_local.bench_live_events $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The admin page's end-to-end test drives Debian's Chromium (Playwright never downloads a browser).
$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq chromium

# PYTEST_WORKERS=2 runs the suite in two processes (each file's tests in one, which starts that file's
# stacks once): about 10 minutes where one process takes 17 here, but timing-sensitive tests still fail
# now and then beside another process, so one process stays the default.
PYTEST_WORKERS ?= 0
test: lint $(CHROMIUM) $(SAM)
	$(VENV)/bin/pytest -m "not slow" -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The fault suite's slow half (the fast half runs in make test).
faults: $(STAMP)
	$(VENV)/bin/pytest -m slow tests/faults $(PYTEST_ARGS)

$(SAM):
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==1.170.0

$(CHECKOV):
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==3.3.30

$(PIP_COMPILE):
	@test -x $(PIP_TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(PIP_TOOLS_VENV)
	$(PIP_TOOLS_VENV)/bin/python -m pip install --quiet pip-tools==7.6.2

# The layer's requirements: pyproject's runtime pins and everything they pull in, each with its hashes.
lock: $(PIP_COMPILE)
	CUSTOM_COMPILE_COMMAND="make lock" $(PIP_COMPILE) --quiet --generate-hashes --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links --output-file layers/common/requirements.txt pyproject.toml

sam-check: $(SAM) $(CHECKOV)
	$(SAM) validate --lint
	$(CHECKOV) --config-file .checkov.yaml --file template.yaml
	$(SAM) build --parallel --cached

clean:
	rm -rf $(VENV) .tools .aws-sam .rostersync

.PHONY: help install demo bench faults bench-live-events lint test lock sam-check clean
