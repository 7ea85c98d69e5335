"""The dbt models (staging -> intermediate -> marts) as assets; their tests become asset checks."""


import os
import shutil
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from ingest.warehouse import scalar, table_exists
from orchestration.assets.billing import ensure_aws_cur_table
from orchestration.project import dbt_project
from orchestration.resources import WRITER_POOL, GpuledgerResource

WAREHOUSE_ENV_VAR = "GPULEDGER_DUCKDB_PATH"  # read by dbt_project/profiles.yml


class GpuledgerTranslator(DagsterDbtTranslator):
    """Models keyed by the schema they land in (marts/cost_ledger_hourly), grouped by layer;
    sources keep dbt's default keys (raw/aws_cur, config/settings), which are the ingest assets'."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] in ("model", "seed"):
            return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_resource_props["schema"]

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return ["team:platform"]


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=GpuledgerTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
    pool=WRITER_POOL,
)
def gpuledger_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, gpuledger: GpuledgerResource):
    os.environ[WAREHOUSE_ENV_VAR] = str(gpuledger.config.warehouse_path)
    with gpuledger.connect() as con:
        ensure_aws_cur_table(con)
    invocation = dbt.cli(["build"], context=context)
    events = list(invocation.stream())
    # dagster-dbt gives every run its own target folder (a few MB); an hourly schedule would fill
    # the disk. A failed run's folder stays for its logs and compiled SQL.
    if invocation.is_successful():
        shutil.rmtree(invocation.target_path, ignore_errors=True)
    # Row counts are read here, on a connection that is closed again, rather than with
    # dagster-dbt's fetch_row_counts(), which leaves dbt's connection open in this process.
    with gpuledger.connect() as con:
        for event in events:
            if isinstance(event, dg.Output):
                schema, table = context.asset_key_for_output(event.output_name).path
                if table_exists(con, schema, table):
                    rows = scalar(con, f'select count(*) from "{schema}"."{table}"')
                    event = event.with_metadata({**event.metadata, "dagster/row_count": rows})
            yield event
