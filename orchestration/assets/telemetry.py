"""GPU telemetry into `raw` (gpuledger's collector, nvidia-smi, dcgm-exporter), and which
workload each GPU holder belongs to."""

from datetime import datetime

import dagster as dg

from ingest import dcgm, nvidia_smi, nvml
from ingest.load import host_of
from ingest.warehouse import CONFIG, RAW, replace_table, table_exists
from ingest.workloads import known_workloads, newest_ingested, resolve_all, rules_digest, signatures
from orchestration.assets._ingest import FileFamily, file_family_asset, per_file
from orchestration.assets.config_tables import CONFIG_KEYS
from orchestration.assets.dbt import INGESTED_THROUGH
from orchestration.resources import WRITER_POOL, GpuledgerResource

NVML = FileFamily(
    name="nvml",
    group="telemetry",
    kinds=frozenset({"nvml", "duckdb"}),
    tables={
        nvml.GPU_SAMPLES: (nvml.GPU_SAMPLE_SCHEMA,
                           "One row per GPU per NVML collector sample (utilisation, memory, power, energy)."),
        nvml.PROCESSES: (nvml.PROCESS_SCHEMA, "One row per compute process on a GPU per sample, with container, "
                         "pod and allow-listed environment."),
    },
    suffixes=nvml.FILE_SUFFIXES,
    reader=per_file(nvml.read_nvml_file),
    locations=lambda cfg: cfg.sources.nvml,
    daily=True,
    description="gpuledger NVML collector files into raw.nvml_gpu_samples and raw.nvml_processes.",
)
nvml_telemetry = file_family_asset(NVML)

NVIDIA_SMI = FileFamily(
    name="nvidia_smi",
    group="telemetry",
    kinds=frozenset({"nvidia", "duckdb"}),
    tables={
        nvidia_smi.GPU_SAMPLES: (nvidia_smi.GPU_SAMPLE_SCHEMA, "One row per GPU per nvidia-smi --query-gpu line."),
        nvidia_smi.PROCESSES: (nvidia_smi.PROCESS_SCHEMA, "One row per nvidia-smi --query-compute-apps line."),
    },
    suffixes=nvidia_smi.FILE_SUFFIXES,
    reader=lambda path, label, key, source: nvidia_smi.read_nvidia_smi_file(
        path, label, host_of(key), source.timezone, source.fields or None),
    locations=lambda cfg: cfg.sources.nvidia_smi,
    daily=True,
    description="nvidia-smi CSV output (query-gpu and query-compute-apps) into raw.nvidia_smi_*.",
)
nvidia_smi_telemetry = file_family_asset(NVIDIA_SMI)

DCGM = FileFamily(
    name="dcgm",
    group="telemetry",
    kinds=frozenset({"dcgm", "duckdb"}),
    tables={dcgm.SAMPLES: (dcgm.SAMPLE_SCHEMA, "One row per GPU or MIG instance per dcgm-exporter scrape, with "
                           "its Kubernetes pod, namespace and container.")},
    suffixes=dcgm.FILE_SUFFIXES,
    reader=lambda path, label, key, source: dcgm.read_dcgm_file(path, label, host_of(key)),
    locations=lambda cfg: cfg.sources.dcgm,
    daily=True,
    description="dcgm-exporter Prometheus scrapes into raw.dcgm_samples.",
)
dcgm_telemetry = file_family_asset(DCGM)

PROCESS_WORKLOADS = dg.AssetKey([CONFIG, "process_workloads"])
RULES_DIGEST = "rules_digest"  # metadata: the match rules the holders were resolved by
HOLDER_TABLES = [dg.AssetKey([RAW, t]) for t in (nvml.PROCESSES, nvml.GPU_SAMPLES, nvidia_smi.PROCESSES,
                                                  nvidia_smi.GPU_SAMPLES, dcgm.SAMPLES)]


@dg.asset(
    key=PROCESS_WORKLOADS,
    deps=[*HOLDER_TABLES, CONFIG_KEYS["workloads"]],
    group_name="telemetry",
    kinds={"python", "duckdb"},
    owners=["team:platform"],
    description="The workload each distinct GPU holder (a process: host, GPU, name, container, pod uid, "
    "environment; or a pod: name, namespace, container) matches by the config's `workloads[].match` rules, or null.",
    pool=WRITER_POOL,
)
def process_workloads(context: dg.AssetExecutionContext, gpuledger: GpuledgerResource) -> dg.MaterializeResult:
    last = context.instance.get_latest_materialization_event(PROCESS_WORKLOADS)
    metadata = last.asset_materialization.metadata if last else {}
    through = metadata.get(INGESTED_THROUGH)
    since = datetime.fromisoformat(through.value) if through else None
    digest = rules_digest(gpuledger.config.workloads)
    last_digest = metadata.get(RULES_DIGEST)
    same_rules = since is not None and last_digest is not None and last_digest.value == digest
    with gpuledger.connect() as con:
        newest = newest_ingested(con)
        if same_rules and newest and newest <= since and table_exists(con, CONFIG, "process_workloads"):
            # the table is as the last run left it: rewriting it took 1 s at 10,000 GPUs
            context.log.info("process workloads: no GPU holder ingested since the last run, the same rules: unchanged")
            return dg.MaterializeResult(metadata={**metadata, "holders_resolved": 0})
        holders = signatures(con, since)
        # the same rules give the holders known before the same answers: only new ones are resolved
        # (every holder, every run, was 6.7 s at 10,000 GPUs)
        known = known_workloads(con) if same_rules else {}
        table = resolve_all(holders, gpuledger.config.workloads, known)
        replace_table(con, CONFIG, "process_workloads", table)
    resolved = sum(h not in known for h in holders)
    context.log.info(f"process workloads: {len(holders):,} holders, {resolved:,} resolved by the rules"
                     + (" (the others known from a run with the same rules)" if known else ""))
    unmatched = sorted({f"{h.host}:{h.process_name or h.pod}" for h, w in zip(holders, table["workload"].to_pylist(),
                                                                              strict=True) if w is None})
    if unmatched:
        context.log.warning(f"GPU holders matching no workload rule (cost goes to 'unmatched'): {unmatched[:10]}")
    return dg.MaterializeResult(metadata={"dagster/row_count": table.num_rows, "unmatched_holders": len(unmatched),
                                          "holders_resolved": resolved, RULES_DIGEST: digest,
                                          **({INGESTED_THROUGH: newest.isoformat()} if newest else {})})
