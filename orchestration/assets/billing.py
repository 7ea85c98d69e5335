"""Cloud billing exports into `raw`."""


import dagster as dg

from ingest import aws_cur
from ingest.aws_cur_schema import CUR2_SCHEMA
from ingest.load import LoadReport, load_aws_cur
from ingest.warehouse import RAW
from orchestration.assets._metadata import ingest_results, no_quarantine_spec
from orchestration.resources import WRITER_POOL, GpuledgerResource

AWS_CUR = dg.AssetKey([RAW, aws_cur.CUR])


@dg.asset(
    key=AWS_CUR,
    group_name="billing",
    kinds={"aws", "duckdb"},
    owners=["team:platform"],
    description="AWS CUR 2.0 line items: the newest delivery of each billing period, read from its manifest; "
    "a restated period replaces the earlier delivery.",
    check_specs=[no_quarantine_spec(AWS_CUR)],
    pool=WRITER_POOL,
)
def aws_cur_line_items(context: dg.AssetExecutionContext, gpuledger: GpuledgerResource):
    report = LoadReport(aws_cur.CUR)
    with gpuledger.connect() as con:
        for source in gpuledger.config.sources.aws_cur:
            location = gpuledger.config.resolve(source.location)
            report.merge(load_aws_cur(con, location, source.export_name, context.log.info))
        yield from ingest_results(context, con, report, {AWS_CUR: CUR2_SCHEMA})
