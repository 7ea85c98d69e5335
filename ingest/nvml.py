"""gpuledger's NVML collector format: one JSON line per GPU per sample, one file per host and hour.

A line (field names follow NVML's calls; see ../shared/samples/gpu-telemetry/h100-nvml-samples.jsonl):

    {"ts": "2026-10-29T00:00:10.000Z", "host": "p5-1", "resource_id": "i-0...", "gpu_index": 0,
     "gpu_uuid": "GPU-...", "name": "NVIDIA H100 80GB HBM3", "mem_total_bytes": ..., "mem_used_bytes": ...,
     "util_gpu_pct": 97, "util_mem_pct": 38, "power_usage_mw": 651234, "total_energy_mj": 123456789,
     "temp_c": 74, "sm_clock_mhz": 1980,
     "processes": [{"pid": 4123, "name": "python3", "used_gpu_memory_bytes": ..., "container_id": "...",
                    "pod_uid": null, "env": {"GPULEDGER_WORKLOAD": "llama-70b"}}]}

A GPU in MIG mode writes its own line (`"mig_mode": true`, energy and power, no processes) and
one line per MIG instance, which holds the processes and says its share of the GPU:
`"parent_gpu_uuid"`, `"mig_slices"` (its compute slices) and `"mig_total_slices"` (the GPU's).

The reader splits each line into a GPU sample row and one row per process on the GPU.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from ingest.files import (
    FastReader,
    Parsed,
    RowError,
    iter_json_lines,
    json_struct,
    optional,
    parse_utc,
    require,
    rows_to_table,
    sql_blank,
    sql_falsy,
    sql_object_line,
    sql_ok,
    sql_utc,
    sql_value,
)

WORKLOAD_ENV_VAR = "GPULEDGER_WORKLOAD"
RESERVED_MEMORY_BYTES = 503_316_480  # what NVML counts as used on an H100 with no process (480 MiB)
FILE_SUFFIXES = (".jsonl", ".jsonl.gz")

GPU_SAMPLES = "nvml_gpu_samples"
PROCESSES = "nvml_processes"

GPU_SAMPLE_SCHEMA = pa.schema([
    ("ts", pa.timestamp("us")),
    ("host", pa.string()),
    ("resource_id", pa.string()),
    ("gpu_index", pa.int32()),
    ("gpu_uuid", pa.string()),
    ("gpu_name", pa.string()),
    ("mem_total_bytes", pa.int64()),
    ("mem_used_bytes", pa.int64()),
    ("util_gpu_pct", pa.float64()),
    ("util_mem_pct", pa.float64()),
    ("power_usage_mw", pa.int64()),
    ("total_energy_mj", pa.int64()),
    ("temp_c", pa.int32()),
    ("sm_clock_mhz", pa.int32()),
    ("process_count", pa.int32()),
    ("mig_mode", pa.bool_()),
    ("parent_gpu_uuid", pa.string()),
    ("mig_slices", pa.int32()),
    ("mig_total_slices", pa.int32()),
])

PROCESS_SCHEMA = pa.schema([
    ("ts", pa.timestamp("us")),
    ("host", pa.string()),
    ("gpu_index", pa.int32()),
    ("gpu_uuid", pa.string()),  # the device holding it: the GPU, or its MIG instance
    ("pid", pa.int64()),
    ("process_name", pa.string()),
    ("used_gpu_memory_bytes", pa.int64()),
    ("container_id", pa.string()),
    ("pod_uid", pa.string()),
    ("env", pa.string()),  # the collector's allow-listed environment, as a JSON object
])

NUMBER = (int, float)


def nvml_file_name(host: str, hour: datetime) -> str:
    return f"nvml-{host}-{hour:%Y%m%dT%H}.jsonl.gz"


def _process_row(p: object, ts: datetime, host: str, gpu_index: int, gpu_uuid: str) -> tuple:
    if not isinstance(p, dict):
        raise RowError(f"a process entry is {type(p).__name__}, expected an object")
    env = p.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise RowError("a process 'env' must be an object of strings")
    return (
        ts, host, gpu_index, gpu_uuid, require(p, "pid", int), optional(p, "name", str),
        optional(p, "used_gpu_memory_bytes", int), optional(p, "container_id", str), optional(p, "pod_uid", str),
        json.dumps(env, sort_keys=True, separators=(",", ":")),
    )


def read_nvml_file(path: Path, label: str | None = None) -> Parsed:
    """`label` names the file in rows and quarantine (its landing URI; the local path by default)."""
    parsed = Parsed(label or str(path))
    samples: list[tuple] = []
    processes: list[tuple] = []
    for number, obj in iter_json_lines(parsed, path):
        try:
            ts = parse_utc(obj.get("ts"))
            host = require(obj, "host", str)
            gpu_uuid = require(obj, "gpu_uuid", str)
            gpu_index = require(obj, "gpu_index", int)
            procs = obj.get("processes") or []
            if not isinstance(procs, list):
                raise RowError("'processes' must be a list")
            proc_rows = [_process_row(p, ts, host, gpu_index, gpu_uuid) for p in procs]
            sample = (
                ts, host, optional(obj, "resource_id", str), gpu_index, gpu_uuid,
                optional(obj, "name", str), optional(obj, "mem_total_bytes", int),
                optional(obj, "mem_used_bytes", int), optional(obj, "util_gpu_pct", NUMBER),
                optional(obj, "util_mem_pct", NUMBER), optional(obj, "power_usage_mw", int),
                optional(obj, "total_energy_mj", int), optional(obj, "temp_c", int),
                optional(obj, "sm_clock_mhz", int), len(proc_rows), optional(obj, "mig_mode", bool),
                optional(obj, "parent_gpu_uuid", str), optional(obj, "mig_slices", int),
                optional(obj, "mig_total_slices", int),
            )
        except (RowError, ValueError) as err:
            parsed.reject(number, str(err))
            continue
        samples.append(sample)
        processes += proc_rows
    parsed.tables[GPU_SAMPLES] = rows_to_table(samples, GPU_SAMPLE_SCHEMA)
    parsed.tables[PROCESSES] = rows_to_table(processes, PROCESS_SCHEMA)
    return parsed


# --- the same rows, read in DuckDB for many files at once (ingest.load's fast path) ---------------

_SAMPLE_FIELDS = {  # key -> (kind, required), in GPU_SAMPLE_SCHEMA's order
    "ts": ("str", True), "host": ("str", True), "resource_id": ("str", False), "gpu_index": ("int32", True),
    "gpu_uuid": ("str", True), "name": ("str", False), "mem_total_bytes": ("int", False),
    "mem_used_bytes": ("int", False), "util_gpu_pct": ("number", False), "util_mem_pct": ("number", False),
    "power_usage_mw": ("int", False), "total_energy_mj": ("int", False), "temp_c": ("int32", False),
    "sm_clock_mhz": ("int32", False), "mig_mode": ("bool", False), "parent_gpu_uuid": ("str", False),
    "mig_slices": ("int32", False), "mig_total_slices": ("int32", False),
}
_PROCESS_FIELDS = {"pid": ("int", True), "name": ("str", False), "used_gpu_memory_bytes": ("int", False),
                   "container_id": ("str", False), "pod_uid": ("str", False)}
_PLAIN = r"[ !#-\[\]-~]*"  # printable ASCII but '"' and '\': json.dumps writes it as it is
_ENV_OBJECT = rf'\{{("{_PLAIN}":"{_PLAIN}"(,"{_PLAIN}":"{_PLAIN}")*)?\}}'


def _fast_reader() -> FastReader:
    columns = {"name": "gpu_name"}
    values = ",\n".join(
        f"{sql_value(f'j.{k}', kind)} as {columns.get(k, k)}" for k, (kind, _) in _SAMPLE_FIELDS.items() if k != "ts")
    ok = " and ".join([sql_object_line("text"), "ts is not null",
                       "(procs is not null)"] + [sql_ok(f"j.{k}", kind, required) for k, (kind, required)
                                                 in _SAMPLE_FIELDS.items()])
    # "processes" is read as a list of entries in the line's one parse (as JSON text parsed again,
    # it was a quarter of the batch's parse). Any other value reads as NULL: such a line (a MIG
    # GPU's own, with no processes) has that value taken out of it again to tell [] from a wrong kind.
    line_struct = json_struct(_SAMPLE_FIELDS, processes=f"[{json_struct([*_PROCESS_FIELDS, 'env'])}]")
    processes_json = "json_extract(text, '$.processes')"
    lines = f"""
        create or replace temp table _fast_nvml_lines as
        select file, {ok} as ok, ts, {values}, procs
        from (
            select file, text, j, {sql_utc(sql_value('j.ts', 'str'))} as ts,
                   case when j.processes is not null then j.processes
                        when {sql_falsy(processes_json)} then [] end as procs
            from (select file, text, from_json(text, '{line_struct}') as j
                  from _fast_lines_in where not {sql_blank('text')})
        )"""
    p_values = ",\n".join(f"{sql_value(f'q.{k}', kind)} as {'process_name' if k == 'name' else k}"
                          for k, (kind, _) in _PROCESS_FIELDS.items())
    # A process entry that is not an object reads as all NULL: no pid, so its file goes to the per-file reader.
    # An env object of plain strings (the regex) has its keys read by json_keys, in order, a repeat kept.
    p_ok = " and ".join(["env_keys is not null", "len(list_distinct(env_keys)) = len(env_keys)"]
                        + [sql_ok(f"q.{k}", kind, required) for k, (kind, required) in _PROCESS_FIELDS.items()])
    env_text = "cast(q.env as varchar)"
    processes = f"""
        create or replace temp table _fast_nvml_processes as
        select file, {p_ok} as ok, ts, host, gpu_index, gpu_uuid, {p_values},
               case when env_keys = [] then '{{}}' when env_keys = list_sort(env_keys) then {env_text}
                    else '{{' || array_to_string(list_transform(list_sort(list_zip(env_keys, regexp_extract_all(
                        {env_text}, '"{_PLAIN}":"({_PLAIN})"', 1))), lambda e: '"' || e[1] || '":"' || e[2] || '"'),
                        ',') || '}}' end as env_json
        from (
            select *, case when {sql_falsy('q.env')} then [] when regexp_full_match({env_text}, '{_ENV_OBJECT}')
                           then json_keys(q.env) end as env_keys
            from (select file, ts, host, gpu_index, gpu_uuid, unnest(procs) as q from _fast_nvml_lines where ok)
        )"""
    sample_columns = ", ".join(f.name for f in GPU_SAMPLE_SCHEMA)
    return FastReader(
        stage=(lines, processes),
        bad_files="select file from _fast_nvml_lines where not coalesce(ok, false) "
                  "union select file from _fast_nvml_processes where not coalesce(ok, false)",
        tables={
            GPU_SAMPLES: (GPU_SAMPLE_SCHEMA, f"select file, {sample_columns} from "
                          "(select *, cast(len(procs) as integer) as process_count from _fast_nvml_lines)"),
            PROCESSES: (PROCESS_SCHEMA, "select file, ts, host, gpu_index, gpu_uuid, pid, process_name, "
                        "used_gpu_memory_bytes, container_id, pod_uid, env_json as env from _fast_nvml_processes"),
        },
        temp_tables=("_fast_nvml_lines", "_fast_nvml_processes"),
    )


FAST_READER = _fast_reader()
