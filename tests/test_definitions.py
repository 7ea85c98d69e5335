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


def test_the_two_jobs_cover_every_asset_and_billing_is_monthly():
    billing, everything = defs.resolve_job_def("billing_period"), defs.resolve_job_def("gpuledger_all")
    covered = set(billing.asset_layer.executable_asset_keys) | set(everything.asset_layer.executable_asset_keys)
    on_request = {dg.AssetKey(["reference", "cloud_gpu_prices_api"])}
    assert covered == set(defs.resolve_asset_graph().executable_asset_keys) - on_request
    keys = billing.partitions_def.get_partition_keys()
    assert keys[keys.index("2026-10-01") + 1] == "2026-11-01"  # one partition per month


def test_the_sensors_run_by_default():
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {"new_billing_deliveries", "rebuild_after_billing", "spend_anomaly_alerts",
                            "post_failed_runs"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
