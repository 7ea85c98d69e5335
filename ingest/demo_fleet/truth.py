"""What the marts must come to for a demo fleet, computed from the plan alone.

This is an independent, plain-Python reading of DESIGN.md's attribution rules (and the decisions
below): it never looks at the pipeline's SQL. The end-to-end tests hold the two against each other.
Money is in USD, rounded to 6 decimals; hours are UTC; `day` is `YYYY-MM-DD`, `month` and
`billing_period` are `YYYY-MM`, timestamps are ISO 8601 with `+00:00`.

Keys of ground_truth.json (one dict per row, sorted by the columns before the first money column):

- `currency`: "USD".
- `billing_periods`: {billing_period, provider, effective_cost, billed_cost, list_cost}: each
  provider's source total per period. On-prem charges count under provider "On-Premises" (their
  billed and list cost equal their effective cost).
- `on_prem_charges`: {billing_period, resource_id, charge, effective_cost}: the On-Premises total
  split by charge: "amortization", "operations", "energy".
- `categories`: {category: effective_cost} over the whole ledger.
- `team_categories`: {team, category, effective_cost}.
- `unit_economics`: {day, team, model, requests, input_tokens, cached_input_tokens, output_tokens,
  inference_cost, fully_loaded_cost, gpu_hours, energy_kwh, co2e_kg}.
- `team_spend_daily`: {day, team, effective_cost, month_to_date_cost, month_end_forecast,
  monthly_budget}: one row per day and team with any ledger row that day (the mart's rows for that
  day and team summed over category and provider). monthly_budget is null for teams without one.
- `training_runs`: {workload, team, start, end, gpu_hours, cost, energy_kwh}.
- `tco_comparison`: {month, workload, gpu_model, gpu_hours, effective_cost, on_demand_cost,
  spot_cost, committed_cost}; a price-based cost is null where the seed has no such price.
- `injected_anomalies` (written by `gpuledger generate`, see demo_fleet.inject): {kind, scope_type,
  scope, metric, start_day, end_day, excess}, in the detector's words (marts.spend_anomalies), for
  what was planted in the fleet; excess is the extra money in USD:
  - `spike` of an egress burst, for its team and for "AWS / <line_item_product_code>": the burst's
    cost (GB x rate);
  - `cost_per_token_regression` of the model whose deployment lost traffic: from the first day its
    7-day fully-loaded cost per 1M tokens (unit_economics, cost and input + output tokens summed over
    teams) exceeds the 7 days before by more than alerts.cost_per_token_week_over_week, to the last
    day in a row that does; excess = (now - before) x the last 7 days' tokens / 1M on start_day;
  - `idle_gpu` of the weekend-idle p4d (scope: its resource id), one per day its GPUs' runs of at
    least alerts.idle_gpu_consecutive_hours wholly idle, monitored hours began; excess = those
    GPU-hours' cost.

The rules, beyond DESIGN.md's:

- On-prem charges, per asset and hour of the window (the plan's hours) from purchase_date 00:00 up
  to the end of in_service_until (inclusive): amortisation = purchase_price / hours from
  purchase_date to purchase_date + depreciation_months (the day clamped to the month's end), zero
  after; operations = ops_cost_per_gpu_month x gpu_count / 730; energy = sum over the GPUs of the
  hour's metered kWh (rated power where the GPU has no sample that hour) x site PUE x price. Each is
  GPU compute of the host, split evenly over its GPUs; idle and unmonitored go to the asset's team.
- A request that no logged api_base routes to a deployment is served by the deployments listing
  its model, each with fraction f = its held GPU-hours / all of theirs that hour (evenly when none
  holds any). A deployment-hour is split over (team, model) by sum of f x weighted tokens (by sum of
  f where every weight is 0); a deployment-hour that got no request is idle_deployed.
- co2e_kg = energy_kwh x PUE x grid intensity: energy.pue and the bill region's intensity in the
  cloud (energy.grid_kg_co2e_per_kwh where the region has none), the site's on-prem.
- month_to_date_cost sums the team's effective cost over the calendar month through the day;
  month_end_forecast = month_to_date_cost / day of month x days in month.
- A training or batch run is a maximal stretch of hours in which the job holds any GPU for any
  part of the hour (as telemetry sees it: a collector outage ends a run); end = last hour + 1 h;
  cost, gpu_hours and energy_kwh are those of its own ledger rows (no shared cost).
- tco_comparison: the GPU-hours a workload held (inference and idle_deployed for a deployment,
  training or batch for a job) and their effective cost, priced at the cheapest
  price_per_gpu_hour for the GPU model in the seed cloud_gpu_prices per pricing category
  (Standard = on demand, Dynamic = spot, Committed = committed). The GPU model is the seed
  gpu_instance_types' for a cloud instance type, the asset register's on-prem.
"""

from __future__ import annotations

import calendar
import csv
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from ingest.config import UNALLOCATED, Config, OnPremAsset
from ingest.demo_fleet.bill import BillLine
from ingest.demo_fleet.cur import TRANSFER_RATE
from ingest.demo_fleet.inject import egress_spike, traffic_drop, weekend_idle_instances
from ingest.demo_fleet.plan import IDLE, ON_PREM, PROVIDER_REGIONS, SAMPLES_PER_HOUR, Instance, Plan
from ingest.demo_fleet.serving import Request
from ingest.demo_fleet.telemetry import GpuEnergy, gpu_energy

GPU_CATEGORIES = ("inference", "idle_deployed", "training", "batch", "idle", "unmonitored")
HELD_CATEGORIES = ("inference", "idle_deployed", "training", "batch")  # a workload holds the GPU
HOUR = timedelta(hours=1)
HOURS_PER_MONTH = 730  # the asset register's monthly operations cost per hour
SEEDS = Path(__file__).resolve().parents[2] / "dbt_project" / "seeds"
PRICE_COLUMNS = {"Standard": "on_demand_cost", "Dynamic": "spot_cost", "Committed": "committed_cost"}

# (hour_start, team, model, workload, category) -> [effective, billed, list, gpu_hours, energy_kwh]
Key = tuple[datetime, str, str | None, str | None, str]
Pools = dict[tuple[int, datetime], np.ndarray]  # (deployment, hour) -> its held GPU time's 5 figures


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


def _energy(gpus: dict, inst: Instance, gpu: int) -> GpuEnergy:
    """A GPU's energy by hour and holder (its samples summed, where the caller gave the samples)."""
    e = gpus[(inst.resource_id, gpu)]
    return e if isinstance(e, GpuEnergy) else gpu_energy(e, inst.outage_hours)


# --- on-prem charges -------------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def amortisation_per_hour(asset: OnPremAsset) -> float:
    """Straight-line: the purchase price over the hours of the depreciation period."""
    begin = _midnight(asset.purchase_date)
    end = _midnight(add_months(asset.purchase_date, asset.depreciation_months))
    return float(asset.purchase_price) / ((end - begin) / HOUR)


def _hourly_kwh(plan: Plan, inst: Instance, series: dict, asset: OnPremAsset) -> np.ndarray:
    """Each hour's kWh of the asset's GPUs: metered where a GPU has samples, rated power where not."""
    total = np.zeros(plan.hours)
    for gpu in range(asset.gpu_count):
        kwh = _energy(series, inst, gpu).hourly_kwh.copy()
        unseen = list(inst.outage_hours & set(range(plan.hours)))  # the collector was down: no sample
        kwh[unseen] = asset.rated_power_w_per_gpu / 1000
        total += kwh
    return total


def _on_prem_line(asset: OnPremAsset, inst: Instance, t: datetime, kind: str, cost: float) -> BillLine:
    return BillLine(ON_PREM, asset.site, f"{t:%Y-%m}", t, t + HOUR, kind, cost, cost, cost, asset.resource,
                    asset.team, inst)


def on_prem_lines(plan: Plan, series: dict, config: Config) -> list[BillLine]:
    """The hourly charges the pipeline makes from the asset register (rule a)."""
    by_resource = {i.resource_id: i for i in plan.instances}
    lines: list[BillLine] = []
    for asset in config.on_prem.assets:
        inst = by_resource[asset.resource]
        site = config.on_prem.sites[asset.site]
        amortised_until = _midnight(add_months(asset.purchase_date, asset.depreciation_months))
        in_service = (_midnight(asset.purchase_date),
                      _midnight(asset.in_service_until) + timedelta(days=1) if asset.in_service_until else None)
        kwh = _hourly_kwh(plan, inst, series, asset)
        ops = float(asset.ops_cost_per_gpu_month) * asset.gpu_count / HOURS_PER_MONTH
        for hour in range(plan.hours):
            t = plan.hour_start(hour)
            if t < in_service[0] or (in_service[1] is not None and t >= in_service[1]):
                continue
            amortisation = amortisation_per_hour(asset) if t < amortised_until else 0.0
            energy = kwh[hour] * site.pue * float(site.electricity_price_per_kwh)
            lines += [_on_prem_line(asset, inst, t, "amortization", amortisation),
                      _on_prem_line(asset, inst, t, "operations", ops),
                      _on_prem_line(asset, inst, t, "energy", float(energy))]
    return lines


# --- GPU-hours -------------------------------------------------------------------------------------


def _gpu_hour_costs(lines: list[BillLine]) -> dict[tuple[str, datetime], np.ndarray]:
    """(resource id, hour) -> effective, billed and list cost of one of the instance's GPUs."""
    per_gpu: dict[tuple[str, datetime], np.ndarray] = defaultdict(lambda: np.zeros(3))
    for ln in lines:
        if ln.instance is not None:
            hours = _spread(ln)
            for t in hours:
                per_gpu[(ln.instance.resource_id, t)] += _costs(ln) / len(hours) / ln.instance.itype.gpu_count
    return per_gpu


def _idle_teams(plan: Plan, config: Config) -> dict[str, str]:
    """Rule 7: whom a GPU's idle and unmonitored time is charged to, by resource id."""
    teams = {i.resource_id: i.team_tag or UNALLOCATED for i in plan.instances if i.itype.provider != ON_PREM}
    teams |= {a.resource: a.team or UNALLOCATED for a in config.on_prem.assets}
    return teams


def _allocate_gpus(plan: Plan, per_gpu: dict, series: dict, idle_teams: dict[str, str], ledger: _Ledger) -> Pools:
    """Rule 3 and 7: each GPU-hour to its holders, idle and unmonitored; deployments pooled."""
    pools: Pools = defaultdict(lambda: np.zeros(5))
    for inst in plan.instances:
        team = idle_teams.get(inst.resource_id, UNALLOCATED)
        for gpu in range(inst.itype.gpu_count):
            ge = _energy(series, inst, gpu)
            entries = zip(ge.hour.tolist(), ge.holder.tolist(), ge.frac.tolist(), ge.kwh.tolist(), strict=True)
            entry = next(entries, None)
            for hour in range(plan.hours):
                t = plan.hour_start(hour)
                cost = per_gpu[(inst.resource_id, t)]
                if hour in inst.outage_hours:
                    ledger.add((t, team, None, None, "unmonitored"), cost, 1.0)
                    continue
                while entry is not None and entry[0] == hour:
                    _, wi, frac, kwh = entry
                    entry = next(entries, None)
                    if wi == IDLE:
                        ledger.add((t, team, None, None, "idle"), cost * frac, frac, kwh)
                        continue
                    w = plan.workloads[wi]
                    if w.spec.kind == "inference":
                        pools[(wi, t)] += np.array([*(cost * frac), frac, kwh])
                    else:
                        ledger.add((t, w.spec.owner_team, None, w.name, w.spec.kind), cost * frac, frac, kwh)
    return pools


# --- requests to deployments -----------------------------------------------------------------------


def _model_pools(plan: Plan) -> dict[str, list[int]]:
    """model -> the inference workloads that list it."""
    pools: dict[str, list[int]] = defaultdict(list)
    for wi, w in enumerate(plan.workloads):
        if w.spec.kind == "inference":
            for m in w.models:
                pools[m].append(wi)
    return pools


def _shares(r: Request, t: datetime, members: list[int], pools: Pools) -> list[tuple[int, float]]:
    """Rule b: the deployments a request counts in, and with what fraction."""
    if r.routed is not None:
        return [(r.routed, 1.0)]
    held = [float(pools[(wi, t)][3]) if (wi, t) in pools else 0.0 for wi in members]
    total = sum(held)
    if total <= 0:  # no deployment of the model held a GPU: evenly (their cost is zero anyway)
        return [(wi, 1 / len(members)) for wi in members]
    return [(wi, h / total) for wi, h in zip(members, held, strict=True) if h > 0]


def _split_deployments(plan: Plan, pools: Pools, requests: list[Request], config: Config, ledger: _Ledger) -> None:
    """Rule 4: a deployment-hour over its (team, model) pairs by weighted tokens, else idle_deployed."""
    weights = config.token_weights
    members = _model_pools(plan)
    served: dict[tuple[int, datetime], dict[tuple[str, str], list[float]]] = defaultdict(
        lambda: defaultdict(lambda: [0.0, 0.0])
    )
    for r in requests:
        t = plan.hour_start(r.hour)
        cached = r.cached_tokens or 0
        weight = (r.prompt_tokens - cached) * weights.input + cached * weights.cached_input
        weight += r.completion_tokens * weights.output
        for wi, f in _shares(r, t, members.get(r.model, []), pools):
            acc = served[(wi, t)][(r.team, r.model)]
            acc[0] += weight * f
            acc[1] += f
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
    shared: dict[datetime, np.ndarray] = defaultdict(lambda: np.zeros(3))  # each hour's untagged charges
    for ln in lines:
        if ln.instance is not None:
            continue
        hours = _spread(ln)
        piece = _costs(ln) / len(hours)
        for t in hours:
            if ln.team_tag:
                ledger.add((t, ln.team_tag, None, None, "direct"), piece)
            else:
                shared[t] += piece
    # an hour's shared charges are split over the day's GPU cost together: split one by one, the work
    # grew with the fleet squared (charges x workloads), most of a 10,000-GPU fleet's generation
    for t, cost in shared.items():
        weights = gpu_cost_by_day.get(t.date(), {}) if proportional else {}
        total = sum(weights.values())
        if total <= 0:
            ledger.add((t, UNALLOCATED, None, None, "shared"), cost)
            continue
        for (team, model, workload, _category), w in weights.items():
            ledger.add((t, team, model, workload, "shared"), cost * (w / total))


# --- marts -----------------------------------------------------------------------------------------


def _co2e_per_kwh(plan: Plan, config: Config) -> dict[str, float]:
    """workload -> kg CO2e per kWh its GPUs draw: PUE x the grid's intensity where they stand."""
    sites = {a.resource: config.on_prem.sites[a.site] for a in config.on_prem.assets}
    factors = {}
    for wi, w in enumerate(plan.workloads):
        inst = plan.instance_of(wi)
        if inst.resource_id in sites:
            site = sites[inst.resource_id]
            factors[w.name] = site.pue * site.grid_kg_co2e_per_kwh
            continue
        region = PROVIDER_REGIONS.get(inst.itype.provider)
        grid = config.energy.grid_kg_co2e_per_kwh_by_region.get(region, config.energy.grid_kg_co2e_per_kwh)
        factors[w.name] = config.energy.pue * grid
    return factors


def _unit_economics(ledger: _Ledger, requests: list[Request], plan: Plan, co2e: dict[str, float]) -> list[dict]:
    rows: dict[tuple[str, str, str], dict] = defaultdict(lambda: defaultdict(float))
    for (t, team, model, workload, category), v in ledger.cost.items():
        if model is None:
            continue
        row = rows[(t.date().isoformat(), team, model)]
        if category == "inference":
            row["inference_cost"] += v[0]
        if category in ("inference", "idle_deployed"):
            row["gpu_hours"] += v[3]
            row["energy_kwh"] += v[4]
            row["co2e_kg"] += v[4] * co2e[workload]
        row["fully_loaded_cost"] += v[0]
    for r in requests:
        row = rows[(plan.hour_start(r.hour).date().isoformat(), r.team, r.model)]
        row["requests"] += 1
        row["input_tokens"] += r.prompt_tokens
        row["cached_input_tokens"] += r.cached_tokens or 0
        row["output_tokens"] += r.completion_tokens
    fields = ("requests", "input_tokens", "cached_input_tokens", "output_tokens", "inference_cost",
              "fully_loaded_cost", "gpu_hours", "energy_kwh", "co2e_kg")
    return [
        {"day": day, "team": team, "model": model, **{f: round(row[f], 6) for f in fields}}
        for (day, team, model), row in sorted(rows.items())
    ]


def _team_spend_daily(ledger: _Ledger, config: Config) -> list[dict]:
    """Rule c: each team's day, its month to date and the month-end forecast beside its budget."""
    daily: dict[tuple[str, date], float] = defaultdict(float)
    for (t, team, _m, _w, _c), v in ledger.cost.items():
        daily[(team, t.date())] += v[0]
    rows = []
    month_to_date: dict[tuple[str, int, int], float] = defaultdict(float)
    for team, day in sorted(daily):  # by team, then day: the running sum restarts with each month
        month_to_date[(team, day.year, day.month)] += daily[(team, day)]
        mtd = month_to_date[(team, day.year, day.month)]
        budget = config.teams[team].monthly_budget if team in config.teams else None
        rows.append({
            "day": day.isoformat(), "team": team, "effective_cost": round(daily[(team, day)], 6),
            "month_to_date_cost": round(mtd, 6),
            "month_end_forecast": round(mtd / day.day * calendar.monthrange(day.year, day.month)[1], 6),
            "monthly_budget": None if budget is None else float(budget),
        })
    return sorted(rows, key=lambda r: (r["day"], r["team"]))


def _training_runs(plan: Plan, ledger: _Ledger) -> list[dict]:
    """Rule d: maximal stretches of hours in which a job holds any GPU."""
    jobs = {w.name: w for w in plan.workloads if w.spec.kind in ("training", "batch")}
    held: dict[str, dict[datetime, np.ndarray]] = defaultdict(dict)
    for (t, _team, _m, workload, category), v in ledger.cost.items():
        if workload in jobs and category == jobs[workload].spec.kind and v[3] > 0:
            held[workload][t] = v
    rows = []
    for name, hours in held.items():
        run: list[datetime] = []
        for t in [*sorted(hours), None]:
            if run and (t is None or t - run[-1] != HOUR):
                total = sum(hours[h] for h in run)
                rows.append({"workload": name, "team": jobs[name].spec.owner_team, "start": run[0].isoformat(),
                             "end": (run[-1] + HOUR).isoformat(), "gpu_hours": round(total[3], 6),
                             "cost": round(total[0], 6), "energy_kwh": round(total[4], 6)})
                run = []
            if t is not None:
                run.append(t)
    return sorted(rows, key=lambda r: (r["workload"], r["start"]))


def _read_seed(seeds: Path, name: str) -> list[dict[str, str]]:
    with (seeds / name).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _gpu_models(plan: Plan, config: Config, seeds: Path) -> dict[str, str | None]:
    """resource id -> GPU model in the seeds' words: by provider and instance type, on-prem by the register."""
    types = {(r["provider"], r["instance_type"]): r["gpu_model"] for r in _read_seed(seeds, "gpu_instance_types.csv")}
    models = {i.resource_id: types.get((i.itype.provider, i.itype.name)) for i in plan.instances}
    return models | {a.resource: a.gpu_model for a in config.on_prem.assets}


def _cheapest_prices(seeds: Path) -> dict[tuple[str, str], float]:
    """(gpu_model, pricing_category) -> the lowest price_per_gpu_hour the seed lists."""
    cheapest: dict[tuple[str, str], float] = {}
    for r in _read_seed(seeds, "cloud_gpu_prices.csv"):
        if r["price_per_gpu_hour"] and r["pricing_category"] in PRICE_COLUMNS:
            key = (r["gpu_model"], r["pricing_category"])
            cheapest[key] = min(cheapest.get(key, float("inf")), float(r["price_per_gpu_hour"]))
    return cheapest


def _tco_comparison(plan: Plan, ledger: _Ledger, config: Config, seeds: Path) -> list[dict]:
    """Rule e: what each workload's held GPU-hours cost, and would cost at cloud prices."""
    gpu_models = _gpu_models(plan, config, seeds)
    prices = _cheapest_prices(seeds)
    model_of = {w.name: gpu_models[plan.instance_of(wi).resource_id] for wi, w in enumerate(plan.workloads)}
    held: dict[tuple[str, str, str | None], np.ndarray] = defaultdict(lambda: np.zeros(2))
    for (t, _team, _m, workload, category), v in ledger.cost.items():
        if workload is not None and category in HELD_CATEGORIES:
            held[(f"{t:%Y-%m}", workload, model_of[workload])] += np.array([v[3], v[0]])
    rows = []
    for (month, workload, gpu_model), (gpu_hours, cost) in sorted(held.items(), key=lambda kv: kv[0][:2]):
        row = {"month": month, "workload": workload, "gpu_model": gpu_model, "gpu_hours": round(gpu_hours, 6),
               "effective_cost": round(cost, 6)}
        for category, column in PRICE_COLUMNS.items():
            price = prices.get((gpu_model, category)) if gpu_model else None
            row[column] = None if price is None else round(gpu_hours * price, 6)
        rows.append(row)
    return rows


def _billing_periods(lines: list[BillLine]) -> list[dict]:
    periods: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros(3))
    for ln in lines:
        periods[(ln.provider, ln.period)] += _costs(ln)
    return [
        {"billing_period": p, "provider": provider, "effective_cost": round(v[0], 6),
         "billed_cost": round(v[1], 6), "list_cost": round(v[2], 6)}
        for (provider, p), v in sorted(periods.items())
    ]


def _on_prem_charges(lines: list[BillLine]) -> list[dict]:
    charges: dict[tuple[str, str, str], float] = defaultdict(float)
    for ln in lines:
        charges[(ln.period, ln.resource_id or "", ln.kind)] += ln.effective
    return [{"billing_period": p, "resource_id": r, "charge": k, "effective_cost": round(v, 6)}
            for (p, r, k), v in sorted(charges.items())]


def ground_truth(plan: Plan, lines: list[BillLine], requests: list[Request], series: dict, config: Config,
                 seeds: Path = SEEDS) -> dict:
    """`lines` are the providers' bills; the on-prem charges are made here from the config's register.
    `series`: (resource id, GPU index) -> the GPU's GpuEnergy (or its GpuSeries, summed here)."""
    owned = on_prem_lines(plan, series, config)
    lines = lines + owned
    ledger = _Ledger()
    pools = _allocate_gpus(plan, _gpu_hour_costs(lines), series, _idle_teams(plan, config), ledger)
    _split_deployments(plan, pools, requests, config, ledger)
    _allocate_non_gpu(lines, ledger, config.shared_costs.policy == "proportional")

    categories: dict[str, float] = defaultdict(float)
    team_categories: dict[tuple[str, str], float] = defaultdict(float)
    for (_t, team, _m, _w, category), v in ledger.cost.items():
        categories[category] += v[0]
        team_categories[(team, category)] += v[0]
    return {
        "currency": "USD",
        "billing_periods": _billing_periods(lines),
        "on_prem_charges": _on_prem_charges(owned),
        "categories": {c: round(v, 6) for c, v in sorted(categories.items())},
        "team_categories": [
            {"team": t, "category": c, "effective_cost": round(v, 6)} for (t, c), v in sorted(team_categories.items())
        ],
        "unit_economics": _unit_economics(ledger, requests, plan, _co2e_per_kwh(plan, config)),
        "team_spend_daily": _team_spend_daily(ledger, config),
        "training_runs": _training_runs(plan, ledger),
        "tco_comparison": _tco_comparison(plan, ledger, config, seeds),
    }


def with_budgets(truth: dict, budgets: dict[str, float]) -> dict:
    """The truth of a config whose teams got these monthly budgets (they change nothing else)."""
    for row in truth["team_spend_daily"]:
        row["monthly_budget"] = budgets.get(row["team"], row["monthly_budget"])
    return truth


# --- the anomalies planted in the fleet --------------------------------------------------------------


def _label(kind: str, scope_type: str, scope: str, metric: str, start: date, end: date,
           excess: float | None) -> dict:
    return {"kind": kind, "scope_type": scope_type, "scope": scope, "metric": metric,
            "start_day": start.isoformat(), "end_day": end.isoformat(),
            "excess": None if excess is None else round(excess, 6)}


def _spike_labels(plan: Plan, lines: list[BillLine]) -> list[dict]:
    spike = egress_spike(plan)
    if spike is None:
        return []
    t = plan.hour_start(spike.hour)
    (line,) = [ln for ln in lines if ln.resource_id == spike.instance.resource_id and ln.start == t
               and ln.row.get("line_item_usage_type", "").endswith("DataTransfer-Out-Bytes")]
    day, excess = t.date(), spike.gb * TRANSFER_RATE
    return [_label("spike", "team", line.team_tag or UNALLOCATED, "effective_cost", day, day, excess),
            _label("spike", "provider_service", f"{line.provider} / {line.row['line_item_product_code']}",
                   "effective_cost", day, day, excess)]


def _regression_labels(plan: Plan, truth: dict, threshold: float) -> list[dict]:
    drop = traffic_drop(plan)
    if drop is None:
        return []
    (model,) = plan.workloads[drop.workload].models
    cost: dict[date, float] = defaultdict(float)
    tokens: dict[date, int] = defaultdict(int)
    for r in truth["unit_economics"]:
        if r["model"] == model:
            day = date.fromisoformat(r["day"])
            cost[day] += r["fully_loaded_cost"]
            tokens[day] += r["input_tokens"] + r["output_tokens"]
    first = plan.start.date()
    rising: list[tuple[date, float]] = []  # (day, the rule's impact) for each day the rule fires
    for d in range(max(13, drop.first_hour // 24), plan.days):  # 13: the first day with two weeks behind it
        day = first + timedelta(days=d)
        weeks = [[day - timedelta(days=i + 7 * w) for i in range(7)] for w in (0, 1)]
        c = [sum(cost.get(x, 0.0) for x in week) for week in weeks]
        n = [sum(tokens.get(x, 0) for x in week) for week in weeks]
        if min(n) <= 0:
            continue
        now, before = c[0] * 1e6 / n[0], c[1] * 1e6 / n[1]
        if now > before * (1 + threshold):
            if rising and rising[-1][0] != day - timedelta(days=1):
                break
            rising.append((day, (now - before) * n[0] / 1e6))
        elif rising:
            break
    if not rising:
        return []
    return [_label("cost_per_token_regression", "model", model, "cost_per_1m_tokens_fully_loaded",
                   rising[0][0], rising[-1][0], rising[0][1])]


def _idle_labels(plan: Plan, lines: list[BillLine], min_hours: int) -> list[dict]:
    """The weekend-idle instances' idle runs, one label per instance and day the runs began (as the
    detector reports them: eight idle GPUs of one instance are one finding)."""
    per_gpu = _gpu_hour_costs(lines)
    labels = []
    for inst in weekend_idle_instances(plan):
        found: dict[date, list[float]] = {}  # start day -> [last day's ordinal, cost]
        for holders in inst.holders:
            idle = (holders.reshape(plan.hours, SAMPLES_PER_HOUR) == IDLE).all(axis=1)
            idle[list(inst.outage_hours)] = False  # unseen: not idle as the detector counts it
            run: list[int] = []
            for hour in [*np.flatnonzero(idle).tolist(), None]:
                if run and (hour is None or hour != run[-1] + 1):
                    if len(run) >= min_hours:
                        acc = found.setdefault(plan.hour_start(run[0]).date(), [0, 0.0])
                        acc[0] = max(acc[0], plan.hour_start(run[-1]).date().toordinal())
                        acc[1] += sum(float(per_gpu[(inst.resource_id, plan.hour_start(h))][0]) for h in run)
                    run = []
                if hour is not None:
                    run.append(hour)
        labels += [_label("idle_gpu", "idle_gpu", inst.resource_id, "idle_cost", start, date.fromordinal(int(end)),
                          cost) for start, (end, cost) in sorted(found.items())]
    return labels


def injected_anomalies(plan: Plan, lines: list[BillLine], truth: dict, config: Config) -> list[dict]:
    """What the detector should find in a generated fleet: the planted spike and traffic drop where the
    window is long enough for them, and the p4d's idle weekend where the window has one."""
    return (_spike_labels(plan, lines)
            + _regression_labels(plan, truth, config.alerts.cost_per_token_week_over_week)
            + _idle_labels(plan, lines, config.alerts.idle_gpu_consecutive_hours))
