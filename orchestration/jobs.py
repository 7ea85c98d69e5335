"""The two jobs: load one billing period (monthly partitions), and everything else."""

import dagster as dg

from orchestration.assets.billing import AWS_CUR
from orchestration.assets.reference import CLOUD_GPU_PRICES_API
from orchestration.partitions import billing_periods

billing_period_job = dg.define_asset_job(
    "billing_period",
    selection=dg.AssetSelection.assets(AWS_CUR),
    partitions_def=billing_periods,
    description="Load one billing period's newest CUR delivery (a restated period replaces the old one).",
)

gpuledger_job = dg.define_asset_job(
    "gpuledger_all",
    # the price APIs need credentials and network: that asset runs only when asked for
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(AWS_CUR, CLOUD_GPU_PRICES_API),
    description="Ingest every other source (new or changed files only), then build and test every dbt model.",
)
