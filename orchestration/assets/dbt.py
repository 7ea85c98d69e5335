"""The dbt models (staging -> intermediate -> marts) as assets; their tests become asset checks.
The GPU-hour and request models are partitioned by UTC day, like the files they read. The
ledger's hour-grain models rebuild only the days that changed under them (the days the daily
builds rebuilt, the billing periods reloaded); the marts above them are rebuilt whole, from those.
Either build is skipped when nothing it reads changed since the last one, so a run with nothing
new costs seconds, not a rebuild."""

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import cache
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from ingest.day_windows import Chunk, day_chunks, days_to_rebuild, new_rows, reloaded_days
from ingest.load import ensure_aws_cur_view
from ingest.warehouse import config_fingerprint, scalar
from ingest.workloads import rules
from orchestration.assets.reference import CLOUD_GPU_PRICES_API
from orchestration.partitions import days
from orchestration.project import dbt_project
from orchestration.resources import WRITER_POOL, GpuledgerResource

WAREHOUSE_ENV_VAR = "GPULEDGER_DUCKDB_PATH"  # read by dbt_project/profiles.yml
MEMORY_LIMIT_ENV_VAR = "GPULEDGER_DUCKDB_MEMORY_LIMIT"  # likewise
# The days a daily build covers, read by macros/day_window.sql. Environment variables rather than
# --vars: dbt re-parses the whole project when its --vars change, and only the files that read an
# environment variable when that changes.
DAY_START_ENV_VAR, DAY_END_ENV_VAR = "GPULEDGER_DAY_START", "GPULEDGER_DAY_END"
GPU_SLICE_ENV_VAR = "GPULEDGER_GPU_SLICE"  # 'k/n': a build of the GPUs in bucket k of n (macros/day_window.sql)
# What a build of a GPU slice leaves out: the request models (int_requests and all it feeds), which
# the day's first slice builds whole.
NOT_GPU_MODELS = "int_requests+"
# A run tagged with it rebuilds every day and the ledger, whatever changed (a UI launchpad tag).
REBUILD_TAG = "gpuledger/rebuild"
INPUTS_DIGEST = "inputs_digest"  # metadata: what a build read (config tables, dbt code, raw loads)


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

    def get_asset_check_spec(self, asset_spec: dg.AssetSpec, manifest: Mapping[str, Any], unique_id: str,
                             project: DbtProject | None) -> dg.AssetCheckSpec | None:
        # Not blocking: a test failing at error severity fails `dbt build`, so its step, and Dagster
        # runs no step after it anyway. Blocking, each such check of a model that a Python asset
        # reads logged a warning in every run whose build had nothing to rebuild (no result emitted).
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        return spec._replace(blocking=False) if spec else None


TRANSLATOR = GpuledgerTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
DAILY = "daily"  # the tag of the telemetry views, GPU-hour and request models, built per UTC day (dbt_project.yml)


@cache
def code_digest(daily_only: bool) -> str:
    """The dbt project's SQL as built: every node's checksum (the daily ones only, if asked) and
    every macro, so a changed model or macro rebuilds what it shapes."""
    manifest = json.loads(dbt_project.manifest_path.read_text())
    nodes = {uid: n["checksum"]["checksum"] for uid, n in manifest["nodes"].items()
             if n["package_name"] == manifest["metadata"]["project_name"] and (DAILY in n["tags"] or not daily_only)}
    macros = {uid: m["macro_sql"] for uid, m in manifest["macros"].items()
              if m["package_name"] == manifest["metadata"]["project_name"]}
    return hashlib.sha256(json.dumps([nodes, macros], sort_keys=True).encode()).hexdigest()[:16]


def digest(**inputs: object) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def recorded(context: dg.AssetExecutionContext, key: dg.AssetKey) -> Mapping[str, Any]:
    """The metadata of `key`'s latest materialization in this Dagster instance ({} when none)."""
    event = context.instance.get_latest_materialization_event(key)
    return {k: v.value for k, v in event.asset_materialization.metadata.items()} if event else {}


def latest_storage_id(context: dg.AssetExecutionContext, key: dg.AssetKey) -> int | None:
    records = context.instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1).records
    return records[0].storage_id if records else None


def builds_everything(context: dg.AssetExecutionContext) -> bool:
    """Only a build of every model of the asset is compared and stamped: a hand-picked subset
    always runs, and never vouches for the models it left out."""
    return context.selected_asset_keys == context.assets_def.keys


def build(context: dg.AssetExecutionContext, dbt: DbtCliResource, gpuledger: GpuledgerResource,
          stamp_key: dg.AssetKey, stamp: Mapping[str, Any],
          window: tuple[datetime | None, datetime | None] | None = None,
          full_refresh: bool = False, gpu_slice: tuple[int, int] | None = None,
          ) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """`dbt build` of the asset's selection (the days of `window` for the day- and hour-grain
    models, every day without; tables dropped first with `full_refresh`; of the GPUs in bucket k of
    n with `gpu_slice` (k, n), the request models only in bucket 0), with row counts, and `stamp` in
    the metadata of `stamp_key`: what the next build compares against."""
    cfg = gpuledger.config
    os.environ[WAREHOUSE_ENV_VAR] = str(cfg.warehouse_path)
    os.environ[MEMORY_LIMIT_ENV_VAR] = cfg.memory_limit
    for name, value in ((DAY_START_ENV_VAR, window and window[0] and f"{window[0]:%Y-%m-%d %H:%M:%S}"),
                        (DAY_END_ENV_VAR, window and window[1] and f"{window[1]:%Y-%m-%d %H:%M:%S}"),
                        (GPU_SLICE_ENV_VAR, gpu_slice and "{}/{}".format(*gpu_slice))):
        if value:
            os.environ[name] = value
        else:
            os.environ.pop(name, None)
    with gpuledger.connect() as con:  # before any billing period was loaded (none may be configured)
        ensure_aws_cur_view(con, context.log.warning)
    # One target folder per warehouse, kept between runs: dbt re-parses only what changed since the
    # last build there (its partial parse is keyed to the profile, so to the warehouse path), and
    # the last build's logs and compiled SQL are in a known place. Builds of one warehouse never
    # overlap: they share the writer pool.
    target = cfg.warehouse_path.parent / "dbt-target"
    # a failed build raises here, with no event yielded and nothing stamped. The unit tests check
    # the models' SQL on fixed rows, not the data: the test suite runs them, as dbt advises, so a
    # daily build does not (0.5 s a day).
    args = ["build", "--exclude-resource-type", "unit_test", *(["--full-refresh"] if full_refresh else []),
            *(["--exclude", NOT_GPU_MODELS] if gpu_slice and gpu_slice[0] > 0 else [])]
    events = list(dbt.cli(args, context=context, target_path=target).stream())
    # Row counts are read here, on a connection that is closed again, rather than with
    # dagster-dbt's fetch_row_counts(), which leaves dbt's connection open in this process. Tables
    # only: counting a staging view runs it (its de-duplication of the day's raw rows, 1.6 s a
    # 1,000-GPU day for the collector's two).
    with gpuledger.connect() as con:
        tables = set(con.execute("select table_schema, table_name from information_schema.tables "
                                 "where table_type = 'BASE TABLE'").fetchall())
        for event in events:
            if isinstance(event, dg.Output):
                key = context.asset_key_for_output(event.output_name)
                schema, table = key.path
                metadata = dict(event.metadata)
                if (schema, table) in tables:
                    metadata["dagster/row_count"] = scalar(con, f'select count(*) from "{schema}"."{table}"')
                if key == stamp_key and builds_everything(context):
                    metadata.update(stamp)
                event = event.with_metadata(metadata)
            yield event


# the model whose materializations record what a daily build saw
WATERMARK_MODEL = dg.AssetKey(["intermediate", "int_gpu_samples"])
INGESTED_THROUGH = "raw_ingested_through"  # metadata: the newest raw row a daily build saw
BUILT_DAYS = "built_days"  # metadata: the days a daily build rebuilt, "<start>/<end>" or "all"
EVERY_DAY = "all"


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=f"tag:{DAILY}",
    name="daily_models",
    dagster_dbt_translator=TRANSLATOR,
    partitions_def=days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WRITER_POOL,
)
def daily_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, gpuledger: GpuledgerResource):
    """The partition's days (a backfill's whole range in one run), and any day that gained
    telemetry or requests since the last build, are deleted and rebuilt; every day when no
    earlier build is recorded in this Dagster instance, or the config tables or the daily models'
    SQL changed since. Nothing is rebuilt when no raw row arrived and nothing changed. Many days
    are built a run of days at a time, and a day of a large fleet a slice of its GPUs at a time
    (`ingest.day_windows.day_chunks`), so memory stays that of `daily_build_rows` raw rows, not of
    all history or the whole fleet."""
    last = recorded(context, WATERMARK_MODEL)
    through = datetime.fromisoformat(last[INGESTED_THROUGH]) if INGESTED_THROUGH in last else None
    with gpuledger.connect() as con:
        arrived = new_rows(con, through)
        inputs = digest(config=config_fingerprint(con), rules=rules(gpuledger.config.workloads),
                        code=code_digest(daily_only=True))
    window: tuple[datetime | None, datetime | None] = (None, None)  # every day
    if through is None:
        context.log.info("no earlier daily build recorded: building every day")
    elif context.run.tags.get(REBUILD_TAG):
        context.log.info(f"{REBUILD_TAG} tag: rebuilding every day")
    elif last.get(INPUTS_DIGEST) != inputs:
        # history is re-attributed when the mapping changes, as the config tables promise
        context.log.info("gpuledger.yaml or the daily models changed: rebuilding every day")
    elif arrived.first is None and builds_everything(context):
        context.log.info(f"daily models: no telemetry or request ingested since {through:%Y-%m-%d %H:%M:%S} "
                         "and nothing changed: no day rebuilt")
        return
    else:
        requested = context.partition_time_window
        window = days_to_rebuild(requested.start.replace(tzinfo=None), requested.end.replace(tzinfo=None), arrived)
        context.log.info(f"daily models: rebuilding {window[0]:%Y-%m-%d} up to {window[1]:%Y-%m-%d}")
    with gpuledger.connect() as con:
        chunks = day_chunks(con, *window, gpuledger.config.daily_build_rows)
    newest = arrived.newest_ingested or through
    stamp = {INPUTS_DIGEST: inputs, BUILT_DAYS: days_text(window),
             **({INGESTED_THROUGH: newest.isoformat()} if newest else {})}
    events: dict[tuple, Any] = {}
    builds = chunks or [Chunk(None, None)]  # no raw row at all: one build, which creates the empty tables
    limit = gpuledger.config.daily_build_rows
    for number, chunk in enumerate(builds, start=1):
        if len(chunks) > 1:
            context.log.info(f"daily models: building {chunk.start:%Y-%m-%d} up to {chunk.end:%Y-%m-%d} ({number} of "
                             f"{len(chunks)}, at most {limit:,} raw rows a build)")
        # Each build tests the days it wrote (macros/test_scope.sql); the last run of days' outputs
        # and checks stand for all, the last slice's for the GPU models.
        events = {}
        for bucket in range(chunk.gpu_slices):
            if chunk.gpu_slices > 1:
                context.log.info(f"daily models: GPU slice {bucket + 1} of {chunk.gpu_slices} (a day of over "
                                 f"{limit:,} raw rows is built a slice of its GPUs at a time)")
            # Rebuilding every day starts from new tables, so a model whose columns changed is rebuilt too.
            for event in build(context, dbt, gpuledger, WATERMARK_MODEL, stamp, (chunk.start, chunk.end),
                               full_refresh=number == 1 and bucket == 0 and window == (None, None),
                               gpu_slice=(bucket, chunk.gpu_slices) if chunk.gpu_slices > 1 else None):
                events[event_key(event)] = event
    yield from events.values()


def event_key(event: Any) -> tuple:
    """What a later build's event replaces: the same model's output or the same check's result."""
    if isinstance(event, dg.Output):
        return ("output", event.output_name)
    if isinstance(event, dg.AssetCheckResult):
        return ("check", event.asset_key, event.check_name)
    return ("event", id(event))


def days_text(window: tuple[datetime | None, datetime | None]) -> str:
    return EVERY_DAY if window[0] is None else "/".join(f"{bound:%Y-%m-%d}" for bound in window)


# the model whose materializations record what the ledger build read
LEDGER_MODEL = dg.AssetKey(["marts", "cost_ledger_hourly"])
DAILY_BUILD_SEEN = "daily_build_seen"  # metadata: the storage id of the last daily build the ledger saw
LEDGER_INGESTED_THROUGH = "ledger_raw_ingested_through"  # metadata: the newest billing or vLLM row it saw
DAILY_BUILDS_READ = 100  # more daily builds than this since the ledger's last build: rebuild every day


def ledger_window(context: dg.AssetExecutionContext, last: Mapping[str, Any], inputs: str,
                  reloaded: tuple[datetime, datetime] | None) -> tuple[datetime | None, datetime | None] | None:
    """The days the ledger must rebuild: (None, None) for every day, None for none."""
    every_day = (None, None)
    if not builds_everything(context):
        return every_day  # a hand-picked subset rebuilds what it picked, whole
    if DAILY_BUILD_SEEN not in last:
        context.log.info("ledger and marts: no earlier build recorded: building every day")
        return every_day
    if context.run.tags.get(REBUILD_TAG):
        context.log.info(f"{REBUILD_TAG} tag: rebuilding the ledger's every day")
        return every_day
    if last.get(INPUTS_DIGEST) != inputs:
        context.log.info("gpuledger.yaml, the prices or the models changed: rebuilding the ledger's every day")
        return every_day
    daily = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=WATERMARK_MODEL, after_storage_id=last[DAILY_BUILD_SEEN]),
        limit=DAILY_BUILDS_READ)
    spans = [reloaded] if reloaded else []
    for record in daily.records:
        built = record.asset_materialization.metadata.get(BUILT_DAYS)
        if daily.has_more or built is None or built.value == EVERY_DAY:
            context.log.info("a daily build since the ledger's last rebuilt every day (or a hand-picked few "
                             "models): rebuilding the ledger's every day")
            return every_day
        start, end = (datetime.fromisoformat(bound) for bound in built.value.split("/"))
        spans.append((start, end))
    if not spans:
        context.log.info("ledger and marts: nothing loaded or changed since their last build: not rebuilt")
        return None
    window = min(start for start, _ in spans), max(end for _, end in spans)
    context.log.info(f"ledger and marts: rebuilding {window[0]:%Y-%m-%d} up to {window[1]:%Y-%m-%d} (the days "
                     "rebuilt and billing periods loaded since their last build), then the marts over them")
    return window


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    exclude=f"tag:{DAILY}",
    name="gpuledger_models",
    dagster_dbt_translator=TRANSLATOR,
    pool=WRITER_POOL,
)
def gpuledger_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, gpuledger: GpuledgerResource):
    """The ledger's hour-grain models over the days that changed under them since their last
    build (every day when the config tables, prices or SQL changed), then the marts, whole; nothing
    when nothing they read changed."""
    last = recorded(context, LEDGER_MODEL)
    through = last.get(LEDGER_INGESTED_THROUGH)
    with gpuledger.connect() as con:
        reloaded = reloaded_days(con, datetime.fromisoformat(through) if through else None)
        config = config_fingerprint(con)
    inputs = digest(config=config, rules=rules(gpuledger.config.workloads), code=code_digest(daily_only=False),
                    prices=latest_storage_id(context, CLOUD_GPU_PRICES_API))
    # read before the window: a daily build recorded in between is then rebuilt again next time,
    # never skipped
    seen = latest_storage_id(context, WATERMARK_MODEL)
    window = ledger_window(context, last, inputs, reloaded.days)
    if window is None:
        return
    stamp = {INPUTS_DIGEST: inputs, DAILY_BUILD_SEEN: seen if seen is not None else -1,
             **({LEDGER_INGESTED_THROUGH: reloaded.newest_ingested.isoformat()} if reloaded.newest_ingested else {})}
    yield from build(context, dbt, gpuledger, LEDGER_MODEL, stamp, window, full_refresh=window == (None, None))
