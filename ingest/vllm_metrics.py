"""vLLM `/metrics` scrapes: the Prometheus text a scraper saved from a vLLM server (see
../shared/samples/serving-logs/vllm-metrics__*.prom).

Only the cost-relevant series are kept, one row per sample (long format). Series carry
`model_name` (a LoRA adapter is its own model_name) and, from V1 on, `engine` (data-parallel
engines: per-model sums must add them). Prefix-cache counters changed unit: the old
`gpu_prefix_cache_*` counted blocks, `prefix_cache_*` counts tokens, and the deprecated
`gpu_prefix_cache_*` of 0.10-era servers says tokens in its HELP text. `_created` series are unix
timestamps of when a counter was created, never values: they are not in the kept set.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from ingest.files import Parsed, complete_lines, rows_to_table
from ingest.prometheus import LABEL, help_texts, iter_samples, sample_time, scrape_time

VLLM_METRICS = "vllm_metrics"
FILE_SUFFIXES = (".prom", ".prom.gz", ".txt", ".txt.gz", ".metrics", ".metrics.gz")
PREFIX = "vllm:"
TOKEN_CACHE = ("prefix_cache_hits_total", "prefix_cache_queries_total")
BLOCK_CACHE = ("gpu_prefix_cache_hits_total", "gpu_prefix_cache_queries_total")
KEPT = frozenset((
    "prompt_tokens_total", "generation_tokens_total", *TOKEN_CACHE, *BLOCK_CACHE,
    "request_prefill_time_seconds_sum", "request_prefill_time_seconds_count", "request_decode_time_seconds_sum",
    "request_inference_time_seconds_sum", "request_success_total", "num_requests_running",
    "request_prompt_tokens_sum", "request_generation_tokens_sum",
))

VLLM_METRIC_SCHEMA = pa.schema([
    ("ts", pa.timestamp("us")),
    ("deployment", pa.string()),
    ("model_name", pa.string()),
    ("engine", pa.string()),  # V1 data-parallel engine index; null before V1
    ("metric", pa.string()),  # the series name without `vllm:`
    ("finished_reason", pa.string()),  # request_success_total only
    ("unit", pa.string()),  # 'tokens' or 'blocks' for prefix-cache counters, else null
    ("value", pa.float64()),
    ("line_number", pa.int64()),
])


def _family(name: str) -> str:
    """A counter's HELP may be written for `x_total` or (next to its `_created` gauge) for `x_created`."""
    return re.sub(r"_(total|created)$", "", name)


def _cache_units(lines: list[bytes]) -> dict[str, str]:
    """Unit per kept prefix-cache metric: the gpu_* ones count blocks unless their HELP says tokens."""
    helps = {_family(name): text for name, text in help_texts(lines).items()}
    units = dict.fromkeys(TOKEN_CACHE, "tokens")
    for metric in BLOCK_CACHE:
        units[metric] = "tokens" if "token" in helps.get(_family(PREFIX + metric), "").lower() else "blocks"
    return units


def read_vllm_metrics_file(path: Path, label: str | None, deployment: str) -> Parsed:
    parsed = Parsed(label or str(path))
    lines, damage = complete_lines(parsed, path)
    default_ts = scrape_time(path)
    units = _cache_units(lines)
    rows: list[tuple] = []
    for number, m in iter_samples(parsed, lines):
        metric = m["name"].removeprefix(PREFIX)
        if not m["name"].startswith(PREFIX) or metric not in KEPT:
            continue  # a series the cost model does not use (histogram buckets, _created, process_*)
        labels = dict(LABEL.findall(m["labels"] or ""))
        if not labels.get("model_name"):
            parsed.reject(number, "no model_name label")
            continue
        try:
            value = float(m["value"])
        except ValueError:
            parsed.reject(number, f"value {m['value']!r} is not a number")
            continue
        rows.append((sample_time(m, default_ts), deployment, labels["model_name"], labels.get("engine"), metric,
                     labels.get("finished_reason"), units.get(metric), value, number))
    if damage:
        parsed.reject(None, damage)
    parsed.tables[VLLM_METRICS] = rows_to_table(rows, VLLM_METRIC_SCHEMA)
    return parsed
