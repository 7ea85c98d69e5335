"""GPU telemetry into `raw`, and which workload each GPU process belongs to."""


import dagster as dg

from ingest import nvml
from ingest.load import list_files, load_files
from ingest.warehouse import CONFIG, RAW, replace_table, table_exists
from ingest.workloads import ProcessSignature, resolve_all
from orchestration.assets._metadata import ingest_results, no_quarantine_spec
from orchestration.assets.config_tables import CONFIG_KEYS
from orchestration.resources import WRITER_POOL, GpuledgerResource

GPU_SAMPLES = dg.AssetKey([RAW, nvml.GPU_SAMPLES])
PROCESSES = dg.AssetKey([RAW, nvml.PROCESSES])
PROCESS_WORKLOADS = dg.AssetKey([CONFIG, "process_workloads"])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(GPU_SAMPLES, group_name="telemetry", kinds={"nvml", "duckdb"}, owners=["team:platform"],
                     description="One row per GPU per NVML collector sample (utilisation, memory, power, energy)."),
        dg.AssetSpec(PROCESSES, group_name="telemetry", kinds={"nvml", "duckdb"}, owners=["team:platform"],
                     description="One row per compute process on a GPU per sample, with container, pod and "
                     "allow-listed environment."),
    ],
    check_specs=[no_quarantine_spec(GPU_SAMPLES), no_quarantine_spec(PROCESSES)],
    pool=WRITER_POOL,
)
def nvml_telemetry(context: dg.AssetExecutionContext, gpuledger: GpuledgerResource):
    cfg = gpuledger.config
    files = list_files([cfg.resolve(s.location) for s in cfg.sources.nvml], nvml.FILE_SUFFIXES)
    context.log.info(f"nvml: {len(files)} collector files under {len(cfg.sources.nvml)} locations")
    with gpuledger.connect() as con:
        report = load_files(con, "nvml", files, nvml.read_nvml_file, context.log.info)
        yield from ingest_results(
            context, con, report, {GPU_SAMPLES: nvml.GPU_SAMPLE_SCHEMA, PROCESSES: nvml.PROCESS_SCHEMA}
        )


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
