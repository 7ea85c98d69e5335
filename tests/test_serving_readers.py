"""The LiteLLM, serving-engine log and vLLM /metrics readers on the real samples in
../shared/samples/serving-logs, plus hand-written files for what the samples lack.

Every expected value on a sample was read off the sample text by hand (see that folder's README.md).
The hand-written LiteLLM rows follow the `LiteLLM_SpendLogs` table: the same rows are written once
as JSON lines and once as the table's CSV export, and must read the same. A canary string is planted
in every place prompt or completion text can hide; it must come out nowhere.
"""

import csv
import gzip
import hashlib
import io
import json
import os
import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ingest import engine_logs, litellm, vllm_metrics
from ingest.files import Parsed

CANARY = "CANARY-7f3a"
HASHED_KEY = "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"
HASHED_KEY_2 = "1b4e28ba2fa1c2d4e9f1a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091"
RAW_KEY = "sk-test-4f1c9e0b7a"
DAMAGED_LINE = "truncated line at the end of a damaged file"
GZIP_TRUNCATED = "file truncated: the gzip stream ends early"
TGI_LINE_1_TIMES = 'inference_time="355.849981ms" time_per_token="14.827082ms"'


@pytest.fixture
def serving(samples: Path) -> Path:
    return samples / "serving-logs"


def reasons(parsed: Parsed) -> list[tuple[int | None, str]]:
    return [(q.row_number, q.reason) for q in parsed.quarantined]


def stored_gzip_cut(text: bytes, keep: int) -> bytes:
    """A gzip of `text` cut off after its first `keep` bytes of text (level 0 stores the text as is)."""
    whole = gzip.compress(text, compresslevel=0)
    start = whole.index(text[:64])
    return whole[: start + keep]


def cut_after_line(text: bytes, whole_lines: int, extra: int = 20) -> bytes:
    """A truncated gzip holding `whole_lines` complete lines and `extra` bytes of the next."""
    lines = text.splitlines(keepends=True)
    return stored_gzip_cut(text, len(b"".join(lines[:whole_lines])) + extra)


# --- LiteLLM spend logs: hand-written rows --------------------------------------------------------

def spend_rows() -> list[dict]:
    """Four LiteLLM_SpendLogs rows: a success with OpenAI cached tokens, a proxy cache hit, a failure,
    and its retry under the same request_id with Anthropic cache reads and a raw key."""
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"{CANARY} what is 2+2?"}]}
    common = {"call_type": "acompletion", "completionStartTime": None, "cache_key": "", "request_tags": [CANARY],
              "requester_ip_address": "", "session_id": "b2c9", "mcp_namespaced_tool_name": None,
              "messages": chat["messages"], "response": {"choices": [{"message": {"content": f"4 {CANARY}"}}]},
              "proxy_server_request": {"body": chat, "headers": {"x-note": CANARY}}}
    return [
        common | {
            "request_id": "chatcmpl-9f2c1b7e", "api_key": HASHED_KEY, "spend": 0.00042, "total_tokens": 1534,
            "prompt_tokens": 1500, "completion_tokens": 34, "startTime": "2026-11-02 10:15:03.123",
            "endTime": "2026-11-02 10:15:04.456", "model": "gpt-4o-mini", "model_id": "6a1f0c2e",
            "model_group": "gpt-4o-mini", "custom_llm_provider": "openai", "api_base": "https://api.openai.com/v1",
            "user": "", "cache_hit": "False", "team_id": "team-search", "end_user": "", "status": "success",
            "metadata": {
                "user_api_key": HASHED_KEY, "user_api_key_alias": "search-prod", "user_api_key_team_id": "team-search",
                "user_api_key_user_id": "u-42", "user_api_key_team_alias": "search", "requester_ip_address": "10.0.0.5",
                "status": "success", "spend_logs_metadata": {"note": CANARY}, "user_message": CANARY,
                "prompt_preview": CANARY, "mcp_tool_call_metadata": None,
                "additional_usage_values": {"prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": None},
                                            "completion_tokens_details": {"reasoning_tokens": 0}},
            },
        },
        common | {
            "request_id": "chatcmpl-0b7d55aa", "api_key": HASHED_KEY, "spend": 0.0, "total_tokens": 1534,
            "prompt_tokens": 1500, "completion_tokens": 34, "startTime": "2026-11-02T11:15:09.001+01:00",
            "endTime": "2026-11-02T11:15:09.004+01:00", "model": "gpt-4o-mini", "model_id": "6a1f0c2e",
            "model_group": "gpt-4o-mini", "custom_llm_provider": "openai", "api_base": "https://api.openai.com/v1",
            "user": "u-7", "cache_hit": "True", "team_id": "team-search", "end_user": "", "status": "success",
            "metadata": {"user_api_key_alias": "search-prod", "user_api_key_team_id": "team-search",
                         "user_api_key_user_id": "u-42", "status": "success"},
        },
        common | {
            "request_id": "req-retry-1", "api_key": HASHED_KEY_2, "spend": 0.0, "total_tokens": 0,
            "prompt_tokens": 0, "completion_tokens": 0, "startTime": "2026-11-02 10:16:00.000",
            "endTime": "2026-11-02 10:16:30.000", "model": "claude-sonnet-4-5", "model_id": "",
            "model_group": "claude-sonnet", "custom_llm_provider": "anthropic", "api_base": "https://api.anthropic.com",
            "user": "", "cache_hit": "", "team_id": "", "end_user": "cust-9", "status": "failure",
            "metadata": {"user_api_key_alias": "batch-jobs", "user_api_key_team_id": "team-batch", "status": "failure",
                         "error_information": {"error_code": "529", "error_message": f"overloaded: {CANARY}"}},
        },
        common | {
            "request_id": "req-retry-1", "api_key": RAW_KEY, "spend": 3.4000000000000007e-05, "total_tokens": 2400,
            "prompt_tokens": 2100, "completion_tokens": 300, "startTime": "2026-11-02 10:16:31.250",
            "endTime": "2026-11-02 10:16:40.000", "model": "claude-sonnet-4-5", "model_id": "",
            "model_group": "claude-sonnet", "custom_llm_provider": "anthropic", "api_base": "https://api.anthropic.com",
            "user": "svc-batch", "cache_hit": "False", "team_id": "team-batch", "end_user": "", "status": "success",
            "metadata": {"user_api_key_alias": "batch-jobs", "user_api_key": RAW_KEY, "status": "success",
                         "additional_usage_values": {"cache_read_input_tokens": 2048, "cache_creation_input_tokens": 0,
                                                     "prompt_tokens_details": None}},
        },
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def csv_text(rows: list[dict], columns: list[str] | None = None) -> str:
    """The rows as the Postgres CSV export writes them: JSON columns as text, null as empty."""
    columns = columns or list(rows[0])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = (row.get(c) for c in columns)
        writer.writerow(["" if v is None else json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
                         for v in values])
    return out.getvalue()


def spend(parsed: Parsed) -> list[dict]:
    return parsed.tables[litellm.SPEND_LOGS].to_pylist()


def test_litellm_sample_is_projections_and_a_webhook_so_every_row_is_quarantined(serving):
    parsed = litellm.read_litellm_file(serving / "litellm-spend-examples.jsonl", "s3://landing/litellm/x.jsonl")
    assert spend(parsed) == []
    assert reasons(parsed) == [(n, "missing field 'startTime'") for n in range(1, 5)] + [
        (5, "a LiteLLM webhook event (has 'event', no 'request_id'), not a spend-log row")]
    assert {q.source_file for q in parsed.quarantined} == {"s3://landing/litellm/x.jsonl"}
    assert "baaeee4d2ba5de5a" not in str(parsed.quarantined)  # the webhook's virtual-key token


def test_litellm_jsonl_reads_every_named_field(tmp_path):
    parsed = litellm.read_litellm_file(write_jsonl(tmp_path / "spend.jsonl", spend_rows()))
    assert parsed.quarantined == []
    rows = spend(parsed)
    assert rows[0] == {
        "ts": datetime(2026, 11, 2, 10, 15, 3, 123000), "end_ts": datetime(2026, 11, 2, 10, 15, 4, 456000),
        "request_id": "chatcmpl-9f2c1b7e", "model": "gpt-4o-mini", "model_group": "gpt-4o-mini",
        "model_id": "6a1f0c2e", "api_base": "https://api.openai.com/v1", "api_key_hash": HASHED_KEY,
        "key_alias": "search-prod", "team_id": "team-search", "user_id": "u-42",
        "metadata": json.dumps({"requester_ip_address": "10.0.0.5", "status": "success", "user_api_key": HASHED_KEY,
                                "user_api_key_alias": "search-prod", "user_api_key_team_alias": "search",
                                "user_api_key_team_id": "team-search", "user_api_key_user_id": "u-42"},
                               separators=(",", ":")),
        "status": "success", "cache_hit": False, "prompt_tokens": 1500, "completion_tokens": 34,
        "cached_tokens": 1024, "spend": Decimal("0.00042"), "line_number": 1,
    }
    # the offset is honoured; `user` wins over the key's user; a proxy cache hit; no cached count = unknown
    hit = rows[1]
    assert (hit["ts"], hit["end_ts"], hit["user_id"], hit["cache_hit"], hit["cached_tokens"], hit["spend"]) == (
        datetime(2026, 11, 2, 10, 15, 9, 1000), datetime(2026, 11, 2, 10, 15, 9, 4000), "u-7", True, None, Decimal(0))


def test_litellm_failure_and_its_retry_under_the_same_request_id_are_both_kept(tmp_path):
    rows = spend(litellm.read_litellm_file(write_jsonl(tmp_path / "spend.jsonl", spend_rows())))
    failure, retry = rows[2], rows[3]
    assert (failure["request_id"], failure["status"], failure["spend"], failure["cache_hit"], failure["team_id"],
            failure["user_id"], failure["model_id"], failure["prompt_tokens"]) == (
        "req-retry-1", "failure", Decimal(0), None, "team-batch", "cust-9", None, 0)
    assert json.loads(failure["metadata"]) == {"status": "failure", "user_api_key_alias": "batch-jobs",
                                               "user_api_key_team_id": "team-batch"}
    # Anthropic's cache reads; float noise in spend kept to the 10 places of the money scale
    assert (retry["request_id"], retry["status"], retry["prompt_tokens"], retry["completion_tokens"],
            retry["cached_tokens"], retry["spend"], retry["user_id"]) == (
        "req-retry-1", "success", 2100, 300, 2048, Decimal("0.0000340000"), "svc-batch")


def test_litellm_raw_key_is_stored_only_as_its_sha256(tmp_path):
    parsed = litellm.read_litellm_file(write_jsonl(tmp_path / "spend.jsonl", spend_rows()))
    expected = "sha256:" + hashlib.sha256(RAW_KEY.encode()).hexdigest()
    retry = spend(parsed)[3]
    assert retry["api_key_hash"] == expected
    assert json.loads(retry["metadata"])["user_api_key"] == expected
    assert RAW_KEY not in str(spend(parsed))


def test_litellm_csv_export_reads_the_same_as_jsonl(tmp_path):
    rows = spend_rows()
    from_json = spend(litellm.read_litellm_file(write_jsonl(tmp_path / "spend.jsonl", rows)))
    path = tmp_path / "LiteLLM_SpendLogs.csv.gz"
    path.write_bytes(gzip.compress(csv_text(rows).encode()))
    parsed = litellm.read_litellm_file(path)
    assert parsed.quarantined == []
    from_csv = spend(parsed)
    assert [r["line_number"] for r in from_csv] == [2, 3, 4, 5]  # line 1 is the header
    assert [r | {"line_number": 0} for r in from_csv] == [r | {"line_number": 0} for r in from_json]


def test_litellm_csv_quoted_newlines_and_header_case(tmp_path):
    rows = spend_rows()[:2]
    rows[0]["response"] = "line one\nline two\nline three"  # a stored response spans three lines
    text = csv_text(rows).replace("startTime", "starttime", 1)  # an export that lower-cased the header
    path = tmp_path / "spend.csv"
    path.write_text(text)
    parsed = litellm.read_litellm_file(path)
    assert parsed.quarantined == []
    assert [(r["request_id"], r["line_number"]) for r in spend(parsed)] == [
        ("chatcmpl-9f2c1b7e", 2), ("chatcmpl-0b7d55aa", 5)]


def test_litellm_jsonl_bad_rows_are_quarantined_and_good_rows_kept(tmp_path):
    good = spend_rows()[0]
    lines = [
        json.dumps(good),
        '{"request_id": "x", "startTime": ',  # 2: cut off
        json.dumps(good | {"prompt_tokens": -3}),
        json.dumps(good | {"completion_tokens": "12.5"}),
        json.dumps(good | {"model": None}),
        json.dumps(good | {"spend": "free"}),
        json.dumps(good | {"cache_hit": "maybe"}),
        json.dumps(good | {"startTime": "02/11/2026 10:15"}),
        json.dumps(good | {"metadata": "not json"}),
        json.dumps(good | {"brand_new_column": 7}),  # 10: schema drift, an unknown column: read
        "[1, 2]",
    ]
    path = tmp_path / "spend.jsonl"
    path.write_bytes("\n".join(lines).encode() + b'\n{"request_id": "caf\xe9"}\n')
    parsed = litellm.read_litellm_file(path)
    assert [r["line_number"] for r in spend(parsed)] == [1, 10]
    assert reasons(parsed) == [
        (2, "malformed JSON: Expecting value at column 34"),
        (3, "'prompt_tokens' must be a non-negative integer, got -3"),
        (4, "'completion_tokens' must be a non-negative integer, got '12.5'"),
        (5, "missing field 'model'"),
        (6, "'spend' 'free' is not a finite number of at most 28 digits"),
        (7, "'cache_hit' must be True or False, got 'maybe'"),
        (8, "Invalid isoformat string: '02/11/2026 10:15'"),
        (9, "'metadata' is not valid JSON"),
        (11, "expected a JSON object, got list"),
        (12, "not UTF-8 text (byte 19 of the line)"),  # the é of caf\xe9
    ]


def test_litellm_csv_bad_rows_are_quarantined_and_good_rows_kept(tmp_path):
    rows = spend_rows()
    text = csv_text([*rows[:2], rows[0] | {"prompt_tokens": "12.5"}, rows[0] | {"startTime": ""}])
    lines = text.splitlines()
    lines.insert(3, lines[1] + ",surplus")  # line 4: one field too many
    data = "\n".join(lines).encode() + b"\n"
    data += csv_text([rows[1] | {"metadata": {"user_api_key_alias": "caf\xe9"}}]).encode("latin-1").split(b"\n")[1]
    data += b"\n" + csv_text([rows[1] | {"messages": "caf\xe9"}]).encode("latin-1").split(b"\n")[1] + b"\n"
    path = tmp_path / "spend.csv"
    path.write_bytes(data)
    parsed = litellm.read_litellm_file(path)
    # text we never read (the messages column) may be in any encoding: the last row lands
    assert [(r["request_id"], r["line_number"]) for r in spend(parsed)] == [
        ("chatcmpl-9f2c1b7e", 2), ("chatcmpl-0b7d55aa", 3), ("chatcmpl-0b7d55aa", 8)]
    header_fields = len(rows[0])
    assert reasons(parsed) == [
        (4, f"{header_fields + 1} fields where the header has {header_fields}"),
        (5, "'prompt_tokens' must be a non-negative integer, got '12.5'"),
        (6, "missing field 'startTime'"),
        (7, "column 'metadata' is not UTF-8 text"),
    ]


def test_litellm_csv_schema_drift(tmp_path):
    rows = spend_rows()[:2]
    extra = tmp_path / "extra.csv"
    extra.write_text(csv_text([r | {"agent_id": "a-1"} for r in rows]))  # a column added by a newer LiteLLM
    parsed = litellm.read_litellm_file(extra)
    assert (len(spend(parsed)), parsed.quarantined) == (2, [])
    missing = tmp_path / "missing.csv"
    missing.write_text(csv_text(rows, [c for c in rows[0] if c not in ("startTime", "model")]))
    parsed = litellm.read_litellm_file(missing)
    assert spend(parsed) == []
    assert reasons(parsed) == [(None, "schema drift: no column 'startTime', 'model' in the header")]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert reasons(litellm.read_litellm_file(empty)) == [(None, "empty file: no header line")]


def test_litellm_truncated_gzip_keeps_the_complete_rows(tmp_path):
    text = "".join(json.dumps(r) + "\n" for r in spend_rows()).encode()
    path = tmp_path / "spend.jsonl.gz"
    path.write_bytes(cut_after_line(text, 2))
    parsed = litellm.read_litellm_file(path)
    assert [r["request_id"] for r in spend(parsed)] == ["chatcmpl-9f2c1b7e", "chatcmpl-0b7d55aa"]
    assert reasons(parsed) == [(3, DAMAGED_LINE), (None, GZIP_TRUNCATED)]
    csv_path = tmp_path / "spend.csv.gz"
    csv_path.write_bytes(cut_after_line(csv_text(spend_rows()).encode(), 3))  # header + 2 rows
    parsed = litellm.read_litellm_file(csv_path)
    assert [r["line_number"] for r in spend(parsed)] == [2, 3]
    assert reasons(parsed) == [(4, DAMAGED_LINE), (None, GZIP_TRUNCATED)]


# --- engine logs: vLLM --------------------------------------------------------------------------------

def engine(path: Path, **kwargs) -> Parsed:
    return engine_logs.read_engine_log(path, kwargs.pop("label", None), "llm-a", **kwargs)


def requests(parsed: Parsed) -> list[dict]:
    return parsed.tables[engine_logs.ENGINE_REQUESTS].to_pylist()


def stats(parsed: Parsed) -> list[dict]:
    return parsed.tables[engine_logs.ENGINE_STATS].to_pylist()


def test_vllm_v0_requests_keep_the_id_and_max_tokens_only(serving):
    parsed = engine(serving / "vllm-v0-engine-stats.log", year=2025)
    assert parsed.quarantined == []
    assert [(r["ts"], r["request_id"], r["max_tokens"], r["line_number"]) for r in requests(parsed)] == [
        (datetime(2025, 5, 22, 2, 20, 59), "10390bd4d2dc4936bd1a62e5793a4fd8", 4096, 1),
        # kserve's wrapper stamps a full date; vLLM's own `Added request` on line 15 is not a second request
        (datetime(2025, 5, 14, 17, 45, 10, 901000), "chatcmpl-017ee87d69ed40e9b67198e5c5e0ee7d", 4082, 13),
        # 08-22 (line 10) -> 01-22 (line 11) went back 7 months: the next year
        (datetime(2026, 2, 1, 6, 36, 12), "cmpl-bfd5818ad84548fdb8fbd3ed075d8a00-0", 512, 21),
    ]
    assert {(r["deployment"], r["engine"], r["output_tokens"], r["inference_seconds"], r["status"])
            for r in requests(parsed)} == {("llm-a", "vllm", None, None, None)}


def test_vllm_v0_stats_lines_with_pending_and_the_separate_prefix_cache_line(serving):
    rows = stats(engine(serving / "vllm-v0-engine-stats.log", year=2025))
    # lines 2-12, 16, 17, 19; the prefix-cache lines 18 and 20 fold into 17 and 19
    assert [r["line_number"] for r in rows] == [*range(2, 13), 16, 17, 19]
    line4 = rows[2]
    assert line4 == {
        "ts": datetime(2025, 7, 24, 9, 55, 30), "deployment": "llm-a", "engine": "vllm", "prompt_tokens_per_s": 0.0,
        "generation_tokens_per_s": 2136.3, "running": 247, "waiting": 740, "kv_cache_usage": 0.997,
        "prefix_cache_hit_rate": None, "new_tokens": None, "cached_tokens": None, "line_number": 4,
    }
    assert (rows[6]["ts"], rows[6]["kv_cache_usage"]) == (datetime(2025, 7, 24, 9, 55, 50), 1.0)  # 100.0%
    assert [(r["ts"], r["generation_tokens_per_s"], r["prefix_cache_hit_rate"]) for r in rows[-2:]] == [
        (datetime(2026, 5, 25, 6, 50, 29), 15.5, 0.0), (datetime(2026, 5, 25, 6, 50, 34), 15.3, 0.0)]


def test_vllm_v1_stats_lines_in_every_prefix_style(serving):
    parsed = engine(serving / "vllm-v1-engine-stats.log", year=2025)
    assert parsed.quarantined == []
    rows = stats(parsed)
    # uvicorn access (16, 19), SpecDecoding (18, 21) and `Added request` (4) lines are skipped
    assert [r["line_number"] for r in rows] == [1, 2, *range(5, 16), 17, 20]
    by_line = {r["line_number"]: r for r in rows}
    assert by_line[5] == {
        "ts": datetime(2025, 6, 16, 10, 3, 14), "deployment": "llm-a", "engine": "vllm",
        "prompt_tokens_per_s": 1254.4, "generation_tokens_per_s": 29.2, "running": 10, "waiting": 4,
        "kv_cache_usage": 0.579, "prefix_cache_hit_rate": 0.405, "new_tokens": None, "cached_tokens": None,
        "line_number": 5,
    }
    assert (by_line[1]["prompt_tokens_per_s"], by_line[1]["prefix_cache_hit_rate"]) == (13.0, 0.8)  # no `Engine 000:`
    assert (by_line[14]["ts"], by_line[14]["prompt_tokens_per_s"], by_line[14]["waiting"]) == (
        datetime(2026, 5, 19, 10, 13, 41), 18032.5, 23)  # 12-25 (line 10) -> 05-19 (line 11): the next year
    assert (by_line[17]["ts"], by_line[17]["kv_cache_usage"]) == (datetime(2026, 5, 7, 4, 56, 17), 0.175)
    assert [(r["request_id"], r["max_tokens"], r["ts"]) for r in requests(parsed)] == [
        ("chatcmpl-b654b653c8714431a1096a3be88f1662", 32742, datetime(2025, 4, 10, 3, 35, 45))]


def test_vllm_year_from_the_label_then_the_file_time(serving, tmp_path):
    v1 = serving / "vllm-v1-engine-stats.log"
    assert stats(engine(v1, label="s3://landing/vllm/2024-04-10/host-1/engine.log"))[0]["ts"] == datetime(
        2024, 4, 10, 3, 35, 27)
    assert stats(engine(v1, label="engine-20230410.log"))[0]["ts"] == datetime(2023, 4, 10, 3, 35, 27)
    copy = tmp_path / "engine.log"
    shutil.copyfile(v1, copy)
    os.utime(copy, (1_793_617_200, 1_793_617_200))  # 2026-11-02 11:00:00 UTC
    assert stats(engine(copy))[0]["ts"] == datetime(2026, 4, 10, 3, 35, 27)
    assert stats(engine(copy, year=2025))[0]["ts"] == datetime(2025, 4, 10, 3, 35, 27)  # the caller's year wins


def test_vllm_new_year_and_local_time(serving, tmp_path):
    line = (serving / "vllm-v1-engine-stats.log").read_text().splitlines()[5]  # line 6: 12-25 13:32:40
    path = tmp_path / "engine.log"
    path.write_text(f"{line.replace('12-25 13:32:40', '12-31 23:59:58')}\n{line.replace('12-25', '01-01')}\n")
    rows = stats(engine(path, year=2025, timezone="Europe/Berlin"))  # CET, UTC+1
    assert [r["ts"] for r in rows] == [datetime(2025, 12, 31, 22, 59, 58), datetime(2026, 1, 1, 12, 32, 40)]
    summer = stats(engine(serving / "vllm-v1-engine-stats.log", year=2025, timezone="Europe/Berlin"))
    assert summer[2]["ts"] == datetime(2025, 6, 16, 8, 3, 14)  # CEST, UTC+2


def test_vllm_a_request_logged_twice_counts_once(serving, tmp_path):
    lines = (serving / "vllm-v1-engine-stats.log").read_text().splitlines()
    path = tmp_path / "engine.log"
    path.write_text("\n".join([lines[2], lines[3], lines[2], lines[0]]) + "\n")
    assert [(r["request_id"], r["line_number"]) for r in requests(engine(path, year=2025))] == [
        ("chatcmpl-b654b653c8714431a1096a3be88f1662", 1)]


def test_vllm_bad_lines_are_quarantined_and_the_rest_kept(serving, tmp_path):
    lines = (serving / "vllm-v1-engine-stats.log").read_text().splitlines()
    path = tmp_path / "engine.log"
    path.write_bytes("\n".join([
        lines[4],
        lines[4].replace("1254.4 tokens/s", "n/a tokens/s"),  # 2: not a number
        lines[4][:120],  # 3: cut off
        lines[4].replace("Running: 10 reqs, ", ""),  # 4: drift, a core field gone
        lines[4].replace("57.9%", "57.9"),  # 5: a figure without its unit
        lines[4].replace("06-16 10:03:14", "06-31 10:03:14"),  # 6: no such day
        lines[2].replace("INFO 04-10 03:35:45 ", ""),  # 7: a request without a stamp
        "INFO 05-25 06:50:29 [metrics.py:502] Prefix cache hit rate: GPU: n/a",  # 8
        lines[4].replace("Engine 000:", "Engine 000: \u00e9"),  # 9: replaced by latin-1 bytes below
        lines[5],
    ]).replace("\u00e9", "\udce9").encode("utf-8", errors="surrogateescape") + b"\n")
    parsed = engine(path, year=2025)
    assert [r["line_number"] for r in stats(parsed)] == [1, 10]
    assert reasons(parsed) == [
        (2, "vLLM stats line has a part that is not 'name: value' (cut off?)"),
        (3, "vLLM stats line has a part that is not 'name: value' (cut off?)"),
        (4, "vLLM stats line without Running"),
        (5, "vLLM stats line has a part that is not 'name: value' (cut off?)"),
        (6, "timestamp is not a date: day is out of range for month"),
        (7, "no timestamp"),
        (8, "vLLM prefix cache line is not 'GPU: P%, CPU: P%'"),
        (9, "not UTF-8 text (byte 48 of the line)"),  # just after "Engine 000: "
    ]


def test_engine_log_truncated_gzip_keeps_the_complete_lines(serving, tmp_path):
    path = tmp_path / "engine.log.gz"
    path.write_bytes(cut_after_line((serving / "vllm-v1-engine-stats.log").read_bytes(), 6))
    parsed = engine(path, year=2025)
    assert [r["line_number"] for r in stats(parsed)] == [1, 2, 5, 6]
    assert reasons(parsed) == [(7, DAMAGED_LINE), (None, GZIP_TRUNCATED)]


# --- engine logs: TGI, TEI, SGLang --------------------------------------------------------------------

def test_tgi_line_without_a_timestamp_is_quarantined(serving):
    # Decision: a Success line without its own stamp is quarantined, not given a neighbour's time.
    parsed = engine(serving / "tgi-router.log")
    assert (requests(parsed), stats(parsed)) == ([], [])
    assert reasons(parsed) == [(1, "no timestamp")]  # the DEBUG (2) and Connected (3) lines are skipped


def test_tgi_output_tokens_from_inference_time_over_time_per_token(serving, tmp_path):
    line = (serving / "tgi-router.log").read_text().splitlines()[0]
    assert TGI_LINE_1_TIMES in line
    path = tmp_path / "tgi.log"
    # as TGI prints it with its stamp, and once more in colour (a terminal capture) with a stop sequence that
    # looks like a span field (Debug output escapes its quotes)
    coloured = line.replace("INFO", "\x1b[32m INFO\x1b[0m", 1).replace('"//"', '"inference_time=\\"9s\\""')
    assert 'stop: ["inference_time=\\"9s\\""' in coloured
    path.write_text(f"2025-05-01T01:31:02.841455Z  {line}\n2025-05-01T01:31:03.000001Z {coloured}\n")
    rows = requests(engine(path, timezone="Europe/Berlin"))  # the Z wins over the default zone
    assert rows[0] == {
        "ts": datetime(2025, 5, 1, 1, 31, 2, 841455), "deployment": "llm-a", "engine": "tgi", "request_id": None,
        "max_tokens": None, "output_tokens": 24, "inference_seconds": 0.355849981, "status": "success",
        "line_number": 1,
    }
    assert (rows[1]["output_tokens"], rows[1]["line_number"]) == (24, 2)


def test_tgi_success_line_without_inference_time_is_quarantined(serving, tmp_path):
    line = (serving / "tgi-router.log").read_text().splitlines()[0]
    path = tmp_path / "tgi.log"
    path.write_text(f"2025-05-01T01:31:02Z {line.replace('inference_time=', 'infer_time=')}\n"
                    f"2025-05-01T01:31:02Z {line.replace('355.849981ms', '355.8 parsecs')}\n")
    assert reasons(engine(path)) == [
        (1, "router Success line without inference_time"), (2, "a router time that is not a duration like 355.8ms")]


def test_tei_requests_carry_the_inference_time(serving):
    parsed = engine(serving / "tei-router.log", timezone="America/New_York")
    assert parsed.quarantined == []
    rows = requests(parsed)
    assert [(r["ts"], r["inference_seconds"]) for r in rows] == [
        (datetime(2025, 8, 9, 19, 36, 2, 798333), 1.195713965),
        (datetime(2025, 8, 9, 19, 36, 3, 579418), 0.675535478),
        (datetime(2025, 8, 9, 19, 36, 4, 295990), 0.67512592),
        (datetime(2025, 8, 9, 19, 36, 5, 67672), 0.747014599),
        (datetime(2025, 8, 9, 19, 36, 6, 261159), 1.101092566),
    ]
    assert {(r["engine"], r["request_id"], r["output_tokens"], r["max_tokens"], r["status"]) for r in rows} == {
        ("tei", None, None, None, "success")}


def test_sglang_three_format_generations(serving):
    parsed = engine(serving / "sglang-scheduler.log")
    assert parsed.quarantined == []
    rows = stats(parsed)
    assert [r["line_number"] for r in rows] == [*range(1, 10), 11, 13, 14]  # uvicorn lines 10, 12 skipped
    by_line = {r["line_number"]: r for r in rows}
    assert by_line[1] == {  # `Decode batch.` with TP0
        "ts": datetime(2025, 2, 27, 4, 37, 29), "deployment": "llm-a", "engine": "sglang",
        "prompt_tokens_per_s": None, "generation_tokens_per_s": 183.54, "running": 8, "waiting": 0,
        "kv_cache_usage": 0.13, "prefix_cache_hit_rate": None, "new_tokens": None, "cached_tokens": None,
        "line_number": 1,
    }
    line6 = by_line[6]  # `Prefill batch.` with a trailing comma
    assert (line6["new_tokens"], line6["cached_tokens"], line6["running"], line6["waiting"],
            line6["kv_cache_usage"]) == (3810, 60, 2, 68, 0.0)
    line11 = by_line[11]  # `Prefill batch,` without TP0
    assert (line11["ts"], line11["prompt_tokens_per_s"], line11["new_tokens"], line11["cached_tokens"]) == (
        datetime(2026, 4, 5, 20, 2, 51), 559.53, 158, 0)
    line14 = by_line[14]  # hybrid model: `full token usage`
    assert (line14["kv_cache_usage"], line14["new_tokens"], line14["waiting"], line14["prompt_tokens_per_s"]) == (
        0.14, 43008, 97, 15734.14)


def test_sglang_cut_off_and_malformed_lines_are_quarantined(serving, tmp_path):
    # Decision: a batch line cut off mid-field (`... full toke`) is quarantined, not read in part.
    lines = (serving / "sglang-scheduler.log").read_text().splitlines()
    path = tmp_path / "sglang.log"
    path.write_text("\n".join([
        lines[5],
        lines[13][: lines[13].index("full token usage") + len("full toke")],
        lines[5].replace("#new-token: 3810", "#new-token: 38.5"),
        lines[5].replace("#cached-token: 60, ", ""),
        lines[5].replace("[2025-03-24 02:56:26 TP0] ", ""),
    ]) + "\n")
    parsed = engine(path)
    assert [r["line_number"] for r in stats(parsed)] == [1]
    assert reasons(parsed) == [
        (2, "SGLang Prefill batch line has a part that is not 'name: value' (cut off?)"),
        (3, "invalid literal for int() with base 10: '38.5'"),
        (4, "SGLang Prefill batch line without #cached-token"),
        (5, "no timestamp"),
    ]


# --- vLLM /metrics ------------------------------------------------------------------------------------

def metrics(path: Path, label: str | None = None) -> Parsed:
    return vllm_metrics.read_vllm_metrics_file(path, label, "llm-a")


def series(parsed: Parsed) -> list[dict]:
    return parsed.tables[vllm_metrics.VLLM_METRICS].to_pylist()


def test_vllm_metrics_token_counters(serving, tmp_path):
    path = tmp_path / "vllm-llm-a-20261102T101500.prom"  # a bare scrape: its time is in its name
    shutil.copyfile(serving / "vllm-metrics__ibm-vllm-pr18.prom", path)
    parsed = metrics(path)
    assert parsed.quarantined == []
    # cpu_cache_usage_perc and the TTFT buckets are not kept
    assert series(parsed) == [
        {"ts": datetime(2026, 11, 2, 10, 15), "deployment": "llm-a", "model_name": "bigscience/bloom-560m",
         "engine": None, "metric": "prompt_tokens_total", "finished_reason": None, "unit": None, "value": 1196.0,
         "line_number": 6},
        {"ts": datetime(2026, 11, 2, 10, 15), "deployment": "llm-a", "model_name": "bigscience/bloom-560m",
         "engine": None, "metric": "generation_tokens_total", "finished_reason": None, "unit": None,
         "value": 218152.0, "line_number": 9},
    ]


def test_vllm_metrics_engine_label_units_and_no_created_series(serving):
    parsed = metrics(serving / "vllm-metrics__production-stack-617.prom")
    assert parsed.quarantined == []
    rows = series(parsed)
    assert [(r["metric"], r["engine"], r["model_name"], r["unit"], r["value"], r["line_number"]) for r in rows] == [
        # deprecated gpu_* counter whose HELP says "cached tokens"
        ("gpu_prefix_cache_hits_total", "0", "zai-org/GLM-4.5", "tokens", 0.0, 6),
        ("prefix_cache_queries_total", "0", "zai-org/GLM-4.5", "tokens", 32.0, 15),
    ]
    assert not any(r["metric"].endswith("_created") or r["value"] > 1e9 for r in rows)


def test_vllm_metrics_gpu_prefix_cache_counts_blocks_unless_help_says_tokens(serving, tmp_path):
    text = (serving / "vllm-metrics__production-stack-318.prom").read_text()
    model = 'model_name="Qwen/Qwen2.5-Coder-32B-Instruct"'
    path = tmp_path / "scrape.prom"
    path.write_text(text + "\n".join([
        "# HELP vllm:gpu_prefix_cache_queries_total GPU prefix cache queries, in terms of number of queried blocks.",
        "# TYPE vllm:gpu_prefix_cache_queries_total counter",
        f"vllm:gpu_prefix_cache_queries_total{{{model}}} 340.0",
        f"vllm:gpu_prefix_cache_hits_total{{{model}}} 120.0",  # no HELP at all: the old unit
    ]) + "\n")
    rows = series(metrics(path))
    assert [(r["metric"], r["unit"], r["value"], r["line_number"]) for r in rows] == [
        ("num_requests_running", None, 0.0, 15),
        ("gpu_prefix_cache_queries_total", "blocks", 340.0, 38),
        ("gpu_prefix_cache_hits_total", "blocks", 120.0, 39),
    ]


def test_vllm_metrics_lora_adapter_is_its_own_model(serving):
    rows = series(metrics(serving / "vllm-metrics__vllm-pr11117-lora.prom"))
    assert [(r["model_name"], r["metric"], r["value"]) for r in rows] == [
        ("sql-lora", "request_prompt_tokens_sum", 5.0), ("meta-llama/Llama-2-7b-hf", "request_prompt_tokens_sum", 10.0)]


def test_tgis_metrics_hold_no_vllm_series(serving):
    parsed = metrics(serving / "tgis-compat-metrics__ibm-vllm-pr18.prom")
    assert (series(parsed), parsed.quarantined) == ([], [])


def test_vllm_metrics_success_by_finished_reason_and_line_timestamps(tmp_path):
    path = tmp_path / "scrape-20261102T000000.prom"  # line timestamps win over the file name
    model = 'engine="1",model_name="llama"'
    path.write_text("\n".join([
        f'vllm:request_success_total{{{model},finished_reason="stop"}} 41.0 1793614500000',
        f'vllm:request_success_total{{{model},finished_reason="length"}} 3.0 1793614500000',
        f'vllm:request_success_created{{{model},finished_reason="stop"}} 1.7537953269352946e+09 1793614500000',
        f"vllm:request_prefill_time_seconds_sum{{{model}}} 12.5 1793614500000",
        f"vllm:request_prefill_time_seconds_count{{{model}}} 44.0 1793614500000",
        f'vllm:request_prefill_time_seconds_bucket{{{model},le="0.3"}} 40.0 1793614500000',
    ]) + "\n")
    rows = series(metrics(path))
    assert [(r["ts"], r["metric"], r["finished_reason"], r["engine"], r["value"]) for r in rows] == [
        (datetime(2026, 11, 2, 10, 15), "request_success_total", "stop", "1", 41.0),
        (datetime(2026, 11, 2, 10, 15), "request_success_total", "length", "1", 3.0),
        (datetime(2026, 11, 2, 10, 15), "request_prefill_time_seconds_sum", None, "1", 12.5),
        (datetime(2026, 11, 2, 10, 15), "request_prefill_time_seconds_count", None, "1", 44.0),
    ]


def test_vllm_metrics_without_a_time_in_the_name_take_the_file_time(serving, tmp_path):
    path = tmp_path / "metrics.prom"
    shutil.copyfile(serving / "vllm-metrics__ibm-vllm-pr18.prom", path)
    os.utime(path, (1_793_617_200, 1_793_617_200))  # 2026-11-02 11:00:00 UTC
    assert {r["ts"] for r in series(metrics(path))} == {datetime(2026, 11, 2, 11, 0, 0)}


def test_vllm_metrics_bad_lines_are_quarantined_and_the_rest_kept(serving, tmp_path):
    lines = (serving / "vllm-metrics__ibm-vllm-pr18.prom").read_bytes().splitlines()
    prompt, generation = lines[5], lines[8]
    path = tmp_path / "scrape.prom"
    path.write_bytes(b"\n".join([
        b"<html><body>502 Bad Gateway</body></html>",
        prompt,
        generation[:40],  # 3: cut inside its labels
        prompt.replace(b"1196.0", b"n/a"),  # 4
        prompt.replace(b'model_name="bigscience/bloom-560m"', b'model="x"'),  # 5: drift, no model_name
        prompt.replace(b"bloom", b"bl\xf6om"),  # 6: latin-1
        prompt.replace(b"}", b',extra_label="new"}'),  # 7: an unknown label is fine
    ]) + b"\n")
    parsed = metrics(path)
    assert [(r["line_number"], r["value"]) for r in series(parsed)] == [(2, 1196.0), (7, 1196.0)]
    assert reasons(parsed) == [
        (1, "not a Prometheus text line"),
        (3, "not a Prometheus text line"),
        (4, "value 'n/a' is not a number"),
        (5, "no model_name label"),
        (6, "not UTF-8 text (byte 50 of the line)"),  # the ö of bl\xf6om
    ]


def test_vllm_metrics_truncated_gzip_keeps_the_complete_lines(serving, tmp_path):
    path = tmp_path / "scrape-20261102T101500.prom.gz"
    path.write_bytes(cut_after_line((serving / "vllm-metrics__ibm-vllm-pr18.prom").read_bytes(), 6, 30))
    parsed = metrics(path)
    assert [(r["metric"], r["value"]) for r in series(parsed)] == [("prompt_tokens_total", 1196.0)]
    assert reasons(parsed) == [(7, DAMAGED_LINE), (None, GZIP_TRUNCATED)]


# --- privacy --------------------------------------------------------------------------------------------

def canary_files(serving: Path, tmp_path: Path) -> list[Parsed]:
    """Every reader on input with the canary in each place text can hide, good lines and bad."""
    rows = spend_rows()
    jsonl = write_jsonl(tmp_path / "spend.jsonl", rows)
    with jsonl.open("a") as f:
        f.write(f'{{"request_id": "r", "messages": "{CANARY}", "startTime": \n')  # malformed
        f.write(json.dumps(rows[0] | {"model": None}) + "\n")  # quarantined for the model
        f.write(json.dumps({"event": "spend_tracked", "event_message": CANARY, "token": CANARY}) + "\n")
    spend_csv = tmp_path / "spend.csv"
    spend_csv.write_text(csv_text([*rows, rows[0] | {"prompt_tokens": "-1"}]))
    v0 = (serving / "vllm-v0-engine-stats.log").read_text()
    unstamped = v0.splitlines()[0].replace("INFO 05-22 02:20:59 ", "").replace("10390bd4", "20390bd4").replace(
        "prompt: '", f"prompt: '{CANARY} Avg prompt throughput: x")  # quarantined: no timestamp
    vllm_log = tmp_path / "vllm.log"
    vllm_log.write_text(v0.replace("please tell me something about python", CANARY) + unstamped + "\n")
    tgi_line = (serving / "tgi-router.log").read_text().splitlines()[0].replace('"[Response]"', f'"{CANARY}"')
    tgi = tmp_path / "tgi.log"
    tgi.write_text(f"{tgi_line}\n2025-05-01T01:31:02Z {tgi_line}\n"
                   f"2025-05-01T01:31:02Z DEBUG generate{{}}: text_generation_router::server: x.rs:1: {CANARY}\n")
    prom = tmp_path / "scrape.prom"
    prom.write_text(f"# HELP vllm:prompt_tokens_total {CANARY}\n"
                    f'vllm:prompt_tokens_total{{model_name="m",note="{CANARY}"}} 5\n'
                    f'vllm:cache_config_info{{model_name="m",prompt="{CANARY}"}} 1\n{CANARY}\n')
    return [
        litellm.read_litellm_file(jsonl), litellm.read_litellm_file(spend_csv),
        engine(vllm_log, year=2025), engine(tgi), metrics(prom),
    ]


def test_no_prompt_or_completion_text_reaches_a_row_or_a_reason(serving, tmp_path):
    parsed = canary_files(serving, tmp_path)
    assert [p.rows for p in parsed] == [4, 4, 17, 1, 1]  # the good rows are read
    assert all(p.quarantined for p in parsed)  # and the bad lines were looked at
    for p in parsed:
        for table in p.tables.values():
            assert CANARY not in str(table.to_pylist())
        assert CANARY not in str(p.quarantined)
