"""Run the real asset graph (Dagster + dbt + DuckDB) for a config, as `gpuledger run` does."""

from pathlib import Path

import dagster as dg
import duckdb

from orchestration.runs import PipelineRun, run_everything


def materialize_all(config_path: Path) -> PipelineRun:
    return run_everything(config_path, dg.DagsterInstance.ephemeral(), log_level="WARNING", say=lambda _: None)


def query(warehouse: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def failed_checks(result: PipelineRun) -> list[str]:
    return [
        f"{e.asset_check_evaluation_data.asset_key.to_user_string()}:{e.asset_check_evaluation_data.check_name}"
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.asset_check_evaluation_data.passed
    ]
