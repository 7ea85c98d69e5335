"""What the benchmarks share: stage timing with this process's peak RSS, a child process's own
peak RSS and CPU time, running dbt the way the benchmarks do, an empty-but-complete warehouse,
and plain-text tables.

Peak RSS of this process is Linux's VmHWM, reset before each stage (writing 5 to
/proc/self/clear_refs), so each stage reports its own high-water mark; where that is not
possible a stage reports none and the process-wide ru_maxrss is the only figure. A child's peak
RSS and CPU time come from wait4() on that child alone, so one child's figures never mix with
another's (RUSAGE_CHILDREN would report the largest of all children waited for).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pyarrow as pa

from ingest import (
    aws_cur,
    azure,
    dcgm,
    engine_logs,
    focus,
    gateway,
    gcp_billing,
    litellm,
    nvidia_smi,
    nvml,
    oci,
    vllm_metrics,
)
from ingest.config import Config
from ingest.config_tables import CONFIG_TABLES
from ingest.load import ensure_aws_cur_view
from ingest.warehouse import CONFIG, connect, ensure_raw_table, replace_table, sql_string

REPO = Path(__file__).resolve().parent.parent
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
GIB = 1 << 30
MIB = 1 << 20

T = TypeVar("T")

# Every per-file raw table (scope column `_source_file`) that the dbt models read, by name. CUR
# is not here: raw.aws_cur is scoped by export and billing period (see bench/billing.py).
FILE_RAW_TABLES: dict[str, pa.Schema] = {
    gcp_billing.EXPORT: gcp_billing.EXPORT_SCHEMA,
    gcp_billing.CREDITS: gcp_billing.CREDIT_SCHEMA,
    focus.FOCUS: focus.FOCUS_FORMAT.schema,
    azure.AZURE: azure.AZURE_FORMAT.schema,
    oci.OCI: oci.OCI_FORMAT.schema,
    nvml.GPU_SAMPLES: nvml.GPU_SAMPLE_SCHEMA,
    nvml.PROCESSES: nvml.PROCESS_SCHEMA,
    nvidia_smi.GPU_SAMPLES: nvidia_smi.GPU_SAMPLE_SCHEMA,
    nvidia_smi.PROCESSES: nvidia_smi.PROCESS_SCHEMA,
    dcgm.SAMPLES: dcgm.SAMPLE_SCHEMA,
    gateway.REQUESTS: gateway.REQUEST_SCHEMA,
    litellm.SPEND_LOGS: litellm.SPEND_LOG_SCHEMA,
    engine_logs.ENGINE_REQUESTS: engine_logs.REQUEST_SCHEMA,
    engine_logs.ENGINE_STATS: engine_logs.STATS_SCHEMA,
    vllm_metrics.VLLM_METRICS: vllm_metrics.VLLM_METRIC_SCHEMA,
}


# ---------------------------------------------------------------------------------------------
# Timing and memory
# ---------------------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    seconds: float
    peak_rss: int | None  # bytes: this process's (or the stage's child's) high-water mark, where known
    cpu_seconds: float | None = None  # user + system CPU of the stage's child, where it ran in one


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_bytes(key: str) -> int | None:
    """A size field (kB) of this process's /proc/self/status in bytes, or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss() -> int | None:
    """This process's VmHWM in bytes, or None off Linux."""
    return _status_bytes("VmHWM")


def current_rss() -> int | None:
    """This process's VmRSS in bytes, or None off Linux."""
    return _status_bytes("VmRSS")


def maxrss(who: int = resource.RUSAGE_SELF) -> int:
    """ru_maxrss in bytes (Linux reports KiB)."""
    return resource.getrusage(who).ru_maxrss * 1024


def measure(name: str, fn: Callable[[], T], release_arrow: bool = False) -> tuple[T, Stage]:
    """Run fn, timing it, with this process's peak RSS during it alone. With `release_arrow`,
    first hand what earlier stages freed back to the OS: the reset high-water mark starts from
    the current RSS, and Arrow's allocator otherwise keeps (say) a generator's pages."""
    if release_arrow:
        pa.default_memory_pool().release_unused()
    resettable = reset_peak_rss()
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    return result, Stage(name, seconds, peak_rss() if resettable else None)


def own_peak(stages: Sequence[Stage]) -> int:
    """This process's peak over the run. Resetting VmHWM per stage also resets ru_maxrss, so it
    is the largest stage peak where stages were measured that way."""
    return max((s.peak_rss or 0 for s in stages), default=0) or maxrss()


@dataclass
class Child:
    returncode: int
    seconds: float
    peak_rss: int  # bytes, this child (and the descendants it waited for) alone
    cpu_seconds: float  # user + system


def run_child(args: Sequence[str], env: dict[str, str], log: Path) -> Child:
    """Run a command with stdout and stderr to `log`, and wait4() for it to get its own rusage."""
    t0 = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(list(args), env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for it again
    return Child(proc.returncode, seconds, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime)


# ---------------------------------------------------------------------------------------------
# dbt and the warehouse
# ---------------------------------------------------------------------------------------------


def run_dbt(db: Path, work: Path, command: str, select: Sequence[str]) -> Child:
    """`dbt <command> --select ...` on the warehouse `db`, with the project's profile, and its
    own target and log folders under `work` (the repository's dbt_project/target may be in use)."""
    env = {**os.environ, "GPULEDGER_DUCKDB_PATH": str(db), "DO_NOT_TRACK": "1"}
    args = [str(DBT), command, "--select", *select, "--profiles-dir", str(DBT_PROJECT),
            "--project-dir", str(DBT_PROJECT), "--target-path", str(work / "dbt_target"),
            "--log-path", str(work / "dbt_logs")]
    log = work / f"dbt_{command}.out"
    child = run_child(args, env, log)
    if child.returncode != 0:
        text = log.read_text(errors="replace")
        sys.stderr.write(text[-8000:])
        raise RuntimeError(f"dbt {command} failed (exit {child.returncode}); output in {log}")
    return child


def slowest_dbt_nodes(work: Path, count: int = 6) -> tuple[list[tuple[str, float]], float, float]:
    """The slowest dbt nodes, the sum of all nodes' time, and dbt's elapsed time (the rest is
    dbt starting up, parsing and compiling)."""
    results = json.loads((work / "dbt_target" / "run_results.json").read_text())
    nodes = sorted(((r["unique_id"], r["execution_time"]) for r in results["results"]), key=lambda x: -x[1])
    return nodes[:count], sum(t for _, t in nodes), results["elapsed_time"]


def dbt_node_line(work: Path, count: int = 6) -> str:
    nodes, node_seconds, elapsed = slowest_dbt_nodes(work, count)
    return (f"dbt: {elapsed:.1f} s inside dbt, {node_seconds:.1f} s in nodes; slowest: "
            + ", ".join(f"{name.split('.', 2)[-1]} {t:.1f} s" for name, t in nodes))


def prepare_warehouse(db: Path, cfg: Config, loaded: Sequence[str] = ()) -> None:
    """What dbt reads besides the raw tables a benchmark loads: the config tables (from `cfg`)
    and every other file source's raw table, empty, as the ingest assets leave them with nothing
    to load. `loaded` names the raw tables the benchmark fills itself."""
    with connect(db) as con:
        for name, build in CONFIG_TABLES.items():
            replace_table(con, CONFIG, name, build(cfg))
        for name, schema in FILE_RAW_TABLES.items():
            if name not in loaded:
                ensure_raw_table(con, name, schema, ["_source_file"])
        if aws_cur.CUR not in loaded:
            ensure_aws_cur_view(con)


def sql_list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join(sql_string(p) for p in paths) + "]"


@contextmanager
def workdir(parent: Path | None, keep: bool, prefix: str = "gpuledger-bench-") -> Iterator[Path]:
    """A fresh temporary working folder (under `parent` if given), removed afterwards unless `keep`."""
    if parent:
        parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield work
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def machine_cpu_seconds() -> float | None:
    """Busy CPU seconds of the whole machine since boot, all cores (Linux /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def own_cpu_seconds() -> float:
    """User + system CPU of this process and the children it has waited for."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


class Quiet:
    """How much CPU the rest of the machine used while a benchmark ran: timings only compare
    within a run when the others used little."""

    def __init__(self) -> None:
        self.wall, self.machine, self.own = time.perf_counter(), machine_cpu_seconds(), own_cpu_seconds()

    def report(self) -> str:
        wall, machine, own = time.perf_counter() - self.wall, machine_cpu_seconds(), own_cpu_seconds() - self.own
        if machine is None or self.machine is None:
            return f"CPU: this benchmark {own:.0f} s in {wall:.0f} s wall (machine-wide figures n/a)"
        others = max(0.0, machine - self.machine - own)
        return (f"CPU over the run: this benchmark (process + children) {own:.0f} s, everything else on the machine "
                f"{others:.0f} s ({others / wall:.2f} cores on average) in {wall:.0f} s wall, {os.cpu_count()} cores")


class BusyCores:
    """The machine's busy cores, sampled on a thread while in use (`with`), so that each step of a
    run can say how many of the cores it kept busy: a step near 1.0 on a 2-core machine leaves one
    idle. Machine-wide (Quiet says what the rest of the machine used)."""

    EVERY_S = 0.5

    def __init__(self) -> None:
        self.times: list[float] = []  # time.time(), as Dagster stamps steps
        self.busy: list[float] = []  # machine_cpu_seconds() then
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _record(self) -> None:
        busy = machine_cpu_seconds()
        if busy is not None:
            self.times.append(time.time())
            self.busy.append(busy)

    def _sample(self) -> None:
        while not self._stop.wait(self.EVERY_S):
            self._record()
        self._record()

    def __enter__(self) -> BusyCores:
        self._record()  # here, not on the thread: the span starts when the `with` does
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _busy_at(self, t: float) -> float:
        i = min(max(bisect.bisect_left(self.times, t), 1), len(self.times) - 1)
        (t0, t1), (b0, b1) = self.times[i - 1:i + 1], self.busy[i - 1:i + 1]
        return b0 + (b1 - b0) * min(max((t - t0) / (t1 - t0), 0.0), 1.0) if t1 > t0 else b1

    def cpu_seconds(self, start: float, end: float) -> float | None:
        """Busy CPU seconds of the machine between two wall times inside the sampled span."""
        if len(self.times) < 2 or start < self.times[0] or end > self.times[-1]:
            return None
        return self._busy_at(end) - self._busy_at(start)

    def total(self) -> float | None:
        """Busy CPU seconds of the machine over the whole sampled span."""
        return self.busy[-1] - self.busy[0] if len(self.busy) >= 2 else None


def load_average() -> str:
    try:
        return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "load average n/a"


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def gib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / GIB:.2f} GiB"


def mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / MIB:.1f} MiB"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], first_width: int | None = None) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    if first_width:
        widths[0] = max(widths[0], first_width)

    def line(values: Sequence[str]) -> str:
        return " ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths,
                                                                                             strict=True)))

    return "\n".join([line(headers), *(line(r) for r in cells)])


def add_workdir_options(parser: argparse.ArgumentParser, kept: str, dbt: bool = True) -> None:
    """--workdir and --keep (`kept` says what the working folder holds), and --dbt for benchmarks that run it."""
    parser.add_argument("--workdir", type=Path, help="where to make the temporary working folder")
    parser.add_argument("--keep", action="store_true", help=f"keep the working folder ({kept})")
    if dbt:
        parser.add_argument("--dbt", choices=("build", "run"), default="build",
                            help="dbt build (models and their tests, the default) or run (models only)")


class LoadTimes:
    """Where `ingest.load.load_files` spends its time: reading the batches' lines (gunzip, split),
    DuckDB's parse of them, DuckDB's insert and commit, and the per-file reader (the files the
    SQL handed over). Wraps the module's functions while in use."""

    PARTS = (("read_line_batch", "lines (on a thread, beside DuckDB)"), ("_stage", "parse (DuckDB)"),
             ("_insert_batch", "insert + commit"))

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.fallback_files = 0

    def reader(self, read: Callable[..., T]) -> Callable[..., T]:
        def timed(*args: object) -> T:
            self.fallback_files += 1
            return self._time("per-file reader", read, *args)
        return timed

    def _time(self, name: str, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def __enter__(self) -> LoadTimes:
        import ingest.load

        self._saved = {attr: getattr(ingest.load, attr) for attr, _ in self.PARTS}
        for attr, name in self.PARTS:
            setattr(ingest.load, attr, lambda *a, _f=self._saved[attr], _n=name, **k: self._time(_n, _f, *a, **k))
        return self

    def __exit__(self, *exc: object) -> None:
        import ingest.load

        for attr, fn in self._saved.items():
            setattr(ingest.load, attr, fn)

    def line(self, total: float) -> str:
        parts = [f"{name} {s:.1f} s" for name, s in self.seconds.items()]
        rest = total - sum(s for name, s in self.seconds.items() if not name.startswith("lines"))
        return (f"load_files {total:.1f} s: " + ", ".join(parts) + f"; waiting for lines and the rest {rest:.1f} s; "
                f"{self.fallback_files} files read by the per-file reader")
