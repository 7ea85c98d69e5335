"""The spend report (ingest/report.py): one self-contained HTML page beside the published marts."""

import dagster as dg

from ingest.report import REPORT_FILE, default_window, render, write_report
from orchestration.assets.anomalies import SPEND_ANOMALIES
from orchestration.resources import WRITER_POOL, GpuledgerResource

SPEND_REPORT = dg.AssetKey(["reports", "spend_report"])
# What the report reads: the marts, and the hourly GPU table behind the utilization heatmap.
READS = [dg.AssetKey(["marts", name]) for name in (
    "cost_ledger_hourly", "unit_economics_daily", "team_spend_daily", "gpu_efficiency_daily", "tco_comparison",
    "cost_reconciliation")] + [dg.AssetKey(["intermediate", "int_gpu_hour_allocation"]), SPEND_ANOMALIES]


@dg.asset(
    key=SPEND_REPORT,
    deps=READS,
    group_name="reports",
    kinds={"plotly", "html"},
    owners=["team:platform"],
    # It only reads, but it opens the warehouse file, which DuckDB lets one process hold at a time.
    pool=WRITER_POOL,
    description="The spend report, published/spend_report.html: headline spend, cost per 1M tokens and idle "
                "share, then charts of cost per token by model, spend by team and category, idle cost, GPU "
                "utilization by hour, top anomalies, TCO and reconciliation, for the last 30 days. One file "
                "with plotly.js inlined: it opens offline, from a share or a chat attachment.",
)
def spend_report(context: dg.AssetExecutionContext, gpuledger: GpuledgerResource) -> dg.MaterializeResult:
    cfg = gpuledger.config
    with gpuledger.connect() as con:
        report = render(con, default_window(con, cfg.currency))
    path = write_report(report, cfg.published_path / REPORT_FILE)
    context.log.info(f"wrote the spend report for {report.window.first_day}..{report.window.last_day} to {path}")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(path)),
        "charts": report.charts,
        "size_bytes": path.stat().st_size,
        "first_day": str(report.window.first_day),
        "last_day": str(report.window.last_day),
    })
