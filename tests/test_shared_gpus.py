"""Shared GPUs through the real pipeline, worked out by hand, and which workload rule wins.

Two 8-GPU instances, each billed $56.00 for 10:00-11:00, so $7.00 a GPU-hour:

  p4d `a100-a` (gpuledger collector, a sample every 30 s)
    GPU 0  MIG: 3g and 1g instances held by `chat` (one workload on two instances of a GPU), 2g
           by `tune`, 1 slice not carved
           -> chat 4/7 $4.00, tune 2/7 $2.00, idle 1/7 $1.00
    GPU 1  time-sliced: until 10:30 `chat` holds 30 GiB and `tune` 10 GiB, then `chat` alone
           -> chat 0.5 x 0.75 + 0.5 = 0.875 $6.125, tune 0.125 $0.875
    GPUs 2-7 no telemetry: $42.00 unmonitored
  p5 `h100-k8s` (dcgm-exporter scraped every minute; host mapped to its instance in the config)
    GPU 0  MIG: 4g instance held by pod train-0 (namespace research), 3g by pod embed-7f9c
           (namespace ml) until 10:30, then by no pod
           -> train-k8s 4/7 $4.00, embed-k8s 1.5/7 $1.50, idle 1.5/7 $1.50
    GPUs 1-7 no telemetry: $49.00 unmonitored

Every GPU with telemetry draws 100 W all hour, 0.1 kWh, shared like the cost.
"""

import gzip
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
from pipeline import built_warehouse, failed_checks, query, run_messages
from test_allocation import T10, cur_line, write_cur

from ingest.config import Workload, load_config
from ingest.workloads import HolderSignature, resolve
from orchestration.runs import run_everything

HOUR = timedelta(hours=1)
GIB = 1 << 30
WATTS = 100

CONFIG = """
sources:
  aws_cur: [{location: billing, export_name: cur}]
  nvml: [{location: nvml}]
  dcgm: [{location: dcgm}]
hosts: {h100-k8s: i-0h100}
teams: {search: {}, research: {}}
workloads:
  - {name: chat, kind: inference, owner_team: search, models: [chat-model], match: {env: {GPULEDGER_WORKLOAD: chat}}}
  - {name: embed-k8s, kind: inference, owner_team: search, models: [embed-model], match: {namespace: ml, pod: embed-*}}
  - {name: tune, kind: training, owner_team: research, match: {process_name: pt_main_thread}}
  - {name: train-k8s, kind: training, owner_team: research, match: {namespace: research}}
"""


def chat(memory_gib: int | None = None) -> dict:
    return {"pid": 11, "name": "python3", "env": {"GPULEDGER_WORKLOAD": "chat"},
            **({"used_gpu_memory_bytes": memory_gib * GIB} if memory_gib else {})}


def tune(memory_gib: int | None = None) -> dict:
    return {"pid": 22, "name": "pt_main_thread", **({"used_gpu_memory_bytes": memory_gib * GIB} if memory_gib else {})}


def times(step: timedelta) -> list[datetime]:
    """From one step before 10:00 (so 10:00's sample has an energy delta) to the hour's last sample."""
    return [T10 - step + i * step for i in range(int(HOUR / step) + 1)]


def write_nvml(root: Path) -> None:
    step = timedelta(seconds=30)
    lines = []
    for i, t in enumerate(times(step)):
        base = {"ts": t.isoformat() + "Z", "host": "a100-a", "resource_id": "i-0a100", "util_gpu_pct": 50,
                "total_energy_mj": 10**9 + i * WATTS * 30 * 1000}
        lines.append(base | {"gpu_index": 0, "gpu_uuid": "GPU-a0", "mig_mode": True, "processes": []})
        for uuid, slices, procs in (("MIG-a", 3, [chat()]), ("MIG-b", 2, [tune()]), ("MIG-c", 1, [chat()])):
            lines.append({"ts": base["ts"], "host": "a100-a", "gpu_index": 0, "gpu_uuid": uuid, "util_gpu_pct": 50,
                          "parent_gpu_uuid": "GPU-a0", "mig_slices": slices, "mig_total_slices": 7,
                          "processes": procs})
        sliced = [chat(30), tune(10)] if t < T10 + HOUR / 2 else [chat(20)]
        lines.append(base | {"gpu_index": 1, "gpu_uuid": "GPU-a1", "processes": sliced})
    (root / "a100-a").mkdir(parents=True)
    (root / "a100-a" / "nvml-a100-a-20261102T10.jsonl.gz").write_bytes(
        gzip.compress("".join(json.dumps(ln) + "\n" for ln in lines).encode()))


def write_dcgm(root: Path) -> None:
    uuid = "GPU-58e8f5ea-13cc-013a-d88f-2bcf5ae8bc77"
    gpu = f'gpu="0",UUID="{uuid}",modelName="NVIDIA H100 80GB HBM3",Hostname="dcgm-exporter-x7k2p"'
    lines = []
    for i, t in enumerate(times(timedelta(minutes=1))):
        ms = int(t.replace(tzinfo=UTC).timestamp() * 1000)
        embed_pod = ',container="server",namespace="ml",pod="embed-7f9c"' if t < T10 + HOUR / 2 else ""
        lines += [
            f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{gpu}}} {10**9 + i * WATTS * 60 * 1000} {ms}",
            f"DCGM_FI_DEV_POWER_USAGE{{{gpu}}} {WATTS}.0 {ms}",
            f'DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{gpu},GPU_I_PROFILE="4g.40gb",GPU_I_ID="1",container="trainer",'
            f'namespace="research",pod="train-0"}} 0.9 {ms}',
            f'DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{gpu},GPU_I_PROFILE="3g.40gb",GPU_I_ID="2"{embed_pod}}} 0.3 {ms}',
        ]
    (root / "h100-k8s").mkdir(parents=True)
    (root / "h100-k8s" / "scrapes-20261102T10.prom").write_text("\n".join(lines) + "\n")


# The day's raw rows: 605 collector samples (121 times x the MIG GPU, its three instances and GPU
# 1), 545 processes (MIG-a's, MIG-b's and MIG-c's at every time, GPU 1's two until 10:30 and one
# after) and 183 dcgm-exporter rows (61 scrapes x the GPU and two instances).
DAY_ROWS = 1333
# Three GPU slices put MIG-a and MIG-b in another bucket than their GPU-a0 (DuckDB's hash), so
# their processes must be read with GPU-a0's slice: the same hand-worked answers must come out.
GPU_SLICES = 3


@pytest.fixture(scope="module", params=["one build", "three GPU slices"])
def warehouse(request, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shared")
    write_cur(root / "billing", [
        cur_line(T10, T10 + HOUR, "Usage", 56.0, "USE1-BoxUsage:p4d.24xlarge", "i-0a100", None, "p4d.24xlarge"),
        cur_line(T10, T10 + HOUR, "Usage", 56.0, "USE1-BoxUsage:p5.48xlarge", "i-0h100", None, "p5.48xlarge"),
    ])
    write_nvml(root / "nvml")
    write_dcgm(root / "dcgm")
    if request.param == "one build":
        return built_warehouse(root, CONFIG)
    limit = -(-DAY_ROWS // GPU_SLICES)
    (root / "gpuledger.yaml").write_text(CONFIG + f"daily_build_rows: {limit}\n")
    instance = dg.DagsterInstance.ephemeral()
    result = run_everything(root / "gpuledger.yaml", instance, log_level="INFO", say=lambda _: None)
    assert result.success and failed_checks(result) == []
    assert [m for m in run_messages(instance, result.results) if m.startswith("daily models: GPU slice")] == [
        f"daily models: GPU slice {k} of {GPU_SLICES} (a day of over {limit} raw rows is built a slice of its GPUs "
        "at a time)" for k in range(1, GPU_SLICES + 1)]
    warehouse = load_config(root / "gpuledger.yaml").warehouse_path
    assert query(warehouse, f"""
        select list(distinct hash(coalesce(parent_gpu_uuid, gpu_uuid)) % {GPU_SLICES} = hash(gpu_uuid) % {GPU_SLICES})
        from raw.nvml_gpu_samples where gpu_uuid in ('MIG-a', 'MIG-b')""") == [([False],)]
    return warehouse


def test_mig_instances_and_time_slices_split_the_gpu_hour(warehouse):
    rows = query(warehouse, """
        select resource_id, gpu_index, coalesce(workload, '-'), holder_kind, effective_cost, gpu_hours
        from intermediate.int_gpu_hour_allocation
        where hour_start = '2026-11-02 10:00:00' and gpu_index < 2 order by all""")
    assert [(r[0], r[1], r[2], r[3], round(r[4], 6), round(r[5], 6)) for r in rows] == [
        ("i-0a100", 0, "-", "idle", Decimal("1.000000"), Decimal("0.142857")),
        ("i-0a100", 0, "chat", "inference", Decimal("4.000000"), Decimal("0.571429")),
        ("i-0a100", 0, "tune", "training", Decimal("2.000000"), Decimal("0.285714")),
        ("i-0a100", 1, "chat", "inference", Decimal("6.125000"), Decimal("0.875000")),
        ("i-0a100", 1, "tune", "training", Decimal("0.875000"), Decimal("0.125000")),
        ("i-0h100", 0, "-", "idle", Decimal("1.500000"), Decimal("0.214286")),
        ("i-0h100", 0, "embed-k8s", "inference", Decimal("1.500000"), Decimal("0.214286")),
        ("i-0h100", 0, "train-k8s", "training", Decimal("4.000000"), Decimal("0.571429")),
        ("i-0h100", 1, "-", "unmonitored", Decimal("7.000000"), Decimal("1.000000")),
    ]


def test_every_dollar_of_both_instances_is_allocated(warehouse):
    rows = query(warehouse, """
        select resource_id, holder_kind, sum(effective_cost) from intermediate.int_gpu_hour_allocation
        where hour_start = '2026-11-02 10:00:00' group by all order by all""")
    assert rows == [
        ("i-0a100", "idle", Decimal("1")), ("i-0a100", "inference", Decimal("10.125")),
        ("i-0a100", "training", Decimal("2.875")), ("i-0a100", "unmonitored", Decimal("42")),
        ("i-0h100", "idle", Decimal("1.5")), ("i-0h100", "inference", Decimal("1.5")),
        ("i-0h100", "training", Decimal("4")), ("i-0h100", "unmonitored", Decimal("49")),
    ]


def test_energy_is_shared_like_the_gpu(warehouse):
    rows = query(warehouse, """
        select resource_id, gpu_index, coalesce(workload, '-'), round(energy_kwh, 6)
        from intermediate.int_gpu_hour_allocation
        where hour_start = '2026-11-02 10:00:00' and holder_kind <> 'unmonitored' order by all""")
    assert [(r[0], r[1], r[2], float(r[3])) for r in rows] == [
        ("i-0a100", 0, "-", 0.014286), ("i-0a100", 0, "chat", 0.057143), ("i-0a100", 0, "tune", 0.028571),
        ("i-0a100", 1, "chat", 0.0875), ("i-0a100", 1, "tune", 0.0125),
        ("i-0h100", 0, "-", 0.021429), ("i-0h100", 0, "embed-k8s", 0.021429), ("i-0h100", 0, "train-k8s", 0.057143),
    ]


def test_mig_utilisation_is_the_slice_weighted_engine_activity(warehouse):
    rows = query(warehouse, """
        select resource_id, gpu_index, samples, avg_utilization, energy_method from intermediate.int_gpu_hours_observed
        where hour_start = '2026-11-02 10:00:00' order by all""")
    # a100-a: every device reports 50 %; h100-k8s: (4 x 0.9 + 3 x 0.3) / 7 = 0.642857
    assert [(r[0], r[1], r[2], round(r[3], 6), r[4]) for r in rows] == [
        ("i-0a100", 0, 120, 0.5, "counter"), ("i-0a100", 1, 120, 0.5, "counter"),
        ("i-0h100", 0, 60, 0.642857, "counter"),
    ]


# Which rule wins when several match: the first in config order.
RULES = [
    Workload(name="gpu1-special", kind="batch", owner_team="a", match={"host": "a100-*", "gpu_index": [1]}),
    Workload(name="fleet", kind="batch", owner_team="b", match={"host": "a100-*"}),
    Workload(name="chat", kind="inference", owner_team="c", models=["m"],
             match={"env": {"GPULEDGER_WORKLOAD": "chat"}}),
]


@pytest.mark.parametrize(("holder", "expected"), [
    (HolderSignature("a100-a", 1, "GPU-a1", "python3"), "gpu1-special"),
    (HolderSignature("a100-a", 0, "GPU-a0", "python3"), "fleet"),
    # an earlier broad rule takes a process that a later, narrower rule also matches
    (HolderSignature("a100-a", 0, "GPU-a0", "python3", env='{"GPULEDGER_WORKLOAD":"chat"}'), "fleet"),
    (HolderSignature("h100-b", 0, "GPU-b0", "python3", env='{"GPULEDGER_WORKLOAD":"chat"}'), "chat"),
    (HolderSignature("h100-b", 0, "GPU-b0", "python3", env='{"GPULEDGER_WORKLOAD":"Chat"}'), None),  # case matters
    (HolderSignature("A100-a", 1, "GPU-a1", "python3"), None),
])
def test_the_first_matching_rule_in_config_order_wins(holder, expected):
    assert resolve(holder, RULES) == expected


def test_putting_the_broad_rule_first_shadows_the_narrow_one():
    holder = HolderSignature("a100-a", 1, "GPU-a1", "python3")
    assert resolve(holder, [RULES[1], RULES[0]]) == "fleet"
