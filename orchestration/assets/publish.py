"""The marts published for analysts (ingest/publish.py): Parquet files behind a views-only catalog."""

import dagster as dg

from ingest.publish import CATALOG, publish_marts
from orchestration.assets.anomalies import SPEND_ANOMALIES
from orchestration.assets.dbt import gpuledger_models
from orchestration.resources import WRITER_POOL, GpuledgerResource

PUBLISHED_MARTS = dg.AssetKey(["published", "marts"])


@dg.asset(
    key=PUBLISHED_MARTS,
    deps=[key for key in gpuledger_models.keys if key.path[0] == "marts"] + [SPEND_ANOMALIES],
    group_name="published",
    kinds={"parquet", "duckdb"},
    owners=["team:platform"],
    pool=WRITER_POOL,
    description="Every mart as Parquet behind a views-only DuckDB catalog (published/catalog.duckdb): analysts "
                "query it with `gpuledger sql` or the DuckDB CLI while runs write the warehouse, and each "
                "file is replaced atomically, so an open session never fails a run nor a run a session.",
)
def published_marts(context: dg.AssetExecutionContext, gpuledger: GpuledgerResource) -> dg.MaterializeResult:
    out = gpuledger.config.published_path
    with gpuledger.connect() as con:
        published = publish_marts(con, out)
    context.log.info(f"published {len(published)} marts to {out}")
    return dg.MaterializeResult(metadata={
        "catalog": str(out / CATALOG),
        "tables": len(published),
        **{f"rows/{p.table}": p.rows for p in published},
    })
