"""Writing to the DuckDB warehouse: raw tables, the quarantine and the ingested-file ledger.

Every load replaces what the same file (or billing delivery) loaded before, in one transaction,
so re-running an ingest never duplicates rows and a crash never leaves half a file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from ingest.files import Parsed

RAW = "raw"
CONFIG = "config"

_BOOKKEEPING = f"""
create schema if not exists {RAW};
create schema if not exists {CONFIG};
create table if not exists {RAW}.quarantine (
    source varchar not null,       -- which reader: aws_cur, nvml, gateway
    scope varchar not null,        -- the file or delivery whose load produced the entry
    source_file varchar not null,
    row_number bigint,             -- 1-based line or row; null when the whole file was rejected
    reason varchar not null,
    quarantined_at timestamp not null
);
create table if not exists {RAW}.ingested_files (
    source varchar not null,
    scope varchar not null,
    size_bytes bigint not null,
    sha256 varchar not null,
    rows_loaded bigint not null,
    rows_quarantined bigint not null,
    ingested_at timestamp not null,
    primary key (source, scope)
);
"""


@contextmanager
def connect(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        if not read_only:
            con.execute(_BOOKKEEPING)
        yield con
    finally:
        con.close()


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def already_ingested(con: duckdb.DuckDBPyConnection, source: str, scope: str, sha256: str) -> bool:
    row = con.execute(
        f"select sha256 from {RAW}.ingested_files where source = ? and scope = ?", [source, scope]
    ).fetchone()
    return row is not None and row[0] == sha256


def _ensure_table(con: duckdb.DuckDBPyConnection, name: str, scope_columns: Mapping[str, str]) -> None:
    extra = "".join(f", cast(null as varchar) as {c}" for c in scope_columns)
    con.execute(
        f"create table if not exists {RAW}.{name} as "
        f"select *{extra}, cast(null as timestamp) as _ingested_at from incoming limit 0"
    )


def load_parsed(
    con: duckdb.DuckDBPyConnection,
    source: str,
    parsed: Parsed,
    scope: str,
    scope_columns: Mapping[str, str],
    size_bytes: int,
    sha256: str,
) -> None:
    """Replace what `scope` loaded before with `parsed`, and record its quarantine and fingerprint.

    `scope_columns` are written on every row and identify the rows to replace (for a file, its
    path; for a billing delivery, its export and period).
    """
    now = utc_now()
    where = " and ".join(f"{c} = ?" for c in scope_columns)
    con.begin()
    try:
        for name, table in parsed.tables.items():
            con.register("incoming", table)
            _ensure_table(con, name, scope_columns)
            con.execute(f"delete from {RAW}.{name} where {where}", list(scope_columns.values()))
            consts = "".join(f", ? as {c}" for c in scope_columns)
            con.execute(
                f"insert into {RAW}.{name} by name select *{consts}, ? as _ingested_at from incoming",
                [*scope_columns.values(), now],
            )
            con.unregister("incoming")
        con.execute(f"delete from {RAW}.quarantine where source = ? and scope = ?", [source, scope])
        if parsed.quarantined:
            con.executemany(
                f"insert into {RAW}.quarantine values (?, ?, ?, ?, ?, ?)",
                [[source, scope, q.source_file, q.row_number, q.reason, now] for q in parsed.quarantined],
            )
        con.execute(
            f"insert or replace into {RAW}.ingested_files values (?, ?, ?, ?, ?, ?, ?)",
            [source, scope, size_bytes, sha256, parsed.rows, len(parsed.quarantined), now],
        )
        con.commit()
    except Exception:
        con.rollback()
        raise


def replace_table(con: duckdb.DuckDBPyConnection, schema: str, name: str, table: pa.Table) -> None:
    con.register("incoming", table)
    con.execute(f"create or replace table {schema}.{name} as select * from incoming")
    con.unregister("incoming")


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, name]
    ).fetchone()[0] > 0
