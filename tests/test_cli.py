"""The `gpuledger` command as a user runs it."""

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb

from ingest.publish import publish_marts
from orchestration.cli import format_table

GPULEDGER = str(Path(sys.executable).parent / "gpuledger")


def run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([GPULEDGER, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "DO_NOT_TRACK": "1", **(env or {})})


def test_a_bad_config_stops_before_any_work_and_names_the_key(tmp_path):
    (tmp_path / "gpuledger.yaml").write_text("sources:\n  nvml: [{locaton: x}]\n")
    result = run("run", cwd=tmp_path)
    assert result.returncode == 2
    assert "sources.nvml[0].locaton: unknown key" in result.stderr
    assert "sources.nvml[0].location: Field required" in result.stderr
    assert not (tmp_path / "data").exists()


def test_sql_prints_a_table_or_csv(tmp_path):
    (tmp_path / "gpuledger.yaml").write_text("warehouse: wh.duckdb\n")
    assert run("sql", "select 1", cwd=tmp_path).returncode == 2  # nothing published yet: says to run first
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        con.execute("create schema marts")
        con.execute("create table marts.t as select 'llama' as model, 1234.5::decimal(38,10) as cost")
        publish_marts(con, tmp_path / "published")
    table = run("sql", "select * from t", cwd=tmp_path)
    assert table.returncode == 0
    assert table.stdout.splitlines() == ["model      cost", "-----  --------", "llama  1,234.50"]
    as_csv = run("sql", "select * from t", "--csv", cwd=tmp_path)
    assert as_csv.stdout.splitlines() == ["model,cost", "llama,1234.5000000000"]
    bad = run("sql", "select nope from t", cwd=tmp_path)
    assert bad.returncode == 1 and "query failed" in bad.stderr


def test_format_table_aligns_numbers_right():
    rows = [("a", Decimal("3.14159")), ("bb", Decimal("12345.678")), ("c", None), ("d", Decimal("-2E-8"))]
    assert format_table(["team", "usd"], rows).splitlines() == [
        "team        usd", "----  ---------", "a        3.1416", "bb    12,345.68", "c", "d        0.0000"]


def test_demo_runs_end_to_end_and_prints_the_headlines(tmp_path):
    result = run("demo", "--out", str(tmp_path / "demo"), "--gpus", "4", "--days", "1", cwd=tmp_path,
                 env={"DAGSTER_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr[-3000:]
    for title in ("Cost per 1M tokens by model and team", "Spend by team and category (effective cost)",
                  "Idle share of GPU spend", "Reconciliation with the bill"):
        assert f"== {title} ==" in result.stdout
    assert "llama-3.1-8b-instruct" in result.stdout
    assert (tmp_path / "home" / "dagster.yaml").exists()  # runs are recorded for the UI
