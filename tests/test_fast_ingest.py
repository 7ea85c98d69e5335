"""The batched DuckDB reading of NVML and gateway files (ingest.load's fast path) against the
per-file Python readers: the same raw rows, quarantine and bookkeeping for the same files, with
the files the SQL cannot vouch for handed to the per-file reader whole."""

import gzip
import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from test_readers import cur_rows, jsonl, request, sample, write_delivery

from ingest import files, gateway, load, nvml
from ingest.landing import LocalLanding
from ingest.load import list_files, load_aws_cur, load_files
from ingest.warehouse import connect

SOURCES = {"nvml": (nvml, nvml.read_nvml_file), "gateway": (gateway, gateway.read_gateway_file)}


def compact(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def warehouse_state(con, module) -> dict:
    state = {}
    for name, (schema, _) in module.FAST_READER.tables.items():
        columns = ", ".join([*schema.names, "_source_file"])
        state[name] = con.execute(f"select {columns} from raw.{name} order by all").fetchall()
    state["quarantine"] = con.execute(
        "select source, scope, source_file, row_number, reason from raw.quarantine order by all").fetchall()
    state["ingested"] = con.execute(
        "select source, scope, size_bytes, sha256, rows_loaded, rows_quarantined from raw.ingested_files "
        "order by all").fetchall()
    return state


def load_both_ways(tmp_path: Path, folder: Path, source: str) -> tuple[dict, dict, list[str]]:
    """(state after the fast path, state after the per-file readers alone, files the fast path
    handed to the per-file reader)."""
    module, read = SOURCES[source]
    handed: list[str] = []

    def reader(path, label, key):
        handed.append(Path(path).name)
        return read(path, label)

    states = []
    for fast in (True, False):
        with connect(tmp_path / f"{source}-{fast}.duckdb") as con:
            load_files(con, source, list_files([LocalLanding(folder)], module.FILE_SUFFIXES), reader, fast=fast)
            states.append(warehouse_state(con, module))
        if fast:
            fast_handed, handed = sorted(handed), []
    return states[0], states[1], fast_handed


# --- NVML ----------------------------------------------------------------------------------------

NVML_GOOD = {  # lines the SQL reads itself: values must come out exactly as json + Python give them
    "default": [sample()],
    "compact": [compact(sample())],
    "offsets": [sample(ts="2026-11-02T10:00:00+00:00"), sample(ts="2026-11-02T15:30:00.5+05:30"),
                sample(ts="2026-11-02T01:00:00.123456-02:00"), sample(ts="2026-11-02 10:00:00"),
                sample(ts="2026-11-02T10:00:00.1234Z")],
    "optional fields": [sample(util_gpu_pct=97.5, util_mem_pct=None, name=None, temp_c=None),
                        {k: v for k, v in sample().items() if k in ("ts", "host", "gpu_uuid", "gpu_index")},
                        sample(mig_mode=True, processes=None), sample(processes={}), sample(processes=""),
                        sample(gpu_uuid="MIG-1", parent_gpu_uuid="GPU-1", mig_slices=3, mig_total_slices=7)],
    "environments": [sample(processes=[
        {"pid": 1, "env": {"Z_VAR": "z", "GPULEDGER_WORKLOAD": "a b", "M": ""}},
        {"pid": 2, "env": None}, {"pid": 3}, {"pid": 4, "env": []}, {"pid": 5, "name": "caf\u00e9"},
        {"pid": 6, "env": {"A": "quote ' and , and }"}}])],
    "unicode name": [sample(name="NVIDIA \u00c4 100", host="h\u00f6st")],
    "blank lines": [sample(), b"", b"   ", sample(gpu_index=2)],
    "no final newline": [sample(), compact(sample(gpu_index=3))],
    "nothing": [],
}
NVML_BAD = {  # lines the per-file reader must judge: the whole file goes there
    "string index": [sample(), sample(gpu_index="0")],
    "bool number": [sample(util_gpu_pct=True)],
    "float integer": [sample(temp_c=60.0)],
    "missing uuid": [sample(gpu_uuid=None)],
    "process without pid": [sample(processes=[{"name": "no pid"}])],
    "env not strings": [sample(processes=[{"pid": 1, "env": {"A": 1}}])],
    "env escapes": [sample(processes=[{"pid": 1, "env": {"A": 'say "hi"\n'}}])],
    "env non-ascii": [sample(processes=[{"pid": 1, "env": {"A": "\u00e9"}}])],
    "env repeated key": [b'{"ts":"2026-11-02T10:00:00Z","host":"h","gpu_uuid":"G","gpu_index":0,'
                         b'"processes":[{"pid":1,"env":{"A":"x","A":"y"}}]}'],
    "processes not a list": [sample(processes={"pid": 1})],
    "malformed": [sample(), b"{oops", sample()],
    "trailing comma": [b'{"ts":"2026-11-02T10:00:00Z","host":"h","gpu_uuid":"G","gpu_index":0,}'],
    "trailing comma, spaced": [b'{"ts": "2026-11-02T10:00:00Z", "host": "h", "gpu_uuid": "G", "gpu_index": 0, }'],
    "a list": [sample(), [1, 2]],
    "a scalar": [sample(), 5, None],
    "not utf-8": [sample(), b'{"ts":"2026-11-02T10:00:00Z","host":"\xff","gpu_uuid":"G","gpu_index":0}'],
    "crlf": [compact(sample()) + b"\r", compact(sample())],
    "date only": [sample(ts="2026-11-02")],
    "no timestamp": [sample(ts="yesterday")],
    "hour 24": [sample(ts="2026-11-02T24:00:00Z")],
    "huge integer": [sample(mem_used_bytes=2**64)],
}


def write_case(folder: Path, name: str, lines: list, gz: bool = True) -> Path:
    path = folder / name.replace(" ", "-").replace(",", "") / f"nvml-host-20261102T10.jsonl{'.gz' if gz else ''}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return jsonl(path, lines, gz=gz)


def test_nvml_fast_path_gives_the_per_file_readers_rows_and_hands_over_what_it_cannot_vouch_for(tmp_path):
    folder = tmp_path / "landing"
    for name, lines in {**NVML_GOOD, **NVML_BAD}.items():
        if name != "huge integer":  # the per-file reader fails on it (an Arrow overflow), as it did before
            write_case(folder, name, lines)
    write_case(folder, "plain text file", [sample(), b"", sample(gpu_index=5)], gz=False)
    data = gzip.compress(b"".join(compact(sample(gpu_index=i)) + b"\n" for i in range(50)))
    cut = folder / "truncated" / "nvml-host-20261102T10.jsonl.gz"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) * 2 // 3])
    fast, per_file, handed = load_both_ways(tmp_path, folder, "nvml")
    assert fast == per_file
    assert len(handed) == len(NVML_BAD)  # every bad case and the truncated file, no good one
    assert fast["quarantine"] and fast[nvml.GPU_SAMPLES] and fast[nvml.PROCESSES]


def test_a_huge_integer_still_goes_to_the_per_file_reader(tmp_path):
    folder = tmp_path / "landing"
    write_case(folder, "huge", [sample(mem_used_bytes=2**64)])
    with connect(tmp_path / "wh.duckdb") as con, pytest.raises(OverflowError):
        load_files(con, "nvml", list_files([LocalLanding(folder)], nvml.FILE_SUFFIXES),
                   lambda path, label, key: nvml.read_nvml_file(path, label))


@pytest.mark.parametrize(("text", "found"), [
    (b'{"a":1,}\n', True),
    (b'{"a":[1,2,]}\n', True),
    (b'{"a":[1, \t ]}\n', True),  # blanks between: the regex decides
    (b'{"a":1, "b":[2, 3]}\n', False),  # blanks after commas, none before a bracket
    (b'{"a":"x,]"}\n', True),  # inside a string too: the per-file reader then reads it all the same
    (b'{"a":1,"b":2}\n', False),
    (b'{"a":1}\n,', False),  # a comma as the last byte
    (b"", False),
])
def test_trailing_comma_check_reads_the_byte_after_each_comma(text, found):
    assert files.has_trailing_comma(text) is found


# --- gateway ---------------------------------------------------------------------------------------

GATEWAY_GOOD = {
    "default": [request(), compact(request(request_id="c"))],
    "usage shapes": [
        request(usage={"input_tokens": 50, "output_tokens": 7, "input_tokens_details": {"cached_tokens": 10}}),
        request(usage={"prompt_tokens": 33, "total_tokens": 33}), request(status=500, usage=None),
        request(usage={"prompt_tokens": None, "input_tokens": 5, "prompt_tokens_details": {},
                       "input_tokens_details": {"cached_tokens": 5}}),
        request(usage={"prompt_tokens": 5, "prompt_tokens_details": None}), {"ts": "2026-11-02T10:00:00Z",
                                                                             "request_id": "x", "model": "m"}],
    "keys": [request(api_key_hash="sk-live-123"), request(api_key_hash=""), request(api_key_hash=None)],
    "metadata": [request(metadata={"feature": "chat", "pr": 48213, "ok": True, "n": None, "trace": {"id": 1},
                                   "prompt_text": "secret", "user_input": "secret", "list": [1]}),
                 request(metadata={}), request(metadata={"messages": "x"}), request(metadata=None),
                 request(metadata={"key": "sk-abc", "long": "x" * 300, "q": 'a "quoted" \\ value'}),
                 request(metadata={"b": "2", "a": "1", "C": -3})],
    "fields": [request(endpoint="/v1/embeddings", deployment="d", api_base="http://x/v1", stream=True,
                       latency_ms=12, user="\u00fcser"), request(latency_ms=1.5, status=None)],
    "blank lines": [request(), b"", request(request_id="after-blank")],
}
GATEWAY_BAD = {
    "string status": [request(status="200")],
    "negative tokens": [request(usage={"prompt_tokens": -1})],
    "bool tokens": [request(usage={"prompt_tokens": True})],
    "cached over prompt": [request(usage={"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}})],
    "usage not an object": [request(usage=[1])],
    "details not an object": [request(usage={"prompt_tokens": 5, "prompt_tokens_details": 3})],
    "metadata not an object": [request(metadata="x")],
    "metadata float": [request(metadata={"score": 0.5})],
    "metadata non-ascii": [request(metadata={"city": "K\u00f6ln"})],
    "metadata newline": [request(metadata={"note": "a\nb"})],
    "metadata repeated key": [b'{"ts":"2026-11-02T10:00:00Z","request_id":"r","model":"m",'
                              b'"metadata":{"a":"1","a":"2"}}'],
    "no request id": [request(request_id=None)],
    "malformed": [request(), b"{oops"],
}


def write_gateway(folder: Path, name: str, lines: list) -> Path:
    path = folder / f"gateway-{name.replace(' ', '-')}-20261102T10.jsonl.gz"
    folder.mkdir(parents=True, exist_ok=True)
    return jsonl(path, lines, gz=True)


def test_gateway_fast_path_gives_the_per_file_readers_rows_and_hands_over_what_it_cannot_vouch_for(tmp_path):
    folder = tmp_path / "landing"
    for name, lines in {**GATEWAY_GOOD, **GATEWAY_BAD}.items():
        write_gateway(folder, name, lines)
    fast, per_file, handed = load_both_ways(tmp_path, folder, "gateway")
    assert fast == per_file
    assert len(handed) == len(GATEWAY_BAD)
    rows = fast[gateway.REQUESTS]
    assert not any("secret" in str(r) or "sk-" in str(r) for r in rows)
    line_numbers = {r[1]: r[16] for r in rows if r[1] == "after-blank"}
    assert line_numbers == {"after-blank": 3}


# --- batches and bookkeeping ---------------------------------------------------------------------------

def test_one_bad_file_in_a_batch_loads_the_others_and_reruns_change_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(load, "BATCH_FILES", 4)
    folder = tmp_path / "landing"
    for i in range(10):
        write_case(folder, f"host{i}", [sample(host=f"h{i}", gpu_index=j) for j in range(3)]
                   + ([b"{oops"] if i == 6 else []))
    files = list_files([LocalLanding(folder)], nvml.FILE_SUFFIXES)
    read = []

    def reader(path, label, key):
        read.append(label)
        return nvml.read_nvml_file(path, label)

    with connect(tmp_path / "wh.duckdb") as con:
        report = load_files(con, "nvml", files, reader)
        assert (report.loaded, report.rows[nvml.GPU_SAMPLES], report.rows[nvml.PROCESSES], report.quarantined) == (
            10, 30, 60, 1)
        assert [Path(r).parent.name for r in read] == ["host6"]
        first = warehouse_state(con, nvml)
        assert first["quarantine"][0][3:] == (4, "malformed JSON: Expecting property name enclosed in double "
                                                 "quotes at column 2")
        again = load_files(con, "nvml", files, reader)
        assert (again.loaded, again.unchanged) == (0, 10)
        assert warehouse_state(con, nvml) == first

        # host2 is re-delivered with one sample less: it replaces its own rows and nothing else
        write_case(folder, "host2", [sample(host="h2", gpu_index=0), sample(host="h2", gpu_index=1)])
        # a copy of host3 under another name is quarantined, not counted twice
        shutil.copytree(folder / "host3", folder / "host3-copy")
        third = load_files(con, "nvml", list_files([LocalLanding(folder)], nvml.FILE_SUFFIXES), reader)
        assert (third.loaded, third.unchanged, third.rows[nvml.GPU_SAMPLES], third.quarantined) == (2, 9, 2, 1)
        hosts = dict(con.execute("select host, count(*) from raw.nvml_gpu_samples group by host").fetchall())
        assert hosts == {f"h{i}": 2 if i == 2 else 3 for i in range(10)}
        assert con.execute("select count(*) from raw.nvml_processes where host = 'h2'").fetchone() == (4,)
        reasons = [r[4] for r in warehouse_state(con, nvml)["quarantine"]]
        assert any(r.startswith("duplicate of ") and r.endswith("(same bytes): not loaded again") for r in reasons)
        rows_loaded = dict(con.execute("select scope, rows_loaded from raw.ingested_files").fetchall())
        assert rows_loaded[str(folder / "host2" / "nvml-host-20261102T10.jsonl.gz")] == 6  # 2 samples + 4 processes


def test_two_copies_in_one_batch_load_once(tmp_path):
    folder = tmp_path / "landing"
    write_case(folder, "a", [sample()])
    shutil.copytree(folder / "a", folder / "b")
    with connect(tmp_path / "wh.duckdb") as con:
        report = load_files(con, "nvml", list_files([LocalLanding(folder)], nvml.FILE_SUFFIXES),
                            lambda path, label, key: nvml.read_nvml_file(path, label))
        assert (report.loaded, report.rows[nvml.GPU_SAMPLES], report.quarantined) == (2, 1, 1)


# --- listing: what was loaded with the same size and mtime is not read again ------------------------

def test_a_run_with_no_new_files_hashes_nothing_and_a_touched_file_is_hashed_once(tmp_path, monkeypatch):
    import ingest.landing

    folder = tmp_path / "landing"
    for i in range(3):
        write_case(folder, f"host{i}", [sample(host=f"h{i}")])
    hashed = []
    fingerprint = ingest.landing.fingerprint
    monkeypatch.setattr(ingest.landing, "fingerprint",
                        lambda path: hashed.append(path.parent.name) or fingerprint(path))

    def run(con):
        return load_files(con, "nvml", list_files([LocalLanding(folder)], nvml.FILE_SUFFIXES),
                          lambda path, label, key: nvml.read_nvml_file(path, label))

    with connect(tmp_path / "wh.duckdb") as con:
        assert run(con).loaded == 3 and len(hashed) == 3
        hashed.clear()
        assert (run(con).unchanged, hashed) == (3, [])
        touched = folder / "host1" / "nvml-host-20261102T10.jsonl.gz"
        os.utime(touched, (1e9, 1e9))
        again = run(con)
        assert (again.loaded, again.unchanged, hashed) == (0, 3, ["host1"])  # same bytes: not loaded again
        hashed.clear()
        assert (run(con).unchanged, hashed) == (3, [])
        write_case(folder, "host1", [sample(host="h1"), sample(host="h1", gpu_index=2)])
        changed = run(con)
        assert (changed.loaded, changed.rows[nvml.GPU_SAMPLES], hashed) == (1, 2, ["host1"])


def test_a_warehouse_made_before_listed_versions_gets_the_column(tmp_path):
    import duckdb

    db = tmp_path / "old.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("create schema raw")
        con.execute("""create table raw.ingested_files (source varchar not null, scope varchar not null,
                       size_bytes bigint not null, sha256 varchar not null, rows_loaded bigint not null,
                       rows_quarantined bigint not null, ingested_at timestamp not null,
                       primary key (source, scope))""")
        con.execute("insert into raw.ingested_files values ('nvml', 'x', 1, 'abc', 1, 0, now())")
    with connect(db) as con:
        assert con.execute("select scope, listed_version from raw.ingested_files").fetchall() == [("x", None)]
        folder = tmp_path / "landing"
        write_case(folder, "a", [sample()])
        report = load_files(con, "nvml", list_files([LocalLanding(folder)], nvml.FILE_SUFFIXES),
                            lambda path, label, key: nvml.read_nvml_file(path, label))
        assert report.loaded == 1
        listed = con.execute("select count(*) from raw.ingested_files where listed_version is not null").fetchone()
        assert listed == (1,)


def test_forgetting_the_fingerprints_loads_everything_again_without_doubling(tmp_path):
    folder = tmp_path / "landing"
    for i in range(3):
        write_case(folder, f"host{i}", [sample(host=f"h{i}")])
    with connect(tmp_path / "wh.duckdb") as con:
        def run():
            return load_files(con, "nvml", list_files([LocalLanding(folder)], nvml.FILE_SUFFIXES),
                              lambda path, label, key: nvml.read_nvml_file(path, label))

        run()
        before = warehouse_state(con, nvml)
        con.execute("delete from raw.ingested_files")
        assert run().loaded == 3
        after = warehouse_state(con, nvml)
        assert after[nvml.GPU_SAMPLES] == before[nvml.GPU_SAMPLES]
        assert after[nvml.PROCESSES] == before[nvml.PROCESSES]


# --- AWS CUR Parquet: a delivery's files read by DuckDB together --------------------------------------

def cur_state(con) -> dict:
    return {
        "aws_cur": con.execute("select * exclude (_ingested_at) from raw.aws_cur order by all").fetchall(),
        "quarantine": con.execute("select source, scope, source_file, row_number, reason from raw.quarantine "
                                  "order by all").fetchall(),
        "ingested": con.execute("select source, scope, rows_loaded, rows_quarantined from raw.ingested_files "
                                "order by all").fetchall(),
    }


def load_cur_both_ways(tmp_path: Path, landing: Path) -> tuple[dict, dict, list[str]]:
    """(state after the fast path, state after the Arrow reader alone, the fast path's log)."""
    states, said = [], []
    for fast in (True, False):
        with connect(tmp_path / f"cur-{fast}.duckdb") as con:
            # a session in New York must not shift a UTC timestamp
            con.execute("set TimeZone = 'America/New_York'")
            load_aws_cur(con, LocalLanding(landing), "cur", progress=said.append if fast else lambda _: None,
                         fast=fast)
            states.append(cur_state(con))
    return states[0], states[1], said


def test_cur_parquet_read_together_gives_the_arrow_readers_rows_and_hands_over_what_it_cannot_vouch_for(tmp_path):
    plain = cur_rows(3, cost=2.0).append_column(
        "resource_tags", pa.array([[("user_team", "search")], None, []], pa.map_(pa.string(), pa.string())))
    utc = pa.timestamp("ms", tz="UTC")
    drifted = (cur_rows(3, cost=1.0)  # UTC-adjusted timestamps, an int32 amount, a large string, a new column
               .set_column(4, "line_item_usage_start_date", pa.array([1_793_000_000_000] * 3, utc))
               .set_column(6, "line_item_unblended_cost", pa.array([1, None, 3], pa.int32()))
               .set_column(7, "line_item_currency_code", pa.array(["USD"] * 3, pa.large_string()))
               .append_column("a_column_from_2027", pa.array(["x"] * 3)))
    micro = cur_rows(2).set_column(4, "line_item_usage_start_date",  # a lossy cast pyarrow refuses
                                   pa.array([1_793_000_000_000_001] * 2, pa.timestamp("us")))
    write_delivery(tmp_path / "aws", "2026-11", {"plain.parquet": plain, "drifted.parquet": drifted,
                                                 "micro.parquet": micro, "cut.parquet": cur_rows(40)})
    cut = tmp_path / "aws" / "cur" / "data" / "BILLING_PERIOD=2026-11" / "cut.parquet"
    cut.write_bytes(cut.read_bytes()[:200])

    fast, slow, said = load_cur_both_ways(tmp_path, tmp_path / "aws")
    assert fast == slow
    # two schemas, two reads; micro and cut left to the Arrow reader, which quarantines them
    assert said == ["aws_cur: cur/BILLING_PERIOD=2026-11: reading 1 Parquet file(s) in DuckDB",
                    "aws_cur: cur/BILLING_PERIOD=2026-11: 1/4 files, 3 line items",
                    "aws_cur: cur/BILLING_PERIOD=2026-11: reading 1 Parquet file(s) in DuckDB",
                    "aws_cur: cur/BILLING_PERIOD=2026-11: 2/4 files, 5 line items",
                    "aws_cur: cur/BILLING_PERIOD=2026-11 loaded (5 line items, 3 quarantined)"]
    assert len(fast["aws_cur"]) == 5  # plain's 3, drifted's 2 with a cost
    reasons = {(Path(f).name, n): reason for _, _, f, n, reason in fast["quarantine"]}
    assert reasons[("drifted.parquet", 2)] == "line item without cost, usage start or line item type"
    assert reasons[("micro.parquet", None)].startswith("schema drift: a column has an unexpected type")
    assert reasons[("cut.parquet", None)].startswith("unreadable Parquet")
    with connect(tmp_path / "cur-True.duckdb") as con:
        got = con.execute("""
            select regexp_extract(_source_file, '[^/]+$'), _row_number, line_item_unblended_cost,
                   strftime(line_item_usage_start_date, '%Y-%m-%d %H:%M:%S'), resource_tags['user_team']
            from raw.aws_cur order by all""").fetchall()
    start = "2026-10-26 07:33:20"  # 1,793,000,000 s after the epoch, in UTC
    assert got == [("drifted.parquet", 1, 1.0, start, None), ("drifted.parquet", 3, 3.0, start, None),
                   ("plain.parquet", 1, 2.0, start, "search"), ("plain.parquet", 2, 2.0, start, None),
                   ("plain.parquet", 3, 2.0, start, None)]


def test_cur_parquet_damaged_past_its_footer_is_read_again_file_by_file(tmp_path):
    write_delivery(tmp_path / "aws", "2026-11", {"good.parquet": cur_rows(3, cost=2.0),
                                                 "damaged.parquet": cur_rows(5000, cost=1.0)})
    damaged = tmp_path / "aws" / "cur" / "data" / "BILLING_PERIOD=2026-11" / "damaged.parquet"
    data = bytearray(damaged.read_bytes())
    data[100:600] = bytes(500)  # the first data pages; the footer still reads
    damaged.write_bytes(bytes(data))

    fast, slow, said = load_cur_both_ways(tmp_path, tmp_path / "aws")
    assert fast == slow
    assert "DuckDB could not read its Parquet files together" in " ".join(said)
    assert [(Path(r[2]).name, r[4][:19]) for r in fast["quarantine"]] == [("damaged.parquet", "unreadable Parquet:")]
    assert fast["ingested"] == [("aws_cur", "cur/BILLING_PERIOD=2026-11", 3, 1)]
    # the failed attempt's Parquet folder is gone: one folder, one file of the 3 good lines
    assert [len(list(f.iterdir())) for f in (tmp_path / "cur-True.duckdb.raw" / "aws_cur").iterdir()] == [1]
