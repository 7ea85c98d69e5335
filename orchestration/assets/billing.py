"""Cloud billing exports into `raw`: AWS CUR (by manifest and billing period), GCP's detailed
export, native FOCUS exports, Azure cost details and OCI cost reports."""

import dagster as dg

from ingest import aws_cur, azure, focus, gcp_billing, oci
from ingest.load import LoadReport, ensure_aws_cur_view, load_aws_cur
from ingest.warehouse import RAW
from orchestration.assets._ingest import (
    FileFamily,
    file_family_asset,
    ingest_results,
    no_quarantine_spec,
    per_file,
    retry_transient_s3,
)
from orchestration.partitions import billing_periods, period_of
from orchestration.resources import WRITER_POOL, GpuledgerResource

AWS_CUR = dg.AssetKey([RAW, aws_cur.CUR])


@dg.asset(
    key=AWS_CUR,
    group_name="billing",
    kinds={"aws", "duckdb"},
    owners=["team:platform"],
    description="AWS CUR 2.0 (Parquet or csv.gz) and legacy CUR line items, one billing period per partition: the "
    "period's newest delivery, read from its manifest, replaces the earlier one (AWS restates a month many times).",
    check_specs=[no_quarantine_spec(AWS_CUR)],
    partitions_def=billing_periods,
    pool=WRITER_POOL,
)
def aws_cur_line_items(context: dg.AssetExecutionContext, gpuledger: GpuledgerResource):
    period = period_of(context.partition_key)
    report = LoadReport(aws_cur.CUR)
    with retry_transient_s3(context.retry_number, context.log), gpuledger.connect() as con:
        if not gpuledger.config.sources.aws_cur:  # the view all the same (ingest_results would make a table)
            ensure_aws_cur_view(con)
        for source in gpuledger.config.sources.aws_cur:
            landing = gpuledger.landing(source.location)
            report.merge(load_aws_cur(con, landing, source.export_name, source.format, context.log.info, period))
        yield from ingest_results(context, con, report, {AWS_CUR: aws_cur.RAW_SCHEMA}, aws_cur.SCOPE_COLUMNS)


GCP = FileFamily(
    name="gcp_billing",
    group="billing",
    kinds=frozenset({"gcp", "duckdb"}),
    tables={
        gcp_billing.EXPORT: (gcp_billing.EXPORT_SCHEMA, "Google Cloud detailed usage cost export rows (from "
                             "BigQuery extracts), flattened; row_hash identifies a row across overlapping extracts."),
        gcp_billing.CREDITS: (gcp_billing.CREDIT_SCHEMA, "The credits of each GCP export row, one row per credit."),
    },
    suffixes=gcp_billing.FILE_SUFFIXES,
    reader=per_file(gcp_billing.read_gcp_file),
    locations=lambda cfg: cfg.sources.gcp_billing,
    description="GCP detailed billing export extracts (JSONL or Parquet).",
)
FOCUS = FileFamily(
    name="focus",
    group="billing",
    kinds=frozenset({"focus", "duckdb"}),
    tables={focus.FOCUS: (focus.FOCUS_FORMAT.schema, "Native FOCUS 1.0-1.3 export rows of any provider; FOCUS "
                          "columns in snake_case, provider x_ columns as JSON.")},
    suffixes=focus.FILE_SUFFIXES,
    reader=per_file(focus.read_focus_file),
    locations=lambda cfg: cfg.sources.focus,
    description="FOCUS exports (AWS, Azure, GCP, OCI), CSV or Parquet.",
)
AZURE = FileFamily(
    name="azure_cost_details",
    group="billing",
    kinds=frozenset({"azure", "duckdb"}),
    tables={azure.AZURE: (azure.AZURE_FORMAT.schema, "Azure cost details (EA / MCA) export rows.")},
    suffixes=azure.FILE_SUFFIXES,
    reader=per_file(azure.read_azure_file),
    locations=lambda cfg: cfg.sources.azure_cost_details,
    description="Azure Cost Management cost details exports (CSV).",
)
OCI = FileFamily(
    name="oci_cost_reports",
    group="billing",
    kinds=frozenset({"oci", "duckdb"}),
    tables={oci.OCI: (oci.OCI_FORMAT.schema, "Oracle Cloud cost report rows, defined tags as JSON.")},
    suffixes=oci.FILE_SUFFIXES,
    reader=per_file(oci.read_oci_file),
    locations=lambda cfg: cfg.sources.oci_cost_reports,
    description="Oracle Cloud cost reports (CSV).",
)
gcp_billing_export = file_family_asset(GCP)
focus_charges = file_family_asset(FOCUS)
azure_cost_details = file_family_asset(AZURE)
oci_cost_report = file_family_asset(OCI)
