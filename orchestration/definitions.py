"""The one place gpuledger's Dagster definitions are assembled."""

from __future__ import annotations

import gc

import dagster as dg

from orchestration.alerts import notify_spend_anomalies, post_failed_runs, spend_anomaly_alerts
from orchestration.assets import anomalies, billing, config_tables, dbt, publish, reference, report, serving, telemetry
from orchestration.console import console
from orchestration.jobs import billing_period_job, gpuledger_job, telemetry_and_serving_job
from orchestration.project import DBT_EXECUTABLE, dbt_project
from orchestration.resources import DbtResource, GpuledgerResource, SlackResource
from orchestration.schedules import SCHEDULES
from orchestration.sensors import new_billing_deliveries, new_telemetry_and_serving_files, rebuild_after_new_data

all_assets = dg.load_assets_from_modules(
    [config_tables, billing, telemetry, serving, dbt, reference, anomalies, publish, report])
all_checks = dg.load_asset_checks_from_modules([config_tables, billing, telemetry, serving, dbt])

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[billing_period_job, telemetry_and_serving_job, gpuledger_job, notify_spend_anomalies],
    schedules=SCHEDULES,
    sensors=[new_billing_deliveries, new_telemetry_and_serving_files, rebuild_after_new_data, spend_anomaly_alerts,
             post_failed_runs],
    resources={
        "gpuledger": GpuledgerResource(),
        "dbt": DbtResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
        "slack": SlackResource(),
    },
    loggers={"console": console},
)

# A run's process keeps these definitions, and the modules of Dagster, dbt and DuckDB, to its end.
# Frozen, they are no longer walked by Python's full collections (a handful a run, up to 0.4 s
# each): a 10,000-GPU run with nothing new takes about 1.4 s less (docs/scaling.md).
gc.freeze()
