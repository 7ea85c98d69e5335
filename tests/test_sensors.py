"""The billing sensor starts one run per new or restated billing period, and nothing else."""

import os
import time

import dagster as dg
from test_readers import cur_rows, write_delivery

from orchestration.resources import GpuledgerResource
from orchestration.sensors import new_billing_deliveries, rebuild_after_billing


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


def test_a_finished_billing_run_asks_for_the_rebuild():
    assert rebuild_after_billing.name == "rebuild_after_billing"
    job_names = {target.job_name for target in rebuild_after_billing.targets}
    assert job_names == {"gpuledger_all"}
