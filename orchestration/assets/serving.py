"""LLM serving logs into `raw` (never any prompt or completion text)."""

from ingest import gateway
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
    description="OpenAI-compatible gateway request logs into raw.gateway_requests.",
)
gateway_requests = file_family_asset(GATEWAY)
