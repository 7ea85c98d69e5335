"""Run the whole pipeline once, as `gpuledger run` and the tests do: every billing period that has
a delivery (one partitioned run each), every day that has telemetry or serving files (one run
over the range, as a backfill does), then the ledger and marts, then the spend-anomaly alerts
(what the sensors would start when a daemon runs; the alert ledger sends each message once
either way). Every run is recorded in the Dagster instance, so the UI shows them."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from ingest.config import load_config
from ingest.landing import open_landing
from ingest.load import newest_deliveries
from orchestration.alerts import notify_spend_anomalies
from orchestration.definitions import defs
from orchestration.jobs import billing_period_job, gpuledger_job, telemetry_and_serving_job
from orchestration.partitions import billing_periods, day_range_tags, partition_key
from orchestration.resources import GpuledgerResource
from orchestration.sensors import day_digests


@dataclass
class PipelineRun:
    results: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return bool(self.results) and all(r.success for r in self.results)

    @property
    def all_events(self) -> list[dg.DagsterEvent]:
        return [e for r in self.results for e in r.all_events]


def billing_periods_delivered(config_path: Path) -> list[str]:
    cfg = load_config(config_path)
    periods = set()
    for source in cfg.sources.aws_cur:
        landing = open_landing(cfg.resolve(source.location), cfg.warehouse_path.parent / "landing-cache")
        deliveries, _, _ = newest_deliveries(landing, source.export_name, source.format)
        periods |= {d.billing_period for d in deliveries}
    return sorted(periods)


def run_config(config_path: Path, log_level: str) -> dict:
    return {
        "resources": {"gpuledger": {"config": {"config_path": str(config_path.resolve())}}},
        "loggers": {"console": {"config": {"log_level": log_level}}},
    }


def run_days(config_path: Path, instance: dg.DagsterInstance, first: str, last: str, log_level: str = "INFO",
             say: Callable[[str], None] = print) -> PipelineRun:
    """What the daemon does when a day's files land: load the days first..last (one run over the
    range), rebuild the ledger and marts, then send the spend-anomaly alerts."""
    config = run_config(config_path, log_level)
    pipeline = PipelineRun()
    say(f"gpuledger: loading telemetry and serving, {first} to {last}")
    pipeline.results.append(defs.resolve_job_def(telemetry_and_serving_job.name).execute_in_process(
        tags=day_range_tags(first, last), instance=instance, run_config=config, raise_on_error=False))
    say("gpuledger: building the ledger and marts")
    pipeline.results.append(defs.resolve_job_def(gpuledger_job.name).execute_in_process(
        instance=instance, run_config=config, raise_on_error=False))
    if pipeline.success:
        say("gpuledger: spend-anomaly alerts")
        pipeline.results.append(defs.resolve_job_def(notify_spend_anomalies.name).execute_in_process(
            instance=instance, run_config=config, raise_on_error=False))
    return pipeline


def run_everything(config_path: Path, instance: dg.DagsterInstance, log_level: str = "INFO",
                   say: Callable[[str], None] = print) -> PipelineRun:
    pipeline = PipelineRun()
    valid = set(billing_periods.get_partition_keys())
    for period in billing_periods_delivered(config_path):
        if partition_key(period) not in valid:
            say(f"gpuledger: billing period {period} is outside the partitions; not loaded")
            continue
        say(f"gpuledger: loading billing period {period}")
        pipeline.results.append(defs.resolve_job_def(billing_period_job.name).execute_in_process(
            partition_key=partition_key(period), instance=instance, run_config=run_config(config_path, log_level),
            raise_on_error=False))
    # With no telemetry or serving files, today's (empty) day still creates the GPU-hour tables.
    file_days = sorted(day_digests(GpuledgerResource(config_path=str(config_path)))) or [
        f"{datetime.now(UTC):%Y-%m-%d}"]
    pipeline.results += run_days(config_path, instance, file_days[0], file_days[-1], log_level, say).results
    return pipeline
