"""The shape every ingest asset shares: read a source's files from its configured locations into
its raw tables, report row and quarantine counts, and warn (never fail) when rows were set aside."""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from ingest.config import Config
from ingest.files import Parsed
from ingest.landing import ObjectChanged
from ingest.load import LoadReport, list_files, load_files
from ingest.warehouse import RAW, ensure_raw_table, scalar
from orchestration.partitions import days
from orchestration.resources import WRITER_POOL, GpuledgerResource

# S3 answers worth another try once boto3's own retries (ingest.landing.RETRIES) are spent.
TRANSIENT_S3_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "500", "502", "503", "504"}
MAX_RETRIES = 3


def is_transient(err: BaseException) -> bool:
    if isinstance(err, ClientError):
        return err.response.get("Error", {}).get("Code") in TRANSIENT_S3_CODES
    return isinstance(err, ConnectionError | HTTPClientError | ObjectChanged)


@contextmanager
def retry_transient_s3(retry_number: int, log: logging.Logger) -> Iterator[None]:
    """A landing zone that is down or throttling, or an object replaced while it was read, retries
    the step (30 s, 60 s, 120 s later; files already loaded are skipped); anything else fails at once."""
    try:
        yield
    except Exception as err:
        if not is_transient(err):
            raise
        wait = 30 * 2**retry_number
        log.warning(f"transient landing-zone error ({type(err).__name__}); retrying in {wait} s")
        raise dg.RetryRequested(max_retries=MAX_RETRIES, seconds_to_wait=wait) from err


def table_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


def no_quarantine_spec(key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "no_quarantined_rows", asset=key,
        description="Warns when rows or files of this source were quarantined (raw.quarantine says which and why).",
    )


def ingest_results(
    context: dg.AssetExecutionContext,
    con: duckdb.DuckDBPyConnection,
    report: LoadReport,
    tables: dict[dg.AssetKey, pa.Schema],
    scope_columns: list[str],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """One materialization per raw table, then the quarantine check (a warning, never a failure:
    bad rows are set aside and the good ones land)."""
    context.log.info(report.summary())
    for problem in report.problems:
        context.log.warning(f"quarantined {problem}")
    quarantined = scalar(con, f"select count(*) from {RAW}.quarantine where source = ?", [report.source])
    for key, schema in tables.items():
        name = key.path[-1]
        ensure_raw_table(con, name, schema, scope_columns)
        yield dg.MaterializeResult(asset_key=key, metadata={
            "dagster/row_count": scalar(con, f"select count(*) from {RAW}.{name}"),
            "dagster/column_schema": table_schema(schema),
            "rows_loaded_this_run": report.rows.get(name, 0),
            "files_seen": report.seen,
            "files_loaded": report.loaded,
            "files_unchanged": report.unchanged,
            "quarantined_rows": quarantined,
        })
    for key in tables:
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name="no_quarantined_rows",
            passed=quarantined == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"quarantined_rows": quarantined},
        )


def per_file(read: Callable[[Path, str], Parsed]) -> Callable[[Path, str, str, Any], Parsed]:
    """A reader that needs nothing but the file."""
    return lambda path, label, key, source: read(path, label)


@dataclass(frozen=True)
class FileFamily:
    """A source family whose files each replace what they loaded before (everything but CUR).
    A daily family (telemetry, serving) is partitioned by the UTC day of its files (`file_day`)."""

    name: str  # the quarantine's source name
    group: str
    kinds: frozenset[str]
    tables: dict[str, tuple[pa.Schema, str]]  # raw table -> (schema, description)
    suffixes: tuple[str, ...]
    # (local copy, label, landing key, the location's config) -> what the file holds
    reader: Callable[[Path, str, str, Any], Parsed]
    locations: Callable[[Config], list[Any]]
    description: str
    daily: bool = False

    @property
    def keys(self) -> dict[dg.AssetKey, pa.Schema]:
        return {dg.AssetKey([RAW, table]): schema for table, (schema, _) in self.tables.items()}


def file_family_asset(family: FileFamily) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=f"ingest_{family.name}",
        specs=[
            dg.AssetSpec(dg.AssetKey([RAW, table]), group_name=family.group, kinds=set(family.kinds),
                         owners=["team:platform"], description=description)
            for table, (_, description) in family.tables.items()
        ],
        check_specs=[no_quarantine_spec(key) for key in family.keys],
        pool=WRITER_POOL,
        description=family.description,
        partitions_def=days if family.daily else None,
        # A backfill of many days is one run: one pass over the landing zones, one dbt build.
        backfill_policy=dg.BackfillPolicy.single_run() if family.daily else None,
    )
    def _ingest(context: dg.AssetExecutionContext, gpuledger: GpuledgerResource):
        report = LoadReport(family.name)
        with retry_transient_s3(context.retry_number, context.log), gpuledger.connect() as con:
            window = context.partition_time_window if family.daily else None
            in_days = (window.start.date(), window.end.date()) if window else None
            for source in family.locations(gpuledger.config):
                files = list_files([gpuledger.landing(source.location)], family.suffixes, in_days)
                context.log.info(f"{family.name}: {len(files)} files under {source.location}")
                report.merge(load_files(con, family.name, files, partial(family.reader, source=source),
                                        context.log.info))
            yield from ingest_results(context, con, report, family.keys, ["_source_file"])

    return _ingest

