"""The daily spend detector: is day D's value for a scope out of line with its own history?

Plain functions over one series at a time, so the Dagster asset, the tests and bench/anomalies.py
run exactly the same code. The method and its defaults follow ../shared/reference/anomaly-alerting.md
(section 3.2), tuned by bench/anomalies.py:

- expected = the median of the same weekday over the last 4 weeks (of the 2-3 there are with 14-27
  days of history), else the median of the days there are (7-13 days); under 7 days only a "new
  spend" notice;
- scale = 1.4826 x the median absolute deviation of the history's residuals, floored at 5 % of
  expected and at 1 unit of currency (a flat series of reserved GPUs has a MAD of zero);
- z = (actual - expected) / scale; increases only (a drop to zero is an outage or missing data,
  which the data checks catch); z >= 3.5 is stored, and the dollar gates decide who hears of it.

The baseline keeps anomalous days in: the median shrugs off a spike, and a level shift becomes the
new normal within about two weeks instead of alerting forever.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from statistics import median

import pyarrow as pa

from ingest.config import Alerts, Detector

MAD_TO_SIGMA = 1.4826
WEEKS = 4
SCALE_FLOOR_FRACTION = 0.05
SCALE_FLOOR_ABSOLUTE = 1.0
PER_TOKEN = "cost_per_1m_tokens_fully_loaded"
TOP_CONTRIBUTORS = 3
MONEY = pa.decimal128(38, 10)

ANOMALY_SCHEMA = pa.schema([
    ("day", pa.date32()), ("scope_type", pa.string()), ("scope", pa.string()), ("metric", pa.string()),
    ("currency", pa.string()), ("kind", pa.string()), ("actual", MONEY), ("expected", MONEY),
    ("deviation", MONEY), ("impact", MONEY), ("z", pa.float64()), ("severity", pa.string()),
    ("history_days", pa.int32()), ("method", pa.string()), ("top_contributors", pa.string()),
    ("evaluated_through", pa.date32()),
])


@dataclass(frozen=True)
class Baseline:
    expected: float
    scale: float
    method: str  # same_weekday | trailing_median
    history_days: int


@dataclass(frozen=True)
class Verdict:
    day: date
    kind: str  # spike | new_spend
    actual: float
    expected: float
    z: float | None
    method: str
    history_days: int

    @property
    def deviation(self) -> float:
        return self.actual - self.expected


def _mad_scale(residuals: Sequence[float], expected: float, floor: float) -> float:
    centre = median(residuals)
    mad = median(abs(r - centre) for r in residuals)
    return max(MAD_TO_SIGMA * mad, SCALE_FLOOR_FRACTION * abs(expected), floor)


def _same_weekday(values: Mapping[date, float], day: date) -> list[float]:
    """The values of the same weekday in the `WEEKS` weeks before `day` (those that exist)."""
    return [values[d] for k in range(1, WEEKS + 1) if (d := day - timedelta(weeks=k)) in values]


def baseline(values: Mapping[date, float], day: date, history_start: date, min_history: int = 7,
             floor: float = SCALE_FLOOR_ABSOLUTE) -> Baseline | None:
    """What `day` should be, from the complete days before it (a series is dense from
    `history_start`: a missing day is 0); None with fewer than `min_history` days of history.
    `floor` is the least scale, in the series' unit: 1 unit of currency for spend."""
    n = (day - history_start).days
    if n < min_history:
        return None
    window = [day - timedelta(days=i) for i in range(1, min(n, 7 * WEEKS) + 1)]
    if n >= 14:  # two weeks give every weekday a history of its own: weekends stop looking odd
        expected = median(_same_weekday(values, day))
        least = 2 if n >= 7 * WEEKS else 1
        residuals = [values.get(d, 0.0) - median(same) for d in window
                     if len(same := _same_weekday(values, d)) >= least]
        method = "same_weekday"
    else:
        history = [values.get(d, 0.0) for d in window]
        expected = median(history)
        residuals = [v - expected for v in history]
        method = "trailing_median"
    return Baseline(expected, _mad_scale(residuals or [0.0], expected, floor), method, n)


def judge(values: Mapping[date, float], day: date, history_start: date, settings: Detector,
          is_new: bool = True, floor: float = SCALE_FLOOR_ABSOLUTE) -> Verdict | None:
    """The verdict on `day`, or None when it is normal. `values` holds the scope's complete days;
    `is_new` says the scope appeared after the data began (not merely with it)."""
    actual = values.get(day, 0.0)
    base = baseline(values, day, history_start, settings.min_history_days, floor)
    if base is None:
        if is_new and day == history_start and actual >= settings.new_scope_min:
            return Verdict(day, "new_spend", actual, 0.0, None, "new_scope", 0)
        return None
    z = (actual - base.expected) / base.scale
    if z < settings.z:
        return None
    return Verdict(day, "spike", actual, base.expected, z, base.method, base.history_days)


def detect(values: Mapping[date, float], days: Sequence[date], settings: Detector,
           data_start: date | None = None, floors: Mapping[date, float] | None = None) -> list[Verdict]:
    """Verdicts on each of `days` (complete days, ascending) against the days before it. Days
    before `data_start` (when the warehouse's data begins) are not history: only monthly fees
    spread over the month reach back there. `floors` gives a day's least scale where 1 is not
    the right one (a cost per 1M tokens: what makes $1 of that day's tokens)."""
    values = {d: v for d, v in values.items() if data_start is None or d >= data_start}
    if not values:
        return []
    start = min(values)
    is_new = data_start is not None and start > data_start
    dense = {d: values.get(d, 0.0) for d in (start + timedelta(days=i) for i in range((max(days) - start).days + 1))}
    floors = floors or {}
    return [v for d in days
            if d >= start and (v := judge(dense, d, start, settings, is_new, floors.get(d, SCALE_FLOOR_ABSOLUTE)))]


def severity(impact: float, expected: float, z: float | None, settings: Detector,
             monthly_budget: float | None = None) -> str:
    """Who hears of it: `info` is stored only; `digest` goes in the daily message; `immediate` is
    sent at once; `critical` when a month of this excess would eat a tenth of the budget."""
    if monthly_budget and impact * 30 >= 0.1 * monthly_budget:
        return "critical"
    if (z is None or z >= settings.immediate_z) and impact >= max(settings.immediate_min_impact,
                                                                   settings.immediate_min_relative * expected):
        return "immediate"
    if impact >= max(settings.digest_min_impact, settings.digest_min_relative * expected):
        return "digest"
    return "info"


# ---------------------------------------------------------------------------------------------
# From the warehouse's series to marts.spend_anomalies
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SeriesRow:
    """One row of intermediate.int_anomaly_series: a child's cost (and tokens) in a scope on a day."""

    day: date
    scope_type: str
    scope: str
    metric: str
    currency: str
    child: str
    cost: Decimal
    tokens: int | None


@dataclass
class _Series:
    cost: dict[date, float]
    tokens: dict[date, int]
    children: dict[str, tuple[dict[date, float], dict[date, int]]]

    def values(self, metric: str) -> dict[date, float]:
        return _values(self.cost, self.tokens, metric)


def _values(cost: Mapping[date, float], tokens: Mapping[date, int], metric: str) -> dict[date, float]:
    if metric != PER_TOKEN:
        return dict(cost)
    return {d: c * 1e6 / tokens[d] for d, c in cost.items() if tokens.get(d)}


def _money(x: float) -> Decimal:
    return Decimal(f"{x:.10f}")


def _group(rows: Iterable[SeriesRow]) -> dict[tuple[str, str, str, str], _Series]:
    grouped: dict[tuple[str, str, str, str], _Series] = {}
    for r in rows:
        s = grouped.setdefault((r.scope_type, r.scope, r.metric, r.currency), _Series({}, {}, {}))
        cost, tokens = float(r.cost or 0), r.tokens or 0
        s.cost[r.day] = s.cost.get(r.day, 0.0) + cost
        s.tokens[r.day] = s.tokens.get(r.day, 0) + tokens
        child_cost, child_tokens = s.children.setdefault(r.child, ({}, {}))
        child_cost[r.day] = child_cost.get(r.day, 0.0) + cost
        child_tokens[r.day] = child_tokens.get(r.day, 0) + tokens
    return grouped


def top_contributors(series: _Series, metric: str, day: date) -> list[dict]:
    """The children that moved most against their own baseline on `day` (new ones expect 0)."""
    moved = []
    for name, (cost, tokens) in series.children.items():
        values = _values(cost, tokens, metric)
        if not values or day not in values:
            continue
        base = baseline(values, day, min(values)) if min(values) < day else None
        expected = base.expected if base else 0.0
        moved.append({"name": name, "actual": round(values[day], 2), "expected": round(expected, 2),
                      "deviation": round(values[day] - expected, 2)})
    return sorted(moved, key=lambda c: -c["deviation"])[:TOP_CONTRIBUTORS]


def _dollars(metric: str, amount: float, tokens: int) -> float:
    """An amount of the metric in currency: a cost per 1M tokens times the day's tokens."""
    return amount * tokens / 1e6 if metric == PER_TOKEN else amount


def _row(day: date, key: tuple[str, str, str, str], kind: str, actual: float, expected: float, impact: float,
         z: float | None, severity_: str, history: int, method: str, contributors: list[dict],
         evaluated_through: date) -> dict:
    scope_type, scope, metric, currency = key
    return {"day": day, "scope_type": scope_type, "scope": scope, "metric": metric, "currency": currency,
            "kind": kind, "actual": _money(actual), "expected": _money(expected),
            "deviation": _money(actual - expected), "impact": _money(impact), "z": z, "severity": severity_,
            "history_days": history, "method": method, "top_contributors": json.dumps(contributors),
            "evaluated_through": evaluated_through}


def spikes(rows: Iterable[SeriesRow], data_start: date, evaluated_through: date, settings: Detector,
           budgets: Mapping[str, float]) -> list[dict]:
    """Every scope's anomalous days from `data_start` to `evaluated_through` (the statistical detector)."""
    out = []
    for key, series in _group(rows).items():
        scope_type, scope, metric, _ = key
        values = series.values(metric)
        days = sorted(d for d in values if data_start <= d <= evaluated_through)
        if not days:
            continue
        floors = {d: 1e6 / t for d, t in series.tokens.items() if t} if metric == PER_TOKEN else None
        for v in detect(values, days, settings, data_start, floors):
            tokens = series.tokens.get(v.day, 0)
            impact, expected = _dollars(metric, v.deviation, tokens), _dollars(metric, v.expected, tokens)
            budget = budgets.get(scope) if scope_type == "team" else None
            out.append(_row(v.day, key, v.kind, v.actual, v.expected, impact, v.z,
                            severity(impact, expected, v.z, settings, budget), v.history_days, v.method,
                            top_contributors(series, metric, v.day), evaluated_through))
    return out


def cost_per_token_regressions(rows: Iterable[SeriesRow], evaluated_through: date, alerts: Alerts) -> list[dict]:
    """Models whose fully-loaded cost per 1M tokens over the last 7 days rose by more than the
    configured fraction against the 7 days before."""
    out = []
    for key, series in _group(r for r in rows if r.metric == PER_TOKEN).items():
        for day in sorted(d for d in series.cost if d <= evaluated_through):
            weeks = [[day - timedelta(days=i + 7 * w) for i in range(7)] for w in (0, 1)]
            cost = [sum(series.cost.get(d, 0.0) for d in week) for week in weeks]
            tokens = [sum(series.tokens.get(d, 0) for d in week) for week in weeks]
            if min(tokens) <= 0 or min(series.cost) > weeks[1][-1]:
                continue
            now, before = cost[0] * 1e6 / tokens[0], cost[1] * 1e6 / tokens[1]
            if before > 0 and now > before * (1 + alerts.cost_per_token_week_over_week):
                impact = (now - before) * tokens[0] / 1e6
                out.append(_row(day, key, "cost_per_token_regression", now, before, impact, None,
                                severity(impact, before * tokens[0] / 1e6, None, alerts.detector),
                                14, "week_over_week", top_contributors(series, PER_TOKEN, day), evaluated_through))
    return out


def idle_gpus(streaks: Iterable[tuple], evaluated_through: date, settings: Detector) -> list[dict]:
    """(resource, GPU index, currency, start, hours, cost) streaks of billed GPUs left idle, as one
    finding per instance and day the streaks began (eight idle GPUs of one instance are one thing
    to stop, not eight messages); its GPUs are the contributors."""
    grouped: dict[tuple[str, str, date], list[tuple]] = {}
    for resource, gpu, currency, start, hours, cost in streaks:
        grouped.setdefault((resource, currency, start.date()), []).append((gpu, start, hours, float(cost)))
    out = []
    for (resource, currency, day), gpus in grouped.items():
        cost = sum(g[3] for g in gpus)
        longest = max(g[2] for g in gpus)
        method = (f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''} idle up to {longest} h in a row "
                  f"from {min(g[1] for g in gpus):%Y-%m-%d %H:%M} UTC")
        contributors = [{"name": f"GPU {gpu}", "actual": round(c, 2), "expected": 0.0, "deviation": round(c, 2)}
                        for gpu, _, _, c in sorted(gpus, key=lambda g: -g[3])[:TOP_CONTRIBUTORS]]
        out.append(_row(day, ("idle_gpu", resource, "idle_cost", currency), "idle_gpu", cost, 0.0, cost, None,
                        severity(cost, 0.0, None, settings), longest, method, contributors, evaluated_through))
    return out


def over_budget(forecasts: Iterable[tuple[str, str, Decimal, Decimal]], day: date,
                evaluated_through: date) -> list[dict]:
    """(team, currency, month-end forecast, budget) on `day` whose forecast exceeds the budget."""
    out = []
    for team, currency, forecast, budget in forecasts:
        over = float(forecast) - float(budget)
        if over > 0:
            tier = "immediate" if float(forecast) >= 1.2 * float(budget) else "digest"
            out.append(_row(day, ("budget", team, "month_end_forecast", currency), "budget", float(forecast),
                            float(budget), over, None, tier, 0, "straight-line month-end forecast", [],
                            evaluated_through))
    return out


def anomalies_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=ANOMALY_SCHEMA)


def first_complete_day(first_hour: datetime) -> date:
    return first_hour.date() + timedelta(days=0 if first_hour.hour == 0 else 1)


def evaluated_through(last_complete_hour: datetime | None, now: datetime, delay_hours: int) -> date | None:
    """The last day to judge: its bill has landed (the newest hour every provider covers reaches
    its end) and it ended at least `delay_hours` ago."""
    if last_complete_hour is None:
        return None
    landed = last_complete_hour.date() - timedelta(days=0 if last_complete_hour.hour == 23 else 1)
    old_enough = (now - timedelta(hours=delay_hours) - timedelta(days=1)).date()
    return min(landed, old_enough)
