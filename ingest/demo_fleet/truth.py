"""What the marts must come to for a demo fleet, computed from the plan alone.

This is an independent, plain-Python reading of DESIGN.md's attribution rules: it never looks
at the pipeline's SQL. The end-to-end test holds the two against each other.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import numpy as np

from ingest.config import UNALLOCATED, TokenWeights
from ingest.demo_fleet.bill import BillLine
from ingest.demo_fleet.plan import IDLE, SAMPLES_PER_HOUR, Plan
from ingest.demo_fleet.serving import Request
from ingest.demo_fleet.telemetry import GpuSeries

GPU_CATEGORIES = ("inference", "idle_deployed", "training", "batch", "idle", "unmonitored")
MJ_PER_KWH = 3.6e9
HOUR = timedelta(hours=1)

# (hour_start, team, model, workload, category) -> [effective, billed, list, gpu_hours, energy_kwh]
Key = tuple[datetime, str, str | None, str | None, str]


class _Ledger:
    def __init__(self) -> None:
        self.cost: dict[Key, np.ndarray] = defaultdict(lambda: np.zeros(5))

    def add(self, key: Key, costs: np.ndarray, gpu_hours: float = 0.0, energy_kwh: float = 0.0) -> None:
        self.cost[key] += np.array([*costs, gpu_hours, energy_kwh])


def _costs(line: BillLine) -> np.ndarray:
    return np.array([line.effective, line.billed, line.list_cost])


def _spread(line: BillLine) -> list[datetime]:
    """Rule 1: the hours a charge covers (an Azure daily charge covers 24)."""
    hours = max(1, int((line.end - line.start) / HOUR))
    return [line.start + i * HOUR for i in range(hours)]


def _gpu_hour_costs(plan: Plan, lines: list[BillLine]) -> dict[tuple[str, datetime], np.ndarray]:
    """(resource id, hour) -> effective, billed and list cost of one of the instance's GPUs."""
    per_gpu: dict[tuple[str, datetime], np.ndarray] = defaultdict(lambda: np.zeros(3))
    for ln in lines:
        if ln.instance is not None:
            hours = _spread(ln)
            for t in hours:
                per_gpu[(ln.instance.resource_id, t)] += _costs(ln) / len(hours) / ln.instance.itype.gpu_count
    return per_gpu


def _energy_deltas(series: GpuSeries, outage_hours: frozenset[int]) -> np.ndarray:
    """Energy (kWh) of each sample's interval; 0 where the interval crosses a telemetry gap."""
    delta = np.diff(series.energy_mj, prepend=series.energy_mj[0]).astype(float) / MJ_PER_KWH
    delta[0] = 0.0
    for h in outage_hours:  # the first sample after a gap spans it: its energy is unknown
        after = (h + 1) * SAMPLES_PER_HOUR
        if after < delta.size:
            delta[after] = 0.0
    return delta


def _allocate_gpus(plan, per_gpu, series, ledger: _Ledger) -> dict[tuple[int, datetime], np.ndarray]:
    """Rule 3 and 7: each GPU-hour to its holders, idle and unmonitored; deployments pooled."""
    pools: dict[tuple[int, datetime], np.ndarray] = defaultdict(lambda: np.zeros(5))
    for inst in plan.instances:
        team = inst.team_tag or UNALLOCATED
        for gpu in range(inst.itype.gpu_count):
            gs = series[(inst.resource_id, gpu)]
            energy = _energy_deltas(gs, inst.outage_hours)
            for hour in range(plan.hours):
                t = plan.hour_start(hour)
                cost = per_gpu[(inst.resource_id, t)]
                if hour in inst.outage_hours:
                    ledger.add((t, team, None, None, "unmonitored"), cost, 1.0)
                    continue
                window = slice(hour * SAMPLES_PER_HOUR, (hour + 1) * SAMPLES_PER_HOUR)
                holders, e = gs.holder[window], energy[window]
                for wi in np.unique(holders):
                    mask = holders == wi
                    frac = mask.sum() / SAMPLES_PER_HOUR
                    kwh = float(e[mask].sum())
                    if wi == IDLE:
                        ledger.add((t, team, None, None, "idle"), cost * frac, frac, kwh)
                        continue
                    w = plan.workloads[wi]
                    if w.spec.kind == "inference":
                        pools[(int(wi), t)] += np.array([*(cost * frac), frac, kwh])
                    else:
                        ledger.add((t, w.spec.owner_team, None, w.name, w.spec.kind), cost * frac, frac, kwh)
    return pools


def _split_deployments(plan, pools, requests: list[Request], weights: TokenWeights, ledger: _Ledger) -> None:
    """Rule 4: a deployment-hour over its (team, model) pairs by weighted tokens, else idle_deployed."""
    served: dict[tuple[int, datetime], dict[tuple[str, str], list[float]]] = defaultdict(
        lambda: defaultdict(lambda: [0.0, 0.0])
    )
    for r in requests:
        cached = r.cached_tokens or 0
        weight = (r.prompt_tokens - cached) * weights.input + cached * weights.cached_input
        weight += r.completion_tokens * weights.output
        acc = served[(r.workload, plan.hour_start(r.hour))][(r.team, r.model)]
        acc[0] += weight
        acc[1] += 1
    for key in set(pools) | set(served):
        wi, t = key
        w = plan.workloads[wi]
        pool = pools.get(key, np.zeros(5))
        pairs = served.get(key)
        if not pairs:
            for model in w.models:
                ledger.add((t, w.spec.owner_team, model, w.name, "idle_deployed"), pool[:3] / len(w.models),
                           pool[3] / len(w.models), pool[4] / len(w.models))
            continue
        total_weight = sum(v[0] for v in pairs.values())
        basis = 0 if total_weight > 0 else 1  # all requests failed: split by request count
        total = sum(v[basis] for v in pairs.values())
        for (team, model), v in pairs.items():
            share = v[basis] / total
            ledger.add((t, team, model, w.name, "inference"), pool[:3] * share, pool[3] * share, pool[4] * share)


def _allocate_non_gpu(lines: list[BillLine], ledger: _Ledger, proportional: bool) -> None:
    """Rules 1 and 6: non-GPU charges spread over their hours; tagged ones direct, the rest shared."""
    gpu_cost_by_day: dict = defaultdict(lambda: defaultdict(float))
    for (t, team, model, workload, category), v in ledger.cost.items():
        if category in GPU_CATEGORIES and team != UNALLOCATED:
            gpu_cost_by_day[t.date()][(team, model, workload, category)] += v[0]
    for ln in lines:
        if ln.instance is not None:
            continue
        hours = _spread(ln)
        piece = _costs(ln) / len(hours)
        for t in hours:
            if ln.team_tag:
                ledger.add((t, ln.team_tag, None, None, "direct"), piece)
                continue
            weights = gpu_cost_by_day.get(t.date(), {}) if proportional else {}
            total = sum(weights.values())
            if total <= 0:
                ledger.add((t, UNALLOCATED, None, None, "shared"), piece)
                continue
            for (team, model, workload, _category), w in weights.items():
                ledger.add((t, team, model, workload, "shared"), piece * (w / total))


def _unit_economics(ledger: _Ledger, requests: list[Request], plan: Plan) -> list[dict]:
    rows: dict[tuple[str, str, str], dict] = defaultdict(lambda: defaultdict(float))
    for (t, team, model, _w, category), v in ledger.cost.items():
        if model is None:
            continue
        row = rows[(t.date().isoformat(), team, model)]
        if category == "inference":
            row["inference_cost"] += v[0]
        if category in ("inference", "idle_deployed"):
            row["gpu_hours"] += v[3]
            row["energy_kwh"] += v[4]
        row["fully_loaded_cost"] += v[0]
    for r in requests:
        row = rows[(plan.hour_start(r.hour).date().isoformat(), r.team, r.model)]
        row["requests"] += 1
        row["input_tokens"] += r.prompt_tokens
        row["cached_input_tokens"] += r.cached_tokens or 0
        row["output_tokens"] += r.completion_tokens
    fields = ("requests", "input_tokens", "cached_input_tokens", "output_tokens", "inference_cost",
              "fully_loaded_cost", "gpu_hours", "energy_kwh")
    return [
        {"day": day, "team": team, "model": model, **{f: round(row[f], 6) for f in fields}}
        for (day, team, model), row in sorted(rows.items())
    ]


def ground_truth(plan: Plan, lines: list[BillLine], requests: list[Request], series: dict,
                 weights: TokenWeights, proportional_shared: bool = True) -> dict:
    ledger = _Ledger()
    pools = _allocate_gpus(plan, _gpu_hour_costs(plan, lines), series, ledger)
    _split_deployments(plan, pools, requests, weights, ledger)
    _allocate_non_gpu(lines, ledger, proportional_shared)

    categories: dict[str, float] = defaultdict(float)
    team_categories: dict[tuple[str, str], float] = defaultdict(float)
    for (_t, team, _m, _w, category), v in ledger.cost.items():
        categories[category] += v[0]
        team_categories[(team, category)] += v[0]
    periods: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros(3))
    for ln in lines:
        periods[(ln.provider, ln.period)] += _costs(ln)
    return {
        "currency": "USD",
        "billing_periods": [
            {"billing_period": p, "provider": provider, "effective_cost": round(v[0], 6),
             "billed_cost": round(v[1], 6), "list_cost": round(v[2], 6)}
            for (provider, p), v in sorted(periods.items())
        ],
        "categories": {c: round(v, 6) for c, v in sorted(categories.items())},
        "team_categories": [
            {"team": t, "category": c, "effective_cost": round(v, 6)} for (t, c), v in sorted(team_categories.items())
        ],
        "unit_economics": _unit_economics(ledger, requests, plan),
    }
