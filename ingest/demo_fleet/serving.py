"""The demo fleet's serving logs: the OpenAI-compatible gateway's JSON lines and LiteLLM's spend logs.

Each request is logged in exactly one of the two: callers with a LiteLLM team id go through the
LiteLLM proxy (`LiteLLM_SpendLogs` rows, one JSONL file per day), everyone else through the
gateway (one JSON line per request, one file per day). Both carry what a reader must survive:
failed requests without usage, retries that reuse a request id, embeddings without completion
tokens, models that do not report cached tokens, and (on a few lines, as request logging does)
prompt and completion text that must never reach the warehouse. The gateway also streams and
delivers some lines twice; LiteLLM's rows are keyed by request id, so it never repeats one.

A request names only its model, unless LiteLLM logged an `api_base` that the config lists for a
deployment: then it is routed there. Otherwise it is served by the pool of deployments of its model.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

import numpy as np

from ingest.demo_fleet.inject import traffic_drop
from ingest.demo_fleet.plan import CALLERS, IDLE, SAMPLES_PER_HOUR, Caller, Plan, Workload, hex_id, rng_for

PROMPT_CANARY = "GPULEDGER-CANARY-PROMPT-TEXT"
COMPLETION_CANARY = "GPULEDGER-CANARY-COMPLETION-TEXT"
FAILED_SHARE = 0.01
RETRY_SHARE = 0.004
REDELIVERED_SHARE = 0.002
RETRY_GAP = timedelta(seconds=3)
TEXT_LOGGED_SHARE = 0.02
# Requests per hour relative to the peak, by UTC hour of day: quiet nights, busy afternoons.
DIURNAL = np.array([0.25, 0.2, 0.18, 0.18, 0.2, 0.3, 0.45, 0.6, 0.75, 0.85, 0.95, 1.0,
                    1.0, 1.0, 0.95, 0.95, 0.9, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.3])
WEEKEND = 0.5
EMBED_QUIET_HOURS = range(0, 6)  # the embedding service gets no traffic at night: idle_deployed
SPEND_LOGS_METADATA_SHARE = 0.03
# What LiteLLM logs as api_base for a model group behind a load balancer: no deployment lists it, so
# those requests name only their model (pooled), unlike the ones sent to a deployment's own URL.
LITELLM_POOL_API_BASE = "http://vllm-router.ml.svc.cluster.local:8000/v1"
# LiteLLM's `spend` is its API-price estimate, USD per 1M prompt and completion tokens; never the GPU cost
LIST_PRICES = {"llama-3.1-70b-instruct": (0.88, 0.88), "mixtral-8x7b-instruct": (0.6, 0.6)}
DEFAULT_LIST_PRICE = (0.2, 0.2)


@dataclass(frozen=True, slots=True)
class Request:
    """One counted request, as the ground truth sees it after de-duplication."""

    hour: int
    origin: int  # the deployment whose traffic generated it (drives that GPU's utilisation)
    routed: int | None  # the deployment its logged api_base names in the config; None: its model's pool
    model: str
    team: str
    prompt_tokens: int
    cached_tokens: int | None
    completion_tokens: int
    failed: bool
    log: str  # gateway | litellm


@dataclass(frozen=True)
class Call:
    """What one request asked for and got, before either log writes it down."""

    prompt: int
    cached: int | None
    completion: int
    failed: bool


class RequestLog:
    """The counted requests, kept as columns: a fleet of 1,000 GPUs makes millions of them.
    Iterating gives Request objects, in the order they were appended."""

    _COLUMNS = (("hour", "i"), ("origin", "i"), ("routed", "i"), ("model", "i"), ("team", "i"),
                ("prompt_tokens", "q"), ("cached_tokens", "q"), ("completion_tokens", "q"), ("flags", "b"))

    def __init__(self, requests: Iterable[Request] = ()) -> None:
        self._columns = {name: array(code) for name, code in self._COLUMNS}
        self._names: dict[str, list[str]] = {"model": [], "team": []}
        self._index: dict[str, dict[str, int]] = {"model": {}, "team": {}}
        for r in requests:
            self.append(r)

    def _code(self, kind: str, name: str) -> int:
        index = self._index[kind]
        if name not in index:
            index[name] = len(self._names[kind])
            self._names[kind].append(name)
        return index[name]

    def append(self, r: Request) -> None:
        c = self._columns
        c["hour"].append(r.hour)
        c["origin"].append(r.origin)
        c["routed"].append(-1 if r.routed is None else r.routed)
        c["model"].append(self._code("model", r.model))
        c["team"].append(self._code("team", r.team))
        c["prompt_tokens"].append(r.prompt_tokens)
        c["cached_tokens"].append(-1 if r.cached_tokens is None else r.cached_tokens)
        c["completion_tokens"].append(r.completion_tokens)
        c["flags"].append(int(r.failed) | (2 if r.log == "litellm" else 0))

    def __len__(self) -> int:
        return len(self._columns["hour"])

    def __iter__(self) -> Iterator[Request]:
        c, models, teams = self._columns, self._names["model"], self._names["team"]
        for hour, origin, routed, model, team, prompt, cached, completion, flags in zip(
                *(c[name] for name, _ in self._COLUMNS), strict=True):
            yield Request(hour, origin, None if routed < 0 else routed, models[model], teams[team], prompt,
                          None if cached < 0 else cached, completion, bool(flags & 1),
                          "litellm" if flags & 2 else "gateway")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RequestLog | list) and list(self) == list(other)


class _Spool:
    """Each day's log lines, as JSON beside the key they are sorted by, in a file until they are
    written out: a large fleet's month of requests does not fit in memory as dicts."""

    def __init__(self, folder: Path, days: int) -> None:
        self.folder, self.n_days = folder, days
        self.files: dict[int, TextIO] = {}

    def add(self, day: int, key: str, lines: list[dict]) -> None:
        f = self.files.get(day)
        if f is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            f = self.files[day] = (self.folder / f"{day}.tsv").open("w+", encoding="utf-8")
        f.write("".join(f"{ln[key]}\t{json.dumps(ln, separators=(',', ':'))}\n" for ln in lines))

    def __bool__(self) -> bool:
        return bool(self.files)

    def days(self) -> Iterator[tuple[int, list[str]]]:
        """Each day's JSON lines, sorted by key (ties in the order they came), the file then removed."""
        for day in range(self.n_days):
            f = self.files.pop(day, None)
            if f is None:
                yield day, []
                continue
            f.seek(0)
            keyed = [line.split("\t", 1) for line in f]
            f.close()
            (self.folder / f"{day}.tsv").unlink()
            keyed.sort(key=lambda kv: kv[0])
            yield day, [kv[1] for kv in keyed]
        if self.folder.exists() and not any(self.folder.iterdir()):
            self.folder.rmdir()


@dataclass
class Traffic:
    requests: RequestLog = field(default_factory=RequestLog)
    gateway: dict[int, list[dict]] = field(default_factory=dict)  # day -> lines (unsorted, with duplicates)
    litellm: dict[int, list[dict]] = field(default_factory=dict)  # day -> spend-log rows (unsorted)
    # where simulate(plan, spool=...) put the lines instead (gateway and litellm stay empty)
    gateway_spool: _Spool | None = None
    litellm_spool: _Spool | None = None

    @property
    def has_litellm(self) -> bool:
        return bool(self.litellm_spool) or any(self.litellm.values())


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


def _call(rng: np.random.Generator, w: Workload) -> Call:
    spec = w.spec
    prompt = max(1, int(rng.lognormal(*spec.prompt_tokens)))
    completion = 0 if spec.embedding else max(1, int(rng.lognormal(*spec.completion_tokens)))
    cached = None
    if spec.reports_cached_tokens:
        cached = int(prompt * rng.uniform(0.2, 0.9)) // 16 * 16 if rng.random() < 0.35 else 0
    return Call(prompt, cached, completion, bool(rng.random() < FAILED_SHARE))


def _ms(ts: datetime) -> str:
    return f"{ts:%Y-%m-%dT%H:%M:%S}.{ts.microsecond // 1000:03d}Z"


def _gateway_lines(rng: np.random.Generator, w: Workload, caller: Caller, model: str, ts: datetime,
                   call: Call) -> list[dict]:
    """The request's gateway line, after a failed first attempt (a retry) or twice (redelivered)."""
    spec = w.spec
    line = {
        "ts": _ms(ts),
        "request_id": f"{'embd' if spec.embedding else 'chatcmpl'}-{hex_id(rng, 24)}",
        "endpoint": "/v1/embeddings" if spec.embedding else "/v1/chat/completions",
        "model": model,
        "api_key_hash": caller.key_hash,
        "api_key_alias": caller.key_alias,
        "user": caller.user or f"u-{int(rng.integers(1, 400)):05d}",
        "metadata": {"app": f"app-{int(rng.integers(1, 9))}"}
        | ({"team": caller.metadata_team} if caller.metadata_team else {}),
        "status": int(rng.choice([500, 429])) if call.failed else 200,
        "stream": bool(rng.random() < 0.4) and not spec.embedding,
        "latency_ms": int(rng.lognormal(6.5, 0.6)),
        "usage": None if call.failed else _usage(call.prompt, call.cached, call.completion, spec.embedding),
    }
    if rng.random() < TEXT_LOGGED_SHARE:
        line["request"] = {"messages": [{"role": "user", "content": f"{PROMPT_CANARY} summarise the ticket"}]}
        if not call.failed:
            line["response"] = {"choices": [{"message": {"content": f"{COMPLETION_CANARY} done"}}]}
    lines = []
    if rng.random() < RETRY_SHARE:  # a first attempt that failed upstream, retried under the same id
        first = dict(line, status=502, usage=None, latency_ms=int(rng.integers(50, 900)), ts=_ms(ts - RETRY_GAP))
        first.pop("response", None)
        lines.append(first)
    lines.append(line)
    if rng.random() < REDELIVERED_SHARE:  # the log shipper delivered this line twice
        lines.append(line)
    return lines


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="microseconds")  # LiteLLM's startTime: 2026-10-29T13:04:05.123000+00:00


def _uuid(rng: np.random.Generator) -> str:
    h = hex_id(rng, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _litellm_metadata(rng: np.random.Generator, caller: Caller, call: Call) -> dict:
    meta: dict = {"user_api_key_alias": caller.key_alias, "user_api_key_team_id": caller.litellm_team_id}
    if rng.random() < SPEND_LOGS_METADATA_SHARE:  # free text the caller attached: kept by LiteLLM, not by us
        meta["spend_logs_metadata"] = {"job": "lit-review", "note": "weekly digest of new papers for the group"}
    if call.failed:
        meta["error_information"] = {"error_code": "503", "error_class": "ServiceUnavailableError",
                                     "llm_provider": "hosted_vllm"}
    elif call.cached:  # LiteLLM keeps the provider's usage details beside its own columns
        meta["additional_usage_values"] = {"prompt_tokens_details": {"cached_tokens": call.cached}}
    return meta


def _litellm_rows(rng: np.random.Generator, w: Workload, caller: Caller, model: str, ts: datetime,
                  call: Call) -> list[dict]:
    """The request's LiteLLM_SpendLogs row, after a failed first attempt where it was retried."""
    api_base = w.api_base or LITELLM_POOL_API_BASE
    request_id = f"chatcmpl-{_uuid(rng)}"
    prompt, completion = (0, 0) if call.failed else (call.prompt, call.completion)
    price_in, price_out = LIST_PRICES.get(model, DEFAULT_LIST_PRICE)
    row = {
        "request_id": request_id,
        "call_type": "aembedding" if w.spec.embedding else "acompletion",
        "api_key": caller.key_sha256,
        "spend": round((prompt * price_in + completion * price_out) / 1e6, 10),
        "total_tokens": prompt + completion,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "startTime": _iso(ts),
        "endTime": _iso(ts + timedelta(milliseconds=int(rng.lognormal(6.5, 0.6)))),
        "model": model,
        "model_group": model,
        "model_id": hashlib.sha256(f"{model}@{api_base}".encode()).hexdigest(),
        "custom_llm_provider": "hosted_vllm",
        "api_base": api_base,
        "user": "",
        "metadata": _litellm_metadata(rng, caller, call),
        "cache_hit": "False",
        "cache_key": "Cache OFF",
        "request_tags": [],
        "team_id": caller.litellm_team_id,
        "end_user": "",
        "status": "failure" if call.failed else "success",
        "messages": {},
        "response": {},
    }
    if rng.random() < TEXT_LOGGED_SHARE:  # store_prompts_in_spend_logs was on for these
        row["messages"] = [{"role": "user", "content": f"{PROMPT_CANARY} summarise the paper"}]
        if not call.failed:
            row["response"] = {"id": request_id, "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": f"{COMPLETION_CANARY} done"}}]}
    if rng.random() >= RETRY_SHARE:
        return [row]
    # the first attempt failed and LiteLLM retried it under the same id: the later row is the one that counts
    first_ts = ts - RETRY_GAP
    failed = Call(0, None, 0, True)
    first = dict(row, status="failure", spend=0.0, total_tokens=0, prompt_tokens=0, completion_tokens=0,
                 startTime=_iso(first_ts), endTime=_iso(first_ts + timedelta(milliseconds=int(rng.integers(50, 900)))),
                 metadata=_litellm_metadata(rng, caller, failed), messages={}, response={})
    return [first, row]


def _probabilities(weights: list[float]) -> np.ndarray:
    p = np.array(weights, dtype=float)
    return p / p.sum()


def _cdf(p: np.ndarray) -> np.ndarray:
    """What Generator.choice(len(p), p=p) searches its one uniform draw in."""
    cdf = p.cumsum()
    cdf /= cdf[-1]
    return cdf


def _choose(rng: np.random.Generator, cdf: np.ndarray) -> int:
    """rng.choice(len(cdf), p=...) without its checks on p each time: the same draw, the same index."""
    return int(cdf.searchsorted(rng.random(), side="right"))


def simulate(plan: Plan, spool: Path | None = None) -> Traffic:
    """The counted requests, and each day's gateway lines and LiteLLM rows; with `spool`, a folder,
    the lines go to files there (as JSON) instead of staying in memory, for write_*_logs to write."""
    rng = rng_for(plan.seed, "requests")
    # the injected drop thins one deployment's requests after they are drawn, from a stream of its own,
    # so every other request is the one it would be without it
    drop, keep_rng = traffic_drop(plan), rng_for(plan.seed, "traffic-drop")
    traffic = Traffic(gateway={d: [] for d in range(plan.days)}, litellm={d: [] for d in range(plan.days)})
    if spool is not None:
        traffic.gateway_spool = _Spool(spool / "gateway", plan.days)
        traffic.litellm_spool = _Spool(spool / "litellm", plan.days)
    for wi, w in enumerate(plan.workloads):
        spec = w.spec
        if spec.kind != "inference":
            continue
        caller_names = list(spec.callers)
        caller_cdf = _cdf(_probabilities([spec.callers[c] for c in caller_names]))
        model_cdf = _cdf(_probabilities([0.7, 0.3] if len(w.models) == 2 else [1.0] * len(w.models)))
        for hour in range(plan.hours):
            n = int(rng.poisson(_rate(plan, w.name, hour, spec.requests_per_hour)))
            offsets = np.sort(rng.integers(0, 3600 * 1000, size=n))
            thinned = drop is not None and drop.workload == wi and hour >= drop.first_hour
            for off in offsets:
                caller = CALLERS[caller_names[_choose(rng, caller_cdf)]]
                model = w.models[_choose(rng, model_cdf)]
                call = _call(rng, w)
                ts = plan.hour_start(hour) + timedelta(milliseconds=int(off))
                routed = None
                if caller.litellm_team_id:
                    logged = _litellm_rows(rng, w, caller, model, ts, call)
                    routed = wi if w.api_base else None
                else:
                    logged = _gateway_lines(rng, w, caller, model, ts, call)
                if thinned and keep_rng.random() >= drop.factor:
                    continue  # this request never came
                if spool is not None:
                    if caller.litellm_team_id:
                        traffic.litellm_spool.add(hour // 24, "startTime", logged)
                    else:
                        traffic.gateway_spool.add(hour // 24, "ts", logged)
                else:
                    (traffic.litellm if caller.litellm_team_id else traffic.gateway)[hour // 24] += logged
                counted = Call(0, None, 0, True) if call.failed else call
                log = "litellm" if caller.litellm_team_id else "gateway"
                traffic.requests.append(Request(hour, wi, routed, model, caller.team, counted.prompt, counted.cached,
                                                counted.completion, call.failed, log))
    return traffic


def held_gpu_hours(plan: Plan) -> np.ndarray:
    """GPU-hours each workload holds in each hour of the window (workloads x hours), as planned."""
    held = np.zeros((len(plan.workloads), plan.hours))
    for inst in plan.instances:
        for holders in inst.holders:
            per_hour = holders.reshape(plan.hours, SAMPLES_PER_HOUR)
            for wi in np.unique(holders[holders != IDLE]):
                held[wi] += (per_hour == wi).sum(axis=1) / SAMPLES_PER_HOUR
    return held


def deployment_load(plan: Plan, requests: list[Request]) -> dict[tuple[int, int], float]:
    """Each deployment-hour's requests relative to its peak rate; a request of a pool counts in each
    deployment by its share of the pool's GPU-hours, as the attribution splits it."""
    held = held_gpu_hours(plan)
    pools: dict[str, list[int]] = {}
    for wi, w in enumerate(plan.workloads):
        for m in w.models if w.spec.kind == "inference" else ():
            pools.setdefault(m, []).append(wi)
    load: dict[tuple[int, int], float] = {}
    for r in requests:
        members = [r.routed] if r.routed is not None else pools[r.model]
        weights = held[members, r.hour] if len(members) > 1 else np.ones(1)
        shares = weights / weights.sum() if weights.sum() > 0 else np.full(len(members), 1 / len(members))
        for wi, f in zip(members, shares, strict=True):
            load[(wi, r.hour)] = load.get((wi, r.hour), 0.0) + float(f)
    return {(wi, h): n / plan.workloads[wi].spec.requests_per_hour for (wi, h), n in load.items()}


def _write_gzip_jsonl(path: Path, rows: list[dict] | list[str]) -> Path:
    """`rows`: dicts, or their JSON lines (newline included)."""
    text = "".join(r if isinstance(r, str) else json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
    # mtime=0 and no file name in the gzip header keep the bytes identical for the same seed
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as gz:
        gz.write(text.encode())
    return path


def _days(lines_by_day: dict[int, list[dict]] | _Spool, key: str) -> Iterator[tuple[int, list[dict] | list[str]]]:
    if isinstance(lines_by_day, _Spool):
        yield from lines_by_day.days()
        return
    for day, lines in lines_by_day.items():
        lines.sort(key=lambda ln: ln[key])
        yield day, lines


def write_gateway_logs(plan: Plan, lines_by_day: dict[int, list[dict]] | _Spool, root: Path) -> list[Path]:
    out = root / "gateway-1"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for day, lines in _days(lines_by_day, "ts"):
        date = (plan.start + timedelta(days=day)).date()
        written.append(_write_gzip_jsonl(out / f"gateway-1-{date}.jsonl.gz", lines))
    return written


def write_litellm_logs(plan: Plan, rows_by_day: dict[int, list[dict]] | _Spool, root: Path) -> list[Path]:
    """One `LiteLLM_SpendLogs` export a day, as JSON lines; days without LiteLLM traffic have no file."""
    out = root / "litellm-1"
    written = []
    for day, rows in _days(rows_by_day, "startTime"):
        if not rows:
            continue
        out.mkdir(parents=True, exist_ok=True)
        date = (plan.start + timedelta(days=day)).date()
        written.append(_write_gzip_jsonl(out / f"litellm-1-spend-logs-{date}.jsonl.gz", rows))
    return written
