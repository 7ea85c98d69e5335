"""Readers on good and bad input: every bad row is quarantined with a reason, good rows land."""

import gzip
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest import aws_cur, gateway, nvml
from ingest.aws_cur_schema import CUR2_SCHEMA
from ingest.landing import LocalLanding


def jsonl(path: Path, lines: list, gz: bool = False) -> Path:
    data = b"".join((ln if isinstance(ln, bytes) else json.dumps(ln).encode()) + b"\n" for ln in lines)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def request(**overrides) -> dict:
    line = {"ts": "2026-11-02T10:00:01.250Z", "request_id": "chatcmpl-1", "model": "llama-3.1-8b-instruct",
            "api_key_hash": "sha256:ab", "api_key_alias": "search-prod", "user": "u-1", "status": 200,
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                      "prompt_tokens_details": {"cached_tokens": 64}}}
    return line | overrides


# --- gateway logs -----------------------------------------------------------------------------

def test_gateway_reads_usage_shapes_as_servers_write_them(tmp_path, samples):
    lm_studio_usage = json.loads((samples / "serving-logs" / "openai-usage-examples.txt").read_text().splitlines()[1])
    path = jsonl(tmp_path / "g.jsonl", [
        request(),
        request(request_id="r-2", usage=lm_studio_usage),  # no prompt_tokens_details: cached is unknown
        request(request_id="r-3", usage={"input_tokens": 50, "output_tokens": 7,
                                         "input_tokens_details": {"cached_tokens": 10}}),  # Responses API
        request(request_id="r-4", usage={"prompt_tokens": 33, "total_tokens": 33}),  # embeddings
        request(request_id="r-5", status=500, usage=None),  # failed: no tokens billed
    ])
    parsed = gateway.read_gateway_file(path)
    assert parsed.quarantined == []
    rows = parsed.tables[gateway.REQUESTS].select(
        ["request_id", "prompt_tokens", "completion_tokens", "cached_tokens", "status"]).to_pylist()
    assert [(r["request_id"], r["prompt_tokens"], r["completion_tokens"], r["cached_tokens"], r["status"])
            for r in rows] == [
        ("chatcmpl-1", 100, 20, 64, 200),
        ("r-2", 17433, 39, None, 200),
        ("r-3", 50, 7, 10, 200),
        ("r-4", 33, None, None, 200),
        ("r-5", None, None, None, 500),
    ]


def test_gateway_never_copies_text_fields(tmp_path):
    secret = "PLANTED-PROMPT-TEXT-5f2e"
    path = jsonl(tmp_path / "g.jsonl", [request(
        messages=[{"role": "user", "content": secret}],
        request={"prompt": secret},
        response={"choices": [{"message": {"content": secret}}]},
        metadata={"team": "search", "conversation": [{"content": secret}], "note": {"text": secret}},
    )])
    table = gateway.read_gateway_file(path).tables[gateway.REQUESTS]
    assert secret not in json.dumps(table.to_pylist(), default=str)
    assert json.loads(table["metadata"][0].as_py()) == {"team": "search"}


def test_gateway_quarantines_each_bad_line_and_keeps_the_good_ones(tmp_path):
    path = jsonl(tmp_path / "g.jsonl", [
        request(request_id="good-1"),
        b'{"ts": "2026-11-02T10:00:02Z", "request_id": "cut-of',  # malformed JSON
        b"\xff\xfe not utf-8",  # wrong encoding
        b"[1, 2, 3]",  # not an object
        request(request_id="no-ts", ts=None),
        request(request_id="bad-ts", ts="yesterday"),
        request(request_id=None),
        request(request_id="neg", usage={"prompt_tokens": -5, "completion_tokens": 1}),
        request(request_id="too-cached", usage={"prompt_tokens": 5, "completion_tokens": 1,
                                                "prompt_tokens_details": {"cached_tokens": 9}}),
        request(request_id="str-tokens", usage={"prompt_tokens": "100"}),
        request(request_id="good-2"),
    ])
    parsed = gateway.read_gateway_file(path)
    assert parsed.tables[gateway.REQUESTS]["request_id"].to_pylist() == ["good-1", "good-2"]
    reasons = {q.row_number: q.reason for q in parsed.quarantined}
    assert reasons.keys() == set(range(2, 11))
    assert reasons[2].startswith("malformed JSON")
    assert reasons[3].startswith("not UTF-8 text")
    assert reasons[4] == "expected a JSON object, got list"
    assert "ISO-8601" in reasons[5]
    assert "yesterday" in reasons[6]
    assert reasons[7] == "missing field 'request_id'"
    assert "usage.prompt_tokens must be a non-negative integer" in reasons[8]
    assert reasons[9] == "usage says 9 cached tokens of only 5 prompt tokens"
    assert "usage.prompt_tokens" in reasons[10]


def test_a_truncated_gzip_keeps_every_complete_line(tmp_path):
    lines = [request(request_id=f"r-{i}") for i in range(200)]
    whole = jsonl(tmp_path / "whole.jsonl.gz", lines, gz=True).read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    parsed = gateway.read_gateway_file(cut)
    ids = parsed.tables[gateway.REQUESTS]["request_id"].to_pylist()
    assert 0 < len(ids) < 200
    assert ids == [f"r-{i}" for i in range(len(ids))]
    assert parsed.quarantined[-1].row_number is None
    assert parsed.quarantined[-1].reason == "file truncated: the gzip stream ends early"


# --- NVML collector files -----------------------------------------------------------------------

def sample(**overrides) -> dict:
    line = {"ts": "2026-11-02T10:00:00.000Z", "host": "g5-1", "resource_id": "i-0abc", "gpu_index": 1,
            "gpu_uuid": "GPU-1", "name": "NVIDIA A10G", "mem_total_bytes": 24146608128,
            "mem_used_bytes": 20000000000, "util_gpu_pct": 97, "util_mem_pct": 40, "power_usage_mw": 140500,
            "total_energy_mj": 123456789, "temp_c": 60, "sm_clock_mhz": 1710,
            "processes": [
                {"pid": 4123, "name": "python3", "used_gpu_memory_bytes": 19000000000, "container_id": "c1",
                 "pod_uid": None, "env": {"GPULEDGER_WORKLOAD": "llama-8b"}},
                {"pid": 5000, "name": "eval_harness", "used_gpu_memory_bytes": 1000, "env": {}},
            ]}
    return line | overrides


def test_nvml_splits_samples_and_processes(tmp_path):
    parsed = nvml.read_nvml_file(jsonl(tmp_path / "n.jsonl.gz", [sample(), sample(processes=[])], gz=True))
    assert parsed.quarantined == []
    gpus = parsed.tables[nvml.GPU_SAMPLES].to_pylist()
    procs = parsed.tables[nvml.PROCESSES].to_pylist()
    assert [(g["gpu_uuid"], g["process_count"], g["total_energy_mj"], g["power_usage_mw"]) for g in gpus] == [
        ("GPU-1", 2, 123456789, 140500), ("GPU-1", 0, 123456789, 140500)]
    assert [(p["pid"], p["process_name"], p["env"]) for p in procs] == [
        (4123, "python3", '{"GPULEDGER_WORKLOAD":"llama-8b"}'), (5000, "eval_harness", "{}")]


def test_nvml_quarantines_bad_samples(tmp_path):
    parsed = nvml.read_nvml_file(jsonl(tmp_path / "n.jsonl", [
        sample(gpu_uuid=None),
        sample(gpu_index="0"),
        sample(processes=[{"name": "no pid"}]),
        sample(processes=[{"pid": 1, "env": {"A": 1}}]),
        sample(util_gpu_pct=True),
        sample(),
    ]))
    assert parsed.tables[nvml.GPU_SAMPLES].num_rows == 1
    assert [q.reason for q in parsed.quarantined] == [
        "missing field 'gpu_uuid'",
        "field 'gpu_index' has str '0', expected int",
        "missing field 'pid'",
        "a process 'env' must be an object of strings",
        "field 'util_gpu_pct' has bool True, expected int or float",
    ]


# --- AWS CUR 2.0 deliveries ------------------------------------------------------------------------

def write_delivery(root: Path, period: str, tables: dict[str, pa.Table], manifest_files: list[str] | None = None):
    export = root / "cur"
    data = export / "data" / f"BILLING_PERIOD={period}"
    meta = export / "metadata" / f"BILLING_PERIOD={period}"
    data.mkdir(parents=True, exist_ok=True)
    meta.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, data / name)
    files = manifest_files if manifest_files is not None else list(tables)
    manifest = {"billingPeriod": {"start": f"{period}-01T00:00:00.000Z"},
                "dataFiles": [f"s3://bucket/prefix/cur/data/BILLING_PERIOD={period}/{f}" for f in files]}
    (meta / "cur-Manifest.json").write_text(json.dumps(manifest))
    return meta / "cur-Manifest.json"


def cur_rows(n: int, cost: float = 1.5) -> pa.Table:
    return pa.table({
        "bill_billing_period_start_date": pa.array([None] * n, pa.timestamp("ms")),
        "bill_billing_period_end_date": pa.array([None] * n, pa.timestamp("ms")),
        "bill_payer_account_id": ["123456789012"] * n,
        "line_item_line_item_type": ["Usage"] * n,
        "line_item_usage_start_date": pa.array([1_793_000_000_000] * n, pa.timestamp("ms")),
        "line_item_usage_end_date": pa.array([1_793_003_600_000] * n, pa.timestamp("ms")),
        "line_item_unblended_cost": [cost] * n,
        "line_item_currency_code": ["USD"] * n,
        "line_item_product_code": ["AmazonEC2"] * n,
        "line_item_usage_type": ["USE1-BoxUsage:g5.xlarge"] * n,
    })


def read(root: Path, manifest: Path) -> aws_cur.Parsed:
    key = str(manifest.relative_to(root))
    delivery = aws_cur.parse_manifest(manifest.read_bytes(), LocalLanding(root).uri, key, "cur")
    parsed = aws_cur.Parsed(delivery.label(delivery.manifest))
    parts = list(aws_cur.iter_delivery(delivery, lambda k: root / k if (root / k).is_file() else None, parsed))
    if parts:
        parsed.tables[aws_cur.CUR] = pa.concat_tables(parts)
    return parsed


def test_a_delivery_is_the_files_its_manifest_lists(tmp_path):
    manifest = write_delivery(tmp_path, "2026-11", {"a.parquet": cur_rows(3), "b.parquet": cur_rows(2)},
                              manifest_files=["a.parquet"])
    delivery = aws_cur.parse_manifest(manifest.read_bytes(), str(tmp_path), "m", "cur")
    assert (delivery.billing_period, delivery.data_files) == ("2026-11", ("cur/data/BILLING_PERIOD=2026-11/a.parquet",))
    parsed = read(tmp_path, manifest)
    table = parsed.tables[aws_cur.CUR]
    assert table.num_rows == 3  # b.parquet sits in the folder but is not part of this delivery
    assert table.schema.names[: len(CUR2_SCHEMA)] == CUR2_SCHEMA.names  # columns the export left out are null
    assert table["pricing_public_on_demand_cost"].null_count == 3


def test_a_delivery_quarantines_missing_drifted_and_incomplete_parts(tmp_path):
    bad_rows = cur_rows(3).set_column(6, "line_item_unblended_cost", pa.array([1.0, None, 2.0]))
    (tmp_path / "cur" / "data" / "BILLING_PERIOD=2026-11").mkdir(parents=True)
    (tmp_path / "cur" / "data" / "BILLING_PERIOD=2026-11" / "junk.parquet").write_bytes(b"not parquet")
    manifest = write_delivery(
        tmp_path, "2026-11",
        {"ok.parquet": cur_rows(2), "rows.parquet": bad_rows,
         "drift.parquet": cur_rows(2).drop(["line_item_usage_type"])},
        manifest_files=["ok.parquet", "rows.parquet", "drift.parquet", "gone.parquet", "junk.parquet"],
    )
    parsed = read(tmp_path, manifest)
    assert parsed.tables[aws_cur.CUR].num_rows == 4  # ok.parquet and the two good rows of rows.parquet
    reasons = sorted((Path(q.source_file).name, q.row_number, q.reason.split(":")[0]) for q in parsed.quarantined)
    assert reasons == [
        ("drift.parquet", None, "schema drift"),
        ("gone.parquet", None, "listed in the manifest but missing"),
        ("junk.parquet", None, "unreadable Parquet"),
        ("rows.parquet", 2, "line item without cost, usage start or line item type"),
    ]


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [("{not json", "manifest is not valid JSON"),
     ('{"billingPeriod": {"start": "2026-11-01"}}', "manifest has no 'dataFiles' list"),
     ('{"dataFiles": ["s3://b/p/cur/data/x.parquet"], "billingPeriod": {}}', "no valid billingPeriod.start")],
)
def test_an_unusable_manifest_says_why(tmp_path, manifest, reason):
    with pytest.raises(ValueError, match=reason):
        aws_cur.parse_manifest(manifest.encode(), str(tmp_path), "cur-Manifest.json", "cur")


def test_a_cur2_csv_gz_delivery_reads_like_parquet(tmp_path):
    header = ("bill_payer_account_id,bill_billing_period_start_date,bill_billing_period_end_date,"
              "line_item_line_item_type,line_item_usage_start_date,line_item_usage_end_date,line_item_unblended_cost,"
              "line_item_currency_code,line_item_product_code,line_item_usage_type,resource_tags,"
              "a_column_aws_added_later\n")
    body = ('123456789012,2026-11-01T00:00:00Z,2026-12-01T00:00:00Z,Usage,2026-11-02T10:00:00Z,2026-11-02T11:00:00Z,'
            '5.672,USD,AmazonEC2,USE1-BoxUsage:g5.12xlarge,"{""user_team"":""search""}",x\n') * 2
    data = tmp_path / "cur" / "data" / "BILLING_PERIOD=2026-11"
    data.mkdir(parents=True)
    (data / "cur-00001.csv.gz").write_bytes(gzip.compress((header + body).encode()))
    manifest = write_delivery(tmp_path, "2026-11", {}, manifest_files=["cur-00001.csv.gz"])
    parsed = read(tmp_path, manifest)
    assert parsed.quarantined == []
    rows = parsed.tables[aws_cur.CUR].to_pylist()
    assert [(r["line_item_unblended_cost"], r["resource_tags"], r["x_extra"]) for r in rows] == [
        (5.672, [("user_team", "search")], '{"a_column_aws_added_later":"x"}')] * 2


def test_a_corrupt_gzip_keeps_what_decompressed_before_the_damage(tmp_path):
    # random ids keep the file from compressing to a single step
    whole = bytearray(gzip.compress(b"".join(json.dumps(request(request_id=os.urandom(16).hex())).encode() + b"\n"
                                             for _ in range(5000))))
    whole[len(whole) // 2: len(whole) // 2 + 64] = b"\x00" * 64  # bytes flipped in the middle
    path = tmp_path / "corrupt.jsonl.gz"
    path.write_bytes(bytes(whole))
    parsed = gateway.read_gateway_file(path)
    assert 0 < parsed.tables[gateway.REQUESTS].num_rows < 5000
    assert parsed.quarantined[-1].reason.startswith("corrupt gzip data")
