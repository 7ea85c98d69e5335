"""The dbt models (staging -> intermediate -> marts) as assets; their tests become asset checks.
The telemetry views and GPU-hour models are partitioned by UTC day, like the files they read; the
ledger and the marts above them are rebuilt whole."""

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from datetime import datetime, time, timedelta
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from ingest import dcgm, nvidia_smi, nvml
from ingest.config import Config
from ingest.config_tables import hosts_table
from ingest.warehouse import RAW, first_row, scalar, table_exists
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
GPU_DAY = "tag:gpu_day"  # the telemetry views and GPU-hour models, built per UTC day (dbt_project.yml)


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


TELEMETRY_TABLES = (nvml.GPU_SAMPLES, nvml.PROCESSES, nvidia_smi.GPU_SAMPLES, nvidia_smi.PROCESSES, dcgm.SAMPLES)
GPU_SAMPLES_MODEL = dg.AssetKey(["intermediate", "int_gpu_samples"])
INGESTED_THROUGH = "raw_ingested_through"  # metadata: the newest raw telemetry row a GPU-hour build saw
MAPPING_DIGEST = "mapping_digest"  # metadata: the workload rules and host mapping that build used


def mapping_digest(cfg: Config) -> str:
    """What the GPU-hour models take from gpuledger.yaml: the workload rules (through
    config.process_workloads) and the host -> resource mapping (config.hosts)."""
    mapping = {"workloads": [(w.name, w.match.model_dump(mode="json")) for w in cfg.workloads],
               "hosts": hosts_table(cfg).to_pylist()}
    return hashlib.sha256(json.dumps(mapping, sort_keys=True).encode()).hexdigest()[:16]


def telemetry_since(con: duckdb.DuckDBPyConnection, since: datetime | None,
                    ) -> tuple[datetime | None, datetime | None, datetime | None]:
    """The first and last sample time, and the newest ingestion time, of the raw telemetry rows
    ingested after `since` (all of them when None)."""
    tables = [t for t in TELEMETRY_TABLES if table_exists(con, RAW, t)]
    if not tables:
        return None, None, None
    rows = " union all ".join(f"select ts, _ingested_at from {RAW}.{t}" for t in tables)
    first, last, newest = first_row(con, f"select min(ts), max(ts), max(_ingested_at) from ({rows}) "
                                         "where _ingested_at > coalesce(?, '-infinity'::timestamp)", [since])
    return first, last, newest


def rebuild_window(window: dg.TimeWindow, first: datetime | None, last: datetime | None) -> tuple[datetime, datetime]:
    """The partition's days, widened to the days of telemetry that arrived since the last build
    (a late file, or a file named for one day that holds another's samples)."""
    start, end = window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)
    if first is None or last is None:
        return start, end
    return (min(start, datetime.combine(first.date(), time())),
            max(end, datetime.combine(last.date(), time()) + timedelta(days=1)))


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=GPU_DAY,
    name="gpu_hour_models",
    dagster_dbt_translator=TRANSLATOR,
    partitions_def=days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WRITER_POOL,
)
def gpu_hour_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, gpuledger: GpuledgerResource):
    """The partition's days (a backfill's whole range in one build), and any day that gained
    telemetry since the last build, are deleted and rebuilt; every day when no earlier build is
    recorded in this Dagster instance."""
    previous = context.instance.get_latest_materialization_event(GPU_SAMPLES_MODEL)
    recorded = previous.asset_materialization.metadata if previous else {}
    through = datetime.fromisoformat(recorded[INGESTED_THROUGH].value) if INGESTED_THROUGH in recorded else None
    digest = mapping_digest(gpuledger.config)
    with gpuledger.connect() as con:
        first, last, newest = telemetry_since(con, through)
    dbt_vars = None
    if through is None:
        context.log.info("no earlier GPU-hour build recorded: building every day")
    elif MAPPING_DIGEST not in recorded or recorded[MAPPING_DIGEST].value != digest:
        # history is re-attributed when the mapping changes, as the config tables promise
        context.log.info("the workload rules or host mapping changed: rebuilding every day")
    else:
        start, end = rebuild_window(context.partition_time_window, first, last)
        context.log.info(f"GPU-hours: rebuilding {start:%Y-%m-%d} up to {end:%Y-%m-%d}")
        dbt_vars = {"day_start": f"{start:%Y-%m-%d %H:%M:%S}", "day_end": f"{end:%Y-%m-%d %H:%M:%S}"}
    newest = newest or through
    for event in build(context, dbt, gpuledger, dbt_vars):
        if newest and isinstance(event, dg.Output) and \
                context.asset_key_for_output(event.output_name) == GPU_SAMPLES_MODEL:
            event = event.with_metadata({**event.metadata, INGESTED_THROUGH: newest.isoformat(),
                                         MAPPING_DIGEST: digest})
        yield event


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    exclude=GPU_DAY,
    name="gpuledger_models",
    dagster_dbt_translator=TRANSLATOR,
    pool=WRITER_POOL,
)
def gpuledger_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, gpuledger: GpuledgerResource):
    yield from build(context, dbt, gpuledger)
