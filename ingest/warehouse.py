"""Writing to the DuckDB warehouse: raw tables, the quarantine and the ingested-file ledger.

Every load replaces what the same file (or billing delivery) loaded before, in one transaction,
so re-running an ingest never duplicates rows and a crash never leaves half a file.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.files import Parsed

RAW = "raw"
CONFIG = "config"
PARQUET_SCOPES = "parquet_scopes"

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
-- size:mtime_ns of a local file when it was loaded: a file listed again unchanged is not read
-- (nor hashed) again. Added after the first release: warehouses made before get it here.
alter table {RAW}.ingested_files add column if not exists listed_version varchar;
-- The folder of each scope's rows of a raw table kept as Parquet files (replacing_parquet).
create table if not exists {RAW}.{PARQUET_SCOPES} (
    table_name varchar not null,
    scope varchar not null,
    folder varchar not null,
    primary key (table_name, scope)
);
"""


@contextmanager
def connect(path: Path, read_only: bool = False, memory_limit: str | None = None
            ) -> Iterator[duckdb.DuckDBPyConnection]:
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only,
                         config={"memory_limit": memory_limit} if memory_limit else {})
    try:
        if not read_only:
            # Raw rows carry their file and row number, so their order on disk does not matter;
            # letting DuckDB drop it writes a large delivery straight to row groups instead of
            # through the commit: a 10 M-line CUR month peaks at 6.6 GiB instead of 14.6 GiB.
            con.execute("set preserve_insertion_order = false")
            con.execute(_BOOKKEEPING)
        yield con
    finally:
        con.close()


def first_row(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple | None:
    """The first row of a query, with the result read to the end: DuckDB refuses other work on a
    connection whose last result is still open."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def sql_string(text: object) -> str:
    """A SQL string literal of `text` (a path in COPY ... TO or read_parquet, which take no parameters)."""
    return "'" + str(text).replace("'", "''") + "'"


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> object:
    row = first_row(con, sql, params)
    return row[0] if row else None


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def remember_listing(con: duckdb.DuckDBPyConnection, source: str, scope: str, listed_version: str) -> None:
    """The same bytes were listed with a new size:mtime (touched, copied back): record it, so the
    next run skips them without hashing."""
    con.execute(f"update {RAW}.ingested_files set listed_version = ? where source = ? and scope = ?",
                [listed_version, source, scope])


def duplicate_of(con: duckdb.DuckDBPyConnection, source: str, scope: str, sha256: str) -> str | None:
    """Another file of the same source with the same bytes: a copy whose rows would count twice."""
    return scalar(
        con,
        f"select scope from {RAW}.ingested_files where source = ? and sha256 = ? and scope <> ? and rows_loaded > 0",
        [source, sha256, scope],
    )


def ensure_raw_table(con: duckdb.DuckDBPyConnection, name: str, schema: pa.Schema, scope_columns: list[str]) -> None:
    """The raw table, empty when nothing was loaded yet, so the SQL over it always runs."""
    _ensure_table(con, name, dict.fromkeys(scope_columns, ""), schema.empty_table())


def _ensure_table(con: duckdb.DuckDBPyConnection, name: str, scope_columns: Mapping[str, str],
                  incoming: pa.Table) -> None:
    """`incoming` is read by name in the SQL (DuckDB's replacement scan of Python variables)."""
    extra = "".join(f", cast(null as varchar) as {c}" for c in scope_columns)
    con.execute(
        f"create table if not exists {RAW}.{name} as "
        f"select *{extra}, cast(null as timestamp) as _ingested_at from incoming limit 0"
    )
    # A newer gpuledger may read more columns than the table was created with: add them (null for
    # the rows loaded before) rather than make anyone drop raw history.
    existing = {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ?", [RAW, name]
    ).fetchall()}
    for column, column_type in con.execute("select column_name, column_type from (describe incoming)").fetchall():
        if column not in existing:
            con.execute(f'alter table {RAW}.{name} add column "{column}" {column_type}')


@dataclass(frozen=True)
class Ingestion:
    """What raw.ingested_files records of one scope's load."""

    scope: str
    size_bytes: int
    sha256: str
    rows_loaded: int
    rows_quarantined: int
    listed_version: str | None


_INGESTION_SQL_TYPES = {"scope": "varchar", "size_bytes": "bigint", "sha256": "varchar", "rows_loaded": "bigint",
                        "rows_quarantined": "bigint", "listed_version": "varchar"}


def record_ingested(con: duckdb.DuckDBPyConnection, source: str, loads: list[Ingestion], now: datetime) -> None:
    """One statement for any number of scopes: `executemany` runs one statement per row, 7 s for
    the 5,400 files of a 1,000-GPU day."""
    con.execute(
        f"insert or replace into {RAW}.ingested_files by name select ? as source, ? as ingested_at, "
        + ", ".join(f"unnest(?::{sql_type}[]) as {name}" for name, sql_type in _INGESTION_SQL_TYPES.items()),
        [source, now, *([getattr(x, name) for x in loads] for name in _INGESTION_SQL_TYPES)])


@contextmanager
def replacing(
    con: duckdb.DuckDBPyConnection,
    source: str,
    parsed: Parsed,
    scope: str,
    scope_columns: Mapping[str, str],
    size_bytes: int,
    sha256: str,
    tables: Iterable[str],
    listed_version: str | None = None,
) -> Iterator[Callable[[str, pa.Table | duckdb.DuckDBPyRelation], int]]:
    """One transaction that replaces what `scope` (a file, or a billing delivery) loaded before: it
    clears the scope's rows from `tables`, yields `insert(table_name, rows)` for the new rows (as
    many parts as the caller likes, so a large delivery never sits in memory whole: an Arrow table,
    or a DuckDB query that reads files) returning how many it inserted, then records the scope's
    quarantine and fingerprint.

    `scope_columns` are written on every row and identify the rows to replace (for a file, its
    path; for a billing delivery, its export and period).
    """
    now = utc_now()
    where = " and ".join(f"{c} = ?" for c in scope_columns)
    consts = "".join(f", ? as {c}" for c in scope_columns)
    ready: set[str] = set()
    rows = 0

    def clear(name: str) -> None:
        con.execute(f"delete from {RAW}.{name} where {where}", list(scope_columns.values()))
        ready.add(name)

    def insert(name: str, incoming: pa.Table | duckdb.DuckDBPyRelation) -> int:
        # read by DuckDB's replacement scan, not con.register(): a registered table stays in
        # memory until the transaction ends, and a large delivery is many tables in one transaction
        nonlocal rows
        _ensure_table(con, name, scope_columns, incoming)
        if name not in ready:
            clear(name)
        ((count,),) = con.execute(  # here, not in a helper: the replacement scan looks in this frame
            f"insert into {RAW}.{name} by name select *{consts}, ? as _ingested_at from incoming",
            [*scope_columns.values(), now]).fetchall()
        rows += count
        return count

    con.begin()
    try:
        for name in tables:
            if table_exists(con, RAW, name):
                clear(name)
        yield insert
        _record_scope(con, source, parsed, Ingestion(scope, size_bytes, sha256, rows, len(parsed.quarantined),
                                                     listed_version), now)
        con.commit()
    except BaseException:
        con.rollback()
        raise


def _record_scope(con: duckdb.DuckDBPyConnection, source: str, parsed: Parsed, load: Ingestion,
                  now: datetime) -> None:
    """A scope's quarantine in place of its last one, and its fingerprint."""
    con.execute(f"delete from {RAW}.quarantine where source = ? and scope = ?", [source, load.scope])
    if parsed.quarantined:  # one statement, not `executemany`'s one per row (see record_ingested)
        con.execute(
            f"insert into {RAW}.quarantine select ?, ?, unnest(?::varchar[]), unnest(?::bigint[]), "
            "unnest(?::varchar[]), ?",
            [source, load.scope, *([getattr(q, c) for q in parsed.quarantined] for c in
                                   ("source_file", "row_number", "reason")), now])
    record_ingested(con, source, [load], now)


# --- raw tables kept as Parquet files -------------------------------------------------------------
# A CUR month of 100 M lines written into the DuckDB file is about 3 s per million lines on 2 cores
# (compressing ~75 filled columns into DuckDB's storage), written as Parquet 2 s; a restated month
# then swaps a folder instead of deleting 100 M rows. The table is a view of every scope's current
# folder, so the models and analysts read it as any other raw table.

def parquet_root(con: duckdb.DuckDBPyConnection) -> Path:
    """Where a warehouse keeps its raw Parquet files: beside its file, named as DuckDB names its
    spill folder (data/gpuledger.duckdb -> data/gpuledger.duckdb.raw/, beside .tmp/)."""
    path = scalar(con, "select path from duckdb_databases() where database_name = current_database()")
    if not path:
        raise ValueError("a raw table kept as Parquet files needs a warehouse file, not an in-memory database")
    file = Path(str(path)).resolve()
    return file.with_name(file.name + ".raw")


def ensure_parquet_table(con: duckdb.DuckDBPyConnection, name: str, schema: pa.Schema, scope_columns: list[str],
                         scope_sql: str) -> tuple[list[tuple[str, str]], list[str]]:
    """raw.<name> as a view of its Parquet files (empty when nothing was loaded yet): its columns with
    their DuckDB types, and the scopes whose folder was lost (deleted by hand), which are forgotten,
    fingerprint included, so that they load again. A warehouse that kept the table in its file has
    the rows moved to Parquet, a folder per scope (`scope_sql`: a row's scope), once."""
    described = con.from_arrow(schema.empty_table())
    columns = [*zip(described.columns, map(str, described.types), strict=True),
               *((c, "VARCHAR") for c in scope_columns), ("_ingested_at", "TIMESTAMP")]
    kind = scalar(con, "select table_type from information_schema.tables where table_schema = ? and table_name = ?",
                  [RAW, name])
    view = scalar(con, "select sql from duckdb_views() where schema_name = ? and view_name = ?", [RAW, name])
    root = parquet_root(con) / name
    con.begin()
    try:
        if kind == "BASE TABLE":
            _move_to_parquet(con, name, root, scope_sql)
        lost = [scope for scope, folder in _listed_folders(con, name).items() if not (root / folder).is_dir()]
        if lost:  # the source that loads the table is named as the table (aws_cur)
            for table, column in ((PARQUET_SCOPES, "table_name"), ("ingested_files", "source")):
                con.execute(f"delete from {RAW}.{table} where {column} = ? and scope in (select unnest(?))",
                            [name, lost])
        if lost or str(root) not in str(view):  # none yet (or a table moved out), the warehouse moved, a folder lost
            _create_parquet_view(con, name, root, columns)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    _remove_unlisted_folders(con, name, root)
    return columns, lost


def _move_to_parquet(con: duckdb.DuckDBPyConnection, name: str, root: Path, scope_sql: str) -> None:
    for (scope,) in con.execute(f"select distinct {scope_sql} from {RAW}.{name}").fetchall():
        folder = root / uuid.uuid4().hex
        folder.mkdir(parents=True)
        con.execute(f"copy (select * from {RAW}.{name} where {scope_sql} = ?) to "
                    f"{sql_string(folder / 'part-0.parquet')} (format parquet)", [scope])
        _list_folder(con, name, scope, folder)
    con.execute(f"drop table {RAW}.{name}")


def _list_folder(con: duckdb.DuckDBPyConnection, name: str, scope: str, folder: Path) -> None:
    con.execute(f"insert or replace into {RAW}.{PARQUET_SCOPES} values (?, ?, ?)", [name, scope, folder.name])


def _listed_folders(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, str]:
    """Scope -> the folder that holds its rows of raw.<name>."""
    return dict(con.execute(f"select scope, folder from {RAW}.{PARQUET_SCOPES} where table_name = ? order by scope",
                            [name]).fetchall())


def _parquet_files(con: duckdb.DuckDBPyConnection, name: str, root: Path) -> list[Path]:
    return [file for folder in _listed_folders(con, name).values()
            for file in sorted((root / folder).glob("*.parquet"))]


def _create_parquet_view(con: duckdb.DuckDBPyConnection, name: str, root: Path,
                         columns: list[tuple[str, str]]) -> None:
    """The view reads each column as `columns` types it (null where no file has it: files written
    before a column was added); by name only where the files differ, as that reads every footer."""
    files = _parquet_files(con, name, root)
    schemas = {tuple(pq.read_schema(f).names) for f in files}
    present = {c for names in schemas for c in names}
    select = ", ".join(_typed(c, t, f'"{c}"' if c in present else "null") for c, t in columns)
    if files:
        by_name = ", union_by_name = true" if len(schemas) > 1 else ""
        source = f"read_parquet([{', '.join(sql_string(f) for f in files)}]{by_name})"
    else:
        source = "(select 1) where false"
    con.execute(f"create or replace view {RAW}.{name} as select {select} from {source}")


def _typed(column: str, sql_type: str, value: str) -> str:
    return f'cast({value} as {sql_type}) as "{column}"'


def _remove_unlisted_folders(con: duckdb.DuckDBPyConnection, name: str, root: Path) -> None:
    """Folders of a load that failed, or replaced ones a crash kept from removing."""
    listed = set(_listed_folders(con, name).values())
    for folder in root.glob("*"):
        if folder.is_dir() and folder.name not in listed:
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def replacing_parquet(con: duckdb.DuckDBPyConnection, source: str, parsed: Parsed, load: Ingestion,
                      scope_columns: Mapping[str, str], name: str, columns: list[tuple[str, str]],
                      ) -> Iterator[Callable[[pa.Table | duckdb.DuckDBPyRelation], int]]:
    """`replacing` for a raw table kept as Parquet (`ensure_parquet_table` gave `columns`): yields
    `write(rows)`, which writes a Parquet file of `load.scope`'s rows into a new folder and returns
    how many; then one transaction lists that folder in place of the scope's last one, with the
    quarantine and `load`'s fingerprint (its row counts are the ones written and quarantined), and
    the last one is removed."""
    now = utc_now()
    root = parquet_root(con) / name
    folder = root / uuid.uuid4().hex
    folder.mkdir(parents=True)
    constants = {**scope_columns, "_ingested_at": now}
    rows = parts = 0

    def write(incoming: pa.Table | duckdb.DuckDBPyRelation) -> int:
        nonlocal rows, parts
        present = set(incoming.column_names if isinstance(incoming, pa.Table) else incoming.columns)
        select = ", ".join(_typed(c, t, "?" if c in constants else f'"{c}"' if c in present else "null")
                           for c, t in columns)
        parts += 1
        ((count,),) = con.execute(  # here, not in a helper: the replacement scan looks in this frame
            f"copy (select {select} from incoming) to {sql_string(folder / f'part-{parts}.parquet')} (format parquet)",
            [constants[c] for c, _ in columns if c in constants]).fetchall()
        rows += count
        return count

    try:
        yield write
        con.begin()
        try:
            last = _listed_folders(con, name).get(load.scope)
            _list_folder(con, name, load.scope, folder)
            _create_parquet_view(con, name, root, columns)
            _record_scope(con, source, parsed, replace(load, rows_loaded=rows,
                                                       rows_quarantined=len(parsed.quarantined)), now)
            con.commit()
        except BaseException:
            con.rollback()
            raise
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if last:
        shutil.rmtree(root / last, ignore_errors=True)


def load_parsed(con: duckdb.DuckDBPyConnection, source: str, parsed: Parsed, scope: str,
                scope_columns: Mapping[str, str], size_bytes: int, sha256: str,
                listed_version: str | None = None) -> None:
    """Replace what `scope` loaded before with `parsed`'s tables, quarantine and fingerprint."""
    with replacing(con, source, parsed, scope, scope_columns, size_bytes, sha256, parsed.tables,
                   listed_version) as insert:
        for name, table in parsed.tables.items():
            insert(name, table)


def replace_table(con: duckdb.DuckDBPyConnection, schema: str, name: str, incoming: pa.Table) -> None:
    con.execute(f"create or replace table {schema}.{name} as select * from incoming")


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return scalar(
        con, "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, name]
    ) > 0


# Derived from telemetry as much as from gpuledger.yaml: it gains a row with every new process.
# What decides its workloads, the match rules, is compared apart (ingest.workloads.rules).
DERIVED_CONFIG_TABLES = ("process_workloads",)


def config_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """Every config table's rows, in any order: what SQL reads of gpuledger.yaml and of the files it
    names. A change elsewhere in gpuledger.yaml, such as the alert settings, leaves it alone."""
    tables = [t for (t,) in con.execute(
        "select table_name from information_schema.tables where table_schema = ? order by 1", [CONFIG]).fetchall()
        if t not in DERIVED_CONFIG_TABLES]
    return str([(t, first_row(con, f'select count(*), sum(hash(t)::hugeint) from {CONFIG}."{t}" t')) for t in tables])
