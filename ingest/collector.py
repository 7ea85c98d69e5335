"""`gpuledger collect`: gpuledger's NVML collector, meant to run on every GPU host.

Every interval it writes one JSON line per GPU (and per MIG instance) in the format
`ingest.nvml` reads. Files rotate every hour; a file is written under a `.tmp` name and renamed
when complete, so ingestion never reads half a file. After a crash, the next start salvages the
complete lines of the leftover `.tmp` into a finished file. Memory stays bounded (lines stream
into gzip), SIGTERM stops it cleanly, and where NVML is missing it fails at once, saying so.

Only allow-listed environment variables of GPU processes are recorded (a model or job name),
never anything else from a process's environment.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from ingest.files import read_text_bytes
from ingest.nvml import WORKLOAD_ENV_VAR, nvml_file_name

log = logging.getLogger(__name__)

DEFAULT_ENV_ALLOWLIST = (WORKLOAD_ENV_VAR, "GPULEDGER_JOB", "VLLM_SERVED_MODEL_NAME", "MODEL_NAME", "SLURM_JOB_ID",
                         "SLURM_JOB_NAME")
TMP = ".tmp"
CONTAINER_ID = re.compile(r"([0-9a-f]{64})")
HOUR_IN_NAME = re.compile(r"-(\d{8}T\d{2})(?:-part\d+)?\.jsonl\.gz$")
POD_UID = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


class NvmlUnavailable(RuntimeError):
    """No NVIDIA driver or GPU here: the collector cannot run on this machine."""


def load_nvml() -> ModuleType:
    """pynvml, initialised; imported only here so nothing else needs a GPU to install or test."""
    try:
        import pynvml
    except ImportError:
        raise NvmlUnavailable("the nvidia-ml-py package is not installed (pip install nvidia-ml-py)") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        raise NvmlUnavailable(
            f"NVML is not available on this machine ({err}): the collector needs an NVIDIA driver and GPU. "
            "On hosts without one, use nvidia-smi or dcgm-exporter files, or the config's static mapping."
        ) from None
    return pynvml


# --- what /proc says about a GPU process ------------------------------------------------------

def parse_cgroup(text: str) -> tuple[str | None, str | None]:
    """(container id, Kubernetes pod uid) from /proc/PID/cgroup, cgroup v1 or v2, any runtime."""
    container = pod = None
    for line in text.splitlines():
        path = line.rsplit(":", 1)[-1]
        if container is None and (m := CONTAINER_ID.search(path)):
            container = m[1]
        if pod is None and (m := POD_UID.search(path)):
            pod = m[1].replace("_", "-")  # the systemd driver spells the uid with underscores
    return container, pod


def parse_environ(data: bytes, allowlist: tuple[str, ...]) -> dict[str, str]:
    """Only the allow-listed variables of a NUL-separated /proc/PID/environ."""
    env = {}
    for entry in data.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and name.decode(errors="replace") in allowlist:
            env[name.decode()] = value.decode(errors="replace")
    return env


@dataclass(frozen=True)
class ProcessInfo:
    name: str | None
    container_id: str | None
    pod_uid: str | None
    env: dict[str, str]


def read_process(pid: int, allowlist: tuple[str, ...], proc: Path = Path("/proc")) -> ProcessInfo:
    """What /proc tells about a GPU process; a process that vanished or is not ours to read gives nothing."""
    base = proc / str(pid)

    def read(name: str) -> bytes | None:
        try:
            return (base / name).read_bytes()
        except OSError:  # gone, or another user's process without the rights to read it
            return None

    comm, cgroup, environ = read("comm"), read("cgroup"), read("environ")
    container, pod = parse_cgroup(cgroup.decode(errors="replace")) if cgroup else (None, None)
    return ProcessInfo(comm.decode(errors="replace").strip() if comm else None, container, pod,
                       parse_environ(environ, allowlist) if environ else {})


# --- one sample of every GPU --------------------------------------------------------------------

def _value(fn: Callable[[], Any], nvml: ModuleType) -> Any:
    """A reading, or None where this GPU (or a MIG instance) does not support it."""
    try:
        return fn()
    except nvml.NVMLError:
        return None


def _processes(nvml: ModuleType, handle: Any, allowlist: tuple[str, ...]) -> list[dict]:
    running = _value(lambda: nvml.nvmlDeviceGetComputeRunningProcesses(handle), nvml) or []
    out = []
    for p in running:
        info = read_process(p.pid, allowlist)
        out.append({"pid": p.pid, "name": info.name, "used_gpu_memory_bytes": p.usedGpuMemory,
                    "container_id": info.container_id, "pod_uid": info.pod_uid, "env": info.env})
    return out


def _device_record(nvml: ModuleType, handle: Any, stamp: str, host: str, resource_id: str | None, index: int,
                   allowlist: tuple[str, ...]) -> dict:
    memory = _value(lambda: nvml.nvmlDeviceGetMemoryInfo(handle), nvml)
    util = _value(lambda: nvml.nvmlDeviceGetUtilizationRates(handle), nvml)
    return {
        "ts": stamp,
        "host": host,
        "resource_id": resource_id,
        "gpu_index": index,
        "gpu_uuid": _value(lambda: nvml.nvmlDeviceGetUUID(handle), nvml),
        "name": _value(lambda: nvml.nvmlDeviceGetName(handle), nvml),
        "mem_total_bytes": memory.total if memory else None,
        "mem_used_bytes": memory.used if memory else None,
        "util_gpu_pct": util.gpu if util else None,
        "util_mem_pct": util.memory if util else None,
        "power_usage_mw": _value(lambda: nvml.nvmlDeviceGetPowerUsage(handle), nvml),
        "total_energy_mj": _value(lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle), nvml),
        "temp_c": _value(lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU), nvml),
        "sm_clock_mhz": _value(lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM), nvml),
        "processes": _processes(nvml, handle, allowlist),
    }


def _mig_instances(nvml: ModuleType, handle: Any) -> Iterator[tuple[Any, int, int]]:
    """(MIG device handle, its compute slices, the GPU's slices) for each MIG instance, if MIG is on."""
    mode = _value(lambda: nvml.nvmlDeviceGetMigMode(handle), nvml)
    if not mode or mode[0] != nvml.NVML_DEVICE_MIG_ENABLE:
        return
    # the GPU's compute slices (7 on A100/H100, 4 on A30), as its own attributes report them
    total = _value(lambda: nvml.nvmlDeviceGetAttributes(handle).gpuInstanceSliceCount, nvml) or 7
    for i in range(_value(lambda: nvml.nvmlDeviceGetMaxMigDeviceCount(handle), nvml) or 0):
        mig = _value(lambda i=i: nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, i), nvml)
        slices = _value(lambda mig=mig: nvml.nvmlDeviceGetAttributes(mig).gpuInstanceSliceCount, nvml) if mig else None
        if slices is not None:  # an unused index, or an instance NVML cannot describe right now
            yield mig, slices, total


def sample(nvml: ModuleType, now: datetime, host: str, resource_id: str | None,
           allowlist: tuple[str, ...]) -> list[dict]:
    """One record per GPU, then one per MIG instance (holding the processes, with its slice count)."""
    stamp = f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}Z"
    records = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        gpu = _device_record(nvml, handle, stamp, host, resource_id, index, allowlist)
        records.append(gpu)
        for mig, slices, total in _mig_instances(nvml, handle):
            record = _device_record(nvml, mig, stamp, host, resource_id, index, allowlist)
            record |= {"parent_gpu_uuid": gpu["gpu_uuid"], "mig_slices": slices, "mig_total_slices": total,
                       "total_energy_mj": None, "power_usage_mw": None}  # energy and power belong to the GPU
            gpu["mig_mode"] = True
            records.append(record)
    return records


# --- files that are never half written -----------------------------------------------------------

class HourlyFiles:
    """gzip JSONL files per host and hour, written as `.tmp` and renamed once complete."""

    def __init__(self, out: Path, host: str) -> None:
        self.out, self.host = out, host
        self.hour: datetime | None = None
        self.tmp: Path | None = None
        self._gz: gzip.GzipFile | None = None
        self.finished: list[Path] = []

    def _final_name(self, hour: datetime) -> Path:
        folder = self.out / self.host / f"{hour:%Y-%m-%d}"
        name = nvml_file_name(self.host, hour)
        path, part = folder / name, 1
        while path.exists():  # a restart within the hour: the earlier part stays as it is
            part += 1
            path = folder / name.replace(".jsonl.gz", f"-part{part}.jsonl.gz")
        return path

    def write(self, now: datetime, lines: list[str]) -> None:
        hour = now.replace(minute=0, second=0, microsecond=0)
        if hour != self.hour:
            self.close()
            self.hour = hour
            final = self._final_name(hour)
            self.tmp = final.with_name(final.name + TMP)
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            self._gz = gzip.GzipFile(self.tmp, "ab", compresslevel=6)
        self._gz.write("".join(line + "\n" for line in lines).encode())
        self._gz.flush()  # complete lines reach the file: a crash loses at most the current write

    def close(self) -> None:
        if self._gz is None:
            return
        self._gz.close()
        final = self._final_name(self.hour)
        with self.tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, final)
        self.finished.append(final)
        self._gz = self.tmp = None

    def recover(self) -> list[Path]:
        """Finish what a crashed run left: its complete lines, in a properly closed file."""
        recovered = []
        for tmp in sorted((self.out / self.host).glob(f"*/*{TMP}")):
            data, damage = read_text_bytes(tmp, gzipped=True)
            complete = data[: data.rfind(b"\n") + 1]
            stem = tmp.name.removesuffix(TMP)
            hour = HOUR_IN_NAME.search(stem)
            final = self._final_name(datetime.strptime(hour[1], "%Y%m%dT%H")) if hour else tmp.with_name(stem)
            if complete:
                with gzip.open(final.with_name(final.name + ".recovering"), "wb") as f:
                    f.write(complete)
                os.replace(final.with_name(final.name + ".recovering"), final)
                recovered.append(final)
            tmp.unlink()
            log.warning("recovered %s from an unfinished file%s", final if complete else "nothing",
                        f" ({damage})" if damage else "")
        return recovered


# --- the loop ----------------------------------------------------------------------------------

@dataclass
class CollectorStats:
    samples: int = 0  # GPU (and MIG instance) records written
    cycles: int = 0
    cpu_seconds: float = 0.0
    files: list[Path] = field(default_factory=list)

    @property
    def cpu_ms_per_sample(self) -> float:
        return 1000 * self.cpu_seconds / self.samples if self.samples else 0.0


@dataclass(frozen=True)
class CollectorOptions:
    out: Path
    interval: float = 10.0
    host: str = field(default_factory=socket.gethostname)
    resource_id: str | None = None
    env_allowlist: tuple[str, ...] = DEFAULT_ENV_ALLOWLIST
    duration: float | None = None  # stop after this many seconds (tests, benchmarks)


def run(options: CollectorOptions, stop: threading.Event, nvml: ModuleType | None = None,
        clock: Callable[[], float] = time.time) -> CollectorStats:
    """Sample on interval boundaries until `stop` is set (SIGTERM) or `duration` has passed."""
    nvml = nvml or load_nvml()
    files = HourlyFiles(options.out, options.host)
    stats = CollectorStats(files=files.finished)
    stats.files += files.recover()
    began = clock()
    try:
        while not stop.is_set():
            now = datetime.fromtimestamp(clock(), UTC)
            cpu = time.process_time()
            records = sample(nvml, now, options.host, options.resource_id, options.env_allowlist)
            files.write(now, [json.dumps(r, separators=(",", ":")) for r in records])
            stats.cpu_seconds += time.process_time() - cpu
            stats.samples += len(records)
            stats.cycles += 1
            if options.duration is not None and clock() - began >= options.duration:
                break
            # wake on the next multiple of the interval, so samples of every host line up
            stop.wait(options.interval - (clock() % options.interval))
    finally:
        files.close()
        log.info("collector stopped: %d samples in %d cycles, %.3f ms CPU per sample", stats.samples,
                 stats.cycles, stats.cpu_ms_per_sample)
    return stats


def collect_until_signalled(options: CollectorOptions, nvml: ModuleType | None = None) -> CollectorStats:
    """Run until SIGTERM or SIGINT, then finish the current file and return."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return run(options, stop, nvml)
