"""Every serving-log format through the real pipeline: requests counted once across logs, engine
logs standing in where no gateway saw the traffic, and no prompt, completion or API key in the
warehouse, even though every text field of every file carries one.

Traffic on 2026-11-02 10:00 (no GPU bill, so every request costs $0 and only counts matter):
  gateway   req-g1 (team search by key alias): 100 prompt + 20 completion tokens.
  LiteLLM   CSV export: req-l1 (team research by LiteLLM team id) 300 + 40, 200 of them cached;
            req-g1 again (the proxy behind the gateway logged it too: counted once, from the gateway).
  vLLM      deployment vllm-a's server log: chatcmpl-v1 and chatcmpl-v2 (v1 logged twice), no
            caller and no token counts: 2 unattributed requests of its model.
  TGI       deployment tgi-a's router log: one request, 355.849981 ms / 14.827082 ms per token = 24
            output tokens, unattributed.
"""

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from pipeline import built_warehouse, query

from ingest.config import load_config
from orchestration.runs import run_days, run_everything

CANARY = "CANARY-d41c-NEVER-STORE"
SECRET_KEY = "sk-live-CANARY-9f8e7d"
VISIBLE = "visible-user-7c21"  # a field that is stored: proves the byte search can see stored text

CONFIG = """
sources:
  gateway: [{location: gateway}]
  litellm: [{location: litellm}]
  engine_logs: [{location: engines}]
teams:
  search: {api_keys: [search-prod]}
  research: {litellm_team_ids: [team-research]}
workloads:
  - {name: vllm-a, kind: inference, owner_team: search, models: [llama-vllm], match: {pod: "vllm-a-*"}}
  - {name: tgi-a, kind: inference, owner_team: search, models: [llama-tgi], match: {pod: "tgi-a-*"}}
"""


def write_gateway(root: Path) -> None:
    line = {
        "ts": "2026-11-02T10:01:00Z", "request_id": "req-g1", "model": "llama-vllm", "api_key_alias": "search-prod",
        "api_key_hash": SECRET_KEY, "user": VISIBLE, "status": 200,
        "metadata": {"app": "crm", "user_message": CANARY, "nested": {"text": CANARY}},
        "request": {"messages": [{"role": "user", "content": CANARY}]},
        "response": {"choices": [{"message": {"content": CANARY}}]},
        "usage": {"prompt_tokens": 100, "completion_tokens": 20},
    }
    root.mkdir(parents=True)
    (root / "gw.jsonl").write_text(json.dumps(line) + "\n")


def write_litellm(root: Path) -> None:
    columns = ["request_id", "call_type", "api_key", "spend", "total_tokens", "prompt_tokens", "completion_tokens",
               "startTime", "endTime", "model", "model_group", "api_base", "user", "metadata", "cache_hit",
               "team_id", "messages", "response", "proxy_server_request", "status"]
    meta = {"user_api_key_alias": "research-nb", "prompt_preview": CANARY, "spend_logs_metadata": {"note": CANARY},
            "additional_usage_values": {"prompt_tokens_details": {"cached_tokens": 200}}}
    rows = [
        ["req-l1", "acompletion", SECRET_KEY, "0.0004", "340", "300", "40", "2026-11-02 10:02:00.000",
         "2026-11-02 10:02:01.500", "llama-vllm", "llama", "", "", json.dumps(meta), "False", "team-research",
         json.dumps([{"role": "user", "content": CANARY}]), json.dumps({"text": CANARY}),
         json.dumps({"body": CANARY}), "success"],
        ["req-g1", "acompletion", SECRET_KEY, "0.0001", "120", "100", "20", "2026-11-02 10:01:00.000",
         "2026-11-02 10:01:00.900", "llama-vllm", "llama", "", "", "{}", "False", "team-research", "", "", "",
         "success"],
    ]

    def csv_line(values: list[str]) -> str:
        return ",".join('"' + v.replace('"', '""') + '"' for v in values) + "\n"

    root.mkdir(parents=True)
    (root / "spend-2026-11-02.csv").write_text(csv_line(columns) + "".join(csv_line(r) for r in rows))


def write_engine_logs(root: Path) -> None:
    params = ("SamplingParams(n=1, temperature=0.7, max_tokens=256, stop=[]), prompt_token_ids: None, "
              "lora_request: None.")
    vllm = [
        f"INFO 11-02 10:03:00 [logger.py:39] Received request chatcmpl-v1: prompt: '{CANARY}', params: {params}",
        "INFO 11-02 10:03:00 [async_llm.py:204] Added request chatcmpl-v1.",
        f"INFO 11-02 10:03:00 [logger.py:39] Received request chatcmpl-v1: prompt: '{CANARY}', params: {params}",
        f"INFO 11-02 10:04:00 [logger.py:39] Received request chatcmpl-v2: prompt: '{CANARY}', params: {params}",
        "INFO 11-02 10:04:05 [loggers.py:80] Avg prompt throughput: 13.0 tokens/s, Avg generation throughput: "
        "52.1 tokens/s, Running: 1 reqs, Waiting: 0 reqs, GPU KV cache usage: 0.5%, Prefix cache hit rate: 80.0%",
    ]
    tgi = [
        "2026-11-02T10:05:00.000000Z  INFO generate{parameters=GenerateParameters { best_of: None, "
        f'max_new_tokens: Some(512), stop: ["{CANARY}"], truncate: None }} total_time="357.867572ms" '
        'validation_time="1.96844ms" queue_time="49.382µs" inference_time="355.849981ms" '
        'time_per_token="14.827082ms" seed="None"}: text_generation_router::server: router/src/server.rs:309: '
        "Success",
    ]
    for deployment, name, lines in (("vllm-a", "vllm-2026-11-02.log", vllm), ("tgi-a", "tgi-2026-11-02.log", tgi)):
        (root / deployment).mkdir(parents=True)
        (root / deployment / name).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serving")
    write_gateway(root / "gateway")
    write_litellm(root / "litellm")
    write_engine_logs(root / "engines")
    return built_warehouse(root, CONFIG)


def test_each_request_counts_once_across_every_log(warehouse):
    assert query(warehouse, """
        select model, team, requests, input_tokens, cached_input_tokens, output_tokens
        from marts.unit_economics_daily order by model, team""") == [
        ("llama-tgi", "unattributed", 1, 0, None, 24),
        ("llama-vllm", "research", 1, 300, 200, 40),
        ("llama-vllm", "search", 1, 100, None, 20),
        ("llama-vllm", "unattributed", 2, 0, None, 0),
    ]
    assert query(warehouse, "select log_source, count(*) from intermediate.int_requests group by all order by 1") == [
        ("gateway", 1), ("litellm", 1), ("tgi", 1), ("vllm", 2)]


def test_no_prompt_completion_or_key_reaches_the_warehouse(warehouse):
    with duckdb.connect(str(warehouse)) as con:
        con.execute("checkpoint")  # everything into the file, nothing left in a write-ahead log
    data = warehouse.read_bytes()
    assert VISIBLE.encode() in data  # stored text is findable in the file's bytes
    assert CANARY.encode() not in data
    assert SECRET_KEY.encode() not in data
    with duckdb.connect(str(warehouse), read_only=True) as con:
        columns = con.execute("""
            select table_schema, table_name, column_name from information_schema.columns
            where data_type = 'VARCHAR'""").fetchall()
        leaks = [f"{s}.{t}.{c}" for s, t, c in columns if con.execute(
            f'select count(*) from "{s}"."{t}" where "{c}" like ? or "{c}" like ?',
            [f"%{CANARY}%", f"%{SECRET_KEY}%"]).fetchone()[0]]
    assert leaks == []


def gateway_line(ts: str, request_id: str, status: int, completion_tokens: int) -> str:
    return json.dumps({"ts": ts, "request_id": request_id, "model": "llama-vllm", "api_key_alias": "search-prod",
                       "status": status, "usage": {"prompt_tokens": 10, "completion_tokens": completion_tokens}}) + "\n"


def test_a_retry_across_midnight_counts_once_when_built_day_by_day(tmp_path):
    """req-m1 fails at 23:59:40 (in 2026-11-02's file) and succeeds on its retry at 00:00:15 (in
    2026-11-03's): built as each day lands, it counts once, on the day of its last attempt."""
    (tmp_path / "gpuledger.yaml").write_text(CONFIG.replace("  litellm: [{location: litellm}]\n  engine_logs: "
                                                            "[{location: engines}]\n", ""))
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "gw-2026-11-02.jsonl").write_text(
        gateway_line("2026-11-02T12:00:00Z", "req-d1", 200, 5) + gateway_line("2026-11-02T23:59:40Z", "req-m1", 503, 0))
    instance = dg.DagsterInstance.ephemeral()
    assert run_everything(tmp_path / "gpuledger.yaml", instance, log_level="WARNING", say=lambda _: None).success
    (tmp_path / "gateway" / "gw-2026-11-03.jsonl").write_text(gateway_line("2026-11-03T00:00:15Z", "req-m1", 200, 7))
    assert run_days(tmp_path / "gpuledger.yaml", instance, "2026-11-03", "2026-11-03", say=lambda _: None).success

    warehouse = load_config(tmp_path / "gpuledger.yaml").warehouse_path
    assert query(warehouse, """
        select request_id, cast(ts as varchar), is_failed, output_tokens
        from intermediate.int_requests order by ts""") == [
        ("req-d1", "2026-11-02 12:00:00", False, 5), ("req-m1", "2026-11-03 00:00:15", False, 7)]
    assert query(warehouse, """
        select cast(day as varchar), sum(requests), sum(output_tokens) from marts.unit_economics_daily
        group by day order by day""") == [("2026-11-02", 1, 5), ("2026-11-03", 1, 7)]
