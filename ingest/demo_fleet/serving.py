"""The demo fleet's OpenAI-compatible gateway log: one JSON line per request, one file per day.

The log carries what real gateways log and what a reader must survive: failed requests without
usage, streamed responses, retries that reuse a request id, lines delivered twice, embeddings
without completion tokens, models that do not report cached tokens, and (on a few lines, as
request logging does) prompt and completion text that must never reach the warehouse.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

from ingest.demo_fleet.plan import CALLERS, Plan, hex_id, rng_for

PROMPT_CANARY = "GPULEDGER-CANARY-PROMPT-TEXT"
COMPLETION_CANARY = "GPULEDGER-CANARY-COMPLETION-TEXT"
FAILED_SHARE = 0.01
RETRY_SHARE = 0.004
REDELIVERED_SHARE = 0.002
TEXT_LOGGED_SHARE = 0.02
# Requests per hour relative to the peak, by UTC hour of day: quiet nights, busy afternoons.
DIURNAL = np.array([0.25, 0.2, 0.18, 0.18, 0.2, 0.3, 0.45, 0.6, 0.75, 0.85, 0.95, 1.0,
                    1.0, 1.0, 0.95, 0.95, 0.9, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.3])
WEEKEND = 0.5
EMBED_QUIET_HOURS = range(0, 6)  # the embedding service gets no traffic at night: idle_deployed


@dataclass(frozen=True)
class Request:
    """One counted request, as the ground truth sees it after de-duplication."""

    hour: int
    workload: int
    model: str
    team: str
    prompt_tokens: int
    cached_tokens: int | None
    completion_tokens: int
    failed: bool


def _rate(plan: Plan, workload_name: str, hour: int, peak: float) -> float:
    t = plan.hour_start(hour)
    if workload_name.startswith("embed") and t.hour in EMBED_QUIET_HOURS:
        return 0.0
    return peak * DIURNAL[t.hour] * (WEEKEND if t.weekday() >= 5 else 1.0)


def _usage(prompt: int, cached: int | None, completion: int, embedding: bool) -> dict:
    if embedding:
        return {"prompt_tokens": prompt, "total_tokens": prompt}
    usage: dict = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage


def simulate(plan: Plan) -> tuple[list[Request], dict[int, list[dict]]]:
    """The counted requests, and the gateway log lines of each day (unsorted, with duplicates)."""
    rng = rng_for(plan.seed, "requests")
    requests: list[Request] = []
    lines_by_day: dict[int, list[dict]] = {d: [] for d in range(plan.days)}
    for wi, w in enumerate(plan.workloads):
        spec = w.spec
        if spec.kind != "inference":
            continue
        caller_names = list(spec.callers)
        caller_p = np.array([spec.callers[c] for c in caller_names])
        caller_p /= caller_p.sum()
        model_p = np.array([0.7, 0.3]) if len(w.models) == 2 else np.ones(len(w.models)) / len(w.models)
        for hour in range(plan.hours):
            n = int(rng.poisson(_rate(plan, w.name, hour, spec.requests_per_hour)))
            offsets = np.sort(rng.integers(0, 3600 * 1000, size=n))
            for off in offsets:
                caller = CALLERS[caller_names[int(rng.choice(len(caller_names), p=caller_p))]]
                model = w.models[int(rng.choice(len(w.models), p=model_p))]
                prompt = max(1, int(rng.lognormal(*spec.prompt_tokens)))
                completion = 0 if spec.embedding else max(1, int(rng.lognormal(*spec.completion_tokens)))
                cached = None
                if spec.reports_cached_tokens:
                    cached = int(prompt * rng.uniform(0.2, 0.9)) // 16 * 16 if rng.random() < 0.35 else 0
                failed = bool(rng.random() < FAILED_SHARE)
                ts = plan.hour_start(hour) + timedelta(milliseconds=int(off))
                line = {
                    "ts": f"{ts:%Y-%m-%dT%H:%M:%S}.{ts.microsecond // 1000:03d}Z",
                    "request_id": f"{'embd' if spec.embedding else 'chatcmpl'}-{hex_id(rng, 24)}",
                    "endpoint": "/v1/embeddings" if spec.embedding else "/v1/chat/completions",
                    "model": model,
                    "api_key_hash": caller.key_hash,
                    "api_key_alias": caller.key_alias,
                    "user": caller.user or f"u-{int(rng.integers(1, 400)):05d}",
                    "metadata": {"app": f"app-{int(rng.integers(1, 9))}"}
                    | ({"team": caller.metadata_team} if caller.metadata_team else {}),
                    "status": int(rng.choice([500, 429])) if failed else 200,
                    "stream": bool(rng.random() < 0.4) and not spec.embedding,
                    "latency_ms": int(rng.lognormal(6.5, 0.6)),
                    "usage": None if failed else _usage(prompt, cached, completion, spec.embedding),
                }
                if rng.random() < TEXT_LOGGED_SHARE:
                    prompt_text = f"{PROMPT_CANARY} summarise the ticket"
                    line["request"] = {"messages": [{"role": "user", "content": prompt_text}]}
                    if not failed:
                        line["response"] = {"choices": [{"message": {"content": f"{COMPLETION_CANARY} done"}}]}
                day_lines = lines_by_day[hour // 24]
                if rng.random() < RETRY_SHARE:  # a first attempt that failed upstream, retried under the same id
                    first = dict(line, status=502, usage=None, latency_ms=int(rng.integers(50, 900)))
                    first["ts"] = f"{ts - timedelta(seconds=3):%Y-%m-%dT%H:%M:%S}.{ts.microsecond // 1000:03d}Z"
                    first.pop("response", None)
                    day_lines.append(first)
                day_lines.append(line)
                if rng.random() < REDELIVERED_SHARE:  # the log shipper delivered this line twice
                    day_lines.append(line)
                requests.append(Request(hour, wi, model, caller.team, 0 if failed else prompt,
                                        None if failed else cached, 0 if failed else completion, failed))
    return requests, lines_by_day


def write_gateway_logs(plan: Plan, lines_by_day: dict[int, list[dict]], root: Path) -> list[Path]:
    out = root / "gateway-1"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for day, lines in lines_by_day.items():
        date = (plan.start + timedelta(days=day)).date()
        path = out / f"gateway-1-{date}.jsonl.gz"
        lines.sort(key=lambda ln: ln["ts"])
        # mtime=0 and no file name in the gzip header keep the bytes identical for the same seed
        with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as gz:
            gz.write("".join(json.dumps(ln, separators=(",", ":")) + "\n" for ln in lines).encode())
        written.append(path)
    return written
