"""The Dagster definitions load, validate, and show users what they expect in the UI."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from orchestration.definitions import defs

REPO = Path(__file__).resolve().parents[1]


def test_definitions_validate_with_the_dagster_cli():
    dagster = Path(sys.executable).parent / "dagster"
    result = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"], cwd=REPO,
                            capture_output=True, text=True, env={**os.environ, "DO_NOT_TRACK": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Validation successful for code location gpuledger" in result.stdout + result.stderr


def test_dg_loads_the_same_definitions():
    dg_cli = Path(sys.executable).parent / "dg"
    result = subprocess.run([str(dg_cli), "check", "defs"], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "DO_NOT_TRACK": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All definitions loaded successfully." in result.stdout + result.stderr


def test_the_asset_graph_has_every_layer():
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw/aws_cur", "raw/nvml_gpu_samples", "raw/nvml_processes", "raw/gateway_requests",
            "config/settings", "config/process_workloads", "staging/stg_aws__cur",
            "intermediate/int_gpu_hour_allocation", "marts/cost_ledger_hourly", "marts/unit_economics_daily",
            "marts/cost_reconciliation"} <= keys


def test_every_asset_is_described_grouped_and_owned():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        assert node.group_name and node.group_name != "default", key
        assert node.owners, key


def test_dbt_tests_and_quarantine_checks_are_asset_checks():
    checks = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    for raw in ("raw/aws_cur", "raw/nvml_gpu_samples", "raw/nvml_processes", "raw/gateway_requests"):
        assert (raw, "no_quarantined_rows") in checks
    assert ("marts/cost_reconciliation", "absolute_value_at_most_cost_reconciliation_difference__0_01") in checks
    assert any(a == "marts/cost_ledger_hourly" and n.startswith("unique_combination") for a, n in checks)


def test_the_jobs_cover_every_asset_on_the_partitions_users_expect():
    jobs = {name: defs.resolve_job_def(name) for name in ("billing_period", "telemetry_and_serving", "gpuledger_all")}
    covered = set().union(*(set(j.asset_layer.executable_asset_keys) for j in jobs.values()))
    on_request = {dg.AssetKey(["reference", "cloud_gpu_prices_api"])}
    assert covered == set(defs.resolve_asset_graph().executable_asset_keys) - on_request

    months = jobs["billing_period"].partitions_def.get_partition_keys()
    assert months[months.index("2026-10-01") + 1] == "2026-11-01"  # one partition per billing period
    day_keys = jobs["telemetry_and_serving"].partitions_def.get_partition_keys()
    assert day_keys[day_keys.index("2026-02-28") + 1] == "2026-03-01"  # one partition per UTC day

    graph, daily = defs.resolve_asset_graph(), jobs["telemetry_and_serving"].partitions_def
    for key in ("raw/nvml_gpu_samples", "raw/dcgm_samples", "raw/gateway_requests", "raw/litellm_spend_logs",
                "intermediate/int_gpu_hour_occupancy", "intermediate/int_gpu_hours_observed"):
        assert graph.get(dg.AssetKey.from_user_string(key)).partitions_def == daily
    for key in ("marts/cost_ledger_hourly", "marts/unit_economics_daily", "config/process_workloads"):
        assert graph.get(dg.AssetKey.from_user_string(key)).partitions_def is None  # rebuilt whole


def test_schedules_and_sensors_and_their_default_state():
    running = dg.DefaultSensorStatus.RUNNING
    assert {s.name: s.default_status for s in defs.sensors} == {
        "new_billing_deliveries": running, "new_telemetry_and_serving_files": running,
        "rebuild_after_new_data": running, "spend_anomaly_alerts": running, "post_failed_runs": running,
    }
    # the hourly schedule duplicates the file sensor, so it waits to be switched on instead of it
    assert {s.name: (s.cron_schedule, s.default_status.value) for s in defs.schedules} == {
        "hourly_telemetry_and_serving": ("15 * * * *", "STOPPED"),
        "daily_billing": ("0 6 * * *", "RUNNING"),
        "month_close": ("0 8 5 * *", "RUNNING"),
    }
