"""Which UTC days a build must rebuild.

A daily build: the days it was asked for, the days of every raw telemetry or serving row ingested
since the last build (a late file, or a file named for one day holding another's rows), and the
days of earlier attempts of any new request an hour either side (a retry across midnight:
int_requests counts a request once, on the day of its winning attempt).

The ledger build: the days the daily builds rebuilt since (Dagster knows those), and the days of
every billing period reloaded since and of any vLLM counters loaded since (`reloaded_days`)."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

import duckdb

from ingest import (
    aws_cur,
    azure,
    dcgm,
    engine_logs,
    focus,
    gateway,
    gcp_billing,
    litellm,
    nvidia_smi,
    nvml,
    oci,
    vllm_metrics,
)
from ingest.warehouse import RAW, first_row, table_exists

TELEMETRY_TABLES = (nvml.GPU_SAMPLES, nvml.PROCESSES, nvidia_smi.GPU_SAMPLES, nvidia_smi.PROCESSES, dcgm.SAMPLES)
REQUEST_TABLES = (gateway.REQUESTS, litellm.SPEND_LOGS, engine_logs.ENGINE_REQUESTS)
# int_requests judges a day's requests with the hour either side (the dbt macro request_window)
REQUEST_MARGIN = "interval 1 hour"
# The raw tables the ledger reads itself rather than through the daily models, and the span of
# hours a row can change: its billing period (a restated period is replaced whole), widened by its
# own usage where the period does not say it all; for vLLM's counters the row's day and the next
# (a day's first rise is measured from the day before's last value).
LEDGER_TABLES = {
    aws_cur.CUR: ("least(bill_billing_period_start_date, line_item_usage_start_date)",
                  "greatest(bill_billing_period_end_date, line_item_usage_end_date)"),
    # gcp_billing.CREDITS are loaded with their export rows, from the same lines
    gcp_billing.EXPORT: ("least(billing_period_start, usage_start_time)",
                         "greatest(billing_period_end, usage_end_time)"),
    azure.AZURE: ("least(coalesce(billing_period_start, usage_date), usage_date)",
                  "greatest(coalesce(billing_period_end, usage_date), usage_date) + interval 1 day"),
    focus.FOCUS: ("least(billing_period_start, charge_period_start)",
                  "greatest(billing_period_end, charge_period_end)"),
    oci.OCI: ("date_trunc('month', interval_usage_start)",
              "date_trunc('month', interval_usage_start) + interval 1 month"),
    vllm_metrics.VLLM_METRICS: ("date_trunc('day', ts)", "date_trunc('day', ts) + interval 2 day"),
}


@dataclass(frozen=True)
class NewRows:
    first: datetime | None = None  # earliest sample or request time among the new rows
    last: datetime | None = None
    newest_ingested: datetime | None = None  # the watermark the next build starts from
    retried_first: datetime | None = None  # earliest and latest older attempt of a new request
    retried_last: datetime | None = None


def union_of(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...], columns: str) -> str | None:
    """`columns` of every table of `tables` that exists in raw, as one union (None when none does)."""
    present = [t for t in tables if table_exists(con, RAW, t)]
    return " union all ".join(f"select {columns} from {RAW}.{t}" for t in present) or None


def new_rows(con: duckdb.DuckDBPyConnection, since: datetime | None) -> NewRows:
    """What arrived in raw after `since` (everything when None)."""
    rows = union_of(con, TELEMETRY_TABLES + REQUEST_TABLES, "ts, _ingested_at")
    if rows is None:
        return NewRows()
    first, last, newest = first_row(con, f"select min(ts), max(ts), max(_ingested_at) from ({rows}) "
                                         "where _ingested_at > coalesce(?, '-infinity'::timestamp)", [since])
    requests = union_of(con, REQUEST_TABLES, "request_id, ts, _ingested_at")
    if since is None or first is None or requests is None:
        return NewRows(first, last, newest)
    # only older rows near the new ones are read: zone maps on ts skip the rest of history
    retried = first_row(con, f"""
        with requests as (
            select * from ({requests})
            where request_id is not null and ts between ? - {REQUEST_MARGIN} and ? + {REQUEST_MARGIN}
        ),
        arrived as (select request_id, ts from requests where _ingested_at > ?),
        earlier as (select request_id, ts from requests where _ingested_at <= ?)
        select min(earlier.ts), max(earlier.ts)
        from arrived
        inner join earlier on arrived.request_id = earlier.request_id
            and earlier.ts between arrived.ts - {REQUEST_MARGIN} and arrived.ts + {REQUEST_MARGIN}""",
                        [first, last, since, since])
    return NewRows(first, last, newest, *retried)


def _day(ts: datetime) -> datetime:
    return datetime.combine(ts.date(), time())


@dataclass(frozen=True)
class Reloaded:
    days: tuple[datetime, datetime] | None  # the whole days the new rows can change, [start, end)
    newest_ingested: datetime | None  # the watermark the next ledger build starts from


def reloaded_days(con: duckdb.DuckDBPyConnection, since: datetime | None) -> Reloaded:
    """What billing and vLLM rows ingested after `since` can change in the ledger (every day when
    None)."""
    spans = " union all ".join(
        f"select {start} as first, {end} as last, _ingested_at from {RAW}.{table}"
        for table, (start, end) in LEDGER_TABLES.items() if table_exists(con, RAW, table))
    if not spans:
        return Reloaded(None, None)
    first, last, newest = first_row(con, f"""
        select min(first) filter (where _ingested_at > coalesce(?, '-infinity'::timestamp)),
               max(last) filter (where _ingested_at > coalesce(?, '-infinity'::timestamp)),
               max(_ingested_at)
        from ({spans})""", [since, since])
    if first is None:
        return Reloaded(None, newest)
    end = _day(last) if last == _day(last) else _day(last) + timedelta(days=1)
    return Reloaded((_day(first), max(end, _day(first) + timedelta(days=1))), newest)


def days_to_rebuild(start: datetime, end: datetime, arrived: NewRows) -> tuple[datetime, datetime]:
    """[start, end) widened to whole days covering the new rows and the retried requests' attempts."""
    for first, last in ((arrived.first, arrived.last), (arrived.retried_first, arrived.retried_last)):
        if first is not None and last is not None:
            start, end = min(start, _day(first)), max(end, _day(last) + timedelta(days=1))
    return start, end


# A day over the rows of one build is built a slice of its GPUs at a time (macros/day_window.sql);
# a 10,000-GPU day (157 M rows) at the default daily_build_rows is eight slices.
MAX_GPU_SLICES = 64


@dataclass(frozen=True)
class Chunk:
    """One run of whole days [start, end), built by one dbt build, or by `gpu_slices` builds of a
    slice of the GPUs each when it is a single day of more rows than one build may read."""

    start: datetime | None
    end: datetime | None
    gpu_slices: int = 1


def day_chunks(con: duckdb.DuckDBPyConnection, start: datetime | None, end: datetime | None,
               max_rows: int) -> list[Chunk]:
    """[start, end) (every day with raw rows when None) as consecutive runs of whole days of at most
    `max_rows` raw rows each (a larger day stands alone, in GPU slices of about `max_rows` rows): a
    backfill, a rebuild of history or a day of a large fleet needs the memory of `max_rows` rows,
    not of all its days or GPUs. Measured on a 2,000-GPU day (31 M rows): two slices built its GPU
    models in 69 s where one build spilled for 102 s."""
    rows = union_of(con, TELEMETRY_TABLES + REQUEST_TABLES, "ts")
    per_day = con.execute(f"""
        select date_trunc('day', ts), count(*) from ({rows})
        where ts >= coalesce(?, '-infinity'::timestamp) and ts < coalesce(?, 'infinity'::timestamp)
        group by 1 order by 1""", [start, end]).fetchall() if rows else []
    chunks: list[list] = []
    for day, count in per_day:
        if chunks and chunks[-1][2] + count <= max_rows:
            chunks[-1][1], chunks[-1][2] = day + timedelta(days=1), chunks[-1][2] + count
        else:  # from where the last run ended: days without rows between runs are rebuilt (emptied) too
            chunks.append([chunks[-1][1] if chunks else day, day + timedelta(days=1), count])
    if not chunks:
        return [] if start is None else [Chunk(start, end)]
    # the requested bounds, where they reach past the days with rows, stay covered (their old rows go)
    chunks[0][0] = min(chunks[0][0], start) if start else chunks[0][0]
    chunks[-1][1] = max(chunks[-1][1], end) if end else chunks[-1][1]
    return [Chunk(first, last, min(MAX_GPU_SLICES, -(-count // max_rows))) for first, last, count in chunks]
