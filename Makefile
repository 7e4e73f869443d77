# The two commands of the README:
#   make html   build the whole site into _build/html (creates .venv first if needed)
#   make test   run the whole test suite (creates .venv first if needed)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: env test html lint format lock browser clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

env: $(STAMP)

# Headless Chromium for the browser tests, from Debian's packages (never a downloaded browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing chromium from Debian's packages for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: env browser lint
	$(BIN)/python -m pytest

html: env
	$(BIN)/python site/build.py

format: env
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Refresh the lock file from pyproject.toml in a scratch environment.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e ".[dev]"
	{ echo "# Exact versions installed by 'make env' (the Makefile). Regenerate with 'make lock'."; \
	  .lock-venv/bin/python -m pip freeze --all --exclude-editable | grep -v '^pip=='; } > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf _build $(VENV) .pytest_cache .ruff_cache .hypothesis tests/artifacts
