"""Benchmark: the NVML collector's own CPU cost per GPU sample, and whether its memory stays
bounded, against bare json.dumps + gzip of the same records.

    .venv/bin/python bench/collector.py [--gpus 8] [--processes 2] [--mig-gpus 1] [--mig-instances 3]
                                        [--cycles 10000] [--interval 10] [--workdir DIR] [--keep]

There is no GPU here, so NVML is the simulated one of tests/fake_nvml.py: **the time the NVIDIA
driver takes to answer NVML calls is not included** (on a real host each call is a driver
ioctl; that cost comes on top of everything below). What is included, all real: building the
records, reading /proc/PID/{comm,cgroup,environ} of each GPU process and filtering its
environment through the allow-list (the processes are real ones on this machine: sleeping
children with a Kubernetes-sized environment of ~60 variables), json.dumps of each record,
gzip level 6 with a sync flush after every cycle, the file writes, and hourly rotation (fsync,
rename). The fake's own Python calls are included too; they are replayed alone and printed so
they can be subtracted.

1. `ingest.collector.run` itself, for --cycles cycles at --interval seconds on a simulated
   clock (no sleeping: hours pass in milliseconds, so files rotate every 3600/interval cycles
   as they would), writing real hourly files. CPU is process time (user + system) around the
   call, and the collector's own `CollectorStats.cpu_seconds`; RSS is read every 1/10 of the
   run to show whether it grows.
2. The same cycles again step by step, to say where the time goes: `collector.sample` (records
   + /proc reads + fake NVML), json.dumps, `HourlyFiles.write` (gzip + flush + files); then
   `read_process` alone and the fake NVML calls alone, replayed as one cycle makes them.
3. The reference, in pass 2 on the same records: the same json.dumps lines joined and written
   to one plain `gzip.GzipFile` (level 6, no per-cycle flush, no rotation) - the least any
   writer of this format must spend.

Prints CPU per cycle and per GPU sample, the ratio to the reference, the CPU share of one core
at the given interval, and RSS at the checkpoints. Nothing here is a timed assertion.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from common import REPO, Quiet, add_workdir_options, current_rss, load_average, mib, peak_rss, table, workdir

sys.path.insert(0, str(REPO / "tests"))  # the simulated NVML lives with the tests
from fake_nvml import Device, FakeNvml, SteppedClock, SteppingStop

from ingest import collector
from ingest.collector import DEFAULT_ENV_ALLOWLIST, CollectorOptions, HourlyFiles, read_process, sample

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
HOST = "gpu-node-0001"
RESOURCE = "i-0123456789abcdef0"
GIB = 1 << 30


# ---------------------------------------------------------------------------------------------
# Real GPU processes: sleeping children with the environment a vLLM pod has
# ---------------------------------------------------------------------------------------------


def pod_environment(workload: str) -> dict[str, str]:
    """About what a Kubernetes vLLM pod's environment holds: ~60 variables, a few KiB, a secret."""
    env = {
        "PATH": "/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/root", "HOSTNAME": f"{workload}-7d9f8c6b5-x2k4q", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
        "NVIDIA_VISIBLE_DEVICES": "GPU-3f6a14db-8203-4078-af67-b3082eb1f6ac",
        "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
        "CUDA_VERSION": "12.4.1", "NCCL_VERSION": "2.21.5-1", "NCCL_DEBUG": "WARN", "NCCL_IB_DISABLE": "0",
        "LD_LIBRARY_PATH": "/usr/local/nvidia/lib:/usr/local/nvidia/lib64:/usr/local/cuda/lib64",
        "HF_HOME": "/models/.cache/huggingface", "HF_TOKEN": "hf_never_recorded_0123456789abcdef",
        "VLLM_SERVED_MODEL_NAME": "llama-3.1-70b-instruct", "GPULEDGER_WORKLOAD": workload,
        "VLLM_WORKER_MULTIPROC_METHOD": "spawn", "OMP_NUM_THREADS": "8", "TOKENIZERS_PARALLELISM": "false",
        "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": "tcp://10.96.0.1:443", "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp", "KUBERNETES_PORT_443_TCP_PORT": "443",
        "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
    }
    for i, service in enumerate(("gateway", "redis", "prometheus", "otel-collector", "postgres", "minio")):
        name, ip = service.upper().replace("-", "_"), f"10.96.{i + 10}.{20 + i}"
        env |= {f"{name}_SERVICE_HOST": ip, f"{name}_SERVICE_PORT": "8080", f"{name}_PORT": f"tcp://{ip}:8080",
                f"{name}_PORT_8080_TCP": f"tcp://{ip}:8080", f"{name}_PORT_8080_TCP_PROTO": "tcp"}
    return env


def start_processes(count: int) -> list[subprocess.Popen]:
    children = []
    for i in range(count):
        child = subprocess.Popen(["sleep", "86400"], env=pod_environment(f"chat-llama-70b-{i}"))
        children.append(child)
    for child in children:  # until each has exec'd (before, /proc shows this process's environment)
        while Path(f"/proc/{child.pid}/comm").read_text().strip() != "sleep":
            time.sleep(0.01)
    return children


def build_fleet(pids: list[int], gpus: int, processes: int, mig_gpus: int, mig_instances: int) -> FakeNvml:
    """`gpus` whole GPUs with `processes` processes each, and `mig_gpus` in MIG mode whose
    instances hold one process each; the processes are the real pids, round robin."""
    turn = iter(range(10**9))

    def pid() -> int:
        return pids[next(turn) % len(pids)]

    devices = [Device(f"GPU-{i:08x}-0000-4000-a000-000000000000", util=90, power_mw=650_000, memory_used=70 * GIB,
                      processes=[(pid(), 35 * GIB) for _ in range(processes)]) for i in range(gpus)]
    slices = [3, 2, 1, 1, 1, 1, 1][:mig_instances]
    for m in range(mig_gpus):
        instances = [Device(f"MIG-{m:04x}{j:04x}-0000-4000-a000-000000000000", util=None, power_mw=None,
                            energy_mj=None, slices=s, memory_total=s * 11 * GIB, memory_used=5 * GIB,
                            processes=[(pid(), 5 * GIB)]) for j, s in enumerate(slices)]
        devices.append(Device(f"GPU-{gpus + m:08x}-0000-4000-a000-000000000000", name="NVIDIA A100-SXM4-80GB",
                              util=None, mig=instances))
    return FakeNvml(devices)


class Readings:
    """Changes the fake GPUs' readings every cycle (utilisation, power, memory), as real ones
    change, so json.dumps and gzip see realistic variety; precomputed, so setting them is cheap."""

    def __init__(self, fake: FakeNvml, cycles: int, seed: int = 2026) -> None:
        rng = np.random.default_rng(seed)
        self.whole = [d for d in fake.devices if not d.mig]
        self.instances = [m for d in fake.devices for m in (d.mig or [])]
        n = len(self.whole)
        self.util = np.clip(rng.normal(80, 15, (cycles, n)), 0, 100).astype(int).tolist()
        self.power = (70_000 + np.array(self.util) * 6_300 + rng.integers(0, 5_000, (cycles, n))).tolist()
        self.memory = rng.integers(-(1 << 28), 1 << 28, (cycles, n + len(self.instances))).tolist()
        self.base = [d.memory_used for d in self.whole + self.instances]
        self.process_base = [[m for _, m in d.processes] for d in self.whole + self.instances]

    def apply(self, cycle: int) -> None:
        util, power, memory = self.util[cycle], self.power[cycle], self.memory[cycle]
        for j, d in enumerate(self.whole):
            d.util, d.power_mw = util[j], power[j]
        for j, d in enumerate(self.whole + self.instances):
            d.memory_used = self.base[j] + memory[j]
            d.processes = [(pid, m + memory[j] // len(d.processes)) for (pid, _), m in
                           zip(d.processes, self.process_base[j], strict=True)]


# ---------------------------------------------------------------------------------------------
# Pass 1: the collector's loop itself
# ---------------------------------------------------------------------------------------------


class ObservingStop(SteppingStop):
    """Also sets the next cycle's readings, and notes RSS every `every` cycles."""

    def __init__(self, clock: SteppedClock, readings: Readings, every: int) -> None:
        super().__init__(clock)
        self.readings, self.every, self.cycles = readings, every, 0
        self.rss: list[tuple[int, int | None]] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.cycles += 1
        if self.cycles % self.every == 0:
            self.rss.append((self.cycles, current_rss()))
        self.readings.apply(self.cycles)
        return super().wait(timeout)


def cpu_time() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class LoopResult:
    cycles: int
    samples: int
    cpu: float  # user + system, around the call
    own_cpu: float  # what the collector measured itself (process_time around sample + write)
    wall: float
    files: list[Path]
    rss_before: int | None
    rss: list[tuple[int, int | None]]
    peak: int | None


def run_collector(out: Path, fake: FakeNvml, cycles: int, interval: int) -> LoopResult:
    clock = SteppedClock(START)
    readings = Readings(fake, cycles)
    readings.apply(0)
    stop = ObservingStop(clock, readings, max(1, cycles // 10))
    options = CollectorOptions(out=out, interval=interval, host=HOST, resource_id=RESOURCE,
                               duration=(cycles - 1) * interval)
    rss_before = current_rss()
    cpu0, wall0 = cpu_time(), time.perf_counter()
    stats = collector.run(options, stop, fake, clock)
    cpu, wall = cpu_time() - cpu0, time.perf_counter() - wall0
    stop.rss.append((stats.cycles, current_rss()))
    return LoopResult(stats.cycles, stats.samples, cpu, stats.cpu_seconds, wall, list(stats.files), rss_before,
                      stop.rss, peak_rss())


# ---------------------------------------------------------------------------------------------
# Pass 2: step by step, with the reference writer on the same records
# ---------------------------------------------------------------------------------------------


@dataclass
class Steps:
    sample: float = 0.0
    dumps: float = 0.0
    write: float = 0.0
    reference_write: float = 0.0
    samples: int = 0
    reference_bytes: int = 0


def step_by_step(out: Path, reference_file: Path, fake: FakeNvml, cycles: int, interval: int) -> Steps:
    steps = Steps()
    files = HourlyFiles(out, HOST)
    clock = time.process_time
    readings = Readings(fake, cycles)
    with gzip.GzipFile(reference_file, "wb", compresslevel=6) as ref:
        for i in range(cycles):
            now = START + timedelta(seconds=i * interval)
            readings.apply(i)
            t0 = clock()
            records = sample(fake, now, HOST, RESOURCE, DEFAULT_ENV_ALLOWLIST)
            t1 = clock()
            lines = [json.dumps(r, separators=(",", ":")) for r in records]
            t2 = clock()
            files.write(now, lines)
            t3 = clock()
            ref.write("".join(line + "\n" for line in lines).encode())
            t4 = clock()
            steps.sample += t1 - t0
            steps.dumps += t2 - t1
            steps.write += t3 - t2
            steps.reference_write += t4 - t3
            steps.samples += len(records)
        t0 = clock()
        files.close()
        steps.write += clock() - t0
    steps.reference_bytes = reference_file.stat().st_size
    return steps


class Recorder:
    """Wraps the fake NVML to record the calls one cycle makes, to replay them alone."""

    def __init__(self, fake: FakeNvml) -> None:
        self._fake = fake
        self.calls: list[tuple[Callable, tuple]] = []

    def __getattr__(self, name: str):
        value = getattr(self._fake, name)
        if not callable(value) or isinstance(value, type):
            return value

        def call(*args):
            self.calls.append((value, args))
            return value(*args)

        return call


def fake_nvml_cost(fake: FakeNvml, cycles: int) -> tuple[float, int]:
    """Process time of the fake NVML calls of `cycles` cycles, replayed without the collector."""
    recorder = Recorder(fake)
    sample(recorder, START, HOST, RESOURCE, DEFAULT_ENV_ALLOWLIST)
    calls = recorder.calls
    t0 = time.process_time()
    for _ in range(cycles):
        for fn, args in calls:
            with contextlib.suppress(fake.NVMLError):
                fn(*args)
    return time.process_time() - t0, len(calls)


def proc_read_cost(pids: list[int], cycles: int) -> float:
    """Process time of `read_process` for every process entry of `cycles` cycles, alone."""
    t0 = time.process_time()
    for _ in range(cycles):
        for pid in pids:
            read_process(pid, DEFAULT_ENV_ALLOWLIST)
    return time.process_time() - t0


# ---------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=8, help="whole GPUs on the host")
    parser.add_argument("--processes", type=int, default=2, help="compute processes on each whole GPU")
    parser.add_argument("--mig-gpus", type=int, default=1, help="GPUs in MIG mode (one process per instance)")
    parser.add_argument("--mig-instances", type=int, default=3, choices=range(1, 8), metavar="1..7")
    parser.add_argument("--cycles", type=int, default=10_000, help="sample cycles per pass")
    parser.add_argument("--interval", type=int, default=10, help="seconds between cycles (simulated clock)")
    parser.add_argument("--real-processes", type=int, default=2, help="sleeping children the GPU processes are")
    add_workdir_options(parser, "the hourly files", dbt=False)
    args = parser.parse_args()
    if min(args.gpus + args.mig_gpus, args.cycles, args.interval, args.real_processes) <= 0:
        parser.error("--cycles, --interval, --real-processes and the GPU count must be positive")
    with workdir(args.workdir, args.keep, prefix="gpuledger-bench-collector-") as work:
        children = start_processes(args.real_processes)
        try:
            return bench(work, args, [c.pid for c in children])
        finally:
            for child in children:
                child.kill()
                child.wait()


def bench(work: Path, args: argparse.Namespace, pids: list[int]) -> int:
    quiet = Quiet()
    print(f"{load_average()} at start", flush=True)
    fleet = lambda: build_fleet(pids, args.gpus, args.processes, args.mig_gpus, args.mig_instances)  # noqa: E731
    per_cycle = len(sample(fleet(), START, HOST, RESOURCE, DEFAULT_ENV_ALLOWLIST))
    process_entries = args.gpus * args.processes + args.mig_gpus * args.mig_instances
    print(f"host: {args.gpus} GPUs x {args.processes} processes + {args.mig_gpus} MIG GPU(s) x {args.mig_instances} "
          f"instances (1 process each) = {per_cycle} GPU samples (records) and {process_entries} process entries per "
          f"cycle; {args.cycles:,} cycles per pass at {args.interval} s on a simulated clock "
          f"({args.cycles * args.interval / 3600:.1f} h of files)")
    print("NOT included: the NVIDIA driver's time to answer NVML calls (fake NVML, tests/fake_nvml.py).")
    print(f"included: record building, /proc/PID/comm,cgroup,environ reads of {len(pids)} real processes "
          f"({len(pod_environment('x'))}-variable environments) and allow-list filtering, json.dumps, gzip level 6 "
          "with a sync flush per cycle, file writes, hourly rotation (fsync + rename), and the fake's own calls "
          "(replayed alone below).\n", flush=True)

    loop = run_collector(work / "run", fleet(), args.cycles, args.interval)
    steps = step_by_step(work / "steps", work / "reference.jsonl.gz", fleet(), args.cycles, args.interval)
    fake_seconds, fake_calls = fake_nvml_cost(fleet(), args.cycles)
    entries = [pid for d in fleet().devices for dev in (d.mig or [d]) for pid, _ in dev.processes]
    proc_seconds = proc_read_cost(entries, args.cycles)

    samples, cycles = loop.samples, loop.cycles
    reference = steps.dumps + steps.reference_write
    ms, us = 1e3, 1e6

    def row(name: str, seconds: float, n_samples: int = samples, n_cycles: int = cycles) -> tuple:
        return (name, f"{seconds:.2f}", f"{seconds / n_cycles * ms:.3f}", f"{seconds / n_samples * us:.1f}",
                f"{seconds / reference:.2f}x", f"{seconds / n_cycles / args.interval:.4%}")

    print(table(("", "CPU s", "ms/cycle", "us/sample", "vs reference", "of a core"), [
        row("1. collector.run (user + sys CPU around it)", loop.cpu),
        row("   collector's own cpu_seconds (process_time)", loop.own_cpu),
        row("2. step by step: sample + dumps + write", steps.sample + steps.dumps + steps.write, steps.samples),
        row("   collector.sample (records, /proc, fake NVML)", steps.sample, steps.samples),
        row("     of which read_process, replayed alone", proc_seconds, steps.samples),
        row(f"     of which fake NVML ({fake_calls} calls/cycle), replayed", fake_seconds, steps.samples),
        row("   json.dumps", steps.dumps, steps.samples),
        row("   HourlyFiles.write (+ close)", steps.write, steps.samples),
        row("3. reference: json.dumps + plain GzipFile.write", reference, steps.samples),
        row("   of which GzipFile.write", steps.reference_write, steps.samples),
    ]))
    without_fake = loop.cpu - fake_seconds
    print(f"\ncollector.run: {cycles:,} cycles, {samples:,} samples in {loop.wall:.2f} s wall, "
          f"{loop.cpu / samples * us:.1f} us CPU per sample ({without_fake / samples * us:.1f} us without the fake "
          f"NVML's calls), {loop.cpu / reference:.2f}x the reference")
    size = sum(f.stat().st_size for f in loop.files)
    print(f"files: {len(loop.files)} hourly files, {size / 2**20:.2f} MiB gzip ({size / samples:.0f} bytes per sample; "
          f"reference, one stream without per-cycle flushes: {steps.reference_bytes / steps.samples:.0f} bytes per "
          "sample)")
    counts = Counter(f.name.count("-part") for f in loop.files)
    if counts.get(1):
        print(f"note: {counts[1]} files were written as -partN (a restart within the hour)")
    growth = [(c, r) for c, r in loop.rss if r is not None]
    if loop.rss_before is not None and growth:
        print(f"RSS: {mib(loop.rss_before)} before the loop; at cycles "
              + ", ".join(f"{c:,}: {mib(r)}" for c, r in growth)
              + f"; growth over the run {mib(growth[-1][1] - loop.rss_before)}, from the first checkpoint to the "
              f"last {mib(growth[-1][1] - growth[0][1])}; peak RSS of the process {mib(loop.peak)}")
    print(f"{load_average()} at end; {quiet.report()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
