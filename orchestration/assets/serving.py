"""LLM serving logs into `raw` (never any prompt or completion text)."""

from ingest import engine_logs, gateway, litellm, vllm_metrics
from ingest.load import host_of
from orchestration.assets._ingest import FileFamily, file_family_asset, per_file

GATEWAY = FileFamily(
    name="gateway",
    group="serving",
    kinds=frozenset({"openai", "duckdb"}),
    tables={gateway.REQUESTS: (gateway.REQUEST_SCHEMA, "One row per OpenAI-compatible gateway log line: model, "
                               "key hash and alias, user, status, token usage. Prompt and completion text is "
                               "never read.")},
    suffixes=gateway.FILE_SUFFIXES,
    reader=per_file(gateway.read_gateway_file),
    locations=lambda cfg: cfg.sources.gateway,
    daily=True,
    description="OpenAI-compatible gateway request logs into raw.gateway_requests.",
)
gateway_requests = file_family_asset(GATEWAY)

LITELLM = FileFamily(
    name="litellm",
    group="serving",
    kinds=frozenset({"litellm", "duckdb"}),
    tables={litellm.SPEND_LOGS: (litellm.SPEND_LOG_SCHEMA, "One row per LiteLLM_SpendLogs row: model, api_base, "
                                 "key hash and alias, team id, user, status, tokens, LiteLLM's spend estimate. "
                                 "Messages and responses are never read.")},
    suffixes=litellm.FILE_SUFFIXES,
    reader=per_file(litellm.read_litellm_file),
    locations=lambda cfg: cfg.sources.litellm,
    daily=True,
    description="LiteLLM spend-log exports (CSV or JSONL) into raw.litellm_spend_logs.",
)
litellm_spend_logs = file_family_asset(LITELLM)

ENGINE_LOGS = FileFamily(
    name="engine_logs",
    group="serving",
    kinds=frozenset({"vllm", "duckdb"}),
    tables={
        engine_logs.ENGINE_REQUESTS: (engine_logs.REQUEST_SCHEMA, "One row per request a vLLM, TGI or TEI "
                                      "server logged, with its deployment (the file's folder). No prompt text."),
        engine_logs.ENGINE_STATS: (engine_logs.STATS_SCHEMA, "vLLM and SGLang periodic statistics lines: "
                                   "throughput, running and waiting requests, KV cache use."),
    },
    suffixes=engine_logs.FILE_SUFFIXES,
    reader=lambda path, label, key, source: engine_logs.read_engine_log(
        path, label, host_of(key), timezone=source.timezone),
    locations=lambda cfg: cfg.sources.engine_logs,
    daily=True,
    description="vLLM, TGI, TEI and SGLang server logs into raw.engine_requests and raw.engine_stats.",
)
engine_log_requests = file_family_asset(ENGINE_LOGS)

VLLM_METRICS = FileFamily(
    name="vllm_metrics",
    group="serving",
    kinds=frozenset({"vllm", "duckdb"}),
    tables={vllm_metrics.VLLM_METRICS: (vllm_metrics.VLLM_METRIC_SCHEMA, "Cost-relevant vLLM /metrics series per "
                                        "scrape: token counters, prefill and decode time, prefix-cache hits.")},
    suffixes=vllm_metrics.FILE_SUFFIXES,
    reader=lambda path, label, key, source: vllm_metrics.read_vllm_metrics_file(path, label, host_of(key)),
    locations=lambda cfg: cfg.sources.vllm_metrics,
    daily=True,
    description="vLLM /metrics scrapes into raw.vllm_metrics (token weights measured from prefill and decode time).",
)
vllm_metric_scrapes = file_family_asset(VLLM_METRICS)
