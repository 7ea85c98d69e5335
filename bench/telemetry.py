"""Benchmark: one day of NVML collector files for a fleet ingested and rolled up to GPU-hours,
against one bare DuckDB query over the same files.

    .venv/bin/python bench/telemetry.py [--gpus 1000] [--hours 24] [--interval 10] [--gpus-per-host 8]
                                        [--workdir DIR] [--keep] [--dbt build|run]

1. Generates the files exactly as gpuledger's collector (ingest/collector.py) writes them: one
   gzip JSONL file per host and hour, `<host>/<YYYY-MM-DD>/nvml-<host>-<YYYYMMDDTHH>.jsonl.gz`,
   one line per GPU per sample in the collector's field order, millisecond timestamps a few ms
   after each interval boundary, a running energy counter, and the gzip stream sync-flushed
   after every sample cycle as the collector's `HourlyFiles.write` does. Hosts have 8 GPUs (H100
   or A100); most GPU-hours hold one compute process (vLLM-style deployments in Kubernetes pods,
   SLURM training jobs, a batch job), some two (time-sliced), some a notebook no workload rule
   matches, the rest are idle. Lines are built a whole hour at a time with pyarrow string
   kernels and compressed on two threads; generation is timed on its own, not measured below.
2. The reference: one DuckDB query (`read_ndjson` over every file, read once) that computes per
   GPU-hour what `int_gpu_hours_observed` computes: samples, coverage (samples x the GPU's median
   sampling interval), mean and peak utilisation, peak memory fraction, and energy as the sum of
   energy-counter rises since each GPU's previous sample (power x time where the counter went
   backwards or is missing, nothing across gaps over 60 s), and writes it to a table in its own
   DuckDB file. It has no MIG handling and no de-duplication: the generated fleet needs neither.
3. The pipeline, into a fresh DuckDB file, as the Dagster assets do it: `ingest_nvml` (list the
   landing folder with `LocalLanding`, then `load_files`, which reads the files in batches in
   DuckDB, into raw.nvml_gpu_samples and raw.nvml_processes); the config tables
   and the other sources' empty raw tables; `process_workloads` (holder signatures resolved
   against the config's workload rules); then, as a child process with the project's profile,
   `dbt build --select +int_gpu_hours_observed +int_gpu_hour_occupancy`. The next ingest run with
   no new file (list and load again: every file skipped) is timed on its own line, not in the total.
4. Prints the input (samples, process rows, files, bytes), wall time, samples/s and the ratio to
   the reference per stage, peak RSS of this process per stage and of the dbt child (wait4 on
   that child alone), the slowest dbt nodes, and whether int_gpu_hours_observed agrees with the
   reference (same GPU-hours and sample counts; utilisation, memory, coverage and energy within
   a small tolerance) and int_gpu_hour_occupancy accounts for every sample of every GPU-hour.

The reference runs before the pipeline so that its peak RSS is not inflated by what the loader
leaves behind; both read the files from a warm page cache (generation has just written them).
Nothing here is a timed assertion: the numbers only mean something as ratios within one run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from common import (
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

from ingest import nvml
from ingest.config import Config, Team, Workload, WorkloadMatch
from ingest.landing import LocalLanding
from ingest.load import list_files, load_files
from ingest.warehouse import CONFIG, connect, ensure_raw_table, replace_table
from ingest.workloads import resolve_all, signatures

DAY = datetime(2026, 11, 2)
SELECT = ("+int_gpu_hours_observed", "+int_gpu_hour_occupancy")
SETUP = "config + empty raw tables"

# ---------------------------------------------------------------------------------------------
# What the generated fleet runs
# ---------------------------------------------------------------------------------------------

# (GPU name, NVML total memory, idle W, max W, share of hosts)
GPU_MODELS = (
    ("NVIDIA H100 80GB HBM3", 85_520_809_984, 70.0, 700.0, 0.7),
    ("NVIDIA A100-SXM4-80GB", 85_899_345_920, 55.0, 400.0, 0.3),
)


@dataclass(frozen=True)
class Kind:
    """What holds a GPU: a workload (and how it runs), or a notebook no rule matches."""

    name: str
    kind: str  # inference, training, batch ("" for the unmatched notebook)
    team: str
    models: tuple[str, ...]
    runs_in: str  # k8s (container + pod uid), slurm (job env), bare
    util_mean: float
    memory_gib: float
    host_share: float  # share of hosts whose GPUs it mostly holds


KINDS = (
    Kind("chat-llama-70b", "inference", "assistant", ("llama-3.1-70b-instruct",), "k8s", 55, 71, 0.30),
    Kind("code-qwen-32b", "inference", "devtools", ("qwen2.5-coder-32b-instruct",), "k8s", 48, 66, 0.15),
    Kind("embed-bge", "inference", "search", ("bge-large-en-v1.5",), "k8s", 30, 9, 0.05),
    Kind("train-llama-ft", "training", "research", (), "slurm", 93, 72, 0.35),
    Kind("nightly-embeddings", "batch", "search", (), "k8s", 78, 40, 0.15),
)
NOTEBOOK = Kind("notebook", "", "", (), "bare", 12, 20, 0.0)
IDLE_SHARE = 0.12  # GPU-hours with no process at all
SHARED_SHARE = 0.05  # GPU-hours of a deployment's hosts that also hold embed-bge (time-slicing)
NOTEBOOK_SHARE = 0.03  # GPU-hours held by a notebook instead
JOB_HOURS = 6  # a training job on a host runs this long, then the next one starts


def bench_config() -> Config:
    """The workload rules the generated processes answer to (the notebook matches none)."""
    workloads = []
    for k in KINDS:
        match = (WorkloadMatch(env={"SLURM_JOB_NAME": f"{k.name}-*"}) if k.runs_in == "slurm"
                 else WorkloadMatch(env={"GPULEDGER_WORKLOAD": k.name}))
        workloads.append(Workload(name=k.name, kind=k.kind, owner_team=k.team, models=list(k.models), match=match))
    return Config(teams={k.team: Team() for k in KINDS}, workloads=workloads)


def hex_strings(rng: np.random.Generator, n: int, digits: int) -> list[str]:
    raw = rng.integers(0, 256, size=(n, (digits + 1) // 2), dtype=np.uint8)
    return [bytes(row).hex()[:digits] for row in raw]


def uuid_strings(rng: np.random.Generator, n: int) -> list[str]:
    return [f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}" for h in hex_strings(rng, n, 32)]


@dataclass
class Fleet:
    gpus: int
    per_host: int
    hosts: list[str]
    resource_ids: list[str]
    gpu_host: np.ndarray  # host of each GPU
    gpu_index: np.ndarray
    gpu_uuid: list[str]
    model: np.ndarray  # index into GPU_MODELS, per GPU
    host_kind: np.ndarray  # index into KINDS, per host
    containers: dict[tuple[int, str], tuple[str, str]]  # (host, workload) -> (container id, pod uid)

    @staticmethod
    def build(rng: np.random.Generator, gpus: int, per_host: int) -> Fleet:
        n_hosts = math.ceil(gpus / per_host)
        gpu_host = np.arange(gpus) // per_host
        host_model = rng.choice(len(GPU_MODELS), size=n_hosts, p=[m[4] for m in GPU_MODELS])
        host_kind = rng.choice(len(KINDS), size=n_hosts, p=[k.host_share for k in KINDS])
        containers = {}
        for h in range(n_hosts):
            for k in KINDS:
                if k.runs_in == "k8s":
                    cid, pod = hex_strings(rng, 1, 64)[0], uuid_strings(rng, 1)[0]
                    containers[(h, k.name)] = (cid, pod)
        return Fleet(
            gpus=gpus, per_host=per_host,
            hosts=[f"gpu-node-{h:04d}" for h in range(n_hosts)],
            resource_ids=[f"i-0{x}" for x in hex_strings(rng, n_hosts, 16)],
            gpu_host=gpu_host, gpu_index=np.arange(gpus) % per_host,
            gpu_uuid=[f"GPU-{u}" for u in uuid_strings(rng, gpus)],
            model=host_model[gpu_host], host_kind=host_kind, containers=containers,
        )

    def process(self, g: int, kind: Kind, hour: int, memory: int | str) -> dict:
        """One entry of a line's `processes`, as the collector records it."""
        h = int(self.gpu_host[g])
        block = hour // JOB_HOURS
        container = pod = None
        if kind.runs_in == "k8s":
            container, pod = self.containers[(h, kind.name)]
            env = {"GPULEDGER_WORKLOAD": kind.name}
            if kind.models:
                env["VLLM_SERVED_MODEL_NAME"] = kind.models[0]
            pid = 1000 + 97 * KINDS.index(kind) + int(self.gpu_index[g])
        elif kind.runs_in == "slurm":
            job = 400_000 + h * 10 + block
            env = {"SLURM_JOB_ID": str(job), "SLURM_JOB_NAME": f"{kind.name}-{block}"}
            pid = 20_000 + 131 * block + int(self.gpu_index[g])
        else:
            env, pid = {}, 30_000 + int(self.gpu_index[g])
        return {"pid": pid, "name": "python3", "used_gpu_memory_bytes": memory, "container_id": container,
                "pod_uid": pod, "env": env}


MEMORY_MARK = 918_273_645_546_372  # stands for a sample's process memory while a line's template is built


@dataclass
class HourPlan:
    """Who holds each GPU in one hour: per GPU, the busy flag, the mean utilisation, the first
    process's memory, the second's (0 if none), and the text around the first process's memory."""

    busy: np.ndarray
    util_mean: np.ndarray
    memory: np.ndarray
    second_memory: np.ndarray
    processes: int  # process entries per sample cycle, all GPUs
    before: pa.Array
    after: pa.Array

    @staticmethod
    def build(rng: np.random.Generator, fleet: Fleet, hour: int) -> HourPlan:
        n = fleet.gpus
        draw = rng.random(n)
        base = [KINDS[k] for k in fleet.host_kind[fleet.gpu_host]]
        busy = draw >= IDLE_SHARE
        util_mean = np.zeros(n)
        memory = np.zeros(n, np.int64)
        second_memory = np.zeros(n, np.int64)
        before, after = [], []
        processes = 0
        for g in range(n):
            if not busy[g]:
                before.append("[]")
                after.append("")
                continue
            kind = NOTEBOOK if draw[g] < IDLE_SHARE + NOTEBOOK_SHARE else base[g]
            mem = int(kind.memory_gib * (1 << 30) * (0.85 + 0.1 * rng.random()))
            entries = [fleet.process(g, kind, hour, MEMORY_MARK)]
            if kind.kind == "inference" and kind.name != "embed-bge" and draw[g] > 1 - SHARED_SHARE:
                other = KINDS[2]
                second_memory[g] = int(other.memory_gib * (1 << 30))
                entries.append(fleet.process(g, other, hour, int(second_memory[g])))
                mem = min(mem, 60 * (1 << 30))
            text = json.dumps(entries, separators=(",", ":"))
            first, rest = text.split(str(MEMORY_MARK), 1)
            before.append(first)
            after.append(rest)
            util_mean[g] = kind.util_mean
            memory[g] = mem
            processes += len(entries)
        return HourPlan(busy, util_mean, memory, second_memory, processes,
                        pa.array(before, pa.large_string()), pa.array(after, pa.large_string()))


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------


@dataclass
class Telemetry:
    root: Path
    files: list[Path]
    samples: int
    processes: int
    seconds: float
    uncompressed: int

    @property
    def bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)


def lit(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.large_string())


def gzip_file(path: Path, data: memoryview, cuts: np.ndarray) -> None:
    """The bytes as the collector's GzipFile leaves them: level 6, a sync flush after each cycle."""
    co = zlib.compressobj(6, zlib.DEFLATED, 31)
    parts = []
    for a, b in itertools.pairwise(cuts):
        parts.append(co.compress(data[a:b]))
        parts.append(co.flush(zlib.Z_SYNC_FLUSH))
    parts.append(co.flush())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(parts))


def generate(root: Path, gpus: int, hours: int, interval: int, per_host: int, seed: int = 2026) -> Telemetry:
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    fleet = Fleet.build(rng, gpus, per_host)
    cycles = 3600 // interval
    n_hosts = len(fleet.hosts)
    # Lines in file order: host by host, cycle by cycle, GPU by GPU; `order` indexes the
    # (cycle, GPU) matrices the values are computed in.
    host_gpus = [np.flatnonzero(fleet.gpu_host == h) for h in range(n_hosts)]
    order = np.concatenate([(np.arange(cycles)[:, None] * gpus + g[None, :]).ravel() for g in host_gpus])
    line_gpu = order % gpus
    line_cycle = order // gpus
    line_stamp = fleet.gpu_host[line_gpu] * cycles + line_cycle  # index into the (host, cycle) stamps
    file_lines = np.cumsum([0] + [len(g) * cycles for g in host_gpus])
    uuid_memory = pa.array([  # each GPU's constant middle of a line, up to its memory in use
        f'","host":"{fleet.hosts[fleet.gpu_host[g]]}","resource_id":"{fleet.resource_ids[fleet.gpu_host[g]]}",'
        f'"gpu_index":{fleet.gpu_index[g]},"gpu_uuid":"{fleet.gpu_uuid[g]}","name":"{GPU_MODELS[fleet.model[g]][0]}",'
        f'"mem_total_bytes":{GPU_MODELS[fleet.model[g]][1]},"mem_used_bytes":' for g in range(gpus)],
        pa.large_string()).take(pa.array(line_gpu))
    idle_w = np.array([GPU_MODELS[m][2] for m in fleet.model])
    max_w = np.array([GPU_MODELS[m][3] for m in fleet.model])
    counter = rng.integers(10**9, 10**11, size=gpus)  # mJ since the driver loaded
    files, samples, processes, uncompressed = [], 0, 0, 0
    with ThreadPoolExecutor(2) as pool:
        for hour in range(hours):
            start = DAY + timedelta(hours=hour)
            plan = HourPlan.build(rng, fleet, hour)
            shape = (cycles, gpus)
            util = np.where(plan.busy, np.clip(np.rint(plan.util_mean + 12 * rng.standard_normal(shape)), 0, 100), 0)
            util = util.astype(np.int64)
            first = np.where(plan.busy, plan.memory + rng.integers(-(1 << 28), 1 << 28, size=shape), 0)
            used = nvml.RESERVED_MEMORY_BYTES + first + plan.second_memory
            power_mw = np.rint((idle_w + util / 100 * (max_w - idle_w) + 4 * rng.standard_normal(shape)) * 1000)
            power_mw = power_mw.astype(np.int64)
            energy = counter + np.cumsum(power_mw * interval, axis=0)  # mW x s = mJ
            counter = energy[-1]
            # the collector stamps a cycle a few ms after the interval boundary, the same for every GPU
            start_ms = int(start.replace(tzinfo=UTC).timestamp() * 1000)
            stamps_ms = (start_ms + np.arange(cycles)[None, :] * interval * 1000
                         + rng.integers(1, 25, size=(n_hosts, cycles))).ravel()
            stamps = pc.strftime(pa.array(stamps_ms.astype("datetime64[ms]")), format="%Y-%m-%dT%H:%M:%SZ")

            def flat(m: np.ndarray) -> np.ndarray:
                return m.ravel()[order]

            u = flat(util)
            busy = plan.busy[line_gpu]
            lines = pc.binary_join_element_wise(
                lit('{"ts":"'), pc.cast(stamps, pa.large_string()).take(pa.array(line_stamp)), uuid_memory,
                text(flat(used)), lit(',"util_gpu_pct":'), text(u), lit(',"util_mem_pct":'), text((u * 2) // 5),
                lit(',"power_usage_mw":'), text(flat(power_mw)), lit(',"total_energy_mj":'), text(flat(energy)),
                lit(',"temp_c":'), text(35 + (u * 2) // 5), lit(',"sm_clock_mhz":'),
                text(np.where(u > 1, 1980, 345)), lit(',"processes":'), plan.before.take(pa.array(line_gpu)),
                pc.if_else(pa.array(busy), text(flat(first)), lit("")), plan.after.take(pa.array(line_gpu)),
                lit("}\n"), lit(""))
            offsets = np.frombuffer(lines.buffers()[1], np.int64)[lines.offset:lines.offset + len(lines) + 1]
            data = memoryview(lines.buffers()[2])
            jobs = []
            for h in range(n_hosts):
                path = (root / fleet.hosts[h] / f"{start:%Y-%m-%d}" / nvml.nvml_file_name(fleet.hosts[h], start))
                cuts = offsets[file_lines[h]:file_lines[h + 1] + 1:len(host_gpus[h])]
                jobs.append(pool.submit(gzip_file, path, data, cuts))
                files.append(path)
            for job in jobs:
                job.result()
            samples += len(lines)
            processes += plan.processes * cycles
            uncompressed += int(offsets[-1] - offsets[0])
            del lines, data
    return Telemetry(root, files, samples, processes, time.perf_counter() - t0, uncompressed)


# ---------------------------------------------------------------------------------------------
# The reference: one DuckDB query over the files
# ---------------------------------------------------------------------------------------------

REFERENCE_SQL = """
create table gpu_hours as
with samples as (
    select
        gpu_uuid, ts, resource_id, host, gpu_index, util_gpu_pct,
        cast(mem_used_bytes as double) / nullif(mem_total_bytes, 0) as memory_fraction,
        power_usage_mw / 1000.0 as power_w,
        total_energy_mj as energy_mj,
        lag(ts) over by_gpu as previous_ts,
        lag(total_energy_mj) over by_gpu as previous_energy_mj
    from read_ndjson({files}, compression = 'gzip', columns = {{
        ts: 'TIMESTAMP', host: 'VARCHAR', resource_id: 'VARCHAR', gpu_index: 'INTEGER', gpu_uuid: 'VARCHAR',
        mem_total_bytes: 'BIGINT', mem_used_bytes: 'BIGINT', util_gpu_pct: 'DOUBLE', power_usage_mw: 'BIGINT',
        total_energy_mj: 'BIGINT'}})
    window by_gpu as (partition by gpu_uuid order by ts)
),
with_energy as (
    select
        *,
        epoch(ts) - epoch(previous_ts) as seconds_since_previous,
        case
            when previous_ts is null or ts - previous_ts > interval '60 seconds' then 0
            when energy_mj is not null and previous_energy_mj is not null and energy_mj >= previous_energy_mj
                then (energy_mj - previous_energy_mj) / 3600000000.0
            when power_w is not null then power_w * (epoch(ts) - epoch(previous_ts)) / 3600000.0
            else 0
        end as energy_kwh
    from samples
),
intervals as (
    select gpu_uuid, median(seconds_since_previous) as interval_seconds
    from with_energy where seconds_since_previous > 0 group by gpu_uuid
)
select
    resource_id, host, gpu_index, w.gpu_uuid, date_trunc('hour', ts) as hour_start,
    count(*) as samples,
    least(1.0, count(*) * coalesce(max(interval_seconds), 0) / 3600.0) as coverage,
    avg(util_gpu_pct) / 100.0 as avg_utilization,
    max(util_gpu_pct) / 100.0 as peak_utilization,
    max(memory_fraction) as peak_memory_fraction,
    sum(energy_kwh) as energy_kwh
from with_energy w left join intervals using (gpu_uuid)
group by all
"""


def reference(files: Sequence[Path], db: Path) -> int:
    """Per GPU-hour figures straight from the files, into gpu_hours of a DuckDB file of its own."""
    con = duckdb.connect(str(db))
    try:
        con.execute(REFERENCE_SQL.format(files=sql_list(files)))
        return con.execute("select count(*) from gpu_hours").fetchone()[0]
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------
# The pipeline's stages
# ---------------------------------------------------------------------------------------------


def list_landing(root: Path) -> list:
    return list_files([LocalLanding(root)], nvml.FILE_SUFFIXES)


LOAD_PARTS = 8


@dataclass
class LoadPart:
    samples: int
    seconds: float


def ingest(db: Path, files: list, times: LoadTimes | None = None) -> list[LoadPart]:
    """What the ingest_nvml asset does with its listed files: `load_files` over them in listing
    order, called on each eighth of the list in turn to see whether loading slows as the raw tables
    grow, with its parts timed (`LoadTimes`)."""
    parts = []
    times = times or LoadTimes()
    reader = times.reader(lambda path, label, key: nvml.read_nvml_file(path, label))
    with connect(db) as con, times:
        for i in range(LOAD_PARTS):
            part = files[len(files) * i // LOAD_PARTS:len(files) * (i + 1) // LOAD_PARTS]
            t0 = time.perf_counter()
            report = load_files(con, "nvml", part, reader, progress=lambda _: None)
            parts.append(LoadPart(report.rows[nvml.GPU_SAMPLES], time.perf_counter() - t0))
            if report.quarantined:
                raise RuntimeError(f"the generated files had quarantined rows: {report.problems}")
        for name in (nvml.GPU_SAMPLES, nvml.PROCESSES):
            ensure_raw_table(con, name, nvml.GPU_SAMPLE_SCHEMA if name == nvml.GPU_SAMPLES else nvml.PROCESS_SCHEMA,
                             ["_source_file"])
    return parts


def ingest_again(db: Path, root: Path) -> int:
    """The next run with no new file: list, and skip every file as unchanged."""
    with connect(db) as con:
        report = load_files(con, "nvml", list_landing(root), lambda path, label, key: nvml.read_nvml_file(path, label),
                            progress=lambda _: None)
    if report.unchanged != report.seen:
        raise RuntimeError(f"a re-run loaded files again: {report.summary()}")
    return report.seen


def process_workloads(db: Path, cfg: Config) -> tuple[int, int]:
    """What the process_workloads asset does: resolve each distinct holder against the rules."""
    with connect(db) as con:
        holders = signatures(con)
        resolved = resolve_all(holders, cfg.workloads)
        replace_table(con, CONFIG, "process_workloads", resolved)
    return resolved.num_rows, resolved["workload"].null_count


# ---------------------------------------------------------------------------------------------
# Agreement
# ---------------------------------------------------------------------------------------------

TOLERANCE = 1e-6  # relative, on utilisation, memory, coverage and energy (the models sum decimals)


def compare(db: Path, ref_db: Path, telemetry: Telemetry, expected_hours: int) -> tuple[bool, list[str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute(f"attach '{ref_db}' as ref (read_only)")
        raw_samples, raw_processes = con.execute(
            "select (select count(*) from raw.nvml_gpu_samples), (select count(*) from raw.nvml_processes)"
        ).fetchone()
        (pipe, ref, both, samples_equal, util, peak, memory, coverage, energy, pipe_kwh, ref_kwh) = con.execute("""
            with p as (select * from intermediate.int_gpu_hours_observed),
                 r as (select * from ref.gpu_hours),
                 j as (select p.samples as ps, r.samples as rs,
                              abs(p.avg_utilization - r.avg_utilization) as util,
                              abs(p.peak_utilization - r.peak_utilization) as peak,
                              abs(p.peak_memory_fraction - r.peak_memory_fraction) as memory,
                              abs(p.coverage - r.coverage) as coverage,
                              abs(cast(p.energy_kwh as double) - r.energy_kwh) / greatest(abs(r.energy_kwh), 1e-9)
                                  as energy
                       from p join r using (gpu_uuid, hour_start, resource_id, host, gpu_index))
            select (select count(*) from p), (select count(*) from r), count(*), count(*) filter (where ps = rs),
                   max(util), max(peak), max(memory), max(coverage), max(energy),
                   (select sum(cast(energy_kwh as double)) from p), (select sum(energy_kwh) from r)
            from j""").fetchone()
        # every sample of every GPU-hour is held by a workload or idle, exactly once
        occupancy_hours, occupancy_off = con.execute(f"""
            select count(*), count(*) filter (where abs(held - o.samples) > {TOLERANCE})
            from (select gpu_uuid, hour_start, sum(held_samples) as held
                  from intermediate.int_gpu_hour_occupancy group by all) h
            join intermediate.int_gpu_hours_observed o using (gpu_uuid, hour_start)""").fetchone()
        shares = con.execute("""
            select coalesce(workload, '(idle)'),
                   sum(held_samples) / (select count(*) from intermediate.int_gpu_timestamps)
            from intermediate.int_gpu_hour_occupancy group by all order by 2 desc""").fetchall()

    checks = [
        (raw_samples == telemetry.samples and raw_processes == telemetry.processes,
         f"raw: {raw_samples:,} GPU sample rows (generated {telemetry.samples:,}), {raw_processes:,} process rows "
         f"(generated {telemetry.processes:,})"),
        (pipe == ref == both == expected_hours,
         f"GPU-hours: int_gpu_hours_observed {pipe:,}, reference {ref:,} (fleet x hours {expected_hours:,}), "
         f"matched on (GPU, hour, resource, host, index) {both:,}"),
        (samples_equal == both, f"sample counts equal in {samples_equal:,}/{both:,} GPU-hours"),
        (max(util, peak, memory, coverage) <= TOLERANCE,
         f"largest difference: avg utilisation {util:.2e}, peak utilisation {peak:.2e}, peak memory fraction "
         f"{memory:.2e}, coverage {coverage:.2e}"),
        (energy <= TOLERANCE and abs(pipe_kwh - ref_kwh) <= TOLERANCE * abs(ref_kwh),
         f"energy: {pipe_kwh:,.3f} kWh vs reference {ref_kwh:,.3f} kWh; largest relative difference in one "
         f"GPU-hour {energy:.2e}"),
        (occupancy_off == 0 and occupancy_hours == pipe,
         f"int_gpu_hour_occupancy: held samples = samples in {occupancy_hours - occupancy_off:,}/{pipe:,} GPU-hours"),
    ]
    lines = [f"{'OK      ' if ok else 'MISMATCH'} {line}" for ok, line in checks]
    lines.append("share of samples held: " + ", ".join(f"{w} {float(s):.1%}" for w, s in shares))
    return all(ok for ok, _ in checks), lines


# ---------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=1000, help="GPUs in the fleet")
    parser.add_argument("--hours", type=int, default=24, help="hours of telemetry (one file per host per hour)")
    parser.add_argument("--interval", type=int, default=10, help="seconds between samples (must divide 3600)")
    parser.add_argument("--gpus-per-host", type=int, default=8)
    add_workdir_options(parser, "files, DuckDB, dbt logs")
    args = parser.parse_args()
    if args.interval <= 0 or 3600 % args.interval:
        parser.error("--interval must divide 3600")
    if not 0 < args.hours <= 24 * 366 or args.gpus <= 0 or args.gpus_per_host <= 0:
        parser.error("--gpus, --hours and --gpus-per-host must be positive")
    with workdir(args.workdir, args.keep) as work:
        return bench(work, args)


def bench(work: Path, args: argparse.Namespace) -> int:
    quiet = Quiet()
    print(f"{load_average()} at start", flush=True)
    telemetry, gen = measure("generation", lambda: generate(work / "landing", args.gpus, args.hours, args.interval,
                                                            args.gpus_per_host))
    hosts = math.ceil(args.gpus / args.gpus_per_host)
    print(f"generated {telemetry.samples:,} GPU samples ({args.gpus:,} GPUs on {hosts:,} hosts, {args.hours} h at "
          f"{args.interval} s) with {telemetry.processes:,} process entries in {len(telemetry.files):,} files: "
          f"{telemetry.bytes / 2**20:,.1f} MiB gzip, {telemetry.uncompressed / 2**20:,.0f} MiB of JSON, in "
          f"{telemetry.seconds:.1f} s, {telemetry.samples / telemetry.seconds:,.0f} samples/s (not measured below)\n",
          flush=True)

    cfg = bench_config()
    db, ref_db = work / "warehouse.duckdb", work / "reference.duckdb"
    _, ref = measure("reference: read_ndjson -> GPU-hours", lambda: reference(telemetry.files, ref_db))
    print(f"reference done in {ref.seconds:.1f} s", flush=True)
    files, listing = measure("list files", lambda: list_landing(telemetry.root))
    times = LoadTimes()
    parts, load = measure("load_files (DuckDB batches) -> raw", lambda: ingest(db, files, times))
    print(f"ingestion done in {listing.seconds + load.seconds:.1f} s", flush=True)
    _, setup = measure(SETUP, lambda: prepare_warehouse(db, cfg, loaded=(nvml.GPU_SAMPLES, nvml.PROCESSES)))
    (holders, unmatched), resolve = measure("process_workloads", lambda: process_workloads(db, cfg))
    _, again = measure("re-run, no new file (list + load)", lambda: ingest_again(db, telemetry.root))
    child, dbt = measure(f"dbt {args.dbt} " + " ".join(SELECT), lambda: run_dbt(db, work, args.dbt, SELECT))
    dbt.peak_rss, dbt.cpu_seconds = child.peak_rss, child.cpu_seconds
    ingest_total = Stage("  ingest total (list + load)", listing.seconds + load.seconds, None)
    total = Stage("pipeline total", listing.seconds + load.seconds + setup.seconds + resolve.seconds + dbt.seconds,
                  None)

    rows = []
    for s in (ref, listing, load, ingest_total, setup, resolve, dbt, total, again):
        rate = "" if s is setup else f"{telemetry.samples / s.seconds:,.0f}"
        rss = gib(s.peak_rss) if s.peak_rss else ""
        rows.append((s.name, f"{s.seconds:.2f}", rate, f"{s.seconds / ref.seconds:.2f}x", rss))
    print(table(("stage", "wall s", "samples/s", "vs reference", "peak RSS"), rows))
    stages = [gen, ref, listing, load, setup, resolve, again]
    print(f"\npeak RSS: this process {gib(own_peak(stages))} (generation {gib(gen.peak_rss)}, reference "
          f"{gib(ref.peak_rss)}, load {gib(load.peak_rss)}); dbt child {gib(dbt.peak_rss)}, "
          f"{dbt.cpu_seconds:.1f} s CPU in {dbt.seconds:.1f} s wall")
    print(f"DuckDB files: warehouse {mib(db.stat().st_size)}, reference {mib(ref_db.stat().st_size)}; "
          f"process_workloads: {holders:,} holder signatures, {unmatched:,} matching no rule")
    print(times.line(load.seconds) + "; by eighth of the files, as the raw tables grow: "
          + ", ".join(f"{p.samples / p.seconds:,.0f}" for p in parts) + " samples/s")
    print(dbt_node_line(work))
    ok, lines = compare(db, ref_db, telemetry, args.gpus * args.hours)
    print("\n".join(lines))
    print(f"{load_average()} at end; {quiet.report()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
