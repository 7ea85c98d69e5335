"""`gpuledger generate`: a demo fleet's landing zone in the real formats, its config and its ground truth."""

from __future__ import annotations

import json
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import yaml

from ingest.config import TELEMETRY_TOOLS, parse_config
from ingest.demo_fleet import azure, cur, gcp
from ingest.demo_fleet.plan import CALLERS, DC1, EXPORT_NAME, ON_PREM, SAMPLES_PER_HOUR, Instance, Plan, build_plan
from ingest.demo_fleet.serving import deployment_load, simulate, write_gateway_logs, write_litellm_logs
from ingest.demo_fleet.telemetry import gpu_energy, gpu_series, write_host
from ingest.demo_fleet.truth import ground_truth, injected_anomalies, with_budgets
from ingest.landing import LandingFile
from ingest.load import file_day
from ingest.nvml import WORKLOAD_ENV_VAR

log = logging.getLogger(__name__)

DEFAULT_START = date(2026, 10, 29)  # a fixed start keeps the output byte-identical for a seed
BILLING_DIR, SERVING_DIR, LITELLM_DIR = "billing/aws", "serving/gateway", "serving/litellm"
# kg CO2e per kWh of each demo region's grid (the bills' region ids)
GRID_INTENSITY = {"us-east-1": 0.38, "us-central1": 0.42, "eastus": 0.35}
GCP_DIR, AZURE_DIR = "billing/gcp", "billing/azure-focus"


@dataclass(frozen=True)
class GeneratedFleet:
    out: Path
    plan: Plan
    files: int
    seconds: float

    @property
    def config_path(self) -> Path:
        return self.out / "gpuledger.yaml"


def _match(plan: Plan, wi: int, telemetry: str) -> dict:
    """How the config recognises a workload in each tool's telemetry: the collector sees the
    process's environment, nvidia-smi only the GPU it runs on, dcgm-exporter the Kubernetes pod."""
    w = plan.workloads[wi]
    if telemetry == "dcgm":
        return {"namespace": "ml", "pod": f"{w.name}-*"}
    if telemetry == "nvidia-smi":
        inst = next(i for i in plan.instances if i.host == w.host_pattern)
        return {"host": w.host_pattern, "gpu_index": [g for g, h in enumerate(inst.holders) if (h == wi).any()]}
    if w.spec.kind == "inference":
        return {"env": {WORKLOAD_ENV_VAR: w.name}}
    return {"host": w.host_pattern, "process_name": w.spec.process_name}


def _teams(plan: Plan) -> dict[str, dict[str, list[str]]]:
    """How the config recognises each caller: key alias or hash, user, or LiteLLM team id."""
    teams: dict[str, dict[str, list[str]]] = {}
    for c in CALLERS.values():
        if c.team == "unattributed" or c.metadata_team:
            continue
        entry = teams.setdefault(c.team, {})
        if c.litellm_team_id:
            entry.setdefault("litellm_team_ids", []).append(c.litellm_team_id)
        elif c.user:
            entry.setdefault("users", []).append(c.user)
        else:
            entry.setdefault("api_keys", []).append(c.key_alias or c.key_hash)
    return {t: teams[t] for t in sorted(teams)}


def _on_prem(plan: Plan) -> dict:
    """The asset register of the fleet's owned servers (empty where it has none)."""
    servers = [i for i in plan.instances if i.itype.provider == ON_PREM]
    if not servers:
        return {}
    site = {"pue": DC1.pue, "electricity_price_per_kwh": DC1.electricity_price_per_kwh,
            "grid_kg_co2e_per_kwh": DC1.grid_kg_co2e_per_kwh}
    assets = [
        {"host": i.host, "site": DC1.name, "gpu_model": DC1.gpu_model, "gpu_count": i.itype.gpu_count,
         "purchase_price": DC1.purchase_price,
         "purchase_date": plan.start.date() - timedelta(days=DC1.purchase_days_before_start),
         "depreciation_months": DC1.depreciation_months, "rated_power_w_per_gpu": DC1.rated_power_w_per_gpu,
         "ops_cost_per_gpu_month": DC1.ops_cost_per_gpu_month, "team": i.team_tag}
        for i in servers
    ]
    return {"on_prem": {"sites": {DC1.name: site}, "assets": assets}}


def fleet_config(plan: Plan, telemetry: str = "nvml", litellm: bool = True) -> dict:
    """The gpuledger.yaml that matches the fleet: where its files are and who its callers are.
    `litellm`: whether the fleet has LiteLLM spend logs to read."""
    workloads = [
        {"name": w.name, "kind": w.spec.kind, "owner_team": w.spec.owner_team,
         **({"models": list(w.models)} if w.models else {}),
         **({"api_bases": [w.api_base]} if w.api_base else {}), "match": _match(plan, wi, telemetry)}
        for wi, w in enumerate(plan.workloads)
    ]
    return {
        "warehouse": "gpuledger.duckdb",
        "sources": {
            "aws_cur": [{"location": BILLING_DIR, "export_name": EXPORT_NAME}],
            "gcp_billing": [{"location": GCP_DIR}],
            "focus": [{"location": AZURE_DIR}],
            telemetry.replace("-", "_"): [{"location": f"telemetry/{telemetry}"}],
            "gateway": [{"location": SERVING_DIR}],
            **({"litellm": [{"location": LITELLM_DIR}]} if litellm else {}),
        },
        "teams": _teams(plan),
        # nvidia-smi and dcgm-exporter do not know the billing resource; the collector writes it itself
        **({"hosts": {i.host: i.resource_id for i in plan.instances}} if telemetry != "nvml" else {}),
        "workloads": workloads,
        "energy": {"grid_kg_co2e_per_kwh_by_region": GRID_INTENSITY},
        **_on_prem(plan),
    }


def _two_digits(amount: float, up: bool) -> int:
    """The amount rounded down (or up) to two significant digits: budgets look like budgets."""
    unit = 10 ** max(0, int(math.log10(amount)) - 1) if amount >= 1 else 1
    return (math.ceil(amount / unit) if up else math.floor(amount / unit)) * unit


def demo_budgets(plan: Plan, truth: dict, teams: list[str]) -> dict[str, int]:
    """Monthly budgets that put the team with the largest month-end forecast on the window's last
    day over budget (80 % of it) and the others under (125 %), whatever the fleet's size."""
    last_day = (plan.start + timedelta(days=plan.days - 1)).date().isoformat()
    forecast = {r["team"]: r["month_end_forecast"] for r in truth["team_spend_daily"]
                if r["day"] == last_day and r["team"] in teams}
    ranked = sorted(forecast, key=lambda t: (-forecast[t], t))
    return {t: _two_digits(forecast[t] * 0.8, up=False) if i == 0 else _two_digits(forecast[t] * 1.25, up=True)
            for i, t in enumerate(ranked)}


class _Progress:
    """A telemetry progress line every few seconds (and at the end), with the rate so far."""

    EVERY_S = 5.0

    def __init__(self, plan: Plan) -> None:
        self.hosts, self.gpus = len(plan.instances), sum(i.itype.gpu_count for i in plan.instances)
        self.samples_per_gpu = plan.hours * SAMPLES_PER_HOUR
        self.done_hosts = self.done_gpus = 0
        self.began = self.last = time.perf_counter()

    def host_done(self, inst: Instance) -> None:
        self.done_hosts += 1
        self.done_gpus += inst.itype.gpu_count
        now = time.perf_counter()
        if now - self.last < self.EVERY_S and self.done_hosts < self.hosts:
            return
        self.last = now
        samples = self.done_gpus * self.samples_per_gpu
        log.info("telemetry: %d/%d hosts, %d/%d GPUs, %.1f M samples in %.0f s (%.0f k samples/s)",
                 self.done_hosts, self.hosts, self.done_gpus, self.gpus, samples / 1e6, now - self.began,
                 samples / max(now - self.began, 1e-9) / 1e3)


def generate(out: Path, gpus: int = 19, days: int = 7, seed: int = 42, start: date = DEFAULT_START,
             telemetry: str = "nvml") -> GeneratedFleet:
    """`telemetry` picks the tool whose files the GPU hosts write: gpuledger's collector (nvml),
    nvidia-smi or dcgm-exporter. The samples, and so the ground truth, are the same for all three."""
    if telemetry not in TELEMETRY_TOOLS:
        raise ValueError(f"telemetry must be one of {', '.join(TELEMETRY_TOOLS)}, not {telemetry!r}")
    began = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    plan = build_plan(gpus, days, seed, start)
    log.info("serving: simulating requests")
    spool = out / ".gpuledger-spool"  # the serving logs' lines until they are written, sorted, a day at a time
    traffic = simulate(plan, spool)
    config = fleet_config(plan, telemetry, litellm=traffic.has_litellm)
    config_path = out / "gpuledger.yaml"
    cfg = parse_config(config, config_path)  # the defaults the pipeline uses (token weights, PUE, ...)

    log.info("billing: %d instances, %d GPUs, %d days from %s", len(plan.instances), gpus, days, start)
    aws_lines, gcp_lines, azure_lines = cur.bill_lines(plan), gcp.bill_lines(plan), azure.bill_lines(plan)
    files = cur.write_deliveries(plan, aws_lines, out / BILLING_DIR)
    files += gcp.write_extracts(plan, gcp_lines, out / GCP_DIR)
    files += azure.write_exports(azure_lines, out / AZURE_DIR)
    lines = aws_lines + gcp_lines + azure_lines

    log.info("serving: writing %d requests' logs", len(traffic.requests))
    files += write_gateway_logs(plan, traffic.gateway_spool, out / SERVING_DIR)
    files += write_litellm_logs(plan, traffic.litellm_spool, out / LITELLM_DIR)
    if spool.exists():
        spool.rmdir()

    load = deployment_load(plan, traffic.requests)
    series = {}  # what the truth needs of each GPU's samples, summed as each host is written
    progress = _Progress(plan)
    with ThreadPoolExecutor(2) as pool:  # gzip on threads (zlib lets go of the GIL)
        for inst in plan.instances:
            host_series = [gpu_series(plan, inst, g, load) for g in range(inst.itype.gpu_count)]
            files += write_host(plan, inst, host_series, out / "telemetry" / telemetry, telemetry, pool)
            series.update({(inst.resource_id, g): gpu_energy(s, inst.outage_hours) for g, s in enumerate(host_series)})
            progress.host_done(inst)

    truth = ground_truth(plan, lines, traffic.requests, series, cfg)
    truth["injected_anomalies"] = injected_anomalies(plan, lines, truth, cfg)
    # budgets are picked from the forecasts, so the config is written last
    budgets = demo_budgets(plan, truth, list(config["teams"]))
    for team, budget in budgets.items():
        config["teams"][team]["monthly_budget"] = budget
    parse_config(config, config_path)
    config_text = "# Generated by `gpuledger generate` for a demo fleet; paths are relative to this file.\n"
    config_path.write_text(config_text + yaml.safe_dump(config, sort_keys=False))
    truth = with_budgets(truth, {t: float(b) for t, b in budgets.items()})
    truth["generator"] = {"gpus": gpus, "days": days, "seed": seed, "start": start.isoformat(), "telemetry": telemetry,
                          "requests": len(traffic.requests), "bill_lines": len(lines)}
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return GeneratedFleet(out, plan, len(files) + 2, time.perf_counter() - began)


def hold_back_day(out: Path, day: date, into: Path) -> list[tuple[Path, Path]]:
    """Move a generated fleet's telemetry and serving files of `day` (by `file_day`, as the daily
    partitions see them) from `out` to the same paths under `into`, so that day can land later.
    Returns (landing path, held path) pairs."""
    held = []
    for path in sorted(p for folder in ("telemetry", "serving") for p in (out / folder).rglob("*") if p.is_file()):
        key = path.relative_to(out).as_posix()
        if file_day(LandingFile(key, 0, "", 0)) == day:
            waiting = into / key
            waiting.parent.mkdir(parents=True, exist_ok=True)
            path.rename(waiting)
            held.append((path, waiting))
    return held
