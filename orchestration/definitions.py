"""The one place gpuledger's Dagster definitions are assembled."""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.assets import billing, config_tables, dbt, serving, telemetry
from orchestration.project import DBT_EXECUTABLE, dbt_project
from orchestration.resources import GpuledgerResource

all_assets = dg.load_assets_from_modules([config_tables, billing, telemetry, serving, dbt])
all_checks = dg.load_asset_checks_from_modules([config_tables, billing, telemetry, serving, dbt])

# Everything, in dependency order: ingest the landing zone, then rebuild and test the models.
gpuledger_job = dg.define_asset_job(
    "gpuledger_all",
    selection=dg.AssetSelection.all(),
    description="Ingest every configured source, then build and test every dbt model.",
)

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[gpuledger_job],
    resources={
        "gpuledger": GpuledgerResource(),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
    },
)
