# Two commands: `make demo` and `make test`. Each creates (or reuses) .venv, installs the project,
# prepares the dbt manifest, then runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
export DO_NOT_TRACK := 1
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# The report and UI tests render in Debian's headless Chromium (playwright drives it, never its own download).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test manifest lint dev clean

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

manifest: $(INSTALLED)
	cd dbt_project && ../$(BIN)/dbt parse --quiet --profiles-dir .

demo: manifest
	$(BIN)/gpuledger demo

$(CHROMIUM):
	@echo "installing Debian's chromium for the browser tests"
	$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null

# A worker per core, each module on one worker (its fixtures build a fleet once): 336 s on 2 cores, 545 s serially.
test: manifest $(CHROMIUM)
	$(BIN)/python -m pytest -n auto --dist loadfile

lint: $(INSTALLED)
	$(BIN)/ruff check .

dev: manifest
	GPULEDGER_CONFIG=$${GPULEDGER_CONFIG:-data/demo/gpuledger.yaml} $(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf data .dagster_home dbt_project/target dbt_project/logs
