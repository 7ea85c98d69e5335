"""OpenAI-compatible gateway request logs: one JSON line per request with a `usage` object.

Only the fields below are copied out of a line. Prompt and completion text (`messages`,
`request`, `response`, `choices`, ...) is never read into a row, so it cannot reach the warehouse.
`usage` may be the Chat Completions shape (`prompt_tokens`, `completion_tokens`,
`prompt_tokens_details.cached_tokens`) or the Responses shape (`input_tokens`, `output_tokens`,
`input_tokens_details.cached_tokens`). A missing cached count stays unknown (null), not 0.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ingest.files import Parsed, RowError, iter_json_lines, optional, parse_utc, require, rows_to_table
from ingest.privacy import kept_metadata, key_hash

REQUESTS = "gateway_requests"
FILE_SUFFIXES = (".jsonl", ".jsonl.gz")

REQUEST_SCHEMA = pa.schema([
    ("ts", pa.timestamp("us")),
    ("request_id", pa.string()),
    ("endpoint", pa.string()),
    ("deployment", pa.string()),  # the workload that served it, where the gateway logs one
    ("api_base", pa.string()),  # the upstream URL it was routed to, where the gateway logs one
    ("model", pa.string()),
    ("api_key_hash", pa.string()),
    ("api_key_alias", pa.string()),
    ("user_id", pa.string()),
    ("metadata", pa.string()),  # scalar metadata values only, as a JSON object
    ("status", pa.int32()),
    ("stream", pa.bool_()),
    ("latency_ms", pa.float64()),
    ("prompt_tokens", pa.int64()),
    ("completion_tokens", pa.int64()),
    ("cached_tokens", pa.int64()),
    ("line_number", pa.int64()),
])


def _count(usage: dict, *keys: str) -> int | None:
    for key in keys:
        value = usage.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise RowError(f"usage.{key} must be a non-negative integer, got {value!r}")
        return value
    return None


def _usage(obj: dict) -> tuple[int | None, int | None, int | None]:
    usage = obj.get("usage")
    if usage is None:
        return None, None, None
    if not isinstance(usage, dict):
        raise RowError("'usage' must be an object")
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    if not isinstance(details, dict):
        raise RowError("usage token details must be an object")
    prompt = _count(usage, "prompt_tokens", "input_tokens")
    cached = _count(details, "cached_tokens")
    if prompt is not None and cached is not None and cached > prompt:
        raise RowError(f"usage says {cached} cached tokens of only {prompt} prompt tokens")
    return prompt, _count(usage, "completion_tokens", "output_tokens"), cached


def _key_hash(obj: dict) -> str | None:
    key = optional(obj, "api_key_hash", str)
    return key_hash(key) if key else None  # a gateway that logs the raw key gets it hashed here


def _metadata(obj: dict) -> str | None:
    meta = obj.get("metadata")
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise RowError("'metadata' must be an object")
    return kept_metadata(meta)


def read_gateway_file(path: Path, label: str | None = None) -> Parsed:
    """`label` names the file in rows and quarantine (its landing URI; the local path by default)."""
    parsed = Parsed(label or str(path))
    rows: list[tuple] = []
    for number, obj in iter_json_lines(parsed, path):
        try:
            ts = parse_utc(obj.get("ts"))
            prompt, completion, cached = _usage(obj)
            rows.append((
                ts, require(obj, "request_id", str), optional(obj, "endpoint", str), optional(obj, "deployment", str),
                optional(obj, "api_base", str), require(obj, "model", str),
                _key_hash(obj), optional(obj, "api_key_alias", str), optional(obj, "user", str),
                _metadata(obj), optional(obj, "status", int), optional(obj, "stream", bool),
                optional(obj, "latency_ms", (int, float)), prompt, completion, cached, number,
            ))
        except (RowError, ValueError) as err:
            parsed.reject(number, str(err))
    parsed.tables[REQUESTS] = rows_to_table(rows, REQUEST_SCHEMA)
    return parsed
