"""GPU telemetry into `raw`, and which workload each GPU process belongs to."""

import dagster as dg

from ingest import nvml
from ingest.warehouse import CONFIG, RAW, replace_table, table_exists
from ingest.workloads import ProcessSignature, resolve_all
from orchestration.assets._ingest import FileFamily, file_family_asset
from orchestration.assets.config_tables import CONFIG_KEYS
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
    reader=nvml.read_nvml_file,
    locations=lambda cfg: cfg.sources.nvml,
    description="gpuledger NVML collector files into raw.nvml_gpu_samples and raw.nvml_processes.",
)
nvml_telemetry = file_family_asset(NVML)
PROCESSES = dg.AssetKey([RAW, nvml.PROCESSES])
PROCESS_WORKLOADS = dg.AssetKey([CONFIG, "process_workloads"])


@dg.asset(
    key=PROCESS_WORKLOADS,
    deps=[PROCESSES, CONFIG_KEYS["workloads"]],
    group_name="telemetry",
    kinds={"python", "duckdb"},
    owners=["team:platform"],
    description="The workload each distinct GPU process (host, name, container, pod, environment) matches "
    "by the config's `workloads[].match` rules, or null.",
    pool=WRITER_POOL,
)
def process_workloads(context: dg.AssetExecutionContext, gpuledger: GpuledgerResource) -> dg.MaterializeResult:
    with gpuledger.connect() as con:
        signatures = []
        if table_exists(con, RAW, nvml.PROCESSES):
            signatures = [
                ProcessSignature(*row)
                for row in con.execute(
                    f"select distinct host, process_name, container_id, pod_uid, env from {RAW}.{nvml.PROCESSES}"
                ).fetchall()
            ]
        table = resolve_all(signatures, gpuledger.config.workloads)
        replace_table(con, CONFIG, "process_workloads", table)
    unmatched = sorted({f"{s.host}:{s.process_name}" for s, w in zip(signatures, table["workload"].to_pylist(),
                                                                        strict=True) if w is None})
    if unmatched:
        context.log.warning(f"GPU processes matching no workload rule (cost goes to 'unmatched'): {unmatched[:10]}")
    return dg.MaterializeResult(metadata={"dagster/row_count": table.num_rows, "unmatched_signatures": len(unmatched)})
