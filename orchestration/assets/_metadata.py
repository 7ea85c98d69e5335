"""What every ingest materialization reports: row and quarantine counts, the table schema, and
a warning check when anything was quarantined."""


from collections.abc import Iterator

import dagster as dg
import duckdb
import pyarrow as pa

from ingest.load import LoadReport
from ingest.warehouse import RAW, table_exists


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
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """One materialization per raw table, then the quarantine check (a warning, never a failure:
    bad rows are set aside and the good ones land)."""
    context.log.info(report.summary())
    for problem in report.problems:
        context.log.warning(f"quarantined {problem}")
    quarantined = con.execute(
        f"select count(*) from {RAW}.quarantine where source = ?", [report.source]
    ).fetchone()[0]
    for key, schema in tables.items():
        name = key.path[-1]
        total = con.execute(f"select count(*) from {RAW}.{name}").fetchone()[0] if table_exists(con, RAW, name) else 0
        yield dg.MaterializeResult(asset_key=key, metadata={
            "dagster/row_count": total,
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
