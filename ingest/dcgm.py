"""dcgm-exporter scrapes: the Prometheus text that `curl :9400/metrics` returns, saved by a
scraper, one or many scrapes per file (see ../shared/samples/gpu-telemetry/dcgm-exporter__*).

A scrape is one line per metric per GPU (or per MIG instance, which carries `GPU_I_ID` and
`GPU_I_PROFILE`), with Kubernetes `pod`, `namespace`, `container` labels when a pod holds the
device (also spelled `pod_name`/`pod_namespace`/`container_name`, or `exported_*` after
Prometheus relabelling; empty when unassigned). Metric names may be lower case. A sample's time
is the line's Prometheus timestamp (ms) or, for a bare scrape, the time in the file name
(`...20261102T101500...`), else the time the file was written. The host is the folder
(`<location>/<host>/...`): dcgm-exporter's `Hostname` label is often the exporter pod's name.
The reader turns the lines into one row per device per scrape.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from ingest.files import Parsed, complete_lines, rows_to_table
from ingest.prometheus import LABEL, LINE

SAMPLES = "dcgm_samples"
FILE_SUFFIXES = (".prom", ".prom.gz", ".txt", ".txt.gz", ".metrics", ".metrics.gz")
FILE_TIME = re.compile(r"(\d{8}T\d{6})")
METRICS = {
    "dcgm_fi_dev_gpu_util": "util_gpu_pct",
    "dcgm_fi_prof_gr_engine_active": "gr_engine_active",
    "dcgm_fi_dev_power_usage": "power_usage_w",
    "dcgm_fi_dev_total_energy_consumption": "total_energy_mj",
    "dcgm_fi_dev_fb_used": "fb_used_mib",
    "dcgm_fi_dev_fb_free": "fb_free_mib",
}
POD_LABELS = {
    "pod": ("pod", "pod_name", "exported_pod"),
    "namespace": ("namespace", "pod_namespace", "exported_namespace"),
    "container": ("container", "container_name", "exported_container"),
}

SAMPLE_SCHEMA = pa.schema([
    ("ts", pa.timestamp("us")), ("host", pa.string()), ("exporter_hostname", pa.string()),
    ("gpu_index", pa.int32()), ("gpu_uuid", pa.string()), ("model_name", pa.string()),
    ("gpu_instance_id", pa.string()), ("gpu_instance_profile", pa.string()), ("mig_slices", pa.int32()),
    ("mig_total_slices", pa.int32()), ("pod", pa.string()), ("namespace", pa.string()), ("container", pa.string()),
    ("util_gpu_pct", pa.float64()), ("gr_engine_active", pa.float64()), ("power_usage_w", pa.float64()),
    ("total_energy_mj", pa.float64()), ("fb_used_mib", pa.float64()), ("fb_free_mib", pa.float64()),
    ("line_number", pa.int64()),
])


def mig_slices(profile: str | None, model_name: str | None) -> tuple[int | None, int | None]:
    """`3g.40gb` is 3 compute slices of 7 (of 4 on an A30)."""
    if not profile or not (m := re.match(r"(\d+)g\.", profile)):
        return None, None
    return int(m[1]), 4 if model_name and "A30" in model_name else 7


def _first(labels: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((labels[n] for n in names if labels.get(n)), None)


def read_dcgm_file(path: Path, label: str | None, host: str) -> Parsed:
    parsed = Parsed(label or str(path))
    lines, damage = complete_lines(parsed, path)
    file_time = FILE_TIME.search(path.name)
    default_ts = (datetime.strptime(file_time[1], "%Y%m%dT%H%M%S") if file_time
                  else datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None))
    devices: dict[tuple, dict] = {}
    for number, line in enumerate((b.decode("utf-8", errors="replace").rstrip("\r") for b in lines), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        m = LINE.match(line)
        if m is None:
            parsed.reject(number, "not a Prometheus text line")
            continue
        field = METRICS.get(m["name"].lower())
        if field is None:
            continue  # a metric the cost model does not use
        labels = dict(LABEL.findall(m["labels"] or ""))
        try:
            value = float(m["value"])
        except ValueError:
            parsed.reject(number, f"value {m['value']!r} is not a number")
            continue
        ts = datetime.fromtimestamp(int(m["ts"]) / 1000, UTC).replace(tzinfo=None) if m["ts"] else default_ts
        uuid = labels.get("UUID") or labels.get("uuid")
        if uuid is None:
            parsed.reject(number, "no UUID label")
            continue
        key = (ts, uuid, labels.get("GPU_I_ID"))
        device = devices.setdefault(key, {"line_number": number, "labels": labels})
        device[field] = value
    rows = []
    for (ts, uuid, instance), d in devices.items():
        labels = d["labels"]
        model = labels.get("modelName")
        slices, total = mig_slices(labels.get("GPU_I_PROFILE"), model)
        gpu = labels.get("gpu")
        rows.append((
            ts, host, labels.get("Hostname"), int(gpu) if gpu and gpu.isdigit() else None, uuid, model, instance,
            labels.get("GPU_I_PROFILE"), slices, total, *(_first(labels, n) for n in POD_LABELS.values()),
            *(d.get(f) for f in ("util_gpu_pct", "gr_engine_active", "power_usage_w", "total_energy_mj",
                                 "fb_used_mib", "fb_free_mib")),
            d["line_number"],
        ))
    if damage:
        parsed.reject(None, damage)
    parsed.tables[SAMPLES] = rows_to_table(rows, SAMPLE_SCHEMA)
    return parsed
