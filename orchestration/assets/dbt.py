"""The dbt models (staging -> intermediate -> marts) as assets; their tests become asset checks.
The GPU-hour and request models are partitioned by UTC day, like the files they read; the ledger
and the marts above them are rebuilt whole."""

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from ingest.config import Config
from ingest.day_windows import days_to_rebuild, new_rows
from ingest.warehouse import scalar, table_exists
from orchestration.assets.billing import ensure_aws_cur_table
from orchestration.partitions import days
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


TRANSLATOR = GpuledgerTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
DAILY = "tag:daily"  # the telemetry views, GPU-hour and request models, built per UTC day (dbt_project.yml)


def build(context: dg.AssetExecutionContext, dbt: DbtCliResource, gpuledger: GpuledgerResource,
          dbt_vars: dict[str, str] | None = None) -> Iterator[dg.Output | dg.AssetCheckResult]:
    os.environ[WAREHOUSE_ENV_VAR] = str(gpuledger.config.warehouse_path)
    with gpuledger.connect() as con:
        ensure_aws_cur_table(con)
    args = ["build", *(["--vars", json.dumps(dbt_vars)] if dbt_vars else [])]
    invocation = dbt.cli(args, context=context)
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


# the model whose materializations record what a daily build saw
WATERMARK_MODEL = dg.AssetKey(["intermediate", "int_gpu_samples"])
INGESTED_THROUGH = "raw_ingested_through"  # metadata: the newest raw row a daily build saw
CONFIG_DIGEST = "config_digest"  # metadata: the gpuledger.yaml that build used


def config_digest(cfg: Config) -> str:
    """Workload rules, host mapping, models: what the daily models read from gpuledger.yaml."""
    return hashlib.sha256(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=DAILY,
    name="daily_models",
    dagster_dbt_translator=TRANSLATOR,
    partitions_def=days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WRITER_POOL,
)
def daily_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, gpuledger: GpuledgerResource):
    """The partition's days (a backfill's whole range in one build), and any day that gained
    telemetry or requests since the last build, are deleted and rebuilt; every day when no
    earlier build is recorded in this Dagster instance, or gpuledger.yaml changed since."""
    previous = context.instance.get_latest_materialization_event(WATERMARK_MODEL)
    recorded = previous.asset_materialization.metadata if previous else {}
    through = datetime.fromisoformat(recorded[INGESTED_THROUGH].value) if INGESTED_THROUGH in recorded else None
    digest = config_digest(gpuledger.config)
    with gpuledger.connect() as con:
        arrived = new_rows(con, through)
    dbt_vars = None
    if through is None:
        context.log.info("no earlier daily build recorded: building every day")
    elif CONFIG_DIGEST not in recorded or recorded[CONFIG_DIGEST].value != digest:
        # history is re-attributed when the mapping changes, as the config tables promise
        context.log.info("gpuledger.yaml changed: rebuilding every day")
    else:
        window = context.partition_time_window
        start, end = days_to_rebuild(window.start.replace(tzinfo=None), window.end.replace(tzinfo=None), arrived)
        context.log.info(f"daily models: rebuilding {start:%Y-%m-%d} up to {end:%Y-%m-%d}")
        dbt_vars = {"day_start": f"{start:%Y-%m-%d %H:%M:%S}", "day_end": f"{end:%Y-%m-%d %H:%M:%S}"}
    newest = arrived.newest_ingested or through
    for event in build(context, dbt, gpuledger, dbt_vars):
        if newest and isinstance(event, dg.Output) and \
                context.asset_key_for_output(event.output_name) == WATERMARK_MODEL:
            event = event.with_metadata({**event.metadata, INGESTED_THROUGH: newest.isoformat(),
                                         CONFIG_DIGEST: digest})
        yield event


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    exclude=DAILY,
    name="gpuledger_models",
    dagster_dbt_translator=TRANSLATOR,
    pool=WRITER_POOL,
)
def gpuledger_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, gpuledger: GpuledgerResource):
    yield from build(context, dbt, gpuledger)
