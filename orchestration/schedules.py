"""Schedules that fit how the data arrives: telemetry and serving every hour, the other billing
exports daily, and the month close once the provider has finalised the previous month's bill."""

from datetime import timedelta

import dagster as dg

from orchestration.jobs import billing_period_job, gpuledger_job, telemetry_and_serving_job
from orchestration.partitions import day_range_tags, partition_key


@dg.schedule(
    job=telemetry_and_serving_job,
    cron_schedule="15 * * * *",
    execution_timezone="UTC",
    # Off by default: the new_telemetry_and_serving_files sensor already loads each file as it lands.
    # Turn this on instead where listing the landing zone every minute costs too much.
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="At :15 every hour, load today's telemetry and serving files (and yesterday's in the first hour, "
    "for the files of its last hour).",
)
def hourly_telemetry_and_serving(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    now = context.scheduled_execution_time
    first = (now - timedelta(hours=1)).strftime("%Y-%m-%d")
    return dg.RunRequest(run_key=f"hourly-{now:%Y-%m-%dT%H}", tags=day_range_tags(first, f"{now:%Y-%m-%d}"))


@dg.schedule(
    job=gpuledger_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 06:00 UTC, after the providers' overnight exports: load new GCP, Azure, OCI and FOCUS billing "
    "files, then rebuild the ledger, marts, anomalies, published marts and report.",
)
def daily_billing(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"daily-billing-{context.scheduled_execution_time:%Y-%m-%d}")


@dg.schedule(
    job=billing_period_job,
    cron_schedule="0 8 5 * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="On the 5th at 08:00 UTC, when AWS has finalised the previous month's invoice: load that billing "
    "period's final delivery (the ledger and marts rebuild after it).",
)
def month_close(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    previous = context.scheduled_execution_time.replace(day=1) - timedelta(days=1)
    key = partition_key(f"{previous:%Y-%m}")
    return dg.RunRequest(run_key=f"month-close-{key}", partition_key=key)


SCHEDULES = [hourly_telemetry_and_serving, daily_billing, month_close]
