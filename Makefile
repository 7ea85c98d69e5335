# Two commands: `make demo` and `make test`. Each creates (or reuses) .venv, installs the project,
# prepares the dbt manifest, then runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
export DO_NOT_TRACK := 1
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: demo test manifest lint dev clean

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

manifest: $(INSTALLED)
	cd dbt_project && ../$(BIN)/dbt parse --quiet --profiles-dir .

demo: manifest
	$(BIN)/gpuledger demo

test: manifest
	$(BIN)/python -m pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .

dev: manifest
	GPULEDGER_CONFIG=$${GPULEDGER_CONFIG:-data/demo/gpuledger.yaml} $(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf data .dagster_home dbt_project/target dbt_project/logs
