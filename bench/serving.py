"""Benchmark: a day of OpenAI-compatible gateway request logs ingested and attributed to teams,
models and deployments, against one bare DuckDB query over the same files.

    .venv/bin/python bench/serving.py [--requests 10000000] [--files-per-hour 1] [--data DIR] [--regenerate]
                                      [--fleet-gpus 32] [--workdir DIR] [--keep] [--dbt build|run]

1. Generates one day (2026-11-02) of gateway logs as gzip JSONL, one file per hour (or several),
   with a diurnal request rate: `ts`, `request_id`, `endpoint`, `model`, `api_key_hash` and
   `api_key_alias` of ten callers (nine mapped to teams in the config, one not), `user` on most,
   `metadata` on half (some with nested values the reader drops), `status` (2.4 % failures, which
   carry no usage), `stream`, `latency_ms`, an `api_base` on 40 % of the requests to a deployed
   model, and `usage` in the Chat Completions shape (cached tokens on some), the Responses shape
   (`input_tokens_details`) or the embeddings shape. Four models: three served by the fleet's
   inference deployments, one by none of them. Lines are built a whole hour at a time with
   pyarrow string kernels and compressed on two threads; the files are cached under
   bench/data/serving/ (gitignored) and reused by later runs with the same parameters, with the
   generator's own token totals per model x team.
2. A small fleet so that the deployments' GPU-hours have a cost: bench/telemetry.py's generator
   writes a day of NVML collector files for `--fleet-gpus` GPUs (its inference deployments serve
   the three models), loaded with `load_files` and resolved by `process_workloads`; the hosts are
   on-prem assets in the config, so their depreciation, operations and energy are the cost. This
   is set-up, timed on its own line and not part of the request pipeline's total (its dbt models
   are in the dbt stage, and take about a second).
3. The reference: one DuckDB query (`read_ndjson` over every gateway file, with the columns it
   needs declared) that computes requests, input, cached and output tokens per model x team x
   hour, the team by joining the API key alias to the same key -> team mapping the config gives
   the warehouse (`config.team_identities`). It runs before the pipeline, on a warm page cache.
4. The pipeline, into a fresh DuckDB file, as the Dagster assets do it: `ingest_gateway` (list
   the landing folder with `LocalLanding`, then `load_files`, which reads the files in DuckDB,
   into raw.gateway_requests); the config tables and every other
   source's raw table, empty; then, as a child process with the project's profile,
   `dbt build --select +unit_economics_daily` (staging, int_requests, int_requests_attributed,
   int_request_deployments, int_inference_allocation, the ledger and the mart, and their tests).
5. Prints wall time, requests/s and the ratio to the reference per stage, peak RSS of this
   process per stage and of the dbt child (wait4 on that child alone), the slowest dbt nodes, and
   whether the pipeline agrees with the reference and the generator: requests, input, cached and
   output tokens per model x team x hour in int_inference_allocation, and per model x team in
   unit_economics_daily (printed), all equal.

Nothing here is a timed assertion: the numbers only mean something as ratios within one run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import telemetry
from billing import random_strings
from common import (
    REPO,
    LoadTimes,
    Quiet,
    Stage,
    add_workdir_options,
    dbt_node_line,
    gib,
    load_average,
    measure,
    mib,
    own_peak,
    prepare_warehouse,
    run_dbt,
    sql_list,
    table,
    workdir,
)

from ingest import gateway, nvml
from ingest.config import Config, OnPrem, OnPremAsset, Site, Team
from ingest.config_tables import team_identities_table
from ingest.landing import LocalLanding
from ingest.load import list_files, load_files
from ingest.warehouse import connect, ensure_raw_table

DAY = telemetry.DAY  # the fleet's telemetry covers the same day
SELECT = ("+unit_economics_daily",)
SETUP = "config + empty raw tables"
UNATTRIBUTED = "unattributed"  # dbt_project.yml's unattributed_team
GENERATOR_VERSION = 1  # bump when the generated lines change, so cached files are not reused
DATA = REPO / "bench" / "data" / "serving"

# ---------------------------------------------------------------------------------------------
# What the gateway saw
# ---------------------------------------------------------------------------------------------

CHAT, RESPONSES, EMBEDDINGS = range(3)
ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings")
ID_PREFIXES = ("chatcmpl-", "resp_", "embd-")
RESPONSES_SHARE = 0.12  # of requests to a chat model


@dataclass(frozen=True)
class Model:
    name: str
    workload: str | None  # the deployment that serves it (bench/telemetry.py's KINDS); None: no deployment does
    api_base: str | None
    chat: bool  # chat completions or responses; else embeddings
    prompt_median: float
    completion_median: float


MODELS = (
    Model("llama-3.1-70b-instruct", "chat-llama-70b", "http://chat-llama-70b.inference.svc.cluster.local:8000/v1",
          True, 900, 260),
    Model("qwen2.5-coder-32b-instruct", "code-qwen-32b", "http://code-qwen-32b.inference.svc.cluster.local:8000/v1",
          True, 2200, 140),
    Model("bge-large-en-v1.5", "embed-bge", "http://embed-bge.search.svc.cluster.local:8080/v1", False, 350, 0),
    Model("mistral-7b-instruct-v0.3", None, None, True, 500, 200),
)
API_BASE_SHARE = 0.4  # of requests to a deployed model, where the gateway logs the upstream it routed to


@dataclass(frozen=True)
class Caller:
    alias: str
    team: str | None  # None: a key no team claims (unattributed)
    weight: float
    models: tuple[float, ...]  # its mix over MODELS

    @property
    def key_hash(self) -> str:
        return "sha256:" + hashlib.sha256(f"sk-{self.alias}".encode()).hexdigest()  # as the gateway logs it


CALLERS = (
    Caller("assistant-web", "assistant", 22, (0.93, 0.0, 0.07, 0.0)),
    Caller("assistant-mobile", "assistant", 12, (0.95, 0.0, 0.05, 0.0)),
    Caller("devtools-ide", "devtools", 14, (0.1, 0.9, 0.0, 0.0)),
    Caller("devtools-ci-review", "devtools", 6, (0.25, 0.75, 0.0, 0.0)),
    Caller("search-indexer", "search", 10, (0.0, 0.0, 1.0, 0.0)),
    Caller("search-answers", "search", 8, (0.6, 0.0, 0.4, 0.0)),
    Caller("support-bot", "support", 10, (0.8, 0.0, 0.1, 0.1)),
    Caller("research-evals", "research", 6, (0.4, 0.3, 0.1, 0.2)),
    Caller("growth-experiments", "growth", 8, (0.5, 0.1, 0.1, 0.3)),
    Caller("legacy-batch", None, 4, (0.7, 0.0, 0.3, 0.0)),
)
STATUSES = ((200, 0.976), (429, 0.015), (500, 0.005), (400, 0.004))
USERS = 20_000
USER_SHARE = 0.85
METADATA_SHARE = 0.5
METADATA = (  # never a `team` field: the team comes from the key alone, as in the reference
    '{"feature":"chat","client":"web/4.12.0"}',
    '{"feature":"chat","client":"ios/4.11.2","locale":"de-DE"}',
    '{"feature":"autocomplete","ide":"vscode","lang":"python"}',
    '{"feature":"review","repo":"platform/api","pr":48213}',
    '{"feature":"rag","index":"kb-2026-10","top_k":8}',
    '{"experiment":"prompt-v7","arm":"b","trace":{"id":"4bf92f3577b34da6","sampled":true}}',
)
STREAM_SHARE = 0.7  # of chat requests
CACHED_SHARE = 0.4  # chat and responses requests with cached prompt tokens; as many again report 0 cached
NO_DETAILS_SHARE = 0.35  # chat completions without prompt_tokens_details (cached count unknown)
DIURNAL = 0.55  # amplitude of the daily cycle of the request rate (peak around 15:00 UTC)


def hour_weights() -> np.ndarray:
    hours = np.arange(24)
    w = 1 + DIURNAL * np.sin(2 * np.pi * (hours - 9) / 24)
    return w / w.sum()


def pair_probabilities() -> np.ndarray:
    """P(caller, model), flattened caller-major."""
    w = np.array([c.weight for c in CALLERS])[:, None] * np.array([c.models for c in CALLERS])
    return (w / w.sum()).ravel()


def bench_config(fleet: telemetry.Fleet) -> Config:
    """Teams with their API key aliases, bench/telemetry.py's workloads with their api_base patterns,
    and the fleet's hosts as on-prem assets (so the GPU-hours they hold have a cost)."""
    api_bases = {m.workload: m.api_base.rsplit(":", 1)[0] + ":*" for m in MODELS if m.workload}
    workloads = [w.model_copy(update={"api_bases": [api_bases[w.name]] if w.name in api_bases else []})
                 for w in telemetry.bench_config().workloads]
    teams: dict[str, list[str]] = {w.owner_team: [] for w in workloads}
    for c in CALLERS:
        if c.team:
            teams.setdefault(c.team, []).append(c.alias)
    assets = []
    for h, host in enumerate(fleet.hosts):
        gpus = int((fleet.gpu_host == h).sum())
        h100 = telemetry.GPU_MODELS[fleet.model[fleet.gpu_host == h][0]][0].startswith("NVIDIA H100")
        assets.append(OnPremAsset(
            host=host, resource_id=fleet.resource_ids[h], site="dc1", gpu_model="H100 80GB" if h100 else "A100 80GB",
            gpu_count=gpus, purchase_price=Decimal(gpus * (30_000 if h100 else 17_000)), purchase_date=date(2026, 1, 1),
            rated_power_w_per_gpu=700 if h100 else 400, ops_cost_per_gpu_month=Decimal(120)))
    return Config(
        teams={t: Team(api_keys=keys) for t, keys in teams.items()}, workloads=workloads,
        on_prem=OnPrem(sites={"dc1": Site(pue=1.3, electricity_price_per_kwh=Decimal("0.14"))}, assets=assets))


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------

ALNUM = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", np.uint8)


def lit(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.string())


def text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def pick(values: Sequence[str], index: np.ndarray) -> pa.Array:
    return pa.array(list(values), pa.string()).take(pa.array(index))


def when(mask: np.ndarray, *parts: pa.Array | pa.Scalar) -> pa.Array:
    """The parts joined where mask, else ''."""
    return pc.if_else(pa.array(mask), pc.binary_join_element_wise(*parts, lit("")), lit(""))


@dataclass
class Hour:
    lines: pa.StringArray  # one JSON object per line, each ending in a newline
    totals: np.ndarray  # (callers, models, 4): requests, input, cached, output tokens


def hour_lines(rng: np.random.Generator, hour: int, n: int) -> Hour:
    """n requests in one hour, in time order."""
    start_us = int((DAY + timedelta(hours=hour)).replace(tzinfo=UTC).timestamp() * 1_000_000)
    stamps = pc.strftime(pa.array(np.sort(rng.integers(0, 3_600_000_000, n)) + start_us, pa.timestamp("us")),
                         format="%Y-%m-%dT%H:%M:%S")
    pair = rng.choice(len(CALLERS) * len(MODELS), n, p=pair_probabilities())
    caller, model = pair // len(MODELS), pair % len(MODELS)
    chat = np.array([m.chat for m in MODELS])[model]
    endpoint = np.where(chat, np.where(rng.random(n) < RESPONSES_SHARE, RESPONSES, CHAT), EMBEDDINGS)
    status = np.array([s for s, _ in STATUSES])[rng.choice(len(STATUSES), n, p=[p for _, p in STATUSES])]
    ok = status == 200

    prompt_median = np.array([m.prompt_median for m in MODELS])[model]
    completion_median = np.array([m.completion_median for m in MODELS])[model]
    prompt = np.clip(np.rint(prompt_median * rng.lognormal(0, 0.9, n)), 1, 120_000).astype(np.int64)
    completion = np.where(chat, np.clip(np.rint(completion_median * rng.lognormal(0, 0.8, n)), 1, 8_000), 0)
    completion = completion.astype(np.int64)
    u = rng.random(n)
    cached = np.where(u < CACHED_SHARE, (prompt * rng.uniform(0.1, 0.95, n)).astype(np.int64) // 16 * 16, 0)
    details = (endpoint == RESPONSES) | ((endpoint == CHAT) & (u < 1 - NO_DETAILS_SHARE))
    cached = np.where(details & chat, cached, 0)
    total = prompt + completion
    latency = np.where(ok, 40 + 0.08 * prompt + 22 * completion, 5 + 30 * rng.random(n)) * rng.lognormal(0, 0.3, n)

    p, c, k, t = text(prompt), text(completion), text(cached), text(total)
    chat_usage = pc.binary_join_element_wise(
        lit(',"usage":{"prompt_tokens":'), p, lit(',"completion_tokens":'), c, lit(',"total_tokens":'), t,
        pc.if_else(pa.array(details), pc.binary_join_element_wise(
            lit(',"prompt_tokens_details":{"cached_tokens":'), k, lit("}"), lit("")), lit("")),
        lit("}"), lit(""))
    responses_usage = pc.binary_join_element_wise(
        lit(',"usage":{"input_tokens":'), p, lit(',"input_tokens_details":{"cached_tokens":'), k,
        lit('},"output_tokens":'), c, lit(',"output_tokens_details":{"reasoning_tokens":0},"total_tokens":'), t,
        lit("}"), lit(""))
    embedding_usage = pc.binary_join_element_wise(
        lit(',"usage":{"prompt_tokens":'), p, lit(',"total_tokens":'), p, lit("}"), lit(""))
    usage = pc.if_else(pa.array(endpoint == CHAT), chat_usage,
                       pc.if_else(pa.array(endpoint == RESPONSES), responses_usage, embedding_usage))
    usage = pc.if_else(pa.array(ok), usage, pc.if_else(pa.array(status == 500), lit(',"usage":null'), lit("")))

    routed = np.array([m.api_base is not None for m in MODELS])[model] & (rng.random(n) < API_BASE_SHARE)
    has_user = rng.random(n) < USER_SHARE
    has_metadata = rng.random(n) < METADATA_SHARE
    streaming = chat & (rng.random(n) < STREAM_SHARE)
    lines = pc.binary_join_element_wise(
        lit('{"ts":"'), stamps, lit('Z","request_id":"'), pick(ID_PREFIXES, endpoint),
        random_strings(rng, n, 24, ALNUM), lit('","endpoint":"'), pick(ENDPOINTS, endpoint),
        lit('","model":"'), pick([m.name for m in MODELS], model), lit('"'),
        when(routed, lit(',"api_base":"'), pick([m.api_base or "" for m in MODELS], model), lit('"')),
        lit(',"api_key_hash":"'), pick([c.key_hash for c in CALLERS], caller),
        lit('","api_key_alias":"'), pick([c.alias for c in CALLERS], caller), lit('"'),
        when(has_user, lit(',"user":"u-'), text(rng.integers(0, USERS, n)), lit('"')),
        when(has_metadata, lit(',"metadata":'), pick(METADATA, rng.integers(0, len(METADATA), n))),
        lit(',"status":'), text(status), lit(',"stream":'), pick(("false", "true"), streaming.astype(np.int64)),
        lit(',"latency_ms":'), text(np.round(latency, 1)), usage, lit("}\n"), lit(""))

    # What the files hold per caller x model (failed requests carry no usage: zero tokens)
    totals = np.zeros((len(CALLERS), len(MODELS), 4), np.int64)
    for i, values in enumerate((np.ones(n, np.int64), prompt * ok, cached * ok, completion * ok)):
        totals[:, :, i] = np.bincount(pair, weights=values, minlength=totals[:, :, 0].size).reshape(
            totals.shape[:2]).astype(np.int64)
    return Hour(lines, totals)


def gzip_parts(paths: Sequence[Path], lines: pa.StringArray) -> int:
    """The lines split evenly over `paths`, each gzip-compressed (level 6, as gzip and most shippers
    write); returns the uncompressed bytes."""
    offsets = np.frombuffer(lines.buffers()[1], np.int32)[lines.offset:lines.offset + len(lines) + 1]
    data = memoryview(lines.buffers()[2])
    cuts = offsets[np.linspace(0, len(lines), len(paths) + 1).astype(np.int64)]
    for path, a, b in zip(paths, cuts[:-1], cuts[1:], strict=True):
        co = zlib.compressobj(6, zlib.DEFLATED, 31)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(co.compress(data[a:b]) + co.flush())
        tmp.rename(path)
    return int(offsets[-1] - offsets[0])


@dataclass
class Gateway:
    root: Path
    files: list[Path]
    requests: int
    uncompressed: int
    seconds: float  # to generate them, or 0 where they came from the cache
    totals: dict[tuple[str, str], tuple[int, int, int, int]]  # (model, team) -> requests, input, cached, output

    @property
    def bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)


def gateway_folder(data: Path, requests: int, files_per_hour: int, seed: int) -> Path:
    return data / f"requests-{requests}-files-{24 * files_per_hour}-seed-{seed}-v{GENERATOR_VERSION}"


def team_of(caller: Caller) -> str:
    return caller.team or UNATTRIBUTED


def generate(folder: Path, requests: int, files_per_hour: int, seed: int) -> Gateway:
    """The day's files under folder/landing, and what they hold in folder/generated.json (written
    last: a folder without it is incomplete and generated again)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    per_hour = rng.multinomial(requests, hour_weights())
    root = folder / "landing"
    files: list[Path] = []
    totals = np.zeros((len(CALLERS), len(MODELS), 4), np.int64)
    uncompressed = 0
    pending: list[Future] = []
    with ThreadPoolExecutor(2) as pool:
        for hour in range(24):
            start = DAY + timedelta(hours=hour)
            paths = [root / f"{start:%Y-%m-%d}" / (f"gateway-{start:%Y%m%dT%H}"
                                                   + (f"-{p + 1}" if files_per_hour > 1 else "") + ".jsonl.gz")
                     for p in range(files_per_hour)]
            h = hour_lines(rng, hour, int(per_hour[hour]))
            totals += h.totals
            # compress this hour while the next is built; at most two hours' lines in memory
            while len(pending) >= 2:
                uncompressed += pending.pop(0).result()
            pending.append(pool.submit(gzip_parts, paths, h.lines))
            files += paths
            del h
        for job in pending:
            uncompressed += job.result()
    merged: dict[tuple[str, str], np.ndarray] = {}
    for ci, c in enumerate(CALLERS):
        for mi, m in enumerate(MODELS):
            if totals[ci, mi, 0]:
                key = (m.name, team_of(c))
                merged[key] = merged.get(key, 0) + totals[ci, mi]
    gw = Gateway(root, files, requests, uncompressed, time.perf_counter() - t0,
                 {k: tuple(int(x) for x in v) for k, v in merged.items()})
    (folder / "generated.json").write_text(json.dumps({
        "requests": requests, "files": [str(f.relative_to(root)) for f in files], "uncompressed_bytes": uncompressed,
        "seconds": gw.seconds, "totals": [[*k, *v] for k, v in sorted(gw.totals.items())],
    }, indent=1) + "\n")
    return gw


def cached_or_generate(data: Path, requests: int, files_per_hour: int, seed: int, regenerate: bool,
                       ) -> tuple[Gateway, bool]:
    folder = gateway_folder(data, requests, files_per_hour, seed)
    meta = folder / "generated.json"
    if meta.exists() and not regenerate:
        m = json.loads(meta.read_text())
        root = folder / "landing"
        files = [root / f for f in m["files"]]
        if all(f.exists() for f in files):
            totals = {(r[0], r[1]): tuple(r[2:]) for r in m["totals"]}
            return Gateway(root, files, m["requests"], m["uncompressed_bytes"], m["seconds"], totals), True
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete earlier generation
    folder.mkdir(parents=True, exist_ok=True)
    return generate(folder, requests, files_per_hour, seed), False


def warm_page_cache(files: Sequence[Path]) -> None:
    """Read every file once, so the reference and the pipeline both read from memory."""
    for f in files:
        with f.open("rb") as fh:
            while fh.read(1 << 24):
                pass


# ---------------------------------------------------------------------------------------------
# The reference: one DuckDB query over the files
# ---------------------------------------------------------------------------------------------

REFERENCE_SQL = """
select
    model,
    coalesce(keys.team, '{unattributed}') as team,
    date_trunc('hour', ts) as hour_start,
    count(*) as requests,
    sum(coalesce(usage.prompt_tokens, usage.input_tokens, 0)) as input_tokens,
    sum(coalesce(usage.prompt_tokens_details.cached_tokens, usage.input_tokens_details.cached_tokens, 0))
        as cached_input_tokens,
    sum(coalesce(usage.completion_tokens, usage.output_tokens, 0)) as output_tokens
from read_ndjson({files}, compression = 'gzip', columns = {{
    ts: 'TIMESTAMP', model: 'VARCHAR', api_key_alias: 'VARCHAR',
    usage: 'STRUCT(prompt_tokens BIGINT, completion_tokens BIGINT, input_tokens BIGINT, output_tokens BIGINT,
                   prompt_tokens_details STRUCT(cached_tokens BIGINT),
                   input_tokens_details STRUCT(cached_tokens BIGINT))'
}}) as requests
left join keys on requests.api_key_alias = keys.identity_value
group by all
"""

Totals = dict[tuple[str, str, object], tuple[int, int, int, int]]  # (model, team, hour) -> the four sums


def reference(files: Sequence[Path], cfg: Config) -> Totals:
    """Tokens per model x team x hour straight from the files; the team by the config's API key mapping."""
    keys = team_identities_table(cfg).filter(pc.field("identity_kind") == "api_key")  # noqa: F841 (read by SQL)
    con = duckdb.connect()
    try:
        rows = con.execute(REFERENCE_SQL.format(files=sql_list(files), unattributed=UNATTRIBUTED)).fetchall()
    finally:
        con.close()
    return {(m, t, h): tuple(int(x) for x in v) for m, t, h, *v in rows}


# ---------------------------------------------------------------------------------------------
# The pipeline's stages
# ---------------------------------------------------------------------------------------------


@dataclass
class Load:
    requests: int
    files: int


def ingest_gateway(db: Path, files: list, times: LoadTimes) -> Load:
    """What the ingest_gateway asset does with its listed files: `load_files` in listing order,
    with its parts timed (`LoadTimes`)."""
    reader = times.reader(lambda path, label, key: gateway.read_gateway_file(path, label))
    with connect(db) as con, times:
        report = load_files(con, "gateway", files, reader, progress=lambda _: None)
        ensure_raw_table(con, gateway.REQUESTS, gateway.REQUEST_SCHEMA, ["_source_file"])
    if report.quarantined:
        raise RuntimeError(f"the generated files had quarantined rows: {report.problems}")
    return Load(report.rows[gateway.REQUESTS], report.loaded)


def fleet_setup(db: Path, root: Path, gpus: int, interval: int, cfg: Config) -> tuple[int, int]:
    """bench/telemetry.py's day of NVML files for the fleet, loaded, and its processes resolved."""
    tele = telemetry.generate(root, gpus, 24, interval, 8)
    telemetry.ingest(db, telemetry.list_landing(tele.root))
    holders, _ = telemetry.process_workloads(db, cfg)
    return tele.samples, holders


def setup(db: Path, cfg: Config) -> None:
    prepare_warehouse(db, cfg, loaded=(gateway.REQUESTS, nvml.GPU_SAMPLES, nvml.PROCESSES))


# ---------------------------------------------------------------------------------------------
# Agreement
# ---------------------------------------------------------------------------------------------


def by_model_team(totals: Totals) -> dict[tuple[str, str], tuple[int, ...]]:
    out: dict[tuple[str, str], np.ndarray] = {}
    for (m, t, _), v in totals.items():
        out[(m, t)] = out.get((m, t), 0) + np.array(v, np.int64)
    return {k: tuple(int(x) for x in v) for k, v in out.items()}


def differences(a: dict, b: dict) -> list[str]:
    return [f"{k}: {a.get(k)} vs {b.get(k)}" for k in sorted(set(a) | set(b), key=str) if a.get(k) != b.get(k)]


def compare(db: Path, ref: Totals, gw: Gateway) -> tuple[bool, list[str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        raw, attributed, unassigned = con.execute("""
            select (select count(*) from raw.gateway_requests),
                   (select count(*) from intermediate.int_requests_attributed),
                   (select coalesce(sum(requests), 0) from intermediate.int_request_deployments
                    where workload is null)""").fetchone()  # rows are request groups
        hourly = {(m, t, h): tuple(int(x) for x in v) for m, t, h, *v in con.execute("""
            select model, team, hour_start, sum(requests), sum(input_tokens), sum(coalesce(cached_input_tokens, 0)),
                   sum(output_tokens)
            from intermediate.int_inference_allocation group by all""").fetchall()}
        daily = {(m, t): tuple(int(x) for x in v) for m, t, *v in con.execute("""
            select model, team, sum(requests), sum(input_tokens), sum(coalesce(cached_input_tokens, 0)),
                   sum(output_tokens)
            from marts.unit_economics_daily group by all""").fetchall()}
        costs = con.execute("""
            select model, team, sum(inference_cost), sum(idle_deployed_cost), sum(fully_loaded_cost)
            from marts.unit_economics_daily group by all order by 1, 2""").fetchall()
        cost = {(m, t): (float(a), float(b), float(c)) for m, t, a, b, c in costs}
    ref_daily = by_model_team(ref)
    hourly_off, daily_off = differences(hourly, ref), differences(daily, ref_daily)
    truth_off = differences(ref_daily, gw.totals)

    def first(off: list[str]) -> str:
        return "".join(f"\n    {d}" for d in off[:5])

    checks = [
        (raw == gw.requests and attributed == gw.requests,
         f"requests: generated {gw.requests:,}, raw.gateway_requests {raw:,}, int_requests_attributed {attributed:,}"),
        (not hourly_off, f"per model x team x hour ({len(ref):,} cells): int_inference_allocation = reference for "
                         f"requests, input, cached and output tokens{first(hourly_off)}"),
        (not daily_off,
         f"per model x team ({len(ref_daily)} cells): unit_economics_daily = reference{first(daily_off)}"),
        (not truth_off, f"reference = the generator's own totals{first(truth_off)}"),
    ]
    lines = [f"{'OK      ' if ok else 'MISMATCH'} {line}" for ok, line in checks]
    lines.append(f"requests of the model no deployment serves (kept without one): {unassigned:,}")
    rows = []
    for (m, t), v in sorted(ref_daily.items()):
        p = daily.get((m, t))
        c = cost.get((m, t), (0.0, 0.0, 0.0))
        rows.append((m, t, f"{v[0]:,}", f"{v[1]:,}", f"{v[2]:,}", f"{v[3]:,}", "=" if p == v else "DIFFERS",
                     f"{c[0]:,.2f}", f"{c[2]:,.2f}"))
    for (m, t), c in sorted(cost.items()):  # idle deployments and teams without requests
        if (m, t) not in ref_daily:
            rows.append((m, t, "", "", "", "", "", f"{c[0]:,.2f}", f"{c[2]:,.2f}"))
    lines.append("\n" + table(("model", "team", "requests", "input tokens", "cached", "output tokens", "pipeline",
                               "inference $", "fully loaded $"), rows))
    return all(ok for ok, _ in checks), lines


# ---------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000_000, help="requests in the day")
    parser.add_argument("--files-per-hour", type=int, default=1, help="gateway files per hour of the day")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--data", type=Path, default=DATA, help="where generated files are cached")
    parser.add_argument("--regenerate", action="store_true", help="generate the files even if cached")
    parser.add_argument("--fleet-gpus", type=int, default=32, help="GPUs of the fleet that serves the models")
    parser.add_argument("--fleet-interval", type=int, default=30, help="seconds between the fleet's samples")
    add_workdir_options(parser, "DuckDB, dbt logs")
    args = parser.parse_args()
    if args.requests <= 0 or args.files_per_hour <= 0 or args.fleet_gpus <= 0:
        parser.error("--requests, --files-per-hour and --fleet-gpus must be positive")
    if args.fleet_interval <= 0 or 3600 % args.fleet_interval:
        parser.error("--fleet-interval must divide 3600")
    with workdir(args.workdir, args.keep) as work:
        return bench(work, args)


def bench(work: Path, args: argparse.Namespace) -> int:
    quiet = Quiet()
    print(f"{load_average()} at start", flush=True)
    (gw, cached), gen = measure("generation", lambda: cached_or_generate(
        args.data, args.requests, args.files_per_hour, args.seed, args.regenerate))
    print(f"{'cached' if cached else 'generated'}: {gw.requests:,} requests in {len(gw.files)} files under "
          f"{gw.root}: {gw.bytes / 2**20:,.1f} MiB gzip, {gw.uncompressed / 2**20:,.0f} MiB of JSON "
          f"({gw.uncompressed / gw.requests:,.0f} bytes a line); generated in {gw.seconds:.1f} s "
          f"({gw.requests / gw.seconds:,.0f} requests/s, not measured below)", flush=True)
    warm_page_cache(gw.files)

    fleet = telemetry.Fleet.build(np.random.default_rng(2026), args.fleet_gpus, 8)  # as telemetry.generate builds it
    cfg = bench_config(fleet)
    db = work / "warehouse.duckdb"
    ref_totals, ref = measure("reference: read_ndjson -> tokens by model x team x hour",
                              lambda: reference(gw.files, cfg), release_arrow=True)
    print(f"reference done in {ref.seconds:.1f} s", flush=True)
    (samples, holders), fleet_stage = measure(
        "fleet: NVML day + process_workloads (set-up)",
        lambda: fleet_setup(db, work / "telemetry", args.fleet_gpus, args.fleet_interval, cfg))
    print(f"fleet: {args.fleet_gpus} GPUs on {len(fleet.hosts)} hosts, {samples:,} samples, {holders} holder "
          f"signatures, in {fleet_stage.seconds:.1f} s", flush=True)
    files, listing = measure("list files", lambda: list_files([LocalLanding(gw.root)], gateway.FILE_SUFFIXES))
    times = LoadTimes()
    loaded, load = measure("load_files (DuckDB batches) -> raw", lambda: ingest_gateway(db, files, times),
                           release_arrow=True)
    print(f"ingestion done in {listing.seconds + load.seconds:.1f} s", flush=True)
    _, prep = measure(SETUP, lambda: setup(db, cfg))
    child, dbt = measure(f"dbt {args.dbt} " + " ".join(SELECT), lambda: run_dbt(db, work, args.dbt, SELECT))
    dbt.peak_rss, dbt.cpu_seconds = child.peak_rss, child.cpu_seconds
    ingest_total = Stage("  ingest total (list + load)", listing.seconds + load.seconds, None)
    total = Stage("pipeline total (ingest + config + dbt)", listing.seconds + load.seconds + prep.seconds + dbt.seconds,
                  None)

    rows = []
    for s in (ref, fleet_stage, listing, load, ingest_total, prep, dbt, total):
        rate = "" if s in (prep, fleet_stage) else f"{gw.requests / s.seconds:,.0f}"
        rss = gib(s.peak_rss) if s.peak_rss else ""
        rows.append((s.name, f"{s.seconds:.2f}", rate, f"{s.seconds / ref.seconds:.2f}x", rss))
    print()
    print(table(("stage", "wall s", "requests/s", "vs reference", "peak RSS"), rows))
    stages = [gen, ref, fleet_stage, listing, load, prep]
    print(f"\npeak RSS: this process {gib(own_peak(stages))} (generation {gib(gen.peak_rss)}, reference "
          f"{gib(ref.peak_rss)}, load {gib(load.peak_rss)}); dbt child {gib(dbt.peak_rss)}, "
          f"{dbt.cpu_seconds:.1f} s CPU in {dbt.seconds:.1f} s wall")
    print(f"DuckDB warehouse {mib(db.stat().st_size)}; {loaded.requests:,} rows from {loaded.files} files")
    print(times.line(load.seconds))
    print(dbt_node_line(work, 8))
    ok, lines = compare(db, ref_totals, gw)
    print("\n".join(lines))
    print(f"{load_average()} at end; {quiet.report()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
