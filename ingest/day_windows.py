"""Which UTC days a daily build must rebuild: the days it was asked for, the days of every raw
telemetry or serving row ingested since the last build (a late file, or a file named for one day
holding another's rows), and the days of earlier attempts of any new request an hour either side
(a retry across midnight: int_requests counts a request once, on the day of its winning attempt)."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

import duckdb

from ingest import dcgm, engine_logs, gateway, litellm, nvidia_smi, nvml
from ingest.warehouse import RAW, first_row, table_exists

TELEMETRY_TABLES = (nvml.GPU_SAMPLES, nvml.PROCESSES, nvidia_smi.GPU_SAMPLES, nvidia_smi.PROCESSES, dcgm.SAMPLES)
REQUEST_TABLES = (gateway.REQUESTS, litellm.SPEND_LOGS, engine_logs.ENGINE_REQUESTS)
# int_requests judges a day's requests with the hour either side (the dbt macro request_window)
REQUEST_MARGIN = "interval 1 hour"


@dataclass(frozen=True)
class NewRows:
    first: datetime | None = None  # earliest sample or request time among the new rows
    last: datetime | None = None
    newest_ingested: datetime | None = None  # the watermark the next build starts from
    retried_first: datetime | None = None  # earliest and latest older attempt of a new request
    retried_last: datetime | None = None


def _union(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...], columns: str) -> str | None:
    present = [t for t in tables if table_exists(con, RAW, t)]
    return " union all ".join(f"select {columns} from {RAW}.{t}" for t in present) or None


def new_rows(con: duckdb.DuckDBPyConnection, since: datetime | None) -> NewRows:
    """What arrived in raw after `since` (everything when None)."""
    rows = _union(con, TELEMETRY_TABLES + REQUEST_TABLES, "ts, _ingested_at")
    if rows is None:
        return NewRows()
    first, last, newest = first_row(con, f"select min(ts), max(ts), max(_ingested_at) from ({rows}) "
                                         "where _ingested_at > coalesce(?, '-infinity'::timestamp)", [since])
    requests = _union(con, REQUEST_TABLES, "request_id, ts, _ingested_at")
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


def days_to_rebuild(start: datetime, end: datetime, arrived: NewRows) -> tuple[datetime, datetime]:
    """[start, end) widened to whole days covering the new rows and the retried requests' attempts."""
    for first, last in ((arrived.first, arrived.last), (arrived.retried_first, arrived.retried_last)):
        if first is not None and last is not None:
            start, end = min(start, _day(first)), max(end, _day(last) + timedelta(days=1))
    return start, end


def day_chunks(con: duckdb.DuckDBPyConnection, start: datetime | None, end: datetime | None,
               max_rows: int) -> list[tuple[datetime, datetime]]:
    """[start, end) (every day with raw rows when None) as consecutive runs of whole days of at most
    `max_rows` raw rows each (a larger day stands alone): one dbt build each, so a backfill or a
    rebuild of history needs the memory of its largest run, not of all its days."""
    rows = _union(con, TELEMETRY_TABLES + REQUEST_TABLES, "ts")
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
        return [] if start is None else [(start, end)]
    # the requested bounds, where they reach past the days with rows, stay covered (their old rows go)
    chunks[0][0] = min(chunks[0][0], start) if start else chunks[0][0]
    chunks[-1][1] = max(chunks[-1][1], end) if end else chunks[-1][1]
    return [(first, last) for first, last, _ in chunks]
