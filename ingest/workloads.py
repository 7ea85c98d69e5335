"""Which workload a GPU process belongs to, by the config's `workloads[].match` rules.

Rules are shell-style patterns tried in config order; the first workload whose every given
field matches wins. Resolution runs over the distinct process signatures seen in telemetry
(host, process name, container, pod, allow-listed environment), a few hundred rows however
many samples there are, and its answer is a table that SQL joins back to the samples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fnmatch import fnmatchcase

import pyarrow as pa

from ingest.config import Workload, WorkloadMatch


@dataclass(frozen=True)
class ProcessSignature:
    host: str
    process_name: str | None
    container_id: str | None
    pod_uid: str | None
    env: str | None  # JSON object, as the NVML reader stores it


SIGNATURE_SCHEMA = pa.schema([
    ("host", pa.string()), ("process_name", pa.string()), ("container_id", pa.string()),
    ("pod_uid", pa.string()), ("env", pa.string()), ("workload", pa.string()),
])


def _matches(pattern: str | None, value: str | None) -> bool:
    return pattern is None or (value is not None and fnmatchcase(value, pattern))


def matches(rule: WorkloadMatch, p: ProcessSignature) -> bool:
    env = json.loads(p.env) if p.env else {}
    return (
        _matches(rule.host, p.host)
        and _matches(rule.process_name, p.process_name)
        and _matches(rule.container_id, p.container_id)
        and _matches(rule.pod_uid, p.pod_uid)
        and all(_matches(pattern, env.get(key)) for key, pattern in rule.env.items())
    )


def resolve(p: ProcessSignature, workloads: list[Workload]) -> str | None:
    return next((w.name for w in workloads if matches(w.match, p)), None)


def resolve_all(signatures: list[ProcessSignature], workloads: list[Workload]) -> pa.Table:
    rows = [{**vars(s), "workload": resolve(s, workloads)} for s in signatures]
    return pa.Table.from_pylist(rows, schema=SIGNATURE_SCHEMA)
