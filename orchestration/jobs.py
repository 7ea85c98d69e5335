"""The three jobs: one billing period (monthly partitions), days of telemetry and serving (daily
partitions), and the ledger, marts, anomalies, published marts and report built from them all."""

import dagster as dg

from orchestration.assets import serving, telemetry
from orchestration.assets.billing import AWS_CUR
from orchestration.assets.dbt import daily_models
from orchestration.assets.reference import CLOUD_GPU_PRICES_API

billing_period_job = dg.define_asset_job(
    "billing_period",
    selection=dg.AssetSelection.assets(AWS_CUR),
    description="Load one billing period's newest CUR delivery (a restated period replaces the old one).",
)

DAY_PARTITIONED = dg.AssetSelection.assets(
    telemetry.nvml_telemetry, telemetry.nvidia_smi_telemetry, telemetry.dcgm_telemetry,
    serving.gateway_requests, serving.litellm_spend_logs, serving.engine_log_requests, serving.vllm_metric_scrapes,
    daily_models,
)

telemetry_and_serving_job = dg.define_asset_job(
    "telemetry_and_serving",
    # with what the daily models read besides raw rows: the config tables, the workload mapping, their views
    selection=(DAY_PARTITIONED | dg.AssetSelection.assets(daily_models).upstream()).required_multi_asset_neighbors(),
    description="Load UTC days of telemetry and serving files (new or changed files only) and rebuild those days' "
    "GPU-hours and requests. A backfill of many days runs as one.",
)

gpuledger_job = dg.define_asset_job(
    "gpuledger_all",
    # the price APIs need credentials and network: that asset runs only when asked for
    selection=dg.AssetSelection.all() - DAY_PARTITIONED - dg.AssetSelection.assets(AWS_CUR, CLOUD_GPU_PRICES_API),
    description="Ingest the other billing exports (new or changed files only), then build the ledger and marts from "
    "every day and period loaded, find spend anomalies, publish the marts and render the report.",
)
