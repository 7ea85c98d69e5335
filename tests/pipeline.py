"""Run the real asset graph (Dagster + dbt + DuckDB) for a config, as `gpuledger run` does."""

from pathlib import Path

import dagster as dg
import duckdb

from ingest.config import load_config
from orchestration.runs import PipelineRun, run_everything


def materialize_all(config_path: Path) -> PipelineRun:
    return run_everything(config_path, dg.DagsterInstance.ephemeral(), log_level="WARNING", say=lambda _: None)


def built_warehouse(root: Path, config: str) -> Path:
    """The warehouse of `config` (written to root/gpuledger.yaml) after every asset ran, every check passing."""
    path = root / "gpuledger.yaml"
    path.write_text(config)
    result = materialize_all(path)
    assert result.success
    assert failed_checks(result) == []
    return load_config(path).warehouse_path


def query(warehouse: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


TOLERANCE = 0.005  # every team x model x day within 0.5 % of the generator's ground truth
UNIT_ECONOMICS_FIELDS = ("requests", "input_tokens", "cached_input_tokens", "output_tokens", "inference_cost",
                         "fully_loaded_cost", "gpu_hours", "energy_kwh", "co2e_kg")


def close(actual, expected: float) -> bool:
    return abs(float(actual or 0) - expected) <= max(TOLERANCE * abs(expected), 1e-6)


def unit_economics_mismatches(warehouse: Path, truth: dict) -> list[str]:
    """Every (day, team, model) of marts.unit_economics_daily against ground_truth.json, both ways."""
    rows = query(warehouse, """
        select cast(day as varchar), team, model, requests, input_tokens, coalesce(cached_input_tokens, 0),
               output_tokens, inference_cost, fully_loaded_cost, gpu_hours, energy_kwh, co2e_kg
        from marts.unit_economics_daily""")
    actual = {r[:3]: r[3:] for r in rows}
    assert truth["unit_economics"], "the ground truth has no unit economics to compare"
    mismatches = []
    for e in truth["unit_economics"]:
        got = actual.pop((e["day"], e["team"], e["model"]), None)
        if got is None:
            mismatches.append(f"missing {e['day']} {e['team']} {e['model']}")
            continue
        mismatches += [f"{e['day']} {e['team']} {e['model']} {f}: {a} != {e[f]}"
                       for f, a in zip(UNIT_ECONOMICS_FIELDS, got, strict=True) if not close(a, e[f])]
    return mismatches + [f"not in the ground truth: {key}" for key in actual]


def failed_checks(result: PipelineRun) -> list[str]:
    return [
        f"{e.asset_check_evaluation_data.asset_key.to_user_string()}:{e.asset_check_evaluation_data.check_name}"
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.asset_check_evaluation_data.passed
    ]


def run_messages(instance: dg.DagsterInstance, results: list[dg.ExecuteInProcessResult]) -> list[str | None]:
    """Every log message of the runs, in order: what a user reads in the UI's run logs."""
    return [e.user_message for r in results for e in instance.all_logs(r.run_id)]
