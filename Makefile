# The two commands of the README:
#   make html   build the whole site into _build/html (creates .venv first if needed)
#   make test   run the whole test suite (creates .venv first if needed)
# and JupyterLab for the notebooks:
#   make lab    start JupyterLab on this machine only, with notebooks/ as its root
# Another environment (conda, see the README) instead of .venv: make test BIN="$CONDA_PREFIX/bin";
# it is used as it is, nothing is installed into it.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# extra options for 'make lab', e.g. LAB_OPTIONS="--no-browser --ServerApp.port=8899"
LAB_OPTIONS ?=

.PHONY: env test html lab lint format lock browser java clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

ifeq ($(BIN),$(VENV)/bin)
env: $(STAMP)
else
env:
	@test -x "$(BIN)/python" || { echo "BIN=$(BIN) has no python: create the environment first (README)"; exit 1; }
	@"$(BIN)/python" -c "import helpers" || { echo "the package is not installed in BIN=$(BIN) (README)"; exit 1; }
endif

# Headless Chromium for the browser tests, from Debian's packages (never a downloaded browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing chromium from Debian's packages for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Java 17 for Spark's local mode in the tests (tests/test_spark.py), from Debian's packages.
java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "Installing openjdk-17-jre-headless from Debian's packages for the Spark tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; }

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: env browser java lint
	$(BIN)/python -m pytest

html: env
	$(BIN)/python site/build.py

# JupyterLab from the project's environment, listening on 127.0.0.1 only, notebooks/ as its root. It
# prints the address with its token; Ctrl+C stops it. No news feed, no update check, no extension
# installs from PyPI.
lab: env
	$(BIN)/python -m jupyterlab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=notebooks \
	  --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
	  --LabApp.extension_manager=readonly $(LAB_OPTIONS)

format: env
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Refresh the lock file from pyproject.toml in a scratch environment (and environment.yml from it).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e ".[dev]"
	{ echo "# Exact versions installed by 'make env' (the Makefile). Regenerate with 'make lock'."; \
	  .lock-venv/bin/python -m pip freeze --all --exclude-editable | grep -v '^pip=='; } > requirements.lock
	rm -rf .lock-venv
	$(MAKE) environment.yml

# The conda environment: Python 3.11 from conda-forge, then exactly the pins of requirements.lock from
# PyPI (tests/test_environment.py checks that the two agree).
environment.yml: requirements.lock
	{ echo "# For conda users: Python from conda-forge, then exactly the versions of requirements.lock."; \
	  echo "# Generated from requirements.lock by 'make environment.yml' (run by 'make lock'): do not edit."; \
	  echo "#   conda env create -f environment.yml && conda activate mixed-models-explained"; \
	  echo "#   make test BIN=\"\$$CONDA_PREFIX/bin\"        (and make html, make lab the same way)"; \
	  echo "name: mixed-models-explained"; \
	  echo "channels:"; \
	  echo "  - conda-forge"; \
	  echo "dependencies:"; \
	  echo "  - python=3.11"; \
	  echo "  - pip"; \
	  echo "  - pip:"; \
	  grep -v '^#' requirements.lock | grep . | sed 's/^/      - /'; \
	  echo "      - -e ."; } > $@

# Every reference value the tests compare with R (tests/reference/*.R, tests/peer/*.R), regenerated with
# the data steps each script's header describes. Needs R with lme4 and lmerTest (and jsonlite, digest,
# sandwich); takes about 15 minutes, most of it random_slopes_reference.R. The large generated CSVs go
# to a scratch folder and are deleted (the JSON files record their SHA-256). PYTHONPATH makes the
# scripts use this checkout's helpers.
R_PACKAGES := lme4 lmerTest jsonlite digest sandwich
.PHONY: references
references: env
	@command -v Rscript >/dev/null 2>&1 || { echo "make references needs R with lme4 and lmerTest: Rscript was not found (Debian: apt-get install -y r-base-core r-cran-lme4 r-cran-lmertest r-cran-jsonlite r-cran-digest r-cran-sandwich)"; exit 1; }
	@Rscript -e 'missing <- Filter(function(p) !requireNamespace(p, quietly = TRUE), strsplit("$(R_PACKAGES)", " ")[[1]]); if (length(missing)) { message("make references needs R with lme4 and lmerTest; missing R packages: ", paste(missing, collapse = ", ")); quit(status = 1) }'
	set -e; export PYTHONPATH="$(CURDIR)" PYTHON="$(BIN)/python"; \
	scratch=$$(mktemp -d); trap 'rm -rf "$$scratch"' EXIT; \
	"$$PYTHON" tests/reference/radon_rows.py; \
	"$$PYTHON" tests/reference/question_shaped.py "$$scratch"; \
	Rscript tests/reference/lme4_reference.R "$$scratch/question_shaped.csv"; \
	"$$PYTHON" tests/reference/formula_data.py; \
	Rscript tests/reference/formula_reference.R; \
	Rscript tests/reference/inference_reference.R; \
	"$$PYTHON" tests/reference/large_theta_data.py; \
	Rscript tests/reference/large_theta_reference.R; \
	Rscript tests/reference/seed_question.R; \
	"$$PYTHON" tests/reference/random_slopes_data.py; \
	"$$PYTHON" tests/reference/random_slopes_data.py --generated "$$scratch"; \
	Rscript tests/reference/random_slopes_reference.R "$$scratch"; \
	"$$PYTHON" tests/reference/random_slopes_statsmodels.py "$$scratch"; \
	"$$PYTHON" tests/peer/make_peer_data.py; \
	Rscript tests/peer/peer_reference.R

clean:
	rm -rf _build $(VENV) .pytest_cache .ruff_cache .hypothesis tests/artifacts
