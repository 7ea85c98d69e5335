"""The demo fleet generator: deterministic bytes, real formats, and a ground truth that adds up."""

import calendar
import gzip
import hashlib
import json
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ingest.aws_cur_schema import CUR2_SCHEMA
from ingest.config import Config, load_config, parse_config
from ingest.demo_fleet import DEFAULT_START, cur, generate, inject, serving, telemetry
from ingest.demo_fleet.bill import BillLine
from ingest.demo_fleet.plan import (
    IDLE,
    INSTANCE_TYPES,
    SAMPLE_SECONDS,
    SAMPLES_PER_HOUR,
    Instance,
    Plan,
    Workload,
    WorkloadSpec,
    build_plan,
    rng_for,
)
from ingest.demo_fleet.serving import COMPLETION_CANARY, PROMPT_CANARY, Request, simulate
from ingest.demo_fleet.telemetry import GpuSeries
from ingest.demo_fleet.truth import add_months, amortisation_per_hour, ground_truth, injected_anomalies

# Every template once: AWS p5 (SP), g5, g6 (spot, a collector outage), an idle p4d (the window is a weekend);
# a GCP a2; an Azure NC; the on-prem 4 x H100 server (its own outage). Two days, so the on-prem training
# job runs across midnight, inside one billing period.
SMALL = {"gpus": 31, "days": 2, "start": date(2026, 11, 28)}
ON_PREM_HOST = "dc1-h100-1"


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small")
    generate(out, seed=3, **SMALL)
    return out


def test_same_seed_same_bytes_other_seed_other_bytes(small, tmp_path):
    generate(tmp_path / "again", seed=3, **SMALL)
    generate(tmp_path / "other", seed=4, **SMALL)
    assert digests(tmp_path / "again") == digests(small)
    other = digests(tmp_path / "other")
    assert other.keys() == digests(small).keys()
    assert other != digests(small)


def test_the_generated_config_is_valid_and_points_at_the_files(small):
    cfg = load_config(small / "gpuledger.yaml")
    assert cfg.warehouse_path == small / "gpuledger.duckdb"
    assert Path(cfg.resolve(cfg.sources.nvml[0].location)).is_dir()
    assert {w.kind for w in cfg.workloads} == {"inference", "training", "batch"}


def test_cur_follows_the_cur2_schema_and_its_manifest(small):
    manifests = sorted(small.glob("billing/aws/*/metadata/BILLING_PERIOD=*/*-Manifest.json"))
    assert [m.parent.name for m in manifests] == ["BILLING_PERIOD=2026-11"]
    manifest = json.loads(manifests[0].read_text())
    (data_file,) = manifest["dataFiles"]
    assert data_file.startswith("s3://") and data_file.endswith(".snappy.parquet")
    local = small / "billing" / "aws" / data_file.split("/billing/aws/", 1)[1]
    table = pq.read_table(local)
    assert table.schema == CUR2_SCHEMA
    assert [c["name"] for c in manifest["columns"]] == CUR2_SCHEMA.names
    types = set(table["line_item_line_item_type"].to_pylist())
    assert types == {"Usage", "SavingsPlanCoveredUsage", "SavingsPlanNegation", "SavingsPlanRecurringFee",
                     "Credit", "Tax"}
    assert set(table["pricing_term"].drop_null().to_pylist()) >= {"OnDemand", "Spot"}


def test_ground_truth_period_totals_equal_the_bill(small):
    truth = json.loads((small / "ground_truth.json").read_text())
    (local,) = small.glob("billing/aws/*/data/BILLING_PERIOD=2026-11/*.parquet")
    rows = pq.read_table(local).to_pylist()

    def amortised(r: dict) -> float:  # AWS's rules, as the billing reference lists them
        return {
            "SavingsPlanCoveredUsage": r["savings_plan_savings_plan_effective_cost"],
            "SavingsPlanNegation": 0.0,
            "SavingsPlanRecurringFee": (r["savings_plan_total_commitment_to_date"] or 0)
            - (r["savings_plan_used_commitment"] or 0),
        }.get(r["line_item_line_item_type"], r["line_item_unblended_cost"])

    (period,) = (p for p in truth["billing_periods"] if p["provider"] == "AWS")
    assert period["billed_cost"] == pytest.approx(sum(r["line_item_unblended_cost"] for r in rows), abs=1e-6)
    assert period["effective_cost"] == pytest.approx(sum(amortised(r) for r in rows), abs=1e-6)
    every_provider = sum(p["effective_cost"] for p in truth["billing_periods"])
    assert sum(truth["categories"].values()) == pytest.approx(every_provider, abs=1e-4)


def test_telemetry_uses_the_nvml_field_names_of_the_real_h100_capture(small, samples):
    capture = (samples / "gpu-telemetry" / "h100-nvml-samples.jsonl").read_text().splitlines()
    real = [json.loads(ln) for ln in capture[1:]]  # line 1 is static device info
    real_keys = set().union(*(r.keys() for r in real)) - {"phase"}  # `phase` annotates the probe run
    (first,) = sorted(small.glob("telemetry/nvml/*/*/*.jsonl.gz"))[:1]
    ours = json.loads(gzip.decompress(first.read_bytes()).splitlines()[0])
    assert real_keys <= ours.keys()
    busy = [json.loads(ln) for f in sorted(small.glob("telemetry/nvml/p5-1/*/*.jsonl.gz"))[:1]
            for ln in gzip.decompress(f.read_bytes()).splitlines()]
    proc = next(p for s in busy for p in s["processes"])
    assert {"pid", "used_gpu_memory_bytes"} <= proc.keys()  # as nvmlDeviceGetComputeRunningProcesses gives


def test_gateway_lines_carry_openai_usage_objects(small):
    (log,) = sorted(small.glob("serving/gateway/*/*.jsonl.gz"))[:1]
    lines = [json.loads(ln) for ln in gzip.decompress(log.read_bytes()).splitlines()]
    usages = [ln["usage"] for ln in lines if ln["usage"]]
    assert all(u["total_tokens"] == u["prompt_tokens"] + u.get("completion_tokens", 0) for u in usages)
    assert any("prompt_tokens_details" in u for u in usages)
    assert any(ln["status"] >= 400 and ln["usage"] is None for ln in lines)
    assert any(ln.get("api_key_alias") is None for ln in lines)  # callers known only by their key hash


# --- the new files: LiteLLM spend logs, the on-prem server, the config --------------------------------

LITELLM_COLUMNS = {"request_id", "call_type", "startTime", "endTime", "model", "model_group", "model_id", "api_base",
                   "api_key", "user", "team_id", "metadata", "cache_hit", "status", "prompt_tokens",
                   "completion_tokens", "total_tokens", "spend", "messages", "response"}


def jsonl_gz(paths: list[Path]) -> list[dict]:
    return [json.loads(ln) for p in paths for ln in gzip.decompress(p.read_bytes()).splitlines()]


@pytest.fixture(scope="module")
def litellm_rows(small) -> list[dict]:
    files = sorted(small.glob("serving/litellm/litellm-1/*.jsonl.gz"))
    assert [f.name for f in files] == ["litellm-1-spend-logs-2026-11-28.jsonl.gz",
                                       "litellm-1-spend-logs-2026-11-29.jsonl.gz"]
    return jsonl_gz(files)


@pytest.fixture(scope="module")
def truth(small) -> dict:
    return json.loads((small / "ground_truth.json").read_text())


def test_litellm_rows_are_spend_log_rows(litellm_rows):
    assert litellm_rows and all(r.keys() >= LITELLM_COLUMNS for r in litellm_rows)
    for r in litellm_rows:
        assert r["call_type"] == "acompletion" and r["cache_hit"] == "False"
        assert r["startTime"].endswith("+00:00") and r["endTime"].endswith("+00:00")
        assert datetime.fromisoformat(r["startTime"]) <= datetime.fromisoformat(r["endTime"])
        assert re.fullmatch(r"[0-9a-f]{64}", r["api_key"])
        assert r["team_id"] == r["metadata"]["user_api_key_team_id"] == "team-research"
        assert r["total_tokens"] == r["prompt_tokens"] + r["completion_tokens"]
        assert r["status"] in ("success", "failure")
        if r["status"] == "failure":
            assert r["total_tokens"] == 0 and r["spend"] == 0
    metadata = [r["metadata"] for r in litellm_rows]
    assert any("spend_logs_metadata" in m for m in metadata)
    assert any(m.get("additional_usage_values", {}).get("prompt_tokens_details", {}).get("cached_tokens")
               for m in metadata)


def test_each_request_is_in_exactly_one_log_and_retries_end_with_the_counted_row(small, litellm_rows, truth):
    gateway = {ln["request_id"] for ln in jsonl_gz(sorted(small.glob("serving/gateway/*/*.jsonl.gz")))}
    litellm = Counter(r["request_id"] for r in litellm_rows)
    assert not gateway & litellm.keys()
    assert len(gateway) + len(litellm) == truth["generator"]["requests"]
    retried = [i for i, n in litellm.items() if n > 1]
    assert retried and all(litellm[i] == 2 for i in retried)
    for rid in retried:
        first, _counted = sorted((r for r in litellm_rows if r["request_id"] == rid), key=lambda r: r["startTime"])
        assert first["status"] == "failure" and first["total_tokens"] == 0


def test_litellm_requests_to_the_on_prem_url_are_routed_there_by_the_config(small, litellm_rows):
    cfg = load_config(small / "gpuledger.yaml")
    (onprem,) = [w for w in cfg.workloads if w.api_bases]
    assert onprem.name == "onprem-llama-70b" and onprem.api_bases == [f"http://{ON_PREM_HOST}:8000/v1"]
    p5 = next(w for w in cfg.workloads if w.name == "llama-70b")
    assert onprem.models == p5.models == ["llama-3.1-70b-instruct"]  # one model, two deployments: a pool
    bases = Counter(r["api_base"] for r in litellm_rows)
    assert bases[onprem.api_bases[0]] > 0 and len(bases) == 2  # the rest name the router: pooled by model
    assert cfg.teams["research"].litellm_team_ids == ["team-research"]


def test_the_on_prem_host_has_telemetry_but_no_bill_line(small, truth):
    files = sorted(small.glob(f"telemetry/nvml/{ON_PREM_HOST}/*/*.jsonl.gz"))
    assert len(files) == 48 - 2  # its collector was down for two hours
    sample = json.loads(gzip.decompress(files[0].read_bytes()).splitlines()[0])
    assert sample["resource_id"] == ON_PREM_HOST and sample["name"] == "NVIDIA H100 80GB HBM3"
    cur = pq.read_table(next(small.glob("billing/aws/*/data/*/*.parquet")))
    assert not any("dc1" in (v or "") for v in cur["line_item_resource_id"].to_pylist())
    for bill in (*small.glob("billing/gcp/*"), *small.glob("billing/azure-focus/*")):
        raw = gzip.decompress(bill.read_bytes()) if bill.suffix == ".gz" else bill.read_bytes()
        assert b"dc1" not in raw, bill
    periods = {(p["provider"], p["billing_period"]) for p in truth["billing_periods"]}
    assert ("On-Premises", "2026-11") in periods


def test_prompt_and_completion_text_is_in_both_raw_logs_for_the_privacy_test_to_catch(small):
    for log in ("gateway", "litellm"):
        raw = b"".join(gzip.decompress(p.read_bytes()) for p in small.glob(f"serving/{log}/*/*.jsonl.gz"))
        assert PROMPT_CANARY.encode() in raw and COMPLETION_CANARY.encode() in raw, log


def test_the_config_has_the_asset_register_regions_and_budgets_over_and_under(small, truth):
    cfg = load_config(small / "gpuledger.yaml")
    (asset,) = cfg.on_prem.assets
    assert (asset.host, asset.resource, asset.site, asset.gpu_model, asset.gpu_count) == (
        ON_PREM_HOST, ON_PREM_HOST, "dc1", "H100 80GB", 4)
    assert asset.purchase_date == SMALL["start"] - timedelta(days=60) and asset.team == "platform"
    assert cfg.on_prem.sites["dc1"].pue == 1.3
    assert cfg.energy.grid_kg_co2e_per_kwh_by_region == {"us-east-1": 0.38, "us-central1": 0.42, "eastus": 0.35}
    last = [r for r in truth["team_spend_daily"] if r["day"] == "2026-11-29" and r["monthly_budget"] is not None]
    assert {r["team"] for r in last} == {"platform", "research", "search", "support"}
    assert {r["team"]: r["monthly_budget"] for r in last} == {t: float(cfg.teams[t].monthly_budget) for t in cfg.teams}
    assert any(r["month_end_forecast"] > r["monthly_budget"] for r in last)
    assert any(r["month_end_forecast"] < r["monthly_budget"] for r in last)


def test_the_on_prem_charges_by_hand(small, truth):
    hours = (date(2029, 9, 29) - date(2026, 9, 29)).days * 24  # 36 months from the purchase, a leap day included
    assert hours == 26304
    asset = load_config(small / "gpuledger.yaml").on_prem.assets[0]
    assert amortisation_per_hour(asset) == pytest.approx(140000 / hours)
    charges = {c["charge"]: c["effective_cost"] for c in truth["on_prem_charges"]}
    assert charges["amortization"] == pytest.approx(48 * 140000 / hours, abs=1e-5)
    assert charges["operations"] == pytest.approx(48 * 150 * 4 / 730, abs=1e-5)
    assert 0 < charges["energy"] < 48 * 4 * 0.7 * 1.3 * 0.12  # never above all four GPUs at rated power
    (period,) = [p for p in truth["billing_periods"] if p["provider"] == "On-Premises"]
    assert period["effective_cost"] == pytest.approx(sum(charges.values()), abs=1e-5)


def test_the_on_prem_training_job_runs_across_midnight(truth):
    runs = [r for r in truth["training_runs"] if r["workload"] == "onprem-sft"]
    assert runs and all(r["team"] == "research" for r in runs)
    assert any(r["start"][:10] != (datetime.fromisoformat(r["end"]) - timedelta(seconds=1)).date().isoformat()
               for r in runs)
    assert {r["workload"] for r in truth["training_runs"]} >= {"finetune", "nightly-eval", "rl-finetune"}


def test_tco_prices_the_on_prem_hours_at_the_cheapest_cloud_h100(truth):
    rows = [r for r in truth["tco_comparison"] if r["workload"] == "onprem-llama-70b"]
    assert [r["gpu_model"] for r in rows] == ["H100 80GB"]
    assert rows[0]["gpu_hours"] == pytest.approx(2 * 48 - 2 * 2)  # two GPUs, less the two hours unseen
    assert rows[0]["effective_cost"] < rows[0]["on_demand_cost"]


# --- hand-checks of the truth's rules on tiny plans ------------------------------------------------------

T0 = datetime(2026, 10, 31, tzinfo=UTC)


def holding(per_hour: list[int]) -> np.ndarray:
    """A GPU's holder for every sample, from one holder (workload index or IDLE) per hour."""
    return np.repeat(np.array(per_hour, dtype=np.int16), SAMPLES_PER_HOUR)


def steady(holders: np.ndarray, watts: float) -> GpuSeries:
    energy = np.cumsum(np.full(holders.size, int(watts * SAMPLE_SECONDS * 1000), dtype=np.int64))
    return GpuSeries(holders, np.zeros(holders.size, dtype=np.int64), np.full(holders.size, watts), energy)


def instance(itype: str, name: str, per_gpu: list[list[int]], team: str | None = None,
             outage: frozenset[int] = frozenset()) -> Instance:
    return Instance(name, name, INSTANCE_TYPES[itype], "on_demand", team, "vol-0", [holding(h) for h in per_gpu],
                    outage)


def inference(name: str, host: str, owner: str = "platform") -> Workload:
    return Workload(name, WorkloadSpec(name, "inference", owner, ("m",), "python3"), ("m",), host)


def job(name: str, host: str, owner: str = "research") -> Workload:
    return Workload(name, WorkloadSpec(name, "training", owner, (), "pt_main_thread"), (), host)


def tiny(days: int, instances: list[Instance], workloads: list[Workload]) -> tuple[Plan, dict]:
    plan = Plan(T0, days, 0, instances, workloads, "arn", 0.0)
    series = {(i.resource_id, g): steady(h, 100.0) for i in instances for g, h in enumerate(i.holders)}
    return plan, series


def hourly_bill(plan: Plan, inst: Instance, per_hour: float) -> list[BillLine]:
    return [BillLine("AWS", "1", f"{t:%Y-%m}", t, t + timedelta(hours=1), "Usage", per_hour, per_hour, per_hour,
                     inst.resource_id, inst.team_tag, inst)
            for t in (plan.hour_start(h) for h in range(plan.hours))]


def config(**data: object) -> Config:
    return parse_config(data, Path("gpuledger.yaml"))


def call(hour: int, team: str, routed: int | None = None) -> Request:
    return Request(hour, 0, routed, "m", team, 100, 0, 40, False, "litellm" if routed is not None else "gateway")


def rows(truth: dict, key: str, **match: object) -> list[dict]:
    return [r for r in truth[key] if all(r[k] == v for k, v in match.items())]


def test_a_pooled_request_counts_by_held_gpu_hours_and_a_routed_one_wholly():
    # deployment a holds GPUs 0 and 1, b holds GPU 2, all day; the host costs 4.00 an hour, 1.00 a GPU
    host = instance("g6.12xlarge", "g6-1", [[0] * 24, [0] * 24, [1] * 24, [IDLE] * 24])
    plan, series = tiny(1, [host], [inference("a", "g6-1"), inference("b", "g6-1")])
    requests = [call(3, "search"), call(3, "research", routed=1)]
    truth = ground_truth(plan, hourly_bill(plan, host, 4.0), requests, series, config())
    # hour 3: a's 2.00 all to search (f = 2/3, the only request it has); b's 1.00 split search 1/3 : research 1
    (search,) = rows(truth, "unit_economics", team="search")
    (research,) = rows(truth, "unit_economics", team="research")
    assert search["inference_cost"] == pytest.approx(2.0 + 0.25)
    assert research["inference_cost"] == pytest.approx(0.75)
    assert search["requests"] == research["requests"] == 1
    # every other deployment-hour got no request: idle_deployed, to the owner
    assert truth["categories"]["idle_deployed"] == pytest.approx(23 * 3.0)
    # co2e: the cloud PUE and the bill region's grid (us-east-1), from the configured table
    truth = ground_truth(plan, hourly_bill(plan, host, 4.0), requests, series,
                         config(energy={"pue": 1.1, "grid_kg_co2e_per_kwh_by_region": {"us-east-1": 0.5}}))
    for r in truth["unit_economics"]:
        assert r["co2e_kg"] == pytest.approx(r["energy_kwh"] * 1.1 * 0.5, abs=1e-6)


ASSET = {"host": "dc1-h100-1", "site": "dc1", "gpu_model": "H100 80GB", "gpu_count": 4, "purchase_price": "140000",
         "purchase_date": "2026-09-01", "depreciation_months": 36, "rated_power_w_per_gpu": 700,
         "ops_cost_per_gpu_month": "150", "team": "platform"}
ON_PREM = {"sites": {"dc1": {"pue": 1.3, "electricity_price_per_kwh": "0.12", "grid_kg_co2e_per_kwh": 0.2}},
           "assets": [ASSET]}


def test_on_prem_charges_meter_energy_where_telemetry_has_it_and_rated_power_where_not():
    # GPU 0 serves model m all day, the rest idle; every GPU draws 100 W; the collector is down in hour 5
    server = instance("PowerEdge XE8640", "dc1-h100-1", [[0] * 24] + [[IDLE] * 24] * 3, outage=frozenset({5}))
    plan, series = tiny(1, [server], [inference("op", "dc1-h100-1")])
    truth = ground_truth(plan, [], [call(2, "research", routed=0)], series, config(on_prem=ON_PREM))
    hours = (date(2029, 9, 1) - date(2026, 9, 1)).days * 24
    assert amortisation_per_hour(config(on_prem=ON_PREM).on_prem.assets[0]) == pytest.approx(140000 / hours)
    charges = {c["charge"]: c["effective_cost"] for c in truth["on_prem_charges"]}
    assert charges["amortization"] == pytest.approx(24 * 140000 / hours, abs=1e-6)
    assert charges["operations"] == pytest.approx(24 * 600 / 730, abs=1e-6)
    # 100 W for an hour is 0.1 kWh; the hour after the window's start and after the gap lose one interval
    interval = 100 * SAMPLE_SECONDS / 3.6e6
    metered = 21 * 0.1 + 2 * (0.1 - interval)  # 23 metered hours, hour 5 at rated power
    assert charges["energy"] == pytest.approx(4 * (metered + 0.7) * 1.3 * 0.12, abs=1e-6)
    # every dollar lands: the unmonitored hour to the asset's team, at rated power
    total = sum(charges.values())
    assert sum(truth["categories"].values()) == pytest.approx(total, abs=1e-5)  # each rounded to 6 decimals
    unmonitored = 140000 / hours + 600 / 730 + 4 * 0.7 * 1.3 * 0.12
    assert rows(truth, "team_categories", team="platform", category="unmonitored")[0]["effective_cost"] == \
        pytest.approx(unmonitored, abs=1e-6)
    # co2e on-prem: the site's PUE and grid
    for r in truth["unit_economics"]:
        assert r["co2e_kg"] == pytest.approx(r["energy_kwh"] * 1.3 * 0.2, abs=1e-6)


def test_add_months_clamps_to_the_end_of_the_month():
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2027, 2, 28), 12) == date(2028, 2, 28)
    assert add_months(date(2026, 11, 15), 36) == date(2029, 11, 15)


def test_month_to_date_restarts_with_the_month_and_the_forecast_scales_to_its_days():
    # an idle tagged GPU at 2.00 an hour from 31 October to 1 November: 48.00 a day
    host = instance("g6.xlarge", "g6x-1", [[IDLE] * 48], team="search")
    plan, series = tiny(2, [host], [])
    truth = ground_truth(plan, hourly_bill(plan, host, 2.0), [], series,
                         config(teams={"search": {"monthly_budget": 1000}}))
    assert truth["team_spend_daily"] == [
        {"day": "2026-10-31", "team": "search", "effective_cost": 48.0, "month_to_date_cost": 48.0,
         "month_end_forecast": 48.0, "monthly_budget": 1000.0},
        {"day": "2026-11-01", "team": "search", "effective_cost": 48.0, "month_to_date_cost": 48.0,
         "month_end_forecast": 48.0 * calendar.monthrange(2026, 11)[1], "monthly_budget": 1000.0},
    ]


def test_a_training_run_spans_midnight_and_ends_at_a_fully_unheld_hour(tmp_path):
    # held 22:00-01:00, half of 01:00-02:00, nothing 02:00-03:00, then 03:00-04:00 again
    per_hour = [IDLE] * 48
    for h in (22, 23, 24, 25, 27):
        per_hour[h] = 0
    host = instance("g6.xlarge", "g6x-1", [per_hour], team="search")
    host.holders[0][25 * SAMPLES_PER_HOUR + SAMPLES_PER_HOUR // 2 : 26 * SAMPLES_PER_HOUR] = IDLE
    plan, series = tiny(2, [host], [job("sft", "g6x-1")])
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "gpu_instance_types.csv").write_text("provider,instance_type,gpu_model\nAWS,g6.xlarge,L4 24GB\n")
    (seeds / "cloud_gpu_prices.csv").write_text(
        "gpu_model,pricing_category,price_per_gpu_hour\n"
        "L4 24GB,Standard,0.9\nL4 24GB,Standard,0.8\nL4 24GB,Dynamic,0.3\nL4 24GB,Committed,\n")
    truth = ground_truth(plan, hourly_bill(plan, host, 2.0), [], series, config(), seeds)
    first, second = truth["training_runs"]
    assert first == {"workload": "sft", "team": "research", "start": "2026-10-31T22:00:00+00:00",
                     "end": "2026-11-01T02:00:00+00:00", "gpu_hours": 3.5, "cost": 7.0,
                     "energy_kwh": first["energy_kwh"]}
    assert first["energy_kwh"] == pytest.approx(3.5 * 0.1, abs=1e-6)
    assert (second["start"], second["end"], second["gpu_hours"]) == (
        "2026-11-01T03:00:00+00:00", "2026-11-01T04:00:00+00:00", 1.0)
    # the held hours by month, at the cheapest seed price per category (none committed)
    assert rows(truth, "tco_comparison", month="2026-10") == [
        {"month": "2026-10", "workload": "sft", "gpu_model": "L4 24GB", "gpu_hours": 2.0, "effective_cost": 4.0,
         "on_demand_cost": 1.6, "spot_cost": 0.6, "committed_cost": None}]
    (november,) = rows(truth, "tco_comparison", month="2026-11")
    assert (november["gpu_hours"], november["on_demand_cost"]) == (2.5, pytest.approx(2.0))


# --- the anomalies planted for the spend detector -------------------------------------------------------

DEMO = {"gpus": 31, "days": 14, "seed": 42, "start": DEFAULT_START}  # `gpuledger demo`'s fleet
P4D_GPU_HOUR = INSTANCE_TYPES["p4d.24xlarge"].on_demand_rate / 8


@pytest.fixture(scope="module")
def demo_plan() -> Plan:
    return build_plan(**DEMO)


@pytest.fixture(scope="module")
def demo_traffic(demo_plan) -> tuple[serving.Traffic, serving.Traffic]:
    """The demo fleet's requests as generated, and as they would be without the traffic drop."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(serving, "traffic_drop", lambda plan: None)
        undropped = simulate(demo_plan)
    return simulate(demo_plan), undropped


def without_injections(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(cur, "egress_spike", lambda plan: None)
    mp.setattr(serving, "traffic_drop", lambda plan: None)


def test_the_egress_spike_is_one_cur_line_900_dollars_over_its_usual_egress(demo_plan, tmp_path):
    lines = cur.bill_lines(demo_plan)
    with pytest.MonkeyPatch.context() as mp:
        without_injections(mp)
        usual = cur.bill_lines(demo_plan)
    changed = [(a, b) for a, b in zip(lines, usual, strict=True) if a.row != b.row]
    (spiked, before), (tax, tax_before) = changed  # the egress line, and the month's tax on it
    g5 = next(i for i in demo_plan.instances if i.host == "g5-1")
    assert spiked.start == datetime(2026, 11, 9, 14, tzinfo=UTC) == demo_plan.hour_start(11 * 24 + 14)
    assert (spiked.resource_id, spiked.team_tag, spiked.instance) == (g5.resource_id, "search", None)
    assert spiked.row["line_item_usage_amount"] == pytest.approx(before.row["line_item_usage_amount"] + 10_000)
    assert spiked.billed - before.billed == spiked.effective - before.effective == pytest.approx(900.0)
    assert tax.kind == "Tax" and tax.billed == pytest.approx(tax_before.billed + 900 * cur.TAX_RATE, abs=0.01)
    # in the CUR file as AWS writes it
    (data,) = [p for p in cur.write_deliveries(demo_plan, lines, tmp_path)
               if p.suffix == ".parquet" and p.parent.name == "BILLING_PERIOD=2026-11"]
    (row,) = [r for r in pq.read_table(data).to_pylist() if r["line_item_unblended_cost"] > 100
              and r["line_item_product_code"] == "AWSDataTransfer"]
    assert (row["line_item_usage_type"], row["line_item_resource_id"], row["resource_tags"]) == (
        "USE1-DataTransfer-Out-Bytes", g5.resource_id, [("user_team", "search")])
    assert row["line_item_unblended_cost"] == pytest.approx(900, abs=10)  # and the hour's usual few GB
    assert row["line_item_usage_start_date"] == datetime(2026, 11, 9, 14)


def test_the_traffic_drop_thins_the_p5_deployment_to_40_percent_from_day_8(demo_plan, demo_traffic):
    dropped, undropped = demo_traffic
    p5 = next(i for i, w in enumerate(demo_plan.workloads) if w.name == "llama-70b")
    assert demo_plan.instance_of(p5).host == "p5-1"
    first = 8 * 24

    def split(requests: list[Request]) -> tuple[list[Request], list[Request]]:
        hit = [r for r in requests if r.origin == p5 and r.hour >= first]
        return hit, [r for r in requests if not (r.origin == p5 and r.hour >= first)]

    kept, rest = split(dropped.requests)
    full, rest_undropped = split(undropped.requests)
    assert rest == rest_undropped  # every other request is the one it would be without the drop
    it = iter(full)
    assert all(r in it for r in kept)  # the kept ones are some of the requests that would have come
    # thinning a Poisson stream keeps it Poisson: 40 % of what came, within 4 standard deviations
    assert abs(len(kept) - 0.4 * len(full)) < 4 * (0.24 * len(full)) ** 0.5
    # and against the plan's own rate (peak x diurnal x weekend) over the hours after the drop
    expected = sum(serving._rate(demo_plan, "llama-70b", h, 140) for h in range(first, demo_plan.hours))
    assert abs(len(kept) - 0.4 * expected) < 4 * (0.4 * expected) ** 0.5
    # before the drop, the same day-8 rate: the drop is 0.4 of it hour by hour, not a quieter weekday
    n_before = sum(1 for r in dropped.requests if r.origin == p5 and 7 * 24 <= r.hour < first)  # a Thursday
    n_after = sum(1 for r in kept if r.hour < 9 * 24)  # the Friday after
    assert n_after / n_before == pytest.approx(0.4, abs=0.1)
    # the logs hold exactly the kept requests: each day's request ids count its requests
    for day in range(8, demo_plan.days):
        ids = {ln["request_id"] for ln in dropped.gateway[day]} | {r["request_id"] for r in dropped.litellm[day]}
        assert len(ids) == sum(1 for r in dropped.requests if r.hour // 24 == day)


def test_the_labels_of_the_demo_fleet(demo_plan):
    cfg = parse_config({}, Path("gpuledger.yaml"))
    model = "llama-3.1-70b-instruct"
    # the model's unit economics by hand: 100.00 a day; 1M tokens a day, 0.4M from day 8
    unit_economics = [{"day": (DEFAULT_START + timedelta(days=d)).isoformat(), "team": "search", "model": model,
                       "fully_loaded_cost": 100.0, "input_tokens": 800_000 * (0.4 if d >= 8 else 1),
                       "output_tokens": 200_000 * (0.4 if d >= 8 else 1)} for d in range(14)]
    labels = injected_anomalies(demo_plan, cur.bill_lines(demo_plan), {"unit_economics": unit_economics}, cfg)
    spike = {"kind": "spike", "metric": "effective_cost", "start_day": "2026-11-09", "end_day": "2026-11-09",
             "excess": 900.0}
    assert labels[:2] == [{"scope_type": "team", "scope": "search"} | spike,
                          {"scope_type": "provider_service", "scope": "AWS / AWSDataTransfer"} | spike]
    # day 13 is the first with two weeks behind it: 700 over 3.4M tokens against 700 over 7M
    assert labels[2] == {"kind": "cost_per_token_regression", "scope_type": "model", "scope": model,
                         "metric": "cost_per_1m_tokens_fully_loaded", "start_day": "2026-11-11",
                         "end_day": "2026-11-11", "excess": pytest.approx(700 - 100 * 3.4)}
    p4d = next(i for i in demo_plan.instances if i.host == "p4d-1")
    # its 8 GPUs idle for the weekend: one finding for the instance, as the detector groups them
    assert labels[3:] == [{"kind": "idle_gpu", "scope_type": "idle_gpu", "scope": p4d.resource_id,
                           "metric": "idle_cost", "start_day": "2026-10-31", "end_day": "2026-11-01",
                           "excess": pytest.approx(8 * 48 * P4D_GPU_HOUR)}]
    assert round(48 * P4D_GPU_HOUR, 2) == 131.76  # 48 h x 21.96 / 8 GPUs


def test_short_fleets_get_no_planted_anomaly_and_keep_their_bytes(truth):
    assert inject.egress_spike(build_plan(31, 11, 42, DEFAULT_START)) is None
    assert inject.egress_spike(build_plan(31, 12, 42, DEFAULT_START)) is not None
    assert inject.traffic_drop(build_plan(31, 13, 42, DEFAULT_START)) is None
    assert inject.traffic_drop(build_plan(31, 14, 42, DEFAULT_START)) is not None
    assert inject.egress_spike(build_plan(8, 14, 42, DEFAULT_START)) is None  # no g5: nothing to spike
    plan = build_plan(gpus=31, days=2, seed=3, start=SMALL["start"])
    lines, traffic = cur.bill_lines(plan), simulate(plan)
    with pytest.MonkeyPatch.context() as mp:
        without_injections(mp)
        assert [ln.row for ln in cur.bill_lines(plan)] == [ln.row for ln in lines]
        assert simulate(plan) == traffic
    # the small fleet is a weekend: only the p4d's idle GPUs, all 48 hours of it
    (idle,) = truth["injected_anomalies"]
    assert (idle["kind"], idle["start_day"], idle["end_day"]) == ("idle_gpu", "2026-11-28", "2026-11-29")
    assert idle["excess"] == pytest.approx(8 * 48 * P4D_GPU_HOUR)


def test_nvml_files_built_a_column_at_a_time_are_the_lines_written_one_by_one(tmp_path):
    """The fast writer (a day of a host at a time, Arrow string kernels) against the plain one."""
    plan = build_plan(gpus=31, days=2, seed=5, start=SMALL["start"])
    load = serving.deployment_load(plan, simulate(plan).requests)
    for inst in (i for i in plan.instances if i.outage_hours or i.itype.gpu_count > 4):
        series = [telemetry.gpu_series(plan, inst, g, load) for g in range(inst.itype.gpu_count)]
        files = telemetry.write_host(plan, inst, series, tmp_path, "nvml")
        mem_rng = rng_for(plan.seed, f"memory/{inst.resource_id}")
        hours = [h for h in range(plan.hours) if h not in inst.outage_hours]
        assert len(files) == len(hours)
        for hour, path in zip(hours, files, strict=True):
            expected = telemetry._nvml(plan, inst, telemetry._samples(plan, inst, series, hour, mem_rng))
            assert gzip.decompress(path.read_bytes()).decode() == expected, path.name


def test_the_truth_reads_a_gpus_energy_summed_by_hour_as_it_reads_its_samples():
    plan = build_plan(gpus=31, days=2, seed=5, start=SMALL["start"])
    inst = next(i for i in plan.instances if i.outage_hours)
    series = telemetry.gpu_series(plan, inst, 2, {})
    summed = telemetry.gpu_energy(series, inst.outage_hours)
    delta = telemetry.energy_deltas(series.energy_mj, inst.outage_hours)
    assert summed.hourly_kwh.tolist() == delta.reshape(plan.hours, -1).sum(axis=1).tolist()
    assert set(summed.hour.tolist()) == set(range(plan.hours)) - inst.outage_hours
    for h, wi, frac, kwh in zip(summed.hour, summed.holder, summed.frac, summed.kwh, strict=True):
        window = slice(h * SAMPLES_PER_HOUR, (h + 1) * SAMPLES_PER_HOUR)
        mask = series.holder[window] == wi
        assert (frac, kwh) == (mask.sum() / SAMPLES_PER_HOUR, float(delta[window][mask].sum()))


def test_request_logs_keep_the_requests_as_they_were_appended():
    plan = build_plan(gpus=31, days=2, seed=5, start=SMALL["start"])
    requests = list(simulate(plan).requests)
    assert list(serving.RequestLog(requests)) == requests
    assert any(r.routed is not None for r in requests) and any(r.cached_tokens is None for r in requests)


def test_spooled_serving_logs_are_the_bytes_of_the_in_memory_ones(tmp_path):
    plan = build_plan(gpus=31, days=2, seed=5, start=SMALL["start"])
    kept, spooled = simulate(plan), simulate(plan, tmp_path / "spool")
    assert spooled.requests == kept.requests and spooled.has_litellm
    for write, a, b in ((serving.write_gateway_logs, kept.gateway, spooled.gateway_spool),
                        (serving.write_litellm_logs, kept.litellm, spooled.litellm_spool)):
        mine, theirs = write(plan, a, tmp_path / "kept"), write(plan, b, tmp_path / "spooled")
        assert [p.read_bytes() for p in mine] == [p.read_bytes() for p in theirs]
    assert not (tmp_path / "spool" / "gateway").exists()
