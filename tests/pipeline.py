"""Run the real asset graph (Dagster + dbt + DuckDB) for a config, as `gpuledger run` does."""

from pathlib import Path

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource

from orchestration.definitions import all_assets, all_checks
from orchestration.project import DBT_EXECUTABLE, dbt_project
from orchestration.resources import GpuledgerResource


def materialize_all(config_path: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*all_assets, *all_checks],
        resources={
            "gpuledger": GpuledgerResource(config_path=str(config_path)),
            "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
        },
        raise_on_error=False,
    )


def query(warehouse: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def failed_checks(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        f"{e.asset_check_evaluation_data.asset_key.to_user_string()}:{e.asset_check_evaluation_data.check_name}"
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.asset_check_evaluation_data.passed
    ]
