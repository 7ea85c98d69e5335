"""Benchmark: precision, recall and detection delay of the spend-anomaly detectors, per kind of
anomaly, on generated fleets with injected, labelled events, and (separately, untuned) on the
labelled public NAB series in ../shared/samples/anomaly-benchmark/.

    .venv/bin/python bench/anomalies.py [--series 600] [--models 120] [--instances 120] [--seed 11]

Everything runs the detectors of ingest/anomalies.py as they ship and the incident state machine of
ingest/alerts.py (`plan_messages`, no Slack); nothing here is a timed assertion. The protocol is
../shared/reference/anomaly-alerting.md section 4:

1. **Daily spend** (`detect`, `severity`): --series series of 90 days from 2026-07-01, a base level
   log-uniform in $50-$20,000/day, weekday-heavy (weekends at 30-85 %) or flat weeks, noise CV 2-12 %,
   slow growth; 15 % are reserved-GPU series (CV under 0.3 %, no weekly shape). Negative controls,
   never labelled: legitimate batch days (+20-60 % on 8 % of days, a quarter of the series) and a
   fee booked on the 1st of the month (10 %). One event kind per series, in turn: spike (1-2 days
   x 1.6-4), step (x 1.3-2.5 for good; the first day partial, as a change made mid-day is), drift
   (+2-5 %/day for 20 days, then held), weekend left on (a weekday-heavy series' Saturday and
   Sunday at weekday level), none, none (a third of the series have no event). Days 0-27 are
   history; days 28-89 are judged (2.07 months), and days 7-27 are reported as the warm-up.
2. **Cost per token** (`spikes` on cost_per_1m_tokens_fully_loaded, and `cost_per_token_regressions`)
   on synthetic `SeriesRow`s: --models deployments whose GPUs cost the same every day while tokens
   follow traffic (weekly shape, growth, noise, holiday dips as controls, autoscaled busy days);
   half get a regression from onset on: throughput down (tokens x 0.4-0.75, cost unchanged) or
   price up (cost x 1.3-1.8). Cost per 1M tokens log-uniform in $0.05-$5.
3. **Idle weekend** (`idle_gpus` on streaks computed as models/intermediate/int_idle_gpu_streaks.sql
   does, over simulated hourly mean utilisation): --instances 8-GPU instances, training (busy, with
   1-3 h pauses and 2-8 h gaps between jobs), inference (diurnal, quiet nights and weekends,
   the server always holds the GPUs) and dev boxes (billed 07:00-20:00 on weekdays, idle edges).
   A quarter of them (training and dev) are left idle from a Friday afternoon to a Monday morning
   (30 % of those with a forgotten process still holding the GPUs), an eighth (training) idle
   13-23 h overnight after a job died. A daily spend detector cannot see this (the bill does not
   change), so it is scored on the idle rule, with the rule's variants beside it: clock hours
   (the SQL counts rows, so a run continues across hours that were not billed), and which holders
   still count as idle. Delays are in hours: when the streak reaches the hours, and when the asset
   can show it (`spend_anomalies` keeps streaks whose start day is judged, 36 h after it ends).

Scoring (section 4.3): an event is detected when an alert lands in its recall window (onset to
onset + 3 days; drift + 21 days; cost per token + 7 days, the rule is week over week; idle: before
the event ends + 72 h); delay = first such alert - onset. An alert is correct when it lands in the
event's match window (recall window, or onset to onset + 31 days for the persisting step / cost per
token, to + 48 days for drift): precision = correct alerts / all alerts on that kind's series.
False alerts per series-month count series with no event. "Stored" = every row the mart would hold
(z >= threshold); "notified" = the messages `plan_messages` sends when the mart is re-judged each
day (open, escalation, new baseline; only incidents with a day at digest tier or above), counted on
the day they are sent. "Material" events have an excess of at least max($250, 20 % of expected) on
some day of the recall window (the note's acceptance bar). Delays are in judged days: the day
judged is the earliest a daily bill can be (a day is judged 36 h after it ends).

The public series are scored per labelled window (hit: an alert inside it; false alert: outside
every window) at two grains: daily (the shipped `detect`, complete days only), and hourly with a
port of the same detector whose season is a parameter (1 week for series spanning 8 weeks or
more, else 1 day), cross-checked against `ingest.anomalies.baseline` at a season of 7. Values are
rescaled to a median of 1,000 (the detector's $1 scale floor is a currency floor; NAB values are
CPU %, taxi counts and cents per click), and the shipped increases-only rule is reported beside a
two-sided diagnostic. Nothing was tuned on them.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import numpy as np
from common import REPO, table

from ingest.alerts import (
    OPEN,
    SEVERITY_RANK,
    Anomaly,
    LedgerEntry,
    SeriesKey,
    plan_messages,
)
from ingest.anomalies import (
    PER_TOKEN,
    SeriesRow,
    baseline,
    cost_per_token_regressions,
    detect,
    idle_gpus,
    severity,
    spikes,
)
from ingest.config import Alerts, Detector

SAMPLES = (REPO.parent / "shared" / "samples" / "anomaly-benchmark").resolve()
START = date(2026, 7, 1)  # a Wednesday; months start on days 0, 31 and 62
DAYS = 90
JUDGED_FROM = 28  # the first day with 4 weeks of history: days before it are history only
MONTH = 30.0
RECALL_DAYS = {"spike": 3, "step": 3, "drift": 21, "weekend on": 3, "cost per token": 7}
MATCH_DAYS = {"spike": 3, "step": 31, "drift": 48, "weekend on": 3, "cost per token": 31}
SPEND_KINDS = ("spike", "step", "drift", "weekend on", None, None)
ALL = 1e-9  # a z threshold that stores every increase, so one detector pass serves every sweep
IMMEDIATE = SEVERITY_RANK["immediate"]


# ---------------------------------------------------------------------------------------------
# Labels and scoring


@dataclass
class Truth:
    """One series' label: its event (None: no event) in periods (days; hours for idle GPUs)."""

    kind: str | None
    start: int = -1
    recall_end: int = -1  # inclusive
    match_end: int = -1  # inclusive
    material: bool = False
    excess: float = 0.0  # injected excess in $ over the recall window
    controls: str = ""  # the legitimate, unlabelled changes it carries (batch days, fees, ...)

    @property
    def group(self) -> str:
        return self.kind or f"none: {self.controls or 'clean'}"


@dataclass
class Tally:
    series: int = 0
    events: int = 0
    detected: int = 0
    material: int = 0
    material_detected: int = 0
    excess: float = 0.0
    excess_detected: float = 0.0
    alerts: int = 0
    correct: int = 0
    immediate_false: int = 0
    delays: list[int] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)  # message kinds inside match windows
    next_day_escalations: int = 0  # an escalation the day after the incident opened
    plain_alerts: int = 0  # on series without controls
    plain_correct: int = 0

    def recall(self) -> str:
        return ratio(self.detected, self.events)

    def precision(self) -> str:
        return ratio(self.correct, self.alerts)


@dataclass(frozen=True)
class Alert:
    at: int  # period the alert is sent / stored for
    kind: str = "stored"  # stored | open | escalation | new_baseline
    rank: int = 0  # severity rank


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def pct(values: Sequence[float], q: float) -> str:
    if not values:
        return "-"
    v = float(np.percentile(values, q, method="higher"))
    return f"{v:.0f}" if abs(v) >= 0.5 else "0"


def score(truths: Sequence[Truth], alerts: Sequence[Sequence[Alert]]) -> dict[str, Tally]:
    tallies: dict[str, Tally] = defaultdict(Tally)
    for t, found in zip(truths, alerts, strict=True):
        tally = tallies[t.group]
        tally.series += 1
        tally.alerts += len(found)
        if not t.kind:
            tally.immediate_false += sum(a.rank >= IMMEDIATE for a in found)
            continue
        tally.events += 1
        tally.material += t.material
        tally.excess += t.excess
        inside = [a for a in found if t.start <= a.at <= t.match_end]
        tally.correct += len(inside)
        if not t.controls:
            tally.plain_alerts += len(found)
            tally.plain_correct += len(inside)
        hits = [a.at for a in found if t.start <= a.at <= t.recall_end]
        if hits:
            tally.detected += 1
            tally.material_detected += t.material
            tally.excess_detected += t.excess
            tally.delays.append(min(hits) - t.start)
            tally.kinds.update(a.kind.split(":")[0] for a in inside)
            opened = [a.at for a in inside if a.kind == OPEN]
            tally.next_day_escalations += any(a.kind.startswith("escalation") and a.at - 1 in opened for a in inside)
    return tallies


def kind_table(tallies: dict[str, Tally], months: float, unit: str = "d", messages: bool = False) -> str:
    headers = ["kind", "series", "events", "recall", "material recall", "precision", "precision w/o controls",
               f"delay median {unit}",
               f"delay p90 {unit}", "alerts / event" if not messages else "messages / event",
               "false / series-month"]
    if messages:
        headers.append("immediate false / series-month")
    rows = []
    order = sorted(tallies, key=lambda k: (k.startswith("none"), k))
    for name in order:
        t = tallies[name]
        event = bool(t.events)
        row = [name, t.series, t.events or "-", t.recall() if event else "-",
               ratio(t.material_detected, t.material) if event else "-", t.precision() if event else "-",
               ratio(t.plain_correct, t.plain_alerts) if event else "-", pct(t.delays, 50), pct(t.delays, 90),
               ratio(t.correct, t.detected) if event else "-",
               "-" if event else f"{t.alerts / (t.series * months):.2f}"]
        if messages:
            row.append("-" if event else f"{t.immediate_false / (t.series * months):.3f}")
        rows.append(row)
    events = [t for t in tallies.values() if t.events]
    correct, alerts = sum(t.correct for t in events), sum(t.alerts for t in tallies.values())
    detected, total = sum(t.detected for t in events), sum(t.events for t in events)
    excess = sum(t.excess_detected for t in events), sum(t.excess for t in events)
    summary = (f"all: recall {ratio(detected, total)}, precision {ratio(correct, alerts)} "
               f"({correct:,} of {alerts:,} {'messages' if messages else 'alerts'} inside an event's window), "
               f"$-weighted recall {ratio(*excess)}")
    return table(headers, rows) + "\n" + summary


def message_mix(tallies: dict[str, Tally]) -> str:
    parts = []
    for name in sorted(k for k in tallies if tallies[k].events):
        t = tallies[name]
        mix = [f"{t.kinds[k]} {k}" for k in ("open", "escalation", "new_baseline") if t.kinds[k]]
        if t.next_day_escalations:
            mix.append(f"{t.next_day_escalations} events escalated the day after opening")
        parts.append(f"{name}: " + ", ".join(mix))
    return "messages inside event windows by kind - " + "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# The incident state machine of ingest/alerts.py, replayed day by day


def anomaly_of(key: SeriesKey, day: date, kind: str, actual: float, expected: float, z: float | None,
               tier: str) -> Anomaly:
    return Anomaly(day=day, series=key, currency="USD", kind=kind, actual=Decimal(f"{actual:.4f}"),
                   expected=Decimal(f"{expected:.4f}"), deviation=Decimal(f"{actual - expected:.4f}"), z=z,
                   severity=tier, history_days=None, method=None, top_contributors=())


def replay(rows: Sequence[Anomaly], alerts: Alerts, origin: date = START,
           snapshots: Callable[[], list[tuple[date, list[Anomaly]]]] | None = None) -> list[Alert]:
    """The messages one series' incidents send when the mart is re-judged every day. The mart only
    grows day by day (no restatement here), so running `plan_messages` on the days that brought an
    anomaly is the same as running it every day: on the others it has nothing new to say.
    `snapshots` gives (evaluated_through, the mart as of then) where rows change as time passes
    (idle streaks grow)."""
    ledger: list[LedgerEntry] = []
    out: list[Alert] = []
    steps = snapshots() if snapshots else [(d, [a for a in rows if a.day <= d]) for d in sorted({a.day for a in rows})]
    for through, mart in steps:
        for p in plan_messages(mart, through, ledger, alerts):
            ledger.append(LedgerEntry(p.incident.series, p.incident.start_day, p.kind, "sent", p.severity,
                                      p.deviation, "", [], None))
            out.append(Alert((through - origin).days, p.kind, SEVERITY_RANK[p.severity]))
    return out


# ---------------------------------------------------------------------------------------------
# 1. Daily spend


@dataclass
class SpendSeries:
    key: SeriesKey
    values: np.ndarray
    truth: Truth
    shape: str  # reserved | weekday-heavy | flat weeks


def weekday(i: int) -> int:
    return (START.weekday() + i) % 7  # Monday 0


def spend_fleet(n: int, seed: int) -> list[SpendSeries]:
    rng = np.random.default_rng([seed, 1])
    days = np.arange(DAYS)
    wd = np.array([weekday(i) for i in days])
    month_start = np.array([(START + timedelta(days=int(i))).day == 1 for i in days])
    out = []
    for i in range(n):
        kind = SPEND_KINDS[i % len(SPEND_KINDS)]
        level = math.exp(rng.uniform(math.log(50), math.log(20_000)))
        reserved = kind != "weekend on" and rng.random() < 0.15
        pattern = rng.uniform(0.95, 1.05, 7)
        controls = []
        if reserved:
            shape, cv, growth = "reserved", rng.uniform(0.0005, 0.003), 0.0
            pattern[:] = 1.0
        else:
            heavy = kind == "weekend on" or rng.random() < 0.6
            weekend = rng.uniform(0.3, 0.7) if kind == "weekend on" else (
                rng.uniform(0.3, 0.85) if heavy else rng.uniform(0.85, 1.05))
            pattern[5:] *= weekend
            shape = "weekday-heavy" if heavy else "flat weeks"
            cv, growth = rng.uniform(0.02, 0.12), rng.uniform(-0.001, 0.004)
        expected = level * pattern[wd] * (1 + growth) ** days
        base = expected * np.exp(rng.normal(0, cv, DAYS))
        if not reserved and rng.random() < 0.25:
            batch = rng.random(DAYS) < 0.08
            base = np.where(batch, base * rng.uniform(1.2, 1.6, DAYS), base)
            controls.append("batch days")
        if rng.random() < 0.10:
            base = base + month_start * level * rng.uniform(0.5, 2.0)
            controls.append("fee on the 1st")
        actual = base.copy()
        truth = Truth(None, controls=", ".join(controls))
        if kind:
            if kind == "drift":
                start = int(rng.integers(35, 63))
            elif kind == "weekend on":
                start = int(rng.choice([d for d in range(35, 85) if wd[d] == 5]))
            else:
                start = int(rng.integers(35, 81))
            if kind == "spike":
                length = 1 if rng.random() < 0.7 else 2
                actual[start:start + length] *= rng.uniform(1.6, 4.0, length)
            elif kind == "step":
                factor = rng.uniform(1.3, 2.5)
                actual[start:] *= factor
                actual[start] = base[start] * (1 + (factor - 1) * rng.uniform(0.2, 1.0))  # changed mid-day
            elif kind == "drift":
                ramp = np.clip(days - start + 1, 0, 20) * rng.uniform(0.02, 0.05)
                actual *= 1 + ramp
            else:  # weekend on: Saturday and Sunday billed like the Friday before
                actual[start:start + 2] = base[start:start + 2] / pattern[wd[start:start + 2]] * pattern[4]
            recall_end = start + RECALL_DAYS[kind]
            window = slice(start, min(recall_end + 1, DAYS))
            excess = actual[window] - base[window]
            material = bool(np.any(excess >= np.maximum(250.0, 0.2 * base[window])))
            truth = Truth(kind, start, recall_end, start + MATCH_DAYS[kind], material, float(excess.sum()),
                          truth.controls)
        out.append(SpendSeries(SeriesKey("team", f"team-{i:03d}", "effective_cost"), actual, truth, shape))
    return out


@dataclass(frozen=True)
class Day:
    """A day the detector scored above zero (every increase: thresholds are applied afterwards)."""

    at: int
    actual: float
    expected: float
    z: float


def spend_verdicts(series: SpendSeries) -> list[Day]:
    values = {START + timedelta(days=i): float(v) for i, v in enumerate(series.values)}
    days = sorted(values)
    verdicts = detect(values, days, Detector(z=ALL), data_start=START)
    return [Day((v.day - START).days, v.actual, v.expected, v.z) for v in verdicts if v.kind == "spike"]


def stored(days: Sequence[Day], z: float, first: int = JUDGED_FROM) -> list[Alert]:
    return [Alert(d.at) for d in days if d.z >= z and d.at >= first]


def notified(series: SpendSeries, days: Sequence[Day], settings: Detector, alerts: Alerts) -> list[Alert]:
    rows = [anomaly_of(series.key, START + timedelta(days=d.at), "spike", d.actual, d.expected, d.z,
                       severity(d.actual - d.expected, d.expected, d.z, settings))
            for d in days if d.z >= settings.z and d.at >= JUDGED_FROM]
    return replay(rows, alerts)


def spend_config(fleet: Sequence[SpendSeries], verdicts: Sequence[list[Day]], settings: Detector,
                 alerts: Alerts) -> tuple[dict[str, Tally], dict[str, Tally]]:
    cfg = alerts.model_copy(update={"detector": settings})
    truths = [s.truth for s in fleet]
    stored_ = score(truths, [stored(v, settings.z) for v in verdicts])
    notified_ = score(truths, [notified(s, v, settings, cfg) for s, v in zip(fleet, verdicts, strict=True)])
    return stored_, notified_


def per_month(tallies: dict[str, Tally], months: float, clean: bool = True, immediate: bool = False,
              digits: int = 2) -> str:
    """Alerts per series-month on the series without an event: clean ones, or those with controls."""
    groups = [t for k, t in tallies.items() if k.startswith("none") and (k == "none: clean") == clean]
    n = sum(t.series for t in groups)
    alerts = sum(t.immediate_false if immediate else t.alerts for t in groups)
    return f"{alerts / (n * months):.{digits}f}" if n else "-"


def sweep_row(label: str, stored_: dict[str, Tally], notified_: dict[str, Tally], months: float) -> list[str]:
    events = [t for t in notified_.values() if t.events]
    correct, alerts = sum(t.correct for t in events), sum(t.alerts for t in notified_.values())
    row = [label]
    row += [notified_[k].recall() for k in ("spike", "step", "drift", "weekend on")]
    material = sum(notified_[k].material_detected for k in ("spike", "step")), sum(
        notified_[k].material for k in ("spike", "step"))
    row += [ratio(*material), ratio(correct, alerts), per_month(notified_, months),
            per_month(notified_, months, immediate=True, digits=3), per_month(notified_, months, clean=False),
            per_month(stored_, months), ratio(notified_["step"].correct, notified_["step"].detected)]
    return row


SWEEP_HEADERS = ["setting", "spike", "step", "drift", "weekend on", "material spike+step", "precision",
                 "false / clean s-m", "immediate false / clean s-m", "false / control s-m",
                 "stored false / clean s-m", "messages / step"]


def warmup_false_alerts(fleet: Sequence[SpendSeries], verdicts: Sequence[list[Day]], z: float) -> str:
    """Days 7-27 (under 4 weeks of history) on series without an event or control."""
    by_shape: dict[str, list[int]] = defaultdict(list)
    for s, v in zip(fleet, verdicts, strict=True):
        if not s.truth.kind and not s.truth.controls:
            by_shape[s.shape].append(sum(1 for d in v if d.z >= z and 7 <= d.at < JUDGED_FROM))
    months = (JUDGED_FROM - 7) / MONTH
    return ", ".join(f"{shape} {sum(n) / (len(n) * months):.2f} ({len(n)} series)"
                     for shape, n in sorted(by_shape.items()))


# ---------------------------------------------------------------------------------------------
# 2. Cost per token


def cpt_fleet(n: int, seed: int) -> tuple[list[list[SeriesRow]], list[Truth], list[float]]:
    rng = np.random.default_rng([seed, 2])
    days = np.arange(DAYS)
    wd = np.array([weekday(i) for i in days])
    fleets, truths, levels = [], [], []
    for i in range(n):
        cost_level = math.exp(rng.uniform(math.log(200), math.log(20_000)))
        cpt0 = math.exp(rng.uniform(math.log(0.05), math.log(5.0)))
        volume = cost_level * 1e6 / cpt0
        pattern = rng.uniform(0.9, 1.1, 7)
        pattern[5:] *= rng.uniform(0.5, 0.95)
        tokens = volume * pattern[wd] * (1 + rng.uniform(0.0, 0.006)) ** days * np.exp(
            rng.normal(0, rng.uniform(0.03, 0.12), DAYS))
        cost = cost_level * np.exp(rng.normal(0, 0.01, DAYS))
        controls = []
        if rng.random() < 0.25:  # holidays: traffic dips for a day or two, the GPUs stay on
            for d in rng.choice(np.arange(JUDGED_FROM, DAYS - 2), 2, replace=False):
                tokens[d:d + int(rng.integers(1, 3))] *= rng.uniform(0.5, 0.8)
            controls.append("holiday dips")
        if rng.random() < 0.2:  # autoscaling: one more replica on the busiest days, with the traffic
            busy = tokens > np.quantile(tokens, 0.9)
            cost = np.where(busy, cost * 1.25, cost)
            tokens = np.where(busy, tokens * 1.2, tokens)
            controls.append("autoscaled days")
        truth = Truth(None, controls=", ".join(controls))
        if i % 2 == 0:
            start = int(rng.integers(35, 76))
            before = cost * 1e6 / tokens
            if rng.random() < 0.5:
                tokens[start:] *= rng.uniform(0.4, 0.75)  # throughput or traffic down, GPUs still billed
            else:
                cost[start:] *= rng.uniform(1.3, 1.8)  # price up (e.g. on-demand fallback)
            window = slice(start, start + RECALL_DAYS["cost per token"] + 1)
            excess = (cost * 1e6 / tokens - before)[window] * tokens[window] / 1e6  # $ of the regression
            spend = before[window] * tokens[window] / 1e6
            truth = Truth("cost per token", start, start + RECALL_DAYS["cost per token"],
                          start + MATCH_DAYS["cost per token"], bool(np.any(excess >= np.maximum(250, 0.2 * spend))),
                          float(excess.sum()), truth.controls)
        share = rng.uniform(0.3, 0.7)
        rows = [SeriesRow(START + timedelta(days=d), "model", f"model-{i:03d}", PER_TOKEN, "USD", team,
                          Decimal(f"{cost[d] * part:.6f}"), round(tokens[d] * part))
                for d in range(DAYS) for team, part in (("team-a", share), ("team-b", 1 - share))]
        fleets.append(rows)
        truths.append(truth)
        levels.append(cpt0)
    return fleets, truths, levels


def cpt_rows(fleet: Sequence[list[SeriesRow]], alerts: Alerts) -> tuple[list[list[dict]], list[list[dict]]]:
    end = START + timedelta(days=DAYS - 1)
    stat = [[r for r in spikes(rows, START, end, alerts.detector, {}) if (r["day"] - START).days >= JUDGED_FROM]
            for rows in fleet]
    rule = [[r for r in cost_per_token_regressions(rows, end, alerts) if (r["day"] - START).days >= JUDGED_FROM]
            for rows in fleet]
    return stat, rule


def cpt_scaled(fleet: Sequence[list[SeriesRow]], alerts: Alerts, factor: int = 1000) -> list[list[dict]]:
    """The statistical detector on the same series with costs x `factor` (cost per 1B tokens when
    1000): a diagnostic of the $1 scale floor, which is absolute in the metric's unit."""
    end = START + timedelta(days=DAYS - 1)
    return [[r for r in spikes([replace(x, cost=x.cost * factor) for x in rows], START, end, alerts.detector, {})
             if (r["day"] - START).days >= JUDGED_FROM] for rows in fleet]


def mart_anomaly(r: dict) -> Anomaly:
    return Anomaly(day=r["day"], series=SeriesKey(r["scope_type"], r["scope"], r["metric"]), currency=r["currency"],
                   kind=r["kind"], actual=r["actual"], expected=r["expected"], deviation=r["deviation"], z=r["z"],
                   severity=r["severity"], history_days=r["history_days"], method=r["method"], top_contributors=())


# ---------------------------------------------------------------------------------------------
# 3. Idle GPUs (hourly)

HOURS = DAYS * 24
GPUS = 8


@dataclass
class Instance:
    resource: str
    role: str  # training | inference | dev
    price: float  # per GPU-hour
    util: np.ndarray  # (GPUS, HOURS) hourly mean utilisation, NaN where not billed
    held: np.ndarray  # (GPUS, HOURS) a process holds the GPU
    truth: Truth


def idle_fleet(n: int, seed: int) -> list[Instance]:
    rng = np.random.default_rng([seed, 3])
    hours = np.arange(HOURS)
    hod, day = hours % 24, hours // 24
    wd = np.array([weekday(int(d)) for d in day])
    weekend = wd >= 5
    roles = ["training"] * round(n * 0.4) + ["dev"] * round(n * 0.25)
    roles += ["inference"] * (n - len(roles))
    training = [j for j, r in enumerate(roles) if r == "training"]
    weekend_at = {*training[:n // 8], *[j for j, r in enumerate(roles) if r == "dev"][:n // 8]}
    overnight_at = set(training[n // 8:n // 4])
    out = []
    for i, role in enumerate(roles):
        util = np.zeros((GPUS, HOURS))
        held = np.ones((GPUS, HOURS), bool)
        if role == "training":
            util[:] = np.clip(rng.normal(0.93, 0.04, (GPUS, HOURS)), 0, 1)
            for d in range(DAYS):  # checkpoint / eval pauses, the job still holds the GPUs
                if rng.random() < 0.8:
                    s = d * 24 + int(rng.integers(0, 22))
                    util[:, s:s + int(rng.integers(1, 4))] = rng.uniform(0, 0.03)
            for s in rng.choice(HOURS - 8, int(rng.poisson(3 * DAYS / MONTH)), replace=False):
                length = int(rng.integers(2, 9))  # between two jobs: nothing runs
                util[:, s:s + length] = rng.uniform(0, 0.02)
                held[:, s:s + length] = False
        elif role == "inference":
            diurnal = 0.55 + 0.45 * np.cos(2 * np.pi * (hod - 15) / 24)
            load = rng.uniform(0.15, 0.7, (GPUS, 1)) * diurnal * np.where(weekend, 0.6, 1.0)
            util[:] = np.clip(load + rng.normal(0, 0.01, (GPUS, HOURS)), 0, 1)
        else:  # dev box, started 07:00-20:00 on weekdays by a schedule
            util[:] = np.nan
            for d in range(DAYS):
                if weekday(d) >= 5:
                    continue
                arrive, leave = 7 + int(rng.integers(0, 4)), int(rng.integers(15, 21))
                s = d * 24
                util[:, s + 7:s + 20] = rng.uniform(0, 0.02)
                held[:, s + 7:s + 20] = False
                active = rng.uniform(0.1, 0.6, (GPUS, leave - arrive))
                active[:, rng.random(leave - arrive) < 0.1] = 0.02  # lunch, meetings
                util[:, s + arrive:s + leave] = active
                held[:, s + arrive:s + leave] = True
        truth = Truth(None)
        if i in weekend_at:  # left idle from a Friday afternoon to a Monday morning
            friday = int(rng.choice([d for d in range(35, DAYS - 4) if weekday(d) == 4]))
            start = friday * 24 + int(rng.integers(14, 23))
            end = (friday + 3) * 24 + int(rng.integers(6, 11))
            util[:, start:end] = rng.uniform(0, 0.02, (GPUS, end - start))
            held[:, start:end] = rng.random() < 0.3  # a forgotten notebook still holds the GPUs
            truth = Truth("idle weekend", start, end + 72, end + 72, True)
        elif i in overnight_at:  # a job died in the evening; nobody restarted it until the next afternoon
            night = int(rng.choice([d for d in range(35, DAYS - 2) if weekday(d) < 4]))
            start = night * 24 + int(rng.integers(17, 24))
            end = start + int(rng.integers(13, 24))
            util[:, start:end] = rng.uniform(0, 0.02, (GPUS, end - start))
            held[:, start:end] = False
            truth = Truth("idle overnight", start, end + 72, end + 72, True)
        out.append(Instance(f"i-{i:04d}", role, float(rng.uniform(2, 10)), util, held, truth))
    for inst in out:
        if inst.truth.kind:
            rows = inst.util[0] == inst.util[0]
            t = inst.truth
            t.excess = float(inst.price * GPUS * np.sum(rows[t.start:t.recall_end - 72]))
    return out


@dataclass(frozen=True)
class Streak:
    gpu: int
    rows: np.ndarray  # the billed hours of the streak, ascending
    price: float


def streaks(inst: Instance, below: float, min_hours: int, clock: bool = False, holder: str = "any") -> list[Streak]:
    """int_idle_gpu_streaks.sql: billed hours with mean utilisation under `below`, in runs of at
    least `min_hours` rows. The SQL numbers its rows, so a run continues across hours that were not
    billed; `clock` also ends a run at such a gap. `holder`: "any" (the SQL: a held GPU can be
    idle), "none" (the note's section 5.1 rule: no process holds it) or "not serving" (a GPU an
    inference server holds is not idle; other holders, such as a forgotten notebook, are)."""
    out = []
    for gpu in range(GPUS):
        billed = np.flatnonzero(~np.isnan(inst.util[gpu]))
        idle = inst.util[gpu, billed] < below
        if holder == "none" or (holder == "not serving" and inst.role == "inference"):
            idle &= ~inst.held[gpu, billed]
        idx = np.flatnonzero(idle)
        if not idx.size:
            continue
        new = np.ones(idx.size, bool)
        new[1:] = np.diff(idx) != 1
        if clock:
            new[1:] |= np.diff(billed[idx]) != 1
        bounds = [*np.flatnonzero(new), idx.size]
        for a, b in pairwise(bounds):
            if b - a >= min_hours:
                out.append(Streak(gpu, billed[idx[a:b]], inst.price))
    return out


def as_of(found: Sequence[Streak], now: int, min_hours: int) -> list[tuple]:
    """The streak rows the model holds at hour `now`: hours before it, at least `min_hours`."""
    out = []
    for s in found:
        rows = s.rows[s.rows < now]
        if rows.size >= min_hours:
            start = datetime(START.year, START.month, START.day) + timedelta(hours=int(rows[0]))
            out.append((None, s.gpu, "USD", start, int(rows.size), Decimal(f"{rows.size * s.price:.2f}")))
    return out


def wired_hour(start_hour: int, delay_hours: int) -> int:
    """The first hour the asset reports a streak: its start day must be judged (ended
    `delay_hours` ago), as `cast(streak_start as date) <= evaluated_through` requires."""
    return (start_hour // 24 + 1) * 24 + delay_hours


def idle_findings(inst: Instance, found: Sequence[Streak], settings: Alerts, wired: bool) -> list[Alert]:
    """One alert per (instance, day its streaks began), as `idle_gpus` groups them, at the hour the
    rule is met (the longest-known streak reaches the hours) or, `wired`, when the asset shows it."""
    n = settings.idle_gpu_consecutive_hours
    rows = idle_gpus([(inst.resource, s.gpu, "USD", datetime(START.year, START.month, START.day)
                       + timedelta(hours=int(s.rows[0])), int(s.rows.size), Decimal(f"{s.rows.size * s.price:.2f}"))
                      for s in found], START + timedelta(days=DAYS), settings.detector)
    tiers = {r["day"]: SEVERITY_RANK[r["severity"]] for r in rows}
    first: dict[date, int] = {}
    for s in found:
        day = START + timedelta(hours=int(s.rows[0]))
        at = int(s.rows[n - 1]) + 1
        if wired:
            at = max(at, wired_hour(int(s.rows[0]), settings.evaluation_delay_hours))
        first[day] = min(first.get(day, at), at)
    assert len(first) == len(tiers)
    return [Alert(at, rank=tiers[day]) for day, at in first.items()]


def idle_messages(inst: Instance, found: Sequence[Streak], settings: Alerts) -> list[Alert]:
    """Messages when the mart is rebuilt at 12:00 UTC every day, as wired."""
    n = settings.idle_gpu_consecutive_hours

    def snapshots() -> list[tuple[date, list[Anomaly]]]:
        out = []
        for d in range(1, DAYS + 2):
            now = d * 24 + 12
            through = START + timedelta(days=(now - 24 - settings.evaluation_delay_hours) // 24)
            known = [(inst.resource, *s[1:]) for s in as_of(found, now, n) if s[3].date() <= through]
            rows = idle_gpus(known, through, settings.detector)
            out.append((START + timedelta(days=d), [mart_anomaly(r) for r in rows]))
        return out

    sent = replay([], settings, snapshots=snapshots)
    return [Alert(a.at * 24 + 12, a.kind, a.rank) for a in sent]


# ---------------------------------------------------------------------------------------------
# 4. The detector with its season as a parameter (for the public series' hourly grain)


def port_z(x: np.ndarray, season: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z, expected and scale of `ingest.anomalies.baseline` for every step of a dense series, with
    `season` steps in place of 7 days: no verdict under 1 season of history; the median of the
    steps there are under 2 seasons; else the median of the same phase in the last 4 seasons (those
    there are), the scale from each step's residual against its own same-phase median (steps with
    at least 1 such value under 4 seasons of history, 2 from then on). NaN where not judged."""
    n, window = len(x), 4 * season
    expected, scale = np.full(n, np.nan), np.full(n, np.nan)
    lags = np.full((4, n), np.nan)
    for k in range(1, 5):
        if k * season < n:
            lags[k - 1, k * season:] = x[:n - k * season]
    count = np.sum(~np.isnan(lags), axis=0)
    same = np.nanmedian(np.where(count >= 1, lags, 0.0), axis=0)
    resid_1 = np.where(count >= 1, x - same, np.nan)
    resid_2 = np.where(count >= 2, x - same, np.nan)
    for t in range(season, min(window, n)):
        if t < 2 * season:
            e = float(np.median(x[:t]))
            r = x[:t] - e
        else:
            e = float(same[t])
            r = resid_1[:t][~np.isnan(resid_1[:t])]
        expected[t], scale[t] = e, _mad(r if r.size else np.zeros(1), e)
    if n > window:
        windows = np.lib.stride_tricks.sliding_window_view(resid_2[:n - 1], window)[:n - window]
        centre = np.nanmedian(windows, axis=1)
        mad = np.nanmedian(np.abs(windows - centre[:, None]), axis=1)
        expected[window:] = same[window:]
        scale[window:] = np.maximum.reduce([1.4826 * mad, 0.05 * np.abs(same[window:]), np.ones(n - window)])
    return (x - expected) / scale, expected, scale


def _mad(residuals: np.ndarray, expected: float) -> float:
    centre = np.median(residuals)
    return max(1.4826 * float(np.median(np.abs(residuals - centre))), 0.05 * abs(expected), 1.0)


def check_port(fleet: Sequence[SpendSeries], count: int = 25) -> tuple[int, float]:
    """The port at a season of 7 against `ingest.anomalies.baseline` on generated daily series."""
    compared, worst = 0, 0.0
    for s in fleet[:count]:
        values = {START + timedelta(days=i): float(v) for i, v in enumerate(s.values)}
        _, exp_, sc = port_z(s.values.astype(float), 7)
        for i in range(DAYS):
            base = baseline(values, START + timedelta(days=i), START)
            if base is None:
                assert np.isnan(exp_[i])
                continue
            worst = max(worst, abs(base.expected - exp_[i]) / abs(base.expected), abs(base.scale - sc[i]) / base.scale)
            compared += 1
    if worst > 1e-9:
        raise SystemExit(f"port_z no longer matches ingest.anomalies.baseline (relative difference {worst:.1e}): "
                         "update it to the detector's tiers")
    return compared, worst


# ---------------------------------------------------------------------------------------------
# 5. Public series (NAB)

PUBLIC = {  # file -> how its values aggregate (sum for counts, mean for rates and percentages)
    "realKnownCause/nyc_taxi.csv": "sum",
    "realKnownCause/cpu_utilization_asg_misconfiguration.csv": "mean",
    "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv": "mean",
    "realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv": "mean",
    "realAdExchange/exchange-2_cpc_results.csv": "mean",
    "artificialWithAnomaly/art_daily_jumpsup.csv": "mean",
    "artificialWithAnomaly/art_daily_flatmiddle.csv": "mean",
    "artificialNoAnomaly/art_daily_small_noise.csv": "mean",
}


@dataclass
class Grain:
    name: str
    starts: list[datetime]  # each period's start
    values: np.ndarray
    step: timedelta
    season: int
    filled: int = 0  # periods without a sample (carried forward)


def load_public(path: Path) -> tuple[list[datetime], list[float]]:
    with path.open() as f:
        rows = list(csv.reader(f))[1:]
    return [datetime.fromisoformat(r[0]) for r in rows], [float(r[1]) for r in rows]


def aggregate(ts: Sequence[datetime], vs: Sequence[float], how: str, step: timedelta) -> Grain:
    buckets: dict[datetime, list[float]] = defaultdict(list)
    origin = datetime(2000, 1, 1)
    for t, v in zip(ts, vs, strict=True):
        buckets[origin + (t - origin) // step * step].append(v)
    if step == timedelta(days=1):  # complete days only
        full = max(len(b) for b in buckets.values())
        buckets = {k: b for k, b in buckets.items() if len(b) >= 0.9 * full}
    starts = [min(buckets) + i * step for i in range((max(buckets) - min(buckets)) // step + 1)]
    values, filled, last = [], 0, 0.0
    for s in starts:
        if s in buckets:
            last = float(np.sum(buckets[s]) if how == "sum" else np.mean(buckets[s]))
        else:
            filled += 1
        values.append(last)
    span = starts[-1] - starts[0]
    season_days = 7 if span >= timedelta(weeks=8) else 1
    season = 7 if step == timedelta(days=1) else season_days * 24
    name = "daily, detect" if step == timedelta(days=1) else f"hourly, season 1 {'week' if season_days == 7 else 'day'}"
    return Grain(name, starts, np.array(values), step, season, filled)


@dataclass
class PublicScore:
    windows: int
    judged: int  # windows with a judged period
    hits: int
    hits_either: int  # the two-sided diagnostic
    alerts: int
    correct: int
    false_warmup: float  # false alerts per 30 days judged by the trailing median (1-4 seasons of history)
    false_seasonal: float  # ... by the same-phase median (4 seasons or more)
    delays: list[float]
    messages: int


def score_public(g: Grain, z: np.ndarray, windows: list[tuple[datetime, datetime]], labels: list[datetime],
                 threshold: float) -> PublicScore:
    judged = ~np.isnan(z)
    seasonal = np.arange(len(z)) >= 4 * g.season

    def overlaps(i: int) -> int | None:
        a, b = g.starts[i], g.starts[i] + g.step
        return next((w for w, (ws, we) in enumerate(windows) if a <= we and b > ws), None)

    up = judged & (np.nan_to_num(z) >= threshold)
    either = judged & (np.abs(np.nan_to_num(z)) >= threshold)
    inside = {int(i): overlaps(int(i)) for i in np.flatnonzero(either)}
    hits = {inside[int(i)] for i in np.flatnonzero(up)} - {None}
    hits_either = set(inside.values()) - {None}
    first: dict[int, int] = {}
    for i in np.flatnonzero(up):
        if (w := inside[int(i)]) is not None:
            first.setdefault(w, int(i))

    def false_rate(tier: np.ndarray) -> float:
        days = (judged & tier).sum() * g.step / timedelta(days=1)
        false = sum(1 for i in np.flatnonzero(up & tier) if inside[int(i)] is None)
        return false / days * MONTH if days else math.nan

    delays = []
    for w, i in first.items():
        ws, we = windows[w]
        label = min((t for t in labels if ws <= t <= we), default=ws)
        delays.append(((g.starts[i] + g.step) - label) / timedelta(hours=1))
    key = SeriesKey("public", g.name, "value")
    origin = date(2000, 1, 1)
    rows = [anomaly_of(key, origin + timedelta(days=int(i)), "spike", 1.0, 0.0, float(z[i]), "digest")
            for i in np.flatnonzero(up)]
    judged_windows = {w for i in np.flatnonzero(judged) if (w := overlaps(int(i))) is not None}
    return PublicScore(len(windows), len(judged_windows), len(hits), len(hits_either), int(up.sum()),
                       sum(1 for i in np.flatnonzero(up) if inside[int(i)] is not None),
                       false_rate(~seasonal), false_rate(seasonal), delays, len(replay(rows, Alerts(), origin)))


def rate(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.1f}"


def public_series(threshold: float) -> tuple[list[list[str]], list[list[str]], int]:
    windows_all = json.loads((SAMPLES / "labels" / "combined_windows.json").read_text())
    labels_all = json.loads((SAMPLES / "labels" / "combined_labels.json").read_text())
    rows, raw_rows, agreed = [], [], 0
    for name, how in PUBLIC.items():
        ts, vs = load_public(SAMPLES / "data" / name)
        windows = [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in windows_all[name]]
        labels = [datetime.fromisoformat(t) for t in labels_all[name]]
        for step in (timedelta(days=1), timedelta(hours=1)):
            g = aggregate(ts, vs, how, step)
            for rescaled in (True, False):
                x = g.values * (1000.0 / np.median(np.abs(g.values))) if rescaled else g.values
                z = port_z(x, g.season)[0]
                if step == timedelta(days=1):
                    # the shipped detector on the daily series; the port must agree with it
                    values = {s.date(): float(v) for s, v in zip(g.starts, x, strict=True)}
                    shipped = {(v.day - g.starts[0].date()).days
                               for v in detect(values, sorted(values), Detector(z=threshold), g.starts[0].date())}
                    ported = {int(i) for i in np.flatnonzero(np.nan_to_num(z) >= threshold)}
                    assert shipped == ported, (name, shipped ^ ported)
                    agreed += len(shipped)
                s = score_public(g, z, windows, labels, threshold)
                short = name.split("/")[1].removesuffix(".csv")
                if rescaled:
                    rows.append([short, g.name + (f" ({g.filled} filled)" if g.filled else ""), len(g.values),
                                 f"{s.judged}/{s.windows}", s.hits, s.hits_either, s.alerts,
                                 ratio(s.correct, s.alerts) if s.windows else "-", rate(s.false_warmup),
                                 rate(s.false_seasonal), pct(s.delays, 50), s.messages])
                else:
                    raw_rows.append([short, g.name, f"{s.hits}/{s.judged}", s.alerts, rate(s.false_warmup),
                                     rate(s.false_seasonal)])
    return rows, raw_rows, agreed


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=600, help="generated daily spend series")
    parser.add_argument("--models", type=int, default=120, help="generated model deployments (cost per token)")
    parser.add_argument("--instances", type=int, default=120, help="generated 8-GPU instances (idle rule)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    if min(args.series, args.models, args.instances) < 12:
        parser.error("--series, --models and --instances must be at least 12")
    t_all = time.perf_counter()
    timings: list[tuple[str, float]] = []

    def timed(name: str, fn: Callable):
        t0 = time.perf_counter()
        result = fn()
        timings.append((name, time.perf_counter() - t0))
        return result

    defaults = Alerts()
    d = defaults.detector
    months = (DAYS - JUDGED_FROM) / MONTH

    # 1. daily spend -------------------------------------------------------------------------
    fleet = timed("generate spend series", lambda: spend_fleet(args.series, args.seed))
    verdicts = timed("detect (every day of every series)", lambda: [spend_verdicts(s) for s in fleet])
    shapes = Counter(s.shape for s in fleet)
    print(f"1. Daily spend: {len(fleet)} series x {DAYS} days from {START} (seed {args.seed}); judged days "
          f"{JUDGED_FROM}-{DAYS - 1} ({months:.2f} months). Shapes: "
          + ", ".join(f"{n} {k}" for k, n in sorted(shapes.items()))
          + f"; controls on {sum(bool(s.truth.controls) for s in fleet)} series. Defaults: z >= {d.z}, digest "
          f"max(${d.digest_min_impact:.0f}, {d.digest_min_relative:.0%}), immediate z >= {d.immediate_z} and "
          f"max(${d.immediate_min_impact:.0f}, {d.immediate_min_relative:.0%}); incidents close after "
          f"{defaults.close_after_normal_days} normal days, new baseline after {defaults.new_baseline_after_days}.\n")
    stored_, notified_ = timed("score + replay the state machine (defaults)",
                               lambda: spend_config(fleet, verdicts, d, defaults))
    print(f"Stored (every row with z >= {d.z}):")
    print(kind_table(stored_, months))
    print("\nNotified (messages from ingest.alerts.plan_messages, digest tier or above):")
    print(kind_table(notified_, months, messages=True))
    print(message_mix(notified_))
    print(f"warm-up (days 7-27, under 4 weeks of history) stored false alerts per series-month at z >= {d.z}: "
          + warmup_false_alerts(fleet, verdicts, d.z))

    # sweep ----------------------------------------------------------------------------------
    def sweep() -> list[list[str]]:
        out = []
        for z in (3.0, 3.5, 4.0, 5.0):
            s = d.model_copy(update={"z": z})
            out.append(sweep_row(f"z {z}, digest $50/10%", *spend_config(fleet, verdicts, s, defaults), months))
        for dollars, rel in ((0, 0.0), (25, 0.10), (100, 0.10), (250, 0.10), (50, 0.05), (50, 0.20), (100, 0.20),
                             (25, 0.20)):
            s = d.model_copy(update={"digest_min_impact": float(dollars), "digest_min_relative": rel})
            out.append(sweep_row(f"z 3.5, digest ${dollars}/{rel:.0%}", *spend_config(fleet, verdicts, s, defaults),
                                 months))
        s = d.model_copy(update={"z": 4.0, "digest_min_relative": 0.20})
        out.append(sweep_row("z 4.0, digest $50/20%", *spend_config(fleet, verdicts, s, defaults), months))
        for iz in (4.0, 6.0):
            s = d.model_copy(update={"immediate_z": iz})
            out.append(sweep_row(f"z 3.5, $50/10%, immediate z {iz}", *spend_config(fleet, verdicts, s, defaults),
                                 months))
        for close, new in ((2, 7), (5, 7), (3, 5), (3, 10)):
            a = defaults.model_copy(update={"close_after_normal_days": close, "new_baseline_after_days": new})
            out.append(sweep_row(f"z 3.5, $50/10%, close {close} d, baseline {new} d",
                                 *spend_config(fleet, verdicts, d, a), months))
        return out

    print("\nTuning on the generated spend series (notified recall per kind; s-m = series-month):")
    print(table(SWEEP_HEADERS, timed("sweep", sweep)))

    # 2. cost per token ----------------------------------------------------------------------
    models, cpt_truths, levels = timed("generate cost-per-token series", lambda: cpt_fleet(args.models, args.seed))
    stat, rule = timed("spikes + cost_per_token_regressions", lambda: cpt_rows(models, defaults))
    print(f"\n2. Cost per token: {len(models)} deployments, {sum(bool(t.kind) for t in cpt_truths)} with a "
          f"regression; cost per 1M tokens ${min(levels):.2f}-${max(levels):.2f}. Stored rows by detector:")
    by = {"z on cost per 1M tokens (spikes)": stat,
          f"week over week > {defaults.cost_per_token_week_over_week:.0%}": rule,
          "either (the mart)": [a + b for a, b in zip(stat, rule, strict=True)],
          "diagnostic: z with costs x 1000": timed("spikes on costs x 1000", lambda: cpt_scaled(models, defaults))}
    rows = []
    for name, found in by.items():
        alerts = [sorted({Alert((r["day"] - START).days) for r in f}, key=lambda a: a.at) for f in found]
        t = score(cpt_truths, alerts)
        ev, clean = t["cost per token"], [v for k, v in t.items() if k.startswith("none")]
        cheap = score([tr for tr, lv in zip(cpt_truths, levels, strict=True) if lv < 1.0],
                      [a for a, lv in zip(alerts, levels, strict=True) if lv < 1.0])["cost per token"]
        rows.append([name, ev.recall(), cheap.recall(), ev.precision(), pct(ev.delays, 50), pct(ev.delays, 90),
                     f"{sum(c.alerts for c in clean) / (sum(c.series for c in clean) * months):.2f}"])
    print(table(["detector", "recall", "recall if < $1/1M", "precision", "delay median d", "delay p90 d",
                 "false / series-month"], rows))
    messages = timed("replay cost-per-token incidents", lambda: [
        replay([mart_anomaly(r) for r in sorted(a + b, key=lambda r: r["day"])], defaults)
        for a, b in zip(stat, rule, strict=True)])
    print("Notified (both detectors' rows through the state machine):")
    print(kind_table(score(cpt_truths, messages), months, messages=True))
    print(message_mix(score(cpt_truths, messages)))
    wow = []
    for x in (0.10, 0.15, 0.25, 0.50):
        a = defaults.model_copy(update={"cost_per_token_week_over_week": x})
        end = START + timedelta(days=DAYS - 1)
        found = [[Alert((r["day"] - START).days) for r in cost_per_token_regressions(m, end, a)
                  if (r["day"] - START).days >= JUDGED_FROM] for m in models]
        t = score(cpt_truths, found)
        clean = [v for k, v in t.items() if k.startswith("none")]
        wow.append([f"> {x:.0%}", t["cost per token"].recall(), t["cost per token"].precision(),
                    pct(t["cost per token"].delays, 50),
                    f"{sum(c.alerts for c in clean) / (sum(c.series for c in clean) * months):.2f}"])
    print("Week-over-week threshold (stored rows):")
    print(table(["rise", "recall", "precision", "delay median d", "false / series-month"], wow))

    # 3. idle GPUs ---------------------------------------------------------------------------
    instances = timed("generate hourly utilisation", lambda: idle_fleet(args.instances, args.seed))
    roles = Counter(i.role for i in instances)
    idle_months = HOURS / 24 / MONTH  # the rule needs no history: all 90 days count
    print(f"\n3. Idle weekend: {len(instances)} instances x {GPUS} GPUs x {HOURS} h ("
          + ", ".join(f"{n} {k}" for k, n in sorted(roles.items()))
          + f"); {sum(i.truth.kind == 'idle weekend' for i in instances)} left idle from a Friday afternoon to a "
          f"Monday morning, {sum(i.truth.kind == 'idle overnight' for i in instances)} idle 13-23 h overnight. "
          f"Delays in hours from the first idle hour; 'rule' = when the streak reaches the hours, 'as wired' = when "
          f"spend_anomalies can show it (its start day judged, {defaults.evaluation_delay_hours} h after the day "
          "ends). One finding = one instance and start day, as idle_gpus groups them.")

    def idle_table() -> list[list[str]]:
        out = []
        for below, hours, clock, holder in ((0.05, 12, False, "any"), (0.05, 6, False, "any"),
                                            (0.05, 8, False, "any"), (0.05, 8, True, "any"),
                                            (0.05, 24, False, "any"), (0.10, 12, False, "any"),
                                            (0.05, 12, False, "none"), (0.05, 12, False, "not serving"),
                                            (0.05, 8, True, "not serving")):
            a = defaults.model_copy(update={"idle_gpu_utilization_below": below, "idle_gpu_consecutive_hours": hours})
            found = [streaks(i, below, hours, clock, holder) for i in instances]
            truths = [i.truth for i in instances]
            rule_ = score(truths, [idle_findings(i, f, a, False) for i, f in zip(instances, found, strict=True)])
            wired = score(truths, [idle_findings(i, f, a, True) for i, f in zip(instances, found, strict=True)])
            events = [t for t in rule_.values() if t.events]
            delays = [x for t in events for x in t.delays]
            wired_delays = [x for t in wired.values() for x in t.delays]
            correct, alerts = sum(t.correct for t in events), sum(t.alerts for t in rule_.values())
            false = {role: sum(len(idle_findings(i, f, a, False)) for i, f in zip(instances, found, strict=True)
                               if i.role == role and not i.truth.kind) for role in roles}
            clean_n = {role: sum(1 for i in instances if i.role == role and not i.truth.kind) for role in roles}
            label = (f"< {below:.0%} for {hours} h" + (", clock hours" if clock else "")
                     + {"any": "", "none": ", no holder", "not serving": ", not serving"}[holder])
            out.append([label, rule_["idle weekend"].recall(), rule_["idle overnight"].recall(), ratio(correct, alerts),
                        pct(delays, 50), pct(wired_delays, 50), pct(wired_delays, 90)]
                       + [f"{false[r] / (clean_n[r] * idle_months):.2f}" for r in sorted(roles)])
        return out

    print(table(["rule", "weekend recall", "overnight recall", "precision (all findings)", "delay median h (rule)",
                 "delay median h (as wired)",
                 "delay p90 h (as wired)"] + [f"false / {r} instance-month" for r in sorted(roles)],
                timed("idle rule sweep", idle_table)))
    found = [streaks(i, defaults.idle_gpu_utilization_below, defaults.idle_gpu_consecutive_hours) for i in instances]
    idle_msgs = timed("replay idle incidents (mart rebuilt daily at 12:00)", lambda: [
        idle_messages(i, f, defaults) for i, f in zip(instances, found, strict=True)])
    idle_notified = score([i.truth for i in instances], idle_msgs)
    print("Notified at the defaults (as wired, the mart rebuilt daily at 12:00 UTC; delays in hours):")
    print(kind_table(idle_notified, idle_months, unit="h", messages=True))
    print(message_mix(idle_notified))

    # 4. public series -----------------------------------------------------------------------
    compared, worst = timed("port check", lambda: check_port(fleet))
    rows, raw_rows, agreed = timed("public series", lambda: public_series(d.z))
    print(f"\n4. Public series (NAB @ea702d75, {len(PUBLIC)} files), not tuned on: values rescaled to a median of "
          f"1,000; z >= {d.z}. The hourly grain runs a port of the detector with the season as a parameter; it matches "
          f"ingest.anomalies.baseline on {compared:,} generated days (largest relative difference {worst:.1e}) and "
          f"detect on all {agreed} daily public alerts. Delay = hours from the labelled anomaly to the end of the "
          "first alerting period in its window (negative: before the label). Messages: plan_messages on every "
          "stored row (no $ gate; a period stands for a day).")
    print(table(["series", "grain", "periods", "windows judged", "hit", "hit either way", "alerts", "precision",
                 "false / 30 d warm-up", "false / 30 d seasonal", "delay median h", "messages"], rows))
    print("The same in the series' own units (the $1 scale floor then applies to CPU %, counts and cents):")
    print(table(["series", "grain", "hit / judged", "alerts", "false / 30 d warm-up", "false / 30 d seasonal"],
                raw_rows))

    total = time.perf_counter() - t_all
    print("\nruntime: " + ", ".join(f"{name} {s:.1f} s" for name, s in timings) + f"; total {total:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
