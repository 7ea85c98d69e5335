"""The marts where analysts read them: Parquet files behind a views-only DuckDB catalog.

DuckDB lets one process write a database file, and an analyst's read-only session on it blocks
the writer. So analysts never open the warehouse. After every run each mart is written to
`<published>/marts/<table>.parquet`: first to a temporary name, then renamed over the old file
(a rename is atomic, and a query already reading the old file keeps reading it). The catalog,
`<published>/catalog.duckdb`, holds only views over those paths. It is rewritten, again by
rename, only when the list of marts changes. An open session therefore never blocks a run,
and a run never fails a session, and each next query reads the newest files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingest.warehouse import sql_string

CATALOG = "catalog.duckdb"
SCHEMA = "marts"


@dataclass(frozen=True)
class Published:
    table: str
    path: Path
    rows: int


def mart_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute(
        "select table_name from information_schema.tables where table_schema = ? order by table_name",
        [SCHEMA]).fetchall()]


def write_parquet(con: duckdb.DuckDBPyConnection, table: str, folder: Path) -> Published:
    final = folder / f"{table}.parquet"
    temporary = folder / f".{table}.parquet.{os.getpid()}.tmp"
    con.execute(f'copy (select * from {SCHEMA}."{table}") to {sql_string(temporary)} (format parquet)')
    os.replace(temporary, final)
    rows = con.execute(f'select count(*) from {SCHEMA}."{table}"').fetchone()[0]
    return Published(table, final, rows)


def _catalog_views(catalog: Path) -> list[str]:
    if not catalog.exists():
        return []
    with duckdb.connect(str(catalog), read_only=True) as con:
        return [r[0] for r in con.execute(
            "select view_name from duckdb_views() where schema_name = ? and not internal order by view_name",
            [SCHEMA]).fetchall()]


def write_catalog(out: Path, published: list[Published]) -> bool:
    """The views-only catalog over `published`, replaced only when its views would change."""
    catalog = out / CATALOG
    tables = sorted(p.table for p in published)
    if _catalog_views(catalog) == tables:
        return False
    temporary = out / f".{CATALOG}.{os.getpid()}.tmp"
    temporary.unlink(missing_ok=True)
    with duckdb.connect(str(temporary)) as con:
        con.execute(f"create schema {SCHEMA}")
        for p in published:
            source = sql_string(p.path.resolve())
            con.execute(f'create view {SCHEMA}."{p.table}" as select * from read_parquet({source})')
    os.replace(temporary, catalog)
    return True


def publish_marts(con: duckdb.DuckDBPyConnection, out: Path) -> list[Published]:
    """Every table of the warehouse's `marts` schema as Parquet under `out`, behind its catalog."""
    folder = out / SCHEMA
    folder.mkdir(parents=True, exist_ok=True)
    published = [write_parquet(con, table, folder) for table in mart_tables(con)]
    write_catalog(out, published)
    return published


def connect_catalog(out: Path) -> duckdb.DuckDBPyConnection:
    """A read-only analyst session on the published marts (never on the warehouse)."""
    con = duckdb.connect(str(out / CATALOG), read_only=True)
    con.execute(f"set schema = '{SCHEMA}'")
    return con
