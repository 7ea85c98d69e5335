"""gpuledger.yaml as `config.*` tables, so SQL re-attributes history when the mapping changes."""


import dagster as dg

from ingest.config_tables import CONFIG_TABLES
from ingest.warehouse import CONFIG, replace_table
from orchestration.resources import WRITER_POOL, GpuledgerResource

CONFIG_KEYS = {name: dg.AssetKey([CONFIG, name]) for name in CONFIG_TABLES}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(key, group_name="config", kinds={"duckdb"}, owners=["team:platform"],
                     description=f"gpuledger.yaml's {name.replace('_', ' ')} as a table (rewritten every run).")
        for name, key in CONFIG_KEYS.items()
    ],
    pool=WRITER_POOL,
)
def config_tables(context: dg.AssetExecutionContext, gpuledger: GpuledgerResource):
    with gpuledger.connect() as con:
        for name, build in CONFIG_TABLES.items():
            table = build(gpuledger.config)
            replace_table(con, CONFIG, name, table)
            yield dg.MaterializeResult(asset_key=CONFIG_KEYS[name], metadata={"dagster/row_count": table.num_rows})
