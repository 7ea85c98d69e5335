"""Which workload holds a GPU, by the config's `workloads[].match` rules.

A holder is what telemetry sees on a GPU: a process (NVML collector: name, container, pod uid,
allow-listed environment; nvidia-smi: name) or a Kubernetes pod (dcgm-exporter: pod, namespace,
container labels), always with its host and GPU. Rules are tried in config order; the first
workload whose every given field matches wins, so put narrow rules before broad ones. A holder
no rule matches is `unmatched`.

Resolution runs over the distinct holder signatures in the raw telemetry, a few hundred rows
however many samples there are, and its answer is a table SQL joins back to the samples. Each run
reads the signatures of the rows ingested since the last and adds them to those it knew; while
the rules are unchanged, only the new ones are resolved.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from datetime import datetime
from fnmatch import fnmatchcase

import duckdb
import pyarrow as pa

from ingest.config import Workload, WorkloadMatch
from ingest.day_windows import union_of
from ingest.warehouse import CONFIG, RAW, first_row, table_exists


@dataclass(frozen=True)
class HolderSignature:
    host: str | None
    gpu_index: int | None
    gpu_uuid: str | None
    process_name: str | None = None
    container_id: str | None = None
    pod_uid: str | None = None
    pod: str | None = None
    namespace: str | None = None
    container: str | None = None
    env: str | None = None  # JSON object, as the NVML reader stores it


SIGNATURE_SCHEMA = pa.schema(
    [(f.name, pa.int32() if f.name == "gpu_index" else pa.string()) for f in fields(HolderSignature)]
    + [("workload", pa.string())]
)

# Each raw telemetry table's holders among the rows ingested after $since, in HolderSignature's
# column order, with the GPU as the staging models see it (a MIG instance's holders name the
# physical GPU; its samples come from the same lines, so they were ingested with them).
SIGNATURE_QUERIES = {
    "nvml_processes": """
        select distinct p.host, p.gpu_index, coalesce(s.parent_gpu_uuid, p.gpu_uuid), p.process_name,
               p.container_id, p.pod_uid, null, null, null, p.env
        from raw.nvml_processes p
        left join (select distinct gpu_uuid, parent_gpu_uuid from raw.nvml_gpu_samples where _ingested_at > $since) s
            on p.gpu_uuid = s.gpu_uuid
        where p._ingested_at > $since""",
    "nvidia_smi_processes": """
        select distinct p.host, s.gpu_index, p.gpu_uuid, p.process_name, null, null, null, null, null, null
        from raw.nvidia_smi_processes p
        left join (select distinct host, gpu_uuid, gpu_index from raw.nvidia_smi_gpu_samples
                   where _ingested_at > $since) s
            on p.host = s.host and p.gpu_uuid = s.gpu_uuid
        where p._ingested_at > $since""",
    "dcgm_samples": """
        select distinct host, gpu_index, gpu_uuid, null, null, null, pod, namespace, container, null
        from raw.dcgm_samples where pod is not null and _ingested_at > $since""",
}


def _matches(pattern: str | None, value: str | None) -> bool:
    return pattern is None or (value is not None and fnmatchcase(value, pattern))


def matches(rule: WorkloadMatch, h: HolderSignature, env: dict[str, str]) -> bool:
    """`env` is `h.env` parsed."""
    return (
        _matches(rule.host, h.host)
        and (not rule.gpu_index or h.gpu_index in rule.gpu_index)
        and _matches(rule.gpu_uuid, h.gpu_uuid)
        and _matches(rule.process_name, h.process_name)
        and _matches(rule.container_id, h.container_id)
        and _matches(rule.pod_uid, h.pod_uid)
        and _matches(rule.pod, h.pod)
        and _matches(rule.namespace, h.namespace)
        and _matches(rule.container, h.container)
        and all(_matches(pattern, env.get(key)) for key, pattern in rule.env.items())
    )


def _environment(h: HolderSignature) -> dict[str, str]:
    return json.loads(h.env) if h.env else {}


def _first_match(h: HolderSignature, env: dict[str, str], workloads: list[Workload]) -> str | None:
    return next((w.name for w in workloads if matches(w.match, h, env)), None)


def resolve(h: HolderSignature, workloads: list[Workload]) -> str | None:
    # the environment parsed once per holder, not once per rule tried
    return _first_match(h, _environment(h), workloads)


def newest_ingested(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The watermark of the holder tables: what the next run's `since` is."""
    rows = union_of(con, tuple(SIGNATURE_QUERIES), "_ingested_at")
    return first_row(con, f"select max(_ingested_at) from ({rows})")[0] if rows else None


def signatures(con: duckdb.DuckDBPyConnection, since: datetime | None = None) -> list[HolderSignature]:
    """The holders config.process_workloads knows (when `since` is given) and those of the raw rows
    ingested after `since` (every raw row when None)."""
    found: set[HolderSignature] = set()
    if since is not None and table_exists(con, CONFIG, "process_workloads"):
        found |= set(known_workloads(con))
    else:
        since = None  # nothing known: every raw row
    for table, query in SIGNATURE_QUERIES.items():
        if table_exists(con, RAW, table):
            found |= {HolderSignature(*row) for row in con.execute(query, {"since": since or datetime.min}).fetchall()}
    return sorted(found, key=lambda s: tuple("" if v is None else str(v) for v in vars(s).values()))


def known_workloads(con: duckdb.DuckDBPyConnection) -> dict[HolderSignature, str | None]:
    """The workload config.process_workloads gave each holder it knows."""
    if not table_exists(con, CONFIG, "process_workloads"):
        return {}
    columns = ", ".join(f.name for f in fields(HolderSignature))
    return {HolderSignature(*row[:-1]): row[-1]
            for row in con.execute(f"select {columns}, workload from {CONFIG}.process_workloads").fetchall()}


def rules(workloads: list[Workload]) -> list:
    """The match rules in the order they are tried: what, with the holders seen, decides
    config.process_workloads. A build compares these, not that table, which gains a row for every
    new process or pod (a restarted container) without a day's attribution changing."""
    return [(w.name, w.match.model_dump(mode="json")) for w in workloads]


def rules_digest(workloads: list[Workload]) -> str:
    return hashlib.sha256(json.dumps(rules(workloads), sort_keys=True).encode()).hexdigest()


def resolve_all(holders: list[HolderSignature], workloads: list[Workload],
                known: dict[HolderSignature, str | None] | None = None) -> pa.Table:
    """Each holder's workload; a holder in `known` (resolved by the same rules before) keeps the
    answer it had, without trying the rules again."""
    # Holders differ mostly in what no rule reads (a container id or pod uid per restart): each
    # combination of what the rules do read is resolved once. Trying every rule on every holder
    # took 19 s for 9,678 holders and 2,500 workloads, on every run.
    known = known or {}
    read = sorted({f for w in workloads for f, value in w.match if f != "env" and value not in (None, [])})
    env_keys = sorted({key for w in workloads for key in w.match.env})
    resolved: dict[tuple, str | None] = {}
    rows = []
    for h in holders:
        if h in known:
            rows.append({**vars(h), "workload": known[h]})
            continue
        env = _environment(h)
        key = (*(getattr(h, f) for f in read), *(env.get(k) for k in env_keys))
        if key not in resolved:
            resolved[key] = _first_match(h, env, workloads)
        rows.append({**vars(h), "workload": resolved[key]})
    return pa.Table.from_pylist(rows, schema=SIGNATURE_SCHEMA)
