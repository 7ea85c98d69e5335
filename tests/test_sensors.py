"""The sensors start one run per new or restated billing period and per run of changed telemetry
and serving days, and nothing else; the schedules ask for the partitions their time implies."""

import os
import time
from datetime import UTC, datetime

import dagster as dg
from conftest import BUCKET, admin
from test_readers import cur_rows, write_delivery

from orchestration.definitions import defs
from orchestration.partitions import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from orchestration.resources import GpuledgerResource
from orchestration.schedules import daily_billing, hourly_telemetry_and_serving, month_close
from orchestration.sensors import new_billing_deliveries, new_telemetry_and_serving_files, rebuild_after_new_data


def evaluate(config, cursor):
    resource = GpuledgerResource(config_path=str(config))
    context = dg.build_sensor_context(cursor=cursor, resources={"gpuledger": resource})
    result = new_billing_deliveries(context)
    requests = result if isinstance(result, list) else []
    return sorted(r.partition_key for r in requests), context.cursor


def test_new_and_restated_periods_start_runs_once(tmp_path):
    (tmp_path / "gpuledger.yaml").write_text("sources:\n  aws_cur: [{location: aws, export_name: cur}]\n")
    config = tmp_path / "gpuledger.yaml"
    write_delivery(tmp_path / "aws", "2026-10", {"a.parquet": cur_rows(2)})
    write_delivery(tmp_path / "aws", "2026-11", {"b.parquet": cur_rows(2)})

    first, cursor = evaluate(config, None)
    assert first == ["2026-10-01", "2026-11-01"]
    again, cursor = evaluate(config, cursor)
    assert again == []  # nothing new: no runs

    manifest = write_delivery(tmp_path / "aws", "2026-11", {"b2.parquet": cur_rows(3)})  # AWS restates November
    os.utime(manifest, (time.time() + 5, time.time() + 5))
    restated, _ = evaluate(config, cursor)
    assert restated == ["2026-11-01"]


def test_a_finished_billing_or_telemetry_run_asks_for_the_rebuild():
    assert {target.job_name for target in rebuild_after_new_data.targets} == {"gpuledger_all"}


def day_runs(config, cursor):
    resource = GpuledgerResource(config_path=str(config))
    context = dg.build_sensor_context(cursor=cursor, resources={"gpuledger": resource})
    result = new_telemetry_and_serving_files(context)
    requests = result if isinstance(result, list) else []
    return sorted((r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG])
                  for r in requests), context.cursor


def write(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_new_and_late_telemetry_and_serving_files_start_runs_for_their_days(tmp_path, s3_endpoint):
    (tmp_path / "gpuledger.yaml").write_text(
        f"sources:\n  nvml: [{{location: nvml}}]\n  gateway: [{{location: 's3://{BUCKET}/gateway'}}]\n")
    config = tmp_path / "gpuledger.yaml"
    for day in ("20", "21", "23"):
        write(tmp_path / "nvml" / "g1" / f"2026-11-{day}" / f"nvml-g1-202611{day}T10.jsonl.gz")
    admin().put_object(Bucket=BUCKET, Key="gateway/gw-1/gw-1-2026-11-21.jsonl.gz", Body=b"x")

    first, cursor = day_runs(config, None)
    assert first == [("2026-11-20", "2026-11-21"), ("2026-11-23", "2026-11-23")]  # consecutive days, one run
    again, cursor = day_runs(config, cursor)
    assert again == []

    write(tmp_path / "nvml" / "g2" / "2026-11-20" / "nvml-g2-20261120T23.jsonl.gz")  # late, for an old day
    late, cursor = day_runs(config, cursor)
    assert late == [("2026-11-20", "2026-11-20")]

    admin().put_object(Bucket=BUCKET, Key="gateway/gw-1/gw-1-2026-11-21.jsonl.gz", Body=b"restated")  # new ETag
    changed, cursor = day_runs(config, cursor)
    assert changed == [("2026-11-21", "2026-11-21")]

    write(tmp_path / "nvml" / "g1" / "2026-11-24" / "nvml-g1-20261124T00.jsonl.gz.tmp")  # still being written
    in_progress, _ = day_runs(config, cursor)
    assert in_progress == []


def scheduled(schedule, at: datetime) -> dg.RunRequest:
    context = dg.build_schedule_context(scheduled_execution_time=at, repository_def=defs.get_repository_def())
    return schedule.evaluate_tick(context).run_requests[0]


def test_schedules_ask_for_the_partitions_their_time_implies():
    after_midnight = scheduled(hourly_telemetry_and_serving, datetime(2026, 11, 24, 0, 15, tzinfo=UTC))
    assert (after_midnight.tags[ASSET_PARTITION_RANGE_START_TAG],
            after_midnight.tags[ASSET_PARTITION_RANGE_END_TAG]) == ("2026-11-23", "2026-11-24")
    midday = scheduled(hourly_telemetry_and_serving, datetime(2026, 11, 24, 12, 15, tzinfo=UTC))
    assert (midday.tags[ASSET_PARTITION_RANGE_START_TAG], midday.tags[ASSET_PARTITION_RANGE_END_TAG]) == \
        ("2026-11-24", "2026-11-24")
    assert scheduled(month_close, datetime(2026, 12, 5, 8, tzinfo=UTC)).partition_key == "2026-11-01"
    assert scheduled(month_close, datetime(2027, 1, 5, 8, tzinfo=UTC)).partition_key == "2026-12-01"
    assert scheduled(daily_billing, datetime(2026, 11, 24, 6, tzinfo=UTC)).run_key == "daily-billing-2026-11-24"
