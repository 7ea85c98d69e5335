"""Analysts query the published marts while the pipeline runs: neither side waits for or fails the
other, and the next query sees the new run's data."""

import duckdb
from pipeline import built_warehouse, materialize_all
from test_allocation import CONFIG, write_bill, write_requests, write_telemetry

from ingest.config import load_config
from ingest.publish import CATALOG, connect_catalog, publish_marts


def test_an_open_analyst_session_and_a_run_never_fail_each_other(tmp_path):
    write_bill(tmp_path / "billing")
    write_telemetry(tmp_path / "telemetry")
    (tmp_path / "serving").mkdir()
    built_warehouse(tmp_path, CONFIG)  # the first run: marts without requests
    published = load_config(tmp_path / "gpuledger.yaml").published_path

    analyst = connect_catalog(published)  # held open across the next run, as a notebook would
    try:
        assert analyst.execute("select sum(requests) from unit_economics_daily").fetchone() == (0,)
        write_requests(tmp_path / "serving-new")
        (tmp_path / "serving").rmdir()
        (tmp_path / "serving-new").rename(tmp_path / "serving")  # requests land: the next run attributes them
        assert materialize_all(tmp_path / "gpuledger.yaml").success
        assert analyst.execute("select sum(requests) from unit_economics_daily").fetchone() == (3,)
        assert analyst.execute("select count(*) from spend_anomalies").fetchone() == (0,)
    finally:
        analyst.close()


def test_a_republish_replaces_files_under_an_open_session(tmp_path):
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        con.execute("create schema marts")
        con.execute("create table marts.spend as select 1 as n")
        publish_marts(con, tmp_path / "out")
        analyst = connect_catalog(tmp_path / "out")
        catalog_before = (tmp_path / "out" / CATALOG).stat().st_ino
        con.execute("create or replace table marts.spend as select 2 as n union all select 3")
        publish_marts(con, tmp_path / "out")
        assert analyst.execute("select sum(n) from spend").fetchone() == (5,)  # the next query: the new file
        assert (tmp_path / "out" / CATALOG).stat().st_ino == catalog_before  # same marts: catalog untouched
        con.execute("create table marts.more as select 1 as n")
        publish_marts(con, tmp_path / "out")  # a new mart: the catalog is replaced, by rename
        analyst.close()
    assert connect_catalog(tmp_path / "out").execute("select n from more").fetchall() == [(1,)]
    assert sorted(p.name for p in (tmp_path / "out" / "marts").iterdir()) == ["more.parquet", "spend.parquet"]
