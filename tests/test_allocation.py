"""Attribution rules 1-8 on a fleet small enough to work out by hand, through the real pipeline.

One g5.12xlarge (4 GPUs, $8.00 an hour on demand, tagged team=search) billed for 10:00-12:00:

  10:00  GPU 0  deployment `chat` all hour                  $2.00 chat
         GPU 1  `chat` for the first half, then nothing      $1.00 chat, $1.00 idle
         GPU 2  `chat` and the job `tune` time-sliced        $1.00 chat, $1.00 training
         GPU 3  no telemetry                                 $2.00 unmonitored
  11:00  GPU 0  `chat`, no requests                          $2.00 idle_deployed
         GPUs 1-3 no telemetry                               $6.00 unmonitored

Requests to chat-model at 10:00: search (API key alias) 1000 prompt + 200 completion tokens,
weight 1000 + 200 x 2.5 = 1500; support (user) 600 prompt of which 500 cached + 140 completion,
weight 100 + 500 x 0.1 + 140 x 2.5 = 500; an unknown key's failed request, weight 0. So chat's
$4.00 splits $3.00 search, $1.00 support, $0 unattributed.

Non-GPU: an untagged volume at $0.40/h (10:00, 11:00), an untagged credit of -$0.24 over the
day, and a research-tagged bucket at $2.40 over the day. The shared pool (0.80 - 0.24 = $0.56)
follows the day's team GPU cost ($16.00): search/chat 5.00, search/no model 9.00, support/chat
1.00, research/tune 1.00.
"""

import gzip
import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline import built_warehouse, query

from ingest.config import load_config

DAY = datetime(2026, 11, 2)
T10, T11 = DAY + timedelta(hours=10), DAY + timedelta(hours=11)
STEP = timedelta(seconds=30)
ENERGY_STEP_MJ = 3_000_000  # 100 W for 30 s

CONFIG = """
sources:
  aws_cur: [{location: billing, export_name: cur}]
  nvml: [{location: telemetry}]
  gateway: [{location: serving}]
teams:
  search: {api_keys: [search-prod]}
  support: {users: [zendesk]}
  research: {}
workloads:
  - {name: chat, kind: inference, owner_team: search, models: [chat-model], match: {env: {GPULEDGER_WORKLOAD: chat}}}
  - {name: tune, kind: training, owner_team: research, match: {process_name: pt_main_thread}}
"""


def cur_line(start, end, line_type, cost, usage_type, resource=None, team=None, instance_type=None):
    return {
        "bill_billing_period_start_date": datetime(2026, 11, 1), "bill_billing_period_end_date": datetime(2026, 12, 1),
        "bill_payer_account_id": "111122223333", "line_item_line_item_type": line_type,
        "line_item_usage_start_date": start, "line_item_usage_end_date": end, "line_item_unblended_cost": cost,
        "line_item_currency_code": "USD", "line_item_product_code": "AmazonEC2", "line_item_usage_type": usage_type,
        "line_item_resource_id": resource, "line_item_usage_amount": 1.0 if instance_type else None,
        "product_instance_type": instance_type, "pricing_public_on_demand_cost": cost if line_type == "Usage" else None,
        "resource_tags": [("user_team", team)] if team else [],
    }


def write_bill(root: Path) -> None:
    hour = timedelta(hours=1)
    write_cur(root, [
        cur_line(T10, T10 + hour, "Usage", 8.0, "USE1-BoxUsage:g5.12xlarge", "i-0gpu", "search", "g5.12xlarge"),
        cur_line(T11, T11 + hour, "Usage", 8.0, "USE1-BoxUsage:g5.12xlarge", "i-0gpu", "search", "g5.12xlarge"),
        cur_line(T10, T10 + hour, "Usage", 0.40, "USE1-EBS:VolumeUsage.gp3", "vol-0shared"),
        cur_line(T11, T11 + hour, "Usage", 0.40, "USE1-EBS:VolumeUsage.gp3", "vol-0shared"),
        cur_line(DAY, DAY + 24 * hour, "Credit", -0.24, ""),
        cur_line(DAY, DAY + 24 * hour, "Usage", 2.40, "USE1-TimedStorage-ByteHrs", "research-bucket", "research"),
    ])


def write_cur(root: Path, lines: list[dict]) -> None:
    """A November 2026 CUR 2.0 delivery (export `cur`) of these lines, with its manifest."""
    table = pa.Table.from_pylist(lines, schema=pa.schema([
        ("bill_billing_period_start_date", pa.timestamp("ms")), ("bill_billing_period_end_date", pa.timestamp("ms")),
        ("bill_payer_account_id", pa.string()), ("line_item_line_item_type", pa.string()),
        ("line_item_usage_start_date", pa.timestamp("ms")), ("line_item_usage_end_date", pa.timestamp("ms")),
        ("line_item_unblended_cost", pa.float64()), ("line_item_currency_code", pa.string()),
        ("line_item_product_code", pa.string()), ("line_item_usage_type", pa.string()),
        ("line_item_resource_id", pa.string()), ("line_item_usage_amount", pa.float64()),
        ("product_instance_type", pa.string()), ("pricing_public_on_demand_cost", pa.float64()),
        ("resource_tags", pa.map_(pa.string(), pa.string())),
    ]))
    data = root / "cur" / "data" / "BILLING_PERIOD=2026-11"
    meta = root / "cur" / "metadata" / "BILLING_PERIOD=2026-11"
    data.mkdir(parents=True)
    meta.mkdir(parents=True)
    pq.write_table(table, data / "cur-00001.snappy.parquet")
    (meta / "cur-Manifest.json").write_text(json.dumps({
        "billingPeriod": {"start": "2026-11-01T00:00:00.000Z", "end": "2026-12-01T00:00:00.000Z"},
        "dataFiles": ["s3://b/p/cur/data/BILLING_PERIOD=2026-11/cur-00001.snappy.parquet"]}))


CHAT = {"pid": 11, "name": "python3", "env": {"GPULEDGER_WORKLOAD": "chat"}}
TUNE = {"pid": 22, "name": "pt_main_thread", "env": {}}


def write_telemetry(root: Path) -> None:
    def holders(gpu: int, t: datetime) -> tuple[list[dict], int]:
        if t < T10:
            return [], 0
        if t >= T11:
            return ([CHAT], 0) if gpu == 0 else ([], 0)
        if gpu == 0 or (gpu == 1 and t < T10 + timedelta(minutes=30)):
            return [CHAT], 80
        if gpu == 2:
            return [CHAT, TUNE], 90
        return [], 0

    lines = []
    energy = {0: 10**9, 1: 2 * 10**9, 2: 3 * 10**9}
    t = T10 - STEP  # one sample before the hour, so every billed sample has an energy delta
    while t < T11 + timedelta(hours=1):
        for gpu in (0, 1, 2):  # GPU 3 has no telemetry at all; GPUs 1-2 none after 11:00
            if t >= T11 and gpu != 0:
                continue
            procs, util = holders(gpu, t)
            energy[gpu] += ENERGY_STEP_MJ
            lines.append({"ts": t.isoformat() + "Z", "host": "g5-a", "resource_id": "i-0gpu", "gpu_index": gpu,
                          "gpu_uuid": f"GPU-{gpu}", "util_gpu_pct": util, "total_energy_mj": energy[gpu],
                          "processes": procs})
        t += STEP
    (root / "g5-a").mkdir(parents=True)
    (root / "g5-a" / "nvml-g5-a-20261102T10.jsonl.gz").write_bytes(
        gzip.compress("".join(json.dumps(ln) + "\n" for ln in lines).encode()))


def usage(prompt: int, completion: int, cached: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


def write_requests(root: Path) -> None:
    base = {"model": "chat-model", "api_key_hash": "sha256:00", "status": 200}
    lines = [
        base | {"ts": "2026-11-02T10:05:00Z", "request_id": "req-a", "api_key_alias": "search-prod", "status": 502},
        base | {"ts": "2026-11-02T10:05:03Z", "request_id": "req-a", "api_key_alias": "search-prod",
                "usage": usage(1000, 200, cached=0)},
        base | {"ts": "2026-11-02T10:20:00Z", "request_id": "req-b", "api_key_alias": "zendesk-key", "user": "zendesk",
                "usage": usage(600, 140, cached=500)},
        base | {"ts": "2026-11-02T10:40:00Z", "request_id": "req-c", "api_key_hash": "sha256:unknown", "status": 500},
    ]
    root.mkdir(parents=True)
    (root / "gateway.jsonl").write_text("".join(json.dumps(ln) + "\n" for ln in lines))


def build_hand_fleet(root: Path) -> Path:
    """The fleet of this module's docstring, through every asset: its gpuledger.yaml."""
    write_bill(root / "billing")
    write_telemetry(root / "telemetry")
    write_requests(root / "serving")
    built_warehouse(root, CONFIG)
    return root / "gpuledger.yaml"


@pytest.fixture
def warehouse(hand_fleet: Path) -> Path:
    return load_config(hand_fleet).warehouse_path


def d(x: str) -> Decimal:
    return Decimal(x)


def test_gpu_hours_split_by_occupancy_with_idle_and_unmonitored(warehouse):
    rows = query(warehouse, """
        select hour(hour_start), team, coalesce(model, '-'), coalesce(workload, '-'), category,
               round(effective_cost, 6), round(gpu_hours, 6)
        from marts.cost_ledger_hourly where category not in ('direct', 'shared') order by all""")
    assert rows == [
        (10, "research", "-", "tune", "training", d("1.000000"), d("0.500000")),
        (10, "search", "-", "-", "idle", d("1.000000"), d("0.500000")),
        (10, "search", "-", "-", "unmonitored", d("2.000000"), d("1.000000")),
        (10, "search", "chat-model", "chat", "inference", d("3.000000"), d("1.500000")),
        (10, "support", "chat-model", "chat", "inference", d("1.000000"), d("0.500000")),
        (10, "unattributed", "chat-model", "chat", "inference", d("0.000000"), d("0.000000")),
        (11, "search", "-", "-", "unmonitored", d("6.000000"), d("3.000000")),
        (11, "search", "chat-model", "chat", "idle_deployed", d("2.000000"), d("1.000000")),
    ]


def test_requests_and_tokens_count_once(warehouse):
    rows = query(warehouse, """
        select team, requests, input_tokens, cached_input_tokens, output_tokens from marts.cost_ledger_hourly
        where category = 'inference' order by team""")
    assert rows == [("search", 1, 1000, 0, 200), ("support", 1, 600, 500, 140), ("unattributed", 1, 0, None, 0)]


def test_non_gpu_charges_are_direct_or_shared_by_gpu_cost(warehouse):
    # The volume and the credit are pooled before the spread: one shared row per hour and holder,
    # with no resource, where spreading each charge on its own gave two at 10:00 and 11:00.
    rows = query(warehouse, """
        select team, coalesce(model, '-'), coalesce(workload, '-'), category, round(sum(effective_cost), 6),
               count(distinct hour_start), count(*), count(resource_id)
        from marts.cost_ledger_hourly where category in ('direct', 'shared') group by all order by all""")
    assert rows == [
        ("research", "-", "-", "direct", d("2.400000"), 24, 24, 24),  # the bucket, spread over its 24 hours
        ("research", "-", "tune", "shared", d("0.035000"), 24, 24, 0),  # 1/16 of $0.56
        ("search", "-", "-", "shared", d("0.315000"), 24, 24, 0),  # 9/16
        ("search", "chat-model", "chat", "shared", d("0.175000"), 24, 24, 0),  # 5/16
        ("support", "chat-model", "chat", "shared", d("0.035000"), 24, 24, 0),  # 1/16
    ]


def test_unit_economics_by_hand(warehouse):
    rows = query(warehouse, """
        select team, requests, round(inference_cost, 6), round(idle_deployed_cost, 6), round(shared_cost, 6),
               round(fully_loaded_cost, 6), round(cost_per_1m_input_tokens, 4), round(cost_per_1m_output_tokens, 4),
               round(cost_per_1m_tokens, 4), round(cost_per_1m_tokens_fully_loaded, 4),
               round(cost_per_1k_requests, 4), round(gpu_hours, 6), round(avg_gpu_utilization, 6),
               round(energy_kwh, 6), round(co2e_kg, 6)
        from marts.unit_economics_daily where model = 'chat-model' order by team""")
    assert rows == [
        # $3.00 for 1000 in + 200 out; input share 1000/1500 -> $2.00 per 1000 input tokens.
        # GPU-hours: 0.75 of chat's 2.0 at 10:00 plus the idle 11:00 hour; busy 0.75 x 1.65 of 2.5.
        # Energy: 0.75 x 0.2 kWh at 10:00 + 0.1 kWh at 11:00; CO2e x 1.2 PUE x 0.385 kg/kWh.
        ("search", 1, d("3.000000"), d("2.000000"), d("0.175000"), d("5.175000"), d("2000.0000"),
         d("5000.0000"), d("2500.0000"), d("4312.5000"), d("3000.0000"), d("2.500000"), 0.495, d("0.250000"),
         d("0.115500")),
        # $1.00 for 600 in (500 cached) + 140 out; input weight 150 of 500.
        ("support", 1, d("1.000000"), d("0.000000"), d("0.035000"), d("1.035000"), d("500.0000"), d("5000.0000"),
         d("1351.3514"), d("1398.6486"), d("1000.0000"), d("0.500000"), 0.825, d("0.050000"),
         d("0.023100")),
        ("unattributed", 1, d("0.000000"), d("0.000000"), d("0.000000"), d("0.000000"), None, None, None, None,
         d("0.0000"), d("0.000000"), None, d("0.000000"), d("0.000000")),
    ]


def test_the_ledger_holds_every_cent_of_the_bill(warehouse):
    assert query(warehouse, """
        select source_charges, source_effective_cost, ledger_effective_cost, unallocated_cost, difference
        from marts.cost_reconciliation""") == [(6, d("18.96"), d("18.96"), d("0"), d("0"))]


def test_gpu_efficiency_by_hand(warehouse):
    rows = query(warehouse, """
        select gpu_index, billed_gpu_hours, held_hours, idle_hours, unmonitored_hours, round(avg_utilization, 6),
               round(energy_kwh, 6), effective_cost, idle_cost, unmonitored_cost, recommendation
        from marts.gpu_efficiency_daily where resource_id = 'i-0gpu' order by gpu_index""")
    assert rows == [
        # chat held it both hours, 80 % busy at 10:00 and 0 % at 11:00
        (0, d("2"), d("2"), d("0"), d("0"), 0.4, d("0.2"), d("4"), d("0"), d("0"), None),
        # chat for half of 10:00 at 80 %, then free; no telemetry at 11:00
        (1, d("2"), d("0.5"), d("0.5"), d("1"), 0.4, d("0.1"), d("4"), d("1"), d("2"), None),
        # time-sliced by chat and tune at 90 % during 10:00
        (2, d("2"), d("1"), d("0"), d("1"), 0.9, d("0.1"), d("4"), d("0"), d("2"), None),
        (3, d("2"), d("0"), d("0"), d("2"), None, d("0"), d("4"), d("0"), d("4"),
         "no telemetry for most of the day: run gpuledger collect (or ship nvidia-smi / dcgm-exporter files)"),
    ]
