"""On-prem servers, one model on two deployments, LiteLLM routing and measured token weights,
worked out by hand and run through the real pipeline.

On-prem: server dc1-a, 2 x H100, bought 2026-10-01 for $13,152 and written off over 36 months
(26,304 hours: $0.50 an hour), ops $73 per GPU-month (2 x 73 / 730 = $0.20 an hour), site dc1
at PUE 1.5, $0.10 per kWh, 0.2 kg CO2e per kWh. Telemetry every minute for November, each GPU
drawing 0.006 kWh a minute: a full hour is 2 x 60 x 0.006 = 0.72 kWh, x 1.5 x 0.10 = $0.108, so
$0.808 an hour, $0.404 per GPU-hour. The first sample has no energy before it (hour 0: 118
intervals, $0.8062); GPU 1 stops reporting for the month's last 24 hours, which are charged at
its rated 700 W (0.36 + 0.7 kWh: $0.859, flagged as rated). November: $360 + $144 +
(501.108 + 25.44) kWh x $0.15 = $582.9822.
  GPU 0: deployment llama-onprem (owner platform) all month.
  GPU 1: the job pretrain from 11-10 20:00 to 11-11 04:00 (8 hours across midnight), else idle.
Cloud: a g6.xlarge (1 L4) at $0.80 an hour, 11-02 10:00-12:00, held by llama-cloud (owner alpha).

Requests for model `llama` on 11-02:
  10:00 alpha (gateway, API key): 1000 prompt + 200 completion. beta (LiteLLM team id): 400
        prompt, all 400 cached, + 100 completion. Neither names a deployment, so both are pooled
        over the two deployments holding GPUs that hour, half each. vLLM's timings for
        llama-onprem that day (10 s prefill for 1000 uncached tokens, 10 s decode for 200) make
        an output token weigh 5 there; llama-cloud keeps the configured 2.5.
        llama-onprem: alpha 0.5 x (1000 + 1000) = 1000, beta 0.5 x (40 + 500) = 270 of $0.404.
        llama-cloud:  alpha 0.5 x (1000 + 500) = 750, beta 0.5 x (40 + 250) = 145 of $0.80.
        beta also got a LiteLLM cache hit (5000 + 5000 tokens): the proxy answered it, no GPU
        worked, so it weighs nothing.
  11:00 beta through LiteLLM with api_base http://dc1-a:8000/v1, routed to llama-onprem (a
        failed first attempt under the same request id counts once): 100 prompt + 50 completion,
        all of that hour's $0.404. llama-cloud has no requests: $0.80 idle_deployed to alpha.
GPU 0 never holds more than 20 GiB of its 80: with 20 % headroom an A10 (24 GB) would do; GPU 1
is idle all day on every day but two.
"""

import gzip
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pipeline import built_warehouse, query
from test_allocation import cur_line, d, write_cur

MONTH = datetime(2026, 11, 1)
T10 = datetime(2026, 11, 2, 10)
HOUR = timedelta(hours=1)
ONPREM_STEP = timedelta(minutes=1)
ONPREM_ENERGY_STEP_MJ = 21_600_000  # 0.006 kWh
GPU1_STOPS = MONTH + 696 * HOUR
PRETRAIN = (datetime(2026, 11, 10, 20), datetime(2026, 11, 11, 4))
GIB = 1 << 30

CONFIG = """
sources:
  aws_cur: [{location: billing, export_name: cur}]
  nvml: [{location: telemetry}]
  gateway: [{location: serving/gateway}]
  litellm: [{location: serving/litellm}]
  vllm_metrics: [{location: serving/vllm}]
teams:
  alpha: {api_keys: [alpha-key], monthly_budget: "1000"}
  beta: {litellm_team_ids: [team-beta], monthly_budget: "5"}
  platform: {}
  research: {}
workloads:
  - {name: llama-onprem, kind: inference, owner_team: platform, models: [llama], api_bases: ["http://dc1-a:*"],
     match: {env: {GPULEDGER_WORKLOAD: llama-onprem}}}
  - {name: llama-cloud, kind: inference, owner_team: alpha, models: [llama],
     match: {env: {GPULEDGER_WORKLOAD: llama-cloud}}}
  - {name: pretrain, kind: training, owner_team: research, match: {process_name: pt_main_thread}}
on_prem:
  sites: {dc1: {pue: 1.5, electricity_price_per_kwh: "0.10", grid_kg_co2e_per_kwh: 0.2}}
  assets:
    - {host: dc1-a, site: dc1, gpu_model: H100 80GB, gpu_count: 2, purchase_price: "13152",
       purchase_date: 2026-10-01, depreciation_months: 36, rated_power_w_per_gpu: 700,
       ops_cost_per_gpu_month: "73", team: platform}
"""


def _nvml_line(t: datetime, host: str, gpu: int, energy_mj: int, procs: list[dict], resource: str | None = None):
    return {"ts": t.isoformat() + "Z", "host": host, "resource_id": resource, "gpu_index": gpu,
            "gpu_uuid": f"GPU-{host}-{gpu}", "util_gpu_pct": 60 if procs else 0, "total_energy_mj": energy_mj,
            "mem_total_bytes": 80 * GIB, "mem_used_bytes": 20 * GIB if procs else 0, "processes": procs}


def _write_gz(path: Path, lines: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress("".join(json.dumps(ln) + "\n" for ln in lines).encode()))


def write_telemetry(root: Path) -> None:
    onprem = {"pid": 7, "name": "python3", "env": {"GPULEDGER_WORKLOAD": "llama-onprem"}}
    pretrain = {"pid": 8, "name": "pt_main_thread", "env": {}}
    lines, energy, t = [], [0, 0], MONTH
    while t < MONTH + 720 * HOUR:  # no resource id: the asset register maps the host
        for gpu in (0, 1):
            if gpu == 1 and t >= GPU1_STOPS:
                continue
            energy[gpu] += ONPREM_ENERGY_STEP_MJ
            procs = [onprem] if gpu == 0 else ([pretrain] if PRETRAIN[0] <= t < PRETRAIN[1] else [])
            lines.append(_nvml_line(t, "dc1-a", gpu, energy[gpu], procs))
        t += ONPREM_STEP
    _write_gz(root / "dc1-a" / "nvml-dc1-a-202611.jsonl.gz", lines)

    cloud = {"pid": 9, "name": "python3", "env": {"GPULEDGER_WORKLOAD": "llama-cloud"}}
    step, t, lines = timedelta(seconds=30), T10 - timedelta(seconds=30), []
    while t < T10 + 2 * HOUR:
        lines.append(_nvml_line(t, "g6-a", 0, 10**9 + len(lines) * 3_000_000, [cloud], "i-0cloud"))
        t += step
    _write_gz(root / "g6-a" / "nvml-g6-a-20261102T10.jsonl.gz", lines)


def write_serving(root: Path) -> None:
    gateway = {"ts": "2026-11-02T10:05:00Z", "request_id": "req-a", "model": "llama", "api_key_alias": "alpha-key",
               "status": 200, "usage": {"prompt_tokens": 1000, "completion_tokens": 200}}
    (root / "gateway").mkdir(parents=True)
    (root / "gateway" / "gw.jsonl").write_text(json.dumps(gateway) + "\n")

    def spend_row(request_id: str, start: str, prompt: int, completion: int, cached: int | None = None,
                  api_base: str = "", status: str = "success", cache_hit: str = "False") -> dict:
        meta = {"user_api_key_team_id": "team-beta"}
        if cached is not None:
            meta["additional_usage_values"] = {"prompt_tokens_details": {"cached_tokens": cached}}
        return {"request_id": request_id, "call_type": "acompletion", "startTime": start, "endTime": start,
                "model": "llama", "api_base": api_base, "api_key": "ab" * 32, "team_id": "team-beta",
                "user": "", "metadata": meta, "status": status, "cache_hit": cache_hit, "prompt_tokens": prompt,
                "completion_tokens": completion, "total_tokens": prompt + completion, "spend": 0.0001}

    rows = [
        spend_row("req-b", "2026-11-02T10:20:00+00:00", 400, 100, cached=400),
        spend_row("req-hit", "2026-11-02T10:30:00+00:00", 5000, 5000, cache_hit="True"),
        spend_row("req-c", "2026-11-02T11:10:00+00:00", 0, 0, api_base="http://dc1-a:8000/v1", status="failure"),
        spend_row("req-c", "2026-11-02T11:10:02+00:00", 100, 50, api_base="http://dc1-a:8000/v1"),
    ]
    (root / "litellm").mkdir(parents=True)
    (root / "litellm" / "spend.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    scrapes = {"20261102T090000": (0, 0, 0, 0, 0), "20261102T120000": (10.0, 10.0, 1000, 200, 0)}
    for stamp, (prefill, decode, prompt, generated, hits) in scrapes.items():
        path = root / "vllm" / "llama-onprem" / f"metrics-{stamp}.prom"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f'vllm:{name}{{model_name="llama"}} {value}\n' for name, value in (
            ("request_prefill_time_seconds_sum", prefill), ("request_decode_time_seconds_sum", decode),
            ("prompt_tokens_total", prompt), ("generation_tokens_total", generated),
            ("prefix_cache_hits_total", hits))))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("onprem")
    write_cur(root / "billing", [
        cur_line(t, t + HOUR, "Usage", 0.80, "USE1-BoxUsage:g6.xlarge", "i-0cloud", None, "g6.xlarge")
        for t in (T10, T10 + HOUR)])
    write_telemetry(root / "telemetry")
    write_serving(root / "serving")
    return built_warehouse(root, CONFIG)


def test_the_asset_register_becomes_hourly_charges_that_reconcile(warehouse):
    rows = query(warehouse, """
        select sku_id, count(*), round(sum(effective_cost), 6), round(sum(consumed_quantity), 6)
        from intermediate.int_onprem_charges group by sku_id order by sku_id""")
    assert rows == [
        ("onprem-amortisation", 720, d("360.000000"), d("720.000000")),
        ("onprem-energy-metered", 696, d("75.166200"), d("751.662000")),  # 2 x (696 x 60 - 1) x 0.006 x 1.5
        ("onprem-energy-rated", 24, d("3.816000"), d("38.160000")),  # 24 x (0.36 + 0.70) kWh x 1.5
        ("onprem-ops", 720, d("144.000000"), d("1440.000000")),
    ]
    assert query(warehouse, """
        select provider, billing_account_id, round(source_effective_cost, 6), round(ledger_effective_cost, 6),
               round(difference, 6)
        from marts.cost_reconciliation where provider = 'On-Premises'""") == [
        ("On-Premises", "on-prem:dc1", d("582.982200"), d("582.982200"), d("0.000000"))]


def test_a_model_on_two_deployments_is_pooled_and_weighted_per_deployment(warehouse):
    rows = query(warehouse, """
        select workload, team, round(sum(effective_cost), 6)
        from marts.cost_ledger_hourly
        where cast(hour_start as date) = '2026-11-02' and hour(hour_start) in (10, 11)
          and category in ('inference', 'idle_deployed')
        group by all order by all""")
    assert rows == [
        ("llama-cloud", "alpha", d("1.470391")),  # 0.80 x 750/895 at 10:00 + 0.80 idle_deployed at 11:00
        ("llama-cloud", "beta", d("0.129609")),  # 0.80 x 145/895
        ("llama-onprem", "alpha", d("0.318110")),  # 0.404 x 1000/1270
        ("llama-onprem", "beta", d("0.489890")),  # 0.404 x 270/1270 + all of 11:00 (routed)
    ]
    assert query(warehouse, """
        select workload, day, weight_output from intermediate.int_deployment_token_weights""") == [
        ("llama-onprem", datetime(2026, 11, 2).date(), 5.0)]


def test_unit_economics_per_team(warehouse):
    rows = query(warehouse, """
        select team, requests, input_tokens, cached_input_tokens, output_tokens, round(inference_cost, 6),
               round(cost_per_1m_input_tokens, 4), round(cost_per_1m_output_tokens, 4), round(cost_per_1m_tokens, 4)
        from marts.unit_economics_daily where day = '2026-11-02' and team in ('alpha', 'beta') order by team""")
    assert rows == [
        # 0.3181102 + 0.6703911; input weight 500 + 500, output 0.5 x 200 x 5 + 0.5 x 200 x 2.5 = 750
        ("alpha", 1, 1000, 0, 200, d("0.988501"), d("564.8579"), d("2118.2171"), d("823.7511")),
        # 0.085890 + 0.129609 + 0.404; input weight 20 + 20 + 100 of 765 (the cache hit weighs 0)
        ("beta", 3, 5500, 400, 5150, d("0.619499"), d("20.6131"), d("98.2770"), d("58.1689")),
    ]


def test_a_training_run_across_midnight_is_one_run(warehouse):
    assert query(warehouse, """
        select run_id, team, run_start, run_end, hours, round(gpu_hours, 6), round(cost, 6), round(energy_kwh, 6),
               round(co2e_kg, 6)
        from marts.training_runs""") == [
        ("pretrain@2026-11-10 20:00:00", "research", *PRETRAIN, 8, d("8.000000"), d("3.232000"), d("2.880000"),
         d("0.864000")),  # 8 x $0.404; 8 x 0.36 kWh; x 1.5 PUE x 0.2 kg/kWh
    ]


def test_tco_compares_owned_gpu_hours_with_cloud_prices(warehouse):
    rows = query(warehouse, """
        select workload, provider, gpu_model, round(gpu_hours, 6), round(actual_cost, 6), round(on_demand_cost, 2),
               round(spot_cost, 2), committed_cost
        from marts.tco_comparison where month = '2026-11-01' order by workload""")
    assert rows == [
        ("llama-cloud", "AWS", "L4 24GB", d("2.000000"), d("1.600000"), d("1.61"), None, None),  # g6.xlarge 0.805
        # 0.4031 (hour 0) + 695 x 0.404 + 24 x 0.4295; p5 $6.88, GCP a3 spot $6.57 per GPU-hour
        ("llama-onprem", "On-Premises", "H100 80GB", d("720.000000"), d("291.491100"), d("4953.60"), d("4730.40"),
         None),
        ("pretrain", "On-Premises", "H100 80GB", d("8.000000"), d("3.232000"), d("55.04"), d("52.56"), None),
    ]


def test_team_spend_forecasts_the_month_against_the_budget(warehouse):
    rows = query(warehouse, """
        select team, round(sum(effective_cost), 6), round(max(month_to_date_cost), 6),
               round(max(month_end_forecast), 6), max(monthly_budget), bool_or(forecast_over_budget)
        from marts.team_spend_daily where day = '2026-11-02' and team in ('alpha', 'beta')
        group by team order by team""")
    assert rows == [
        ("alpha", d("1.788501"), d("1.788501"), d("26.827519"), d("1000.0000000000"), False),  # 1.7885013 x 30 / 2 days
        ("beta", d("0.619499"), d("0.619499"), d("9.292481"), d("5.0000000000"), True),
    ]


def test_gpu_efficiency_recommends_what_to_do(warehouse):
    assert query(warehouse, """
        select gpu_index, round(billed_gpu_hours, 6), round(idle_hours, 6), longest_idle_hours, smaller_gpu_model,
               recommendation
        from marts.gpu_efficiency_daily where resource_id = 'dc1-a' and day = '2026-11-02' order by gpu_index""") == [
        (0, d("24.000000"), d("0.000000"), None, "A10 24GB",
         "peak memory 20 GiB fits a A10 24GB: move it to that GPU (or a MIG slice)"),
        (1, d("24.000000"), d("24.000000"), 24, None, "idle 24 h in a row: stop it or scale it to zero when idle"),
    ]
