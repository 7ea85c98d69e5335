"""The demo fleet's GPU telemetry, written as gpuledger's NVML collector writes it.

One JSON line per GPU per sample (every 10 s), one gzip file per host and hour. The energy
counter is NVML's: millijoules, monotonic, running on while the collector is down.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

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
    for wi, w in enumerate(plan.workloads):
        mask = holder == wi
        if not mask.any():
            continue
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


def _gzip(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0, compresslevel=1) as gz:
        gz.write(text.encode())
    return path


def write_host(plan: Plan, inst: Instance, series: list[GpuSeries], root: Path, fmt: str = "nvml") -> list[Path]:
    """One host's telemetry, one file (or, for nvidia-smi, a pair) per hour, in the tool's format."""
    mem_rng = rng_for(plan.seed, f"memory/{inst.resource_id}")
    written = []
    for hour in range(plan.hours):
        if hour in inst.outage_hours:  # the collector was down
            continue
        samples = _samples(plan, inst, series, hour, mem_rng)
        t0 = plan.hour_start(hour)
        folder = root / inst.host / f"{t0:%Y-%m-%d}"
        if fmt == "nvml":
            written.append(_gzip(folder / nvml_file_name(inst.host, t0), _nvml(plan, inst, samples)))
        elif fmt == "nvidia-smi":
            gpus, apps = _nvidia_smi(plan, inst, samples)
            written.append(_gzip(folder / f"nvidia-smi-gpu-{inst.host}-{t0:%Y%m%dT%H}.csv.gz", gpus))
            written.append(_gzip(folder / f"nvidia-smi-apps-{inst.host}-{t0:%Y%m%dT%H}.csv.gz", apps))
        else:
            written.append(_gzip(folder / f"dcgm-{inst.host}-{t0:%Y%m%dT%H}.prom.gz", _dcgm(plan, inst, samples)))
    return written
