"""What starts runs on its own: new or restated billing deliveries, and the rebuild after them."""

import json

import dagster as dg

from ingest.load import delivery_version, newest_deliveries
from orchestration.jobs import billing_period_job, gpuledger_job
from orchestration.partitions import billing_periods, partition_key
from orchestration.resources import GpuledgerResource


@dg.sensor(
    job=billing_period_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reads the CUR manifests of every configured export (folder or S3) and starts a run for each "
    "billing period whose newest delivery is new or restated.",
)
def new_billing_deliveries(context: dg.SensorEvaluationContext, gpuledger: GpuledgerResource):
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    valid = set(billing_periods.get_partition_keys())
    requests = []
    for source in gpuledger.config.sources.aws_cur:
        landing = gpuledger.landing(source.location)
        deliveries, _, files = newest_deliveries(landing, source.export_name, source.format)
        for delivery in deliveries:
            _, version = delivery_version(delivery, files)
            key = f"{landing.uri}/{delivery.key}"
            if seen.get(key) == version:
                continue
            if partition_key(delivery.billing_period) not in valid:
                context.log.warning(f"{key}: billing period outside the partitions, not loaded")
                continue
            seen[key] = version
            requests.append(dg.RunRequest(run_key=f"{key}@{version[:16]}",
                                          partition_key=partition_key(delivery.billing_period)))
    context.update_cursor(json.dumps(seen, sort_keys=True))
    return requests or dg.SkipReason("no new or restated billing deliveries")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[billing_period_job],
    request_job=gpuledger_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a billing period loads, rebuild the ledger and the marts (the other sources are "
    "checked for new files on the way).",
)
def rebuild_after_billing(context: dg.RunStatusSensorContext):
    return dg.RunRequest(run_key=f"after-{context.dagster_run.run_id}")
