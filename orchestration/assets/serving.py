"""LLM serving logs into `raw` (never any prompt or completion text)."""


import dagster as dg

from ingest import gateway
from ingest.load import list_files, load_files
from ingest.warehouse import RAW
from orchestration.assets._metadata import ingest_results, no_quarantine_spec
from orchestration.resources import WRITER_POOL, GpuledgerResource

GATEWAY_REQUESTS = dg.AssetKey([RAW, gateway.REQUESTS])


@dg.asset(
    key=GATEWAY_REQUESTS,
    group_name="serving",
    kinds={"openai", "duckdb"},
    owners=["team:platform"],
    description="One row per OpenAI-compatible gateway log line: model, key hash and alias, user, status, "
    "token usage. Prompt and completion text is never read.",
    check_specs=[no_quarantine_spec(GATEWAY_REQUESTS)],
    pool=WRITER_POOL,
)
def gateway_requests(context: dg.AssetExecutionContext, gpuledger: GpuledgerResource):
    cfg = gpuledger.config
    files = list_files([cfg.resolve(s.location) for s in cfg.sources.gateway], gateway.FILE_SUFFIXES)
    with gpuledger.connect() as con:
        report = load_files(con, "gateway", files, gateway.read_gateway_file, context.log.info)
        yield from ingest_results(context, con, report, {GATEWAY_REQUESTS: gateway.REQUEST_SCHEMA})
