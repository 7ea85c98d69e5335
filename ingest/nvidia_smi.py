"""`nvidia-smi --query-gpu=... --format=csv` and `--query-compute-apps=...` output, as hosts that
run nvidia-smi in a loop write it (see ../shared/samples/gpu-telemetry/h100-nvidia-smi-*).

What real output does: a header line with units (`power.draw [W]`) that repeats each time the
command is run again; values with units attached (`699.27 W`, `81559 MiB`) or without
(`nounits`); `[N/A]` and `[Not Supported]` for fields a GPU lacks; local time without a zone
(`2026/11/22 10:34:14.914`); no host name (it comes from the folder: `<location>/<host>/...`).
A `--format=csv,noheader` file needs its field list from the config. nvidia-smi has no energy
field: energy is integrated from `power.draw` downstream.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa

from ingest.files import Parsed, RowError, complete_lines, rows_to_table

GPU_SAMPLES = "nvidia_smi_gpu_samples"
PROCESSES = "nvidia_smi_processes"
FILE_SUFFIXES = (".csv", ".csv.gz", ".log", ".log.gz")
MISSING = {"", "[N/A]", "N/A", "[Not Supported]", "Not Supported", "[Unknown Error]"}
UNITS = {"MiB": 1 << 20, "GiB": 1 << 30, "KiB": 1 << 10, "B": 1}

GPU_SAMPLE_SCHEMA = pa.schema([
    ("ts", pa.timestamp("us")), ("host", pa.string()), ("gpu_index", pa.int32()), ("gpu_uuid", pa.string()),
    ("gpu_name", pa.string()), ("util_gpu_pct", pa.float64()), ("util_mem_pct", pa.float64()),
    ("mem_total_bytes", pa.int64()), ("mem_used_bytes", pa.int64()), ("power_draw_w", pa.float64()),
    ("temp_c", pa.float64()), ("sm_clock_mhz", pa.float64()), ("line_number", pa.int64()),
])
PROCESS_SCHEMA = pa.schema([
    ("ts", pa.timestamp("us")), ("host", pa.string()), ("gpu_uuid", pa.string()), ("pid", pa.int64()),
    ("process_name", pa.string()), ("used_gpu_memory_bytes", pa.int64()), ("line_number", pa.int64()),
])


def field_name(header: str) -> str:
    """`power.draw [W]` -> `power.draw`; aliases to one spelling (`clocks.current.sm` -> `clocks.sm`)."""
    name = header.split("[", 1)[0].strip().lower()
    return {"clocks.current.sm": "clocks.sm", "used_gpu_memory": "used_memory", "gpu_uuid": "uuid"}.get(name, name)


def _number(text: str) -> float | None:
    """`699.27 W`, `99 %`, `1980 MHz` or a bare number."""
    value = text.strip()
    return None if value in MISSING else float(value.split(" ", 1)[0])


def _memory_bytes(text: str) -> int | None:
    """Memory fields are MiB, with the unit written (`81559 MiB`) or not (`nounits`)."""
    value = text.strip()
    if value in MISSING:
        return None
    number, _, unit = value.partition(" ")
    return int(float(number) * UNITS.get(unit.strip() or "MiB", 1 << 20))


def _timestamp(text: str, zone: ZoneInfo) -> datetime:
    value = text.strip()
    for fmt in ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S"):
        try:
            local = datetime.strptime(value, fmt).replace(tzinfo=zone)
            return local.astimezone(UTC).replace(tzinfo=None)
        except ValueError:
            continue
    raise RowError(f"timestamp {value!r} is not nvidia-smi's YYYY/MM/DD HH:MM:SS.mmm")


def _gpu_row(v: dict[str, str], host: str, zone: ZoneInfo, number: int) -> tuple:
    if "timestamp" not in v:
        raise RowError("no timestamp field: query nvidia-smi with --query-gpu=timestamp,...")
    index = v.get("index") or None
    uuid = v.get("uuid") or None
    if uuid is None and index is None:
        raise RowError("neither uuid nor index: query nvidia-smi with --query-gpu=...,index,uuid")
    return (
        _timestamp(v["timestamp"], zone), host, int(index) if index is not None else None,
        uuid or f"{host}/gpu{index}", v.get("name"), _number(v.get("utilization.gpu", "")),
        _number(v.get("utilization.memory", "")), _memory_bytes(v.get("memory.total", "")),
        _memory_bytes(v.get("memory.used", "")), _number(v.get("power.draw", "")),
        _number(v.get("temperature.gpu", "")), _number(v.get("clocks.sm", "")), number,
    )


def _process_row(v: dict[str, str], host: str, zone: ZoneInfo, number: int) -> tuple:
    if not v.get("uuid") or not v.get("pid"):
        raise RowError("a process line needs gpu_uuid and pid")
    if "timestamp" not in v:
        raise RowError("no timestamp field: query nvidia-smi with --query-compute-apps=timestamp,...")
    return (_timestamp(v["timestamp"], zone), host, v["uuid"], int(v["pid"]), v.get("process_name"),
            _memory_bytes(v.get("used_memory", "")), number)


def read_nvidia_smi_file(path: Path, label: str | None, host: str, timezone: str = "UTC",
                         fields: list[str] | None = None) -> Parsed:
    """GPU and process lines of one file; the header (or `fields`, for noheader output) says which is which."""
    parsed = Parsed(label or str(path))
    zone = ZoneInfo(timezone)
    lines, damage = complete_lines(parsed, path)
    gpus: list[tuple] = []
    processes: list[tuple] = []
    names = [field_name(f) for f in fields] if fields else None
    text = b"\n".join(lines).decode("utf-8", errors="replace")
    for number, row in enumerate(csv.reader(io.StringIO(text), skipinitialspace=True), start=1):
        if not row:
            continue
        if row[0].strip() in ("timestamp", "index", "name", "uuid", "gpu_uuid") and not row[0][:1].isdigit():
            names = [field_name(h) for h in row]  # a header, repeated whenever the command ran again
            continue
        if names is None:
            parsed.reject(number, "a value line before any header: give the source's `fields` for noheader output")
            continue
        if len(row) != len(names):
            parsed.reject(number, f"{len(row)} fields where the header has {len(names)}")
            continue
        values = dict(zip(names, row, strict=True))
        try:
            if "pid" in values:
                processes.append(_process_row(values, host, zone, number))
            else:
                gpus.append(_gpu_row(values, host, zone, number))
        except (RowError, ValueError) as err:
            parsed.reject(number, str(err))
    if damage:
        parsed.reject(None, damage)
    parsed.tables[GPU_SAMPLES] = rows_to_table(gpus, GPU_SAMPLE_SCHEMA)
    parsed.tables[PROCESSES] = rows_to_table(processes, PROCESS_SCHEMA)
    return parsed
