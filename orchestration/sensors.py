"""What starts runs on its own: new or restated billing deliveries, new telemetry and serving
files, and the rebuild of the ledger and marts after either."""

import hashlib
import json
from collections import defaultdict
from datetime import date, timedelta

import dagster as dg

from ingest.load import delivery_version, file_day, label, newest_deliveries
from orchestration.assets._ingest import FileFamily
from orchestration.assets.serving import ENGINE_LOGS, GATEWAY, LITELLM, VLLM_METRICS
from orchestration.assets.telemetry import DCGM, NVIDIA_SMI, NVML
from orchestration.jobs import billing_period_job, gpuledger_job, telemetry_and_serving_job
from orchestration.partitions import billing_periods, day_range_tags, days, partition_key
from orchestration.resources import GpuledgerResource

DAY_FAMILIES: tuple[FileFamily, ...] = (NVML, NVIDIA_SMI, DCGM, GATEWAY, LITELLM, ENGINE_LOGS, VLLM_METRICS)


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


def day_digests(gpuledger: GpuledgerResource) -> dict[str, str]:
    """Per UTC day, a digest of every telemetry and serving file of that day (name and version):
    a new, changed or removed file changes its day's digest."""
    files: dict[str, list[str]] = defaultdict(list)
    for family in DAY_FAMILIES:
        for source in family.locations(gpuledger.config):
            landing = gpuledger.landing(source.location)
            for f in landing.list(family.suffixes, hash_content=False):
                files[file_day(f).isoformat()].append(f"{label(landing, f)}\t{f.version}")
    return {day: hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]
            for day, names in files.items()}


def day_ranges(changed: list[str]) -> list[tuple[str, str]]:
    """Consecutive days as (first, last) ranges: a first load of months of files is one run."""
    ranges: list[tuple[str, str]] = []
    for day in sorted(changed):
        if ranges and date.fromisoformat(ranges[-1][1]) + timedelta(days=1) == date.fromisoformat(day):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


@dg.sensor(
    job=telemetry_and_serving_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Lists every configured telemetry and serving location (folder or S3) and starts a run for the "
    "UTC days whose files are new or changed: today's as they land, an old day's when a late file arrives "
    "(consecutive days in one run).",
)
def new_telemetry_and_serving_files(context: dg.SensorEvaluationContext, gpuledger: GpuledgerResource):
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    digests = day_digests(gpuledger)
    valid = set(days.get_partition_keys())
    changed = []
    for day, digest in sorted(digests.items()):
        if seen.get(day) == digest:
            continue
        if day not in valid:
            context.log.warning(f"files of {day} are outside the daily partitions, not loaded")
            continue
        changed.append(day)
    requests = [
        dg.RunRequest(
            run_key=f"{first}..{last}@" + hashlib.sha256(
                "".join(digests[d] for d in changed if first <= d <= last).encode()).hexdigest()[:16],
            tags=day_range_tags(first, last),
        )
        for first, last in day_ranges(changed)
    ]
    context.update_cursor(json.dumps(digests, sort_keys=True))
    return requests or dg.SkipReason("no new or changed telemetry or serving files")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[billing_period_job, telemetry_and_serving_job],
    request_job=gpuledger_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a billing period or days of telemetry and serving load, rebuild the ledger and the marts "
    "(the other billing exports are checked for new files on the way).",
)
def rebuild_after_new_data(context: dg.RunStatusSensorContext):
    return dg.RunRequest(run_key=f"after-{context.dagster_run.run_id}")
