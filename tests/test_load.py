"""Loading into a real DuckDB file: restatements replace, re-runs never double count, and the
quarantine says what was set aside."""

import os
import shutil
import time

from test_readers import cur_rows, jsonl, request, write_delivery

from ingest import gateway
from ingest.landing import LocalLanding
from ingest.load import list_files, load_aws_cur, load_files
from ingest.warehouse import connect


def total(con, sql: str):
    return con.execute(sql).fetchone()[0]


def test_a_restated_billing_period_replaces_the_earlier_delivery(tmp_path):
    landing = tmp_path / "aws"
    write_delivery(landing, "2026-10", {"p-1.parquet": cur_rows(4, cost=2.0)})
    write_delivery(landing, "2026-11", {"n-1.parquet": cur_rows(3, cost=1.0)})
    with connect(tmp_path / "wh.duckdb") as con:
        first = load_aws_cur(con, LocalLanding(landing), "cur")
        assert (first.loaded, first.rows["aws_cur"]) == (2, 7)
        assert total(con, "select sum(line_item_unblended_cost) from raw.aws_cur") == 11.0

        # AWS restates November: a new delivery with other file names and one more line
        (landing / "cur" / "data" / "BILLING_PERIOD=2026-11" / "n-1.parquet").unlink()
        restated = {"n-2a.parquet": cur_rows(2, 1.25), "n-2b.parquet": cur_rows(2, 1.25)}
        manifest = write_delivery(landing, "2026-11", restated)
        os.utime(manifest, (time.time() + 5, time.time() + 5))
        second = load_aws_cur(con, LocalLanding(landing), "cur")
        assert (second.loaded, second.unchanged) == (1, 1)  # October untouched
        rows = con.execute("""select _billing_period, count(*), sum(line_item_unblended_cost)
                              from raw.aws_cur group by 1 order by 1""").fetchall()
        assert rows == [("2026-10", 4, 8.0), ("2026-11", 4, 5.0)]

        third = load_aws_cur(con, LocalLanding(landing), "cur")
        assert (third.loaded, third.unchanged) == (0, 2)
    # raw.aws_cur is a view of a Parquet folder per period beside the warehouse; October's first
    # delivery's folder went with it
    assert len(list((tmp_path / "wh.duckdb.raw" / "aws_cur").iterdir())) == 2


def cur_periods(con) -> list[tuple]:
    return con.execute("""select _billing_period, count(*), sum(line_item_unblended_cost),
                                 regexp_extract(min(_source_file), '[^/]+$')
                          from raw.aws_cur group by 1 order by 1""").fetchall()


def test_a_warehouse_that_kept_the_cur_in_its_file_has_it_moved_to_parquet_once(tmp_path):
    landing = tmp_path / "aws"
    write_delivery(landing, "2026-10", {"p-1.parquet": cur_rows(4, cost=2.0)})
    write_delivery(landing, "2026-11", {"n-1.parquet": cur_rows(3, cost=1.0)})
    with connect(tmp_path / "wh.duckdb") as con:
        load_aws_cur(con, LocalLanding(landing), "cur")
        loaded = cur_periods(con)
        # as a warehouse of an earlier gpuledger holds it: a table in the file, no Parquet folders
        con.execute("create table raw.old_cur as select * from raw.aws_cur")
        con.execute("drop view raw.aws_cur")
        con.execute("alter table raw.old_cur rename to aws_cur")
        con.execute("delete from raw.parquet_scopes")

        again = load_aws_cur(con, LocalLanding(landing), "cur")
        assert (again.loaded, again.unchanged) == (0, 2)  # moved, not loaded again
        assert cur_periods(con) == loaded == [("2026-10", 4, 8.0, "p-1.parquet"), ("2026-11", 3, 3.0, "n-1.parquet")]
        assert con.execute("select table_type from information_schema.tables where table_name = 'aws_cur'"
                           ).fetchall() == [("VIEW",)]
        assert len(list((tmp_path / "wh.duckdb.raw" / "aws_cur").iterdir())) == 2

        # a restatement after the move replaces its period only
        write_delivery(landing, "2026-11", {"n-2.parquet": cur_rows(5, cost=1.0)})
        assert load_aws_cur(con, LocalLanding(landing), "cur").loaded == 1
        assert [(p, n, cost) for p, n, cost, _ in cur_periods(con)] == [("2026-10", 4, 8.0), ("2026-11", 5, 5.0)]


def test_a_period_whose_parquet_folder_was_deleted_loads_again(tmp_path):
    landing = tmp_path / "aws"
    write_delivery(landing, "2026-10", {"p-1.parquet": cur_rows(4, cost=2.0)})
    write_delivery(landing, "2026-11", {"n-1.parquet": cur_rows(3, cost=1.0)})
    said = []
    with connect(tmp_path / "wh.duckdb") as con:
        load_aws_cur(con, LocalLanding(landing), "cur")
        loaded = cur_periods(con)
        (folder,) = con.execute("select folder from raw.parquet_scopes where scope = 'cur/BILLING_PERIOD=2026-10'"
                                ).fetchone()
        shutil.rmtree(tmp_path / "wh.duckdb.raw" / "aws_cur" / folder)

        again = load_aws_cur(con, LocalLanding(landing), "cur", progress=said.append)
        assert (again.loaded, again.unchanged, again.rows["aws_cur"]) == (1, 1, 4)
        assert cur_periods(con) == loaded
    assert said[0] == (f"aws_cur: cur/BILLING_PERIOD=2026-10: its Parquet files under {tmp_path / 'wh.duckdb.raw'} "
                       "are gone; the billing asset loads it again from its landing zone")


def test_an_unusable_manifest_is_quarantined_and_the_others_load(tmp_path):
    landing = tmp_path / "aws"
    write_delivery(landing, "2026-10", {"p.parquet": cur_rows(1)})
    broken = landing / "cur" / "metadata" / "BILLING_PERIOD=2026-11"
    broken.mkdir(parents=True)
    (broken / "cur-Manifest.json").write_text("{truncated")
    with connect(tmp_path / "wh.duckdb") as con:
        report = load_aws_cur(con, LocalLanding(landing), "cur")
        assert report.rows["aws_cur"] == 1
        (reason,), = con.execute("select reason from raw.quarantine").fetchall()
        assert reason.startswith("unusable manifest: manifest is not valid JSON")


def test_files_load_once_and_a_changed_file_replaces_its_rows(tmp_path):
    folder = tmp_path / "gw"
    folder.mkdir()
    a = jsonl(folder / "a.jsonl", [request(request_id="a1"), request(request_id="a2"), b"{oops"])
    jsonl(folder / "b.jsonl", [request(request_id="b1")])
    files = list_files([LocalLanding(folder)], gateway.FILE_SUFFIXES)
    with connect(tmp_path / "wh.duckdb") as con:
        first = load_files(con, "gateway", files, lambda path, label, key: gateway.read_gateway_file(path, label))
        assert (first.loaded, first.rows["gateway_requests"], first.quarantined) == (2, 3, 1)
        assert con.execute("select source_file, row_number, reason from raw.quarantine").fetchall() == [
            (str(a), 3, "malformed JSON: Expecting property name enclosed in double quotes at column 2")]

        again = load_files(con, "gateway", files, lambda path, label, key: gateway.read_gateway_file(path, label))
        assert (again.loaded, again.unchanged) == (0, 2)
        assert total(con, "select count(*) from raw.gateway_requests") == 3

        jsonl(a, [request(request_id="a1"), request(request_id="a2"), request(request_id="a3")])  # file fixed
        fixed = load_files(con, "gateway", list_files([LocalLanding(folder)], gateway.FILE_SUFFIXES),
                           lambda path, label, key: gateway.read_gateway_file(path, label))
        assert (fixed.loaded, fixed.unchanged) == (1, 1)
        assert sorted(r[0] for r in con.execute("select request_id from raw.gateway_requests").fetchall()) == [
            "a1", "a2", "a3", "b1"]
        assert total(con, "select count(*) from raw.quarantine") == 0
        assert total(con, "select count(*) from raw.gateway_requests where _source_file is null "
                          "or _ingested_at is null") == 0


def test_a_file_whose_record_was_cleared_by_hand_replaces_its_rows(tmp_path):
    """A new file's batch looks for earlier rows only of files with a record; once a record is
    cleared, the rows no longer add up to the records, and every file's rows are looked for."""
    folder = tmp_path / "gw"
    folder.mkdir()
    a = jsonl(folder / "a.jsonl", [request(request_id="a1"), request(request_id="a2")])
    jsonl(folder / "b.jsonl", [request(request_id="b1")])

    def load(said: list[str]):
        files = list_files([LocalLanding(folder)], gateway.FILE_SUFFIXES)
        return load_files(con, "gateway", files, lambda path, label, key: gateway.read_gateway_file(path, label),
                          progress=said.append)

    def request_ids() -> list[str]:
        return sorted(r[0] for r in con.execute("select request_id from raw.gateway_requests").fetchall())

    with connect(tmp_path / "wh.duckdb") as con:
        first: list[str] = []
        assert load(first).loaded == 2
        con.execute("delete from raw.ingested_files where scope = ?", [str(a)])
        cleared: list[str] = []
        assert (load(cleared).loaded, request_ids()) == (1, ["a1", "a2", "b1"])
        assert ("gateway: raw.ingested_files does not account for every row of the raw tables (records cleared by "
                "hand?): every file's earlier rows are looked for, which reads all of them") in cleared
        jsonl(folder / "c.jsonl", [request(request_id="c1")])
        new: list[str] = []
        assert (load(new).loaded, request_ids()) == (1, ["a1", "a2", "b1", "c1"])
        assert not [m for m in first + new if "does not account" in m]


def test_an_unchanged_cur_delivery_is_not_hashed_again_and_a_touched_one_not_reloaded(tmp_path, monkeypatch):
    import ingest.landing

    landing = tmp_path / "aws"
    write_delivery(landing, "2026-11", {"a.parquet": cur_rows(3, cost=2.0), "b.parquet": cur_rows(2, cost=1.0)})
    hashed = []
    fingerprint = ingest.landing.fingerprint
    monkeypatch.setattr(ingest.landing, "fingerprint", lambda path: hashed.append(path.name) or fingerprint(path))
    with connect(tmp_path / "wh.duckdb") as con:
        first = load_aws_cur(con, LocalLanding(landing), "cur")
        assert (first.loaded, first.rows["aws_cur"]) == (1, 5)
        assert sorted(hashed) == ["a.parquet", "b.parquet", "cur-Manifest.json"]
        hashed.clear()
        assert (load_aws_cur(con, LocalLanding(landing), "cur").unchanged, hashed) == (1, [])

        data = landing / "cur" / "data" / "BILLING_PERIOD=2026-11"
        os.utime(data / "b.parquet", (1e9, 1e9))  # the same bytes, written again
        touched = load_aws_cur(con, LocalLanding(landing), "cur")
        assert (touched.loaded, touched.unchanged, len(hashed)) == (0, 1, 3)
        hashed.clear()
        assert (load_aws_cur(con, LocalLanding(landing), "cur").unchanged, hashed) == (1, [])

        write_delivery(landing, "2026-11", {"a.parquet": cur_rows(3, cost=2.0), "b.parquet": cur_rows(4, cost=1.0)})
        restated = load_aws_cur(con, LocalLanding(landing), "cur")
        assert (restated.loaded, restated.rows["aws_cur"]) == (1, 7)
        assert total(con, "select sum(line_item_unblended_cost) from raw.aws_cur") == 10.0
