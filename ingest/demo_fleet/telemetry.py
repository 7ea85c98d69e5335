"""The demo fleet's GPU telemetry, written as gpuledger's NVML collector writes it.

One JSON line per GPU per sample (every 10 s), one gzip file per host and hour. The energy
counter is NVML's: millijoules, monotonic, running on while the collector is down.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
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


def write_host(plan: Plan, inst: Instance, series: list[GpuSeries], root: Path) -> list[Path]:
    it = inst.itype
    mem_rng = rng_for(plan.seed, f"memory/{inst.resource_id}")
    written = []
    for hour in range(plan.hours):
        if hour in inst.outage_hours:
            continue
        t0 = plan.hour_start(hour)
        rows = []
        for s in range(hour * SAMPLES_PER_HOUR, (hour + 1) * SAMPLES_PER_HOUR):
            ts = t0 + timedelta(seconds=(s - hour * SAMPLES_PER_HOUR) * SAMPLE_SECONDS)
            stamp = f"{ts:%Y-%m-%dT%H:%M:%S}.000Z"
            for gpu, gs in enumerate(series):
                wi = int(gs.holder[s])
                mem = RESERVED_MEMORY_BYTES
                procs = []
                if wi != IDLE:
                    mem = int(it.gpu_memory_bytes * (0.86 + 0.04 * mem_rng.random()))
                    procs = [_process(plan, inst, wi, gpu, mem)]
                rows.append({
                    "ts": stamp,
                    "host": inst.host,
                    "resource_id": inst.resource_id,
                    "gpu_index": gpu,
                    "gpu_uuid": inst.gpu_uuid(gpu),
                    "name": it.gpu_name,
                    "mem_total_bytes": it.gpu_memory_bytes,
                    "mem_used_bytes": mem,
                    "util_gpu_pct": int(gs.util[s]),
                    "util_mem_pct": int(gs.util[s] * 0.4),
                    "power_usage_mw": int(gs.power_w[s] * 1000),
                    "total_energy_mj": int(gs.energy_mj[s]),
                    "temp_c": int(35 + gs.util[s] * 0.4),
                    "sm_clock_mhz": 1980 if gs.util[s] > 1 else 345,
                    "processes": procs,
                })
        path = root / inst.host / f"{t0:%Y-%m-%d}" / nvml_file_name(inst.host, t0)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0, compresslevel=1) as gz:
            gz.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode())
        written.append(path)
    return written
