"""The demo fleet's GPU telemetry, written as gpuledger's NVML collector writes it.

One JSON line per GPU per sample (every 10 s), one gzip file per host and hour. The energy
counter is NVML's: millijoules, monotonic, running on while the collector is down.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from ingest.demo_fleet import arrow_text
from ingest.demo_fleet.plan import IDLE, SAMPLE_SECONDS, SAMPLES_PER_HOUR, Instance, Plan, rng_for
from ingest.nvml import RESERVED_MEMORY_BYTES, WORKLOAD_ENV_VAR, nvml_file_name


@dataclass
class GpuSeries:
    """One GPU's samples over the whole window (the collector's view, outages included)."""

    holder: np.ndarray  # workload index or IDLE, per sample
    util: np.ndarray  # percent
    power_w: np.ndarray
    energy_mj: np.ndarray  # the NVML counter after each sample


def gpu_series(plan: Plan, inst: Instance, gpu: int, load: dict[tuple[int, int], float]) -> GpuSeries:
    """Utilisation follows the work: a deployment by its request load that hour, jobs near full."""
    rng = rng_for(plan.seed, f"telemetry/{inst.resource_id}/{gpu}")
    holder = inst.holders[gpu]
    n = holder.size
    hour = np.arange(n) // SAMPLES_PER_HOUR
    util = np.zeros(n)
    for wi in np.unique(holder).tolist():  # only the workloads that hold this GPU: fleets have hundreds
        if wi == IDLE:
            continue
        w = plan.workloads[wi]
        mask = holder == wi
        if w.spec.kind == "inference":
            hourly = np.array([load.get((wi, h), 0.0) for h in range(plan.hours)])
            util[mask] = np.where(hourly[hour[mask]] > 0, 15 + 80 * np.minimum(hourly[hour[mask]], 1.0), 0.5)
        else:
            util[mask] = 95 if w.spec.kind == "training" else 80
    util = np.clip(np.round(util + rng.normal(0, 3, n) * (util > 1)), 0, 100)
    it = inst.itype
    held = holder != IDLE
    power = it.gpu_idle_w + (it.gpu_tdp_w - it.gpu_idle_w) * (util / 100) ** 0.9
    power = np.where(held & (util < 1), it.gpu_idle_w * 1.8, power)  # memory held, no kernels running
    power = np.round(np.minimum(power + rng.normal(0, 2, n), it.gpu_tdp_w), 3)
    energy = int(rng.integers(10**9, 5 * 10**9)) + np.cumsum(np.round(power * SAMPLE_SECONDS * 1000).astype(np.int64))
    return GpuSeries(holder, util.astype(np.int64), power, energy)


def _process(plan: Plan, inst: Instance, wi: int, gpu: int, mem: int) -> dict:
    w = plan.workloads[wi]
    return {
        "pid": 4000 + 97 * wi + gpu,
        "name": w.spec.process_name,
        "used_gpu_memory_bytes": mem - RESERVED_MEMORY_BYTES,
        "container_id": "containerd://" + hashlib.sha256(f"{inst.host}/{w.name}".encode()).hexdigest(),
        "pod_uid": None,
        "env": {WORKLOAD_ENV_VAR: w.name} if w.spec.kind == "inference" else {},
    }


@dataclass(frozen=True)
class Sample:
    ts: datetime
    gpu: int
    holder: int  # workload index or IDLE
    mem_used: int
    util: int
    power_w: float
    energy_mj: int


def _samples(plan: Plan, inst: Instance, series: list[GpuSeries], hour: int,
             mem_rng: np.random.Generator) -> Iterator[Sample]:
    t0 = plan.hour_start(hour)
    for s in range(hour * SAMPLES_PER_HOUR, (hour + 1) * SAMPLES_PER_HOUR):
        ts = t0 + timedelta(seconds=(s - hour * SAMPLES_PER_HOUR) * SAMPLE_SECONDS)
        for gpu, gs in enumerate(series):
            wi = int(gs.holder[s])
            mem = RESERVED_MEMORY_BYTES
            if wi != IDLE:
                mem = int(inst.itype.gpu_memory_bytes * (0.86 + 0.04 * mem_rng.random()))
            yield Sample(ts, gpu, wi, mem, int(gs.util[s]), float(gs.power_w[s]), int(gs.energy_mj[s]))


def _nvml(plan: Plan, inst: Instance, samples: Iterator[Sample]) -> str:
    it = inst.itype
    rows = []
    for x in samples:
        rows.append(json.dumps({
            "ts": f"{x.ts:%Y-%m-%dT%H:%M:%S}.000Z", "host": inst.host, "resource_id": inst.resource_id,
            "gpu_index": x.gpu, "gpu_uuid": inst.gpu_uuid(x.gpu), "name": it.gpu_name,
            "mem_total_bytes": it.gpu_memory_bytes, "mem_used_bytes": x.mem_used, "util_gpu_pct": x.util,
            "util_mem_pct": int(x.util * 0.4), "power_usage_mw": int(x.power_w * 1000),
            "total_energy_mj": x.energy_mj, "temp_c": int(35 + x.util * 0.4),
            "sm_clock_mhz": 1980 if x.util > 1 else 345,
            "processes": [] if x.holder == IDLE else [_process(plan, inst, x.holder, x.gpu, x.mem_used)],
        }, separators=(",", ":")))
    return "".join(r + "\n" for r in rows)


NVIDIA_SMI_GPU_HEADER = ("timestamp, index, uuid, name, utilization.gpu [%], utilization.memory [%], "
                         "memory.total [MiB], memory.used [MiB], power.draw [W], temperature.gpu, clocks.sm [MHz]\n")
NVIDIA_SMI_APPS_HEADER = "timestamp, gpu_uuid, pid, process_name, used_gpu_memory [MiB]\n"


def _nvidia_smi(plan: Plan, inst: Instance, samples: Iterator[Sample]) -> tuple[str, str]:
    """What `nvidia-smi --query-gpu=... --format=csv -l 10` and `--query-compute-apps` print."""
    it = inst.itype
    gpus, apps = [NVIDIA_SMI_GPU_HEADER], [NVIDIA_SMI_APPS_HEADER]
    for x in samples:
        stamp = f"{x.ts:%Y/%m/%d %H:%M:%S}.000"
        uuid = inst.gpu_uuid(x.gpu)
        gpus.append(f"{stamp}, {x.gpu}, {uuid}, {it.gpu_name}, {x.util} %, {int(x.util * 0.4)} %, "
                    f"{it.gpu_memory_bytes >> 20} MiB, {x.mem_used >> 20} MiB, {x.power_w:.2f} W, "
                    f"{int(35 + x.util * 0.4)}, {1980 if x.util > 1 else 345} MHz\n")
        if x.holder != IDLE:
            proc = _process(plan, inst, x.holder, x.gpu, x.mem_used)
            apps.append(f"{stamp}, {uuid}, {proc['pid']}, {proc['name']}, "
                        f"{proc['used_gpu_memory_bytes'] >> 20} MiB\n")
    return "".join(gpus), "".join(apps)


def _dcgm(plan: Plan, inst: Instance, samples: Iterator[Sample]) -> str:
    """dcgm-exporter scrapes, with Prometheus timestamps, and the holding pod's labels."""
    it = inst.itype
    lines = []
    for x in samples:
        labels = (f'gpu="{x.gpu}",UUID="{inst.gpu_uuid(x.gpu)}",device="nvidia{x.gpu}",modelName="{it.gpu_name}",'
                  f'Hostname="dcgm-exporter-{inst.host}"')
        if x.holder != IDLE:
            labels += f',container="server",namespace="ml",pod="{plan.workloads[x.holder].name}-0"'
        ms = int(x.ts.timestamp() * 1000)
        total_mib, used_mib = it.gpu_memory_bytes >> 20, x.mem_used >> 20
        lines += [
            f"DCGM_FI_DEV_GPU_UTIL{{{labels}}} {x.util} {ms}",
            f"DCGM_FI_DEV_POWER_USAGE{{{labels}}} {x.power_w:.3f} {ms}",
            f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{labels}}} {x.energy_mj} {ms}",
            f"DCGM_FI_DEV_FB_USED{{{labels}}} {used_mib} {ms}",
            f"DCGM_FI_DEV_FB_FREE{{{labels}}} {total_mib - used_mib} {ms}",
        ]
    return "".join(line + "\n" for line in lines)


def _gzip(path: Path, text: str | bytes | memoryview) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0, compresslevel=1) as gz:
        gz.write(text.encode() if isinstance(text, str) else text)
    return path


# --- NVML lines a column at a time -------------------------------------------------------------------

# Stand-ins for the values of a line, so that the constant text between them is json.dumps' own
_TS = "@@ts@@"
_FIELDS = ("mem_used_bytes", "util_gpu_pct", "util_mem_pct", "power_usage_mw", "total_energy_mj", "temp_c",
           "sm_clock_mhz")
_SENTINELS = [7_300_000_000_000_000_001 + i for i in range(len(_FIELDS) + 1)]  # the last: the process's memory


def _nvml_pieces(plan: Plan, inst: Instance, gpu: int, holder: int) -> list[str]:
    """The text of one GPU's line (with this holder) around its 9 values: ts, the 7 fields, the process's
    memory; 10 pieces (a line without a process has an empty slot for its memory)."""
    it = inst.itype
    line = {"ts": _TS, "host": inst.host, "resource_id": inst.resource_id, "gpu_index": gpu,
            "gpu_uuid": inst.gpu_uuid(gpu), "name": it.gpu_name, "mem_total_bytes": it.gpu_memory_bytes,
            **dict(zip(_FIELDS, _SENTINELS, strict=False)), "processes": []}
    if holder != IDLE:
        proc = _process(plan, inst, holder, gpu, RESERVED_MEMORY_BYTES)
        line["processes"] = [{**proc, "used_gpu_memory_bytes": _SENTINELS[-1]}]
    rest = json.dumps(line, separators=(",", ":")) + "\n"
    head, rest = rest.split(_TS)
    pieces = [head]
    for sentinel in _SENTINELS if holder != IDLE else _SENTINELS[:-1]:
        piece, rest = rest.split(str(sentinel))
        pieces.append(piece)
    return [*pieces, rest] if holder != IDLE else [*pieces, rest, ""]


def _nvml_lines(plan: Plan, inst: Instance, series: list[GpuSeries], hours: list[int],
                mem_rng: np.random.Generator) -> tuple[memoryview, np.ndarray]:
    """The lines of these hours' files, in the order _nvml writes them (sample by sample, GPU by GPU),
    and the offset of each hour's first line in the bytes (one more than hours)."""
    it = inst.itype
    gpus = len(series)
    idx = (np.asarray(hours)[:, None] * SAMPLES_PER_HOUR + np.arange(SAMPLES_PER_HOUR)[None, :]).ravel()
    holder = np.stack([gs.holder[idx] for gs in series], axis=1)  # (sample, GPU): the file's order
    util = np.stack([gs.util[idx] for gs in series], axis=1)
    power = np.stack([gs.power_w[idx] for gs in series], axis=1)
    energy = np.stack([gs.energy_mj[idx] for gs in series], axis=1)
    held = holder != IDLE
    mem = np.full(holder.shape, RESERVED_MEMORY_BYTES, dtype=np.int64)
    # the same draws, in the same order, as one mem_rng.random() per held sample
    mem[held] = (it.gpu_memory_bytes * (0.86 + 0.04 * mem_rng.random(int(held.sum())))).astype(np.int64)

    combos, combo = np.unique((np.arange(gpus)[None, :] * 65536 + (holder.astype(np.int64) + 1)).ravel(),
                              return_inverse=True)
    pieces = [_nvml_pieces(plan, inst, int(c) // 65536, int(c) % 65536 - 1) for c in combos.tolist()]
    take = pa.array(combo.ravel())
    columns = [pa.array([p[k] for p in pieces], pa.large_string()).take(take) for k in range(10)]

    t0 = np.datetime64(plan.start.replace(tzinfo=None), "s")
    stamps = np.char.add(np.datetime_as_string(t0 + idx * SAMPLE_SECONDS, unit="s"), ".000Z")
    u = util.ravel()
    values = [
        arrow_text.text(stamps).take(pa.array(np.repeat(np.arange(idx.size), gpus))),
        arrow_text.text(mem.ravel()), arrow_text.text(u), arrow_text.text((u * 0.4).astype(np.int64)),
        arrow_text.text((power.ravel() * 1000).astype(np.int64)), arrow_text.text(energy.ravel()),
        arrow_text.text((35 + u * 0.4).astype(np.int64)), arrow_text.text(np.where(u > 1, 1980, 345)),
        arrow_text.text(np.where(held.ravel(), mem.ravel() - RESERVED_MEMORY_BYTES, 0)),
    ]
    # a line without a process has no memory to write: its slot is empty
    values[-1] = pa.compute.if_else(pa.array(held.ravel()), values[-1], arrow_text.lit(""))
    lines = arrow_text.join(*(x for pair in zip(columns, [*values, arrow_text.lit("")], strict=True) for x in pair))
    data, offsets = arrow_text.buffer(lines)
    return data, offsets[:: SAMPLES_PER_HOUR * gpus] - offsets[0]


def write_host(plan: Plan, inst: Instance, series: list[GpuSeries], root: Path, fmt: str = "nvml",
               pool: Executor | None = None) -> list[Path]:
    """One host's telemetry, one file (or, for nvidia-smi, a pair) per hour, in the tool's format.
    With a pool, the files are compressed and written on its threads."""
    mem_rng = rng_for(plan.seed, f"memory/{inst.resource_id}")
    written = []
    jobs = []

    def gz(path: Path, data: str | memoryview) -> None:
        written.append(path)
        if pool is None:
            _gzip(path, data)
        else:
            jobs.append(pool.submit(_gzip, path, data))

    if fmt == "nvml":  # a day's hours at a time
        seen = [h for h in range(plan.hours) if h not in inst.outage_hours]  # the collector was down
        for day in range(0, plan.hours, 24):
            hours = [h for h in seen if day <= h < day + 24]
            if not hours:
                continue
            data, cuts = _nvml_lines(plan, inst, series, hours, mem_rng)
            for i, hour in enumerate(hours):
                t0 = plan.hour_start(hour)
                gz(root / inst.host / f"{t0:%Y-%m-%d}" / nvml_file_name(inst.host, t0), data[cuts[i]:cuts[i + 1]])
            _wait(jobs)  # a day's buffer at a time
        return written
    for hour in range(plan.hours):
        if hour in inst.outage_hours:  # the collector was down
            continue
        samples = _samples(plan, inst, series, hour, mem_rng)
        t0 = plan.hour_start(hour)
        folder = root / inst.host / f"{t0:%Y-%m-%d}"
        if fmt == "nvidia-smi":
            gpus, apps = _nvidia_smi(plan, inst, samples)
            gz(folder / f"nvidia-smi-gpu-{inst.host}-{t0:%Y%m%dT%H}.csv.gz", gpus)
            gz(folder / f"nvidia-smi-apps-{inst.host}-{t0:%Y%m%dT%H}.csv.gz", apps)
        else:
            gz(folder / f"dcgm-{inst.host}-{t0:%Y%m%dT%H}.prom.gz", _dcgm(plan, inst, samples))
    _wait(jobs)
    return written


def _wait(jobs: list) -> None:
    for job in jobs:
        job.result()
    jobs.clear()


# --- what the ground truth needs of a GPU's samples ----------------------------------------------------


@dataclass(frozen=True)
class GpuEnergy:
    """A GPU's samples summed by hour and holder, as the ground truth reads them: small enough to keep
    for every GPU of a large fleet, where the samples are not."""

    hourly_kwh: np.ndarray  # metered kWh of each hour (the intervals' energy summed)
    # one entry per (hour, holder) with samples, by hour then holder, outage hours left out
    hour: np.ndarray
    holder: np.ndarray
    frac: np.ndarray  # the holder's share of the hour's samples
    kwh: np.ndarray  # the energy of the holder's samples


def energy_deltas(energy_mj: np.ndarray, outage_hours: frozenset[int]) -> np.ndarray:
    """Energy (kWh) of each sample's interval; 0 where the interval crosses a telemetry gap."""
    delta = np.diff(energy_mj, prepend=energy_mj[0]).astype(float) / MJ_PER_KWH
    delta[0] = 0.0
    for h in outage_hours:  # the first sample after a gap spans it: its energy is unknown
        after = (h + 1) * SAMPLES_PER_HOUR
        if after < delta.size:
            delta[after] = 0.0
    return delta


MJ_PER_KWH = 3.6e9


def gpu_energy(series: GpuSeries, outage_hours: frozenset[int]) -> GpuEnergy:
    delta = energy_deltas(series.energy_mj, outage_hours)
    hours = delta.size // SAMPLES_PER_HOUR
    by_hour = delta.reshape(hours, SAMPLES_PER_HOUR)
    hourly = by_hour.sum(axis=1)
    holders = series.holder.reshape(hours, SAMPLES_PER_HOUR)
    single = (holders.min(axis=1) == holders.max(axis=1)).tolist()
    hour, holder, frac, kwh = [], [], [], []
    for h in range(hours):
        if h in outage_hours:
            continue
        if single[h]:  # one holder all hour (most hours): its sum is the hour's
            hour.append(h)
            holder.append(int(holders[h, 0]))
            frac.append(1.0)
            kwh.append(float(hourly[h]))
            continue
        row, e = holders[h], by_hour[h]
        for wi in np.unique(row):
            mask = row == wi
            hour.append(h)
            holder.append(int(wi))
            frac.append(float(mask.sum() / SAMPLES_PER_HOUR))
            kwh.append(float(e[mask].sum()))
    return GpuEnergy(hourly, np.array(hour, dtype=np.int32), np.array(holder, dtype=np.int32), np.array(frac),
                     np.array(kwh))
