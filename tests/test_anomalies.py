"""The spend detector on series small enough to work out by hand."""

import json
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from ingest.anomalies import (
    SeriesRow,
    baseline,
    cost_per_token_regressions,
    detect,
    evaluated_through,
    idle_gpus,
    judge,
    over_budget,
    severity,
    spikes,
)
from ingest.config import Alerts, Detector

START = date(2026, 9, 7)  # a Monday
SETTINGS = Detector()


def days(n: int, start: date = START) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]


def series(values: list[float], start: date = START) -> dict[date, float]:
    return dict(zip(days(len(values), start), values, strict=True))


def test_a_spike_on_a_flat_series_scores_against_the_scale_floor():
    values = series([100.0] * 35 + [300.0])
    base = baseline(values, START + timedelta(days=35), START)
    # 5 weeks of history: the same weekday's median; MAD 0, so the floor: max(5 % of 100, $1) = 5
    assert (base.method, base.expected, base.scale, base.history_days) == ("same_weekday", 100.0, 5.0, 35)
    (verdict,) = detect(values, days(36), SETTINGS)
    assert (verdict.day, verdict.kind, verdict.z, verdict.deviation) == (
        START + timedelta(days=35), "spike", 40.0, 200.0)
    assert severity(200.0, 100.0, 40.0, SETTINGS) == "digest"  # $200 >= max($50, 10 %) but < $250


def test_weekly_seasonality_is_expected_not_alerted():
    week = [100.0] * 5 + [20.0, 20.0]  # busy weekdays, quiet weekends
    values = series(week * 5 + [100.0, 100.0, 100.0, 100.0, 100.0, 100.0])  # the 6th Saturday is busy
    found = detect(values, days(41), SETTINGS)
    assert [(v.day, v.expected) for v in found] == [(START + timedelta(days=40), 20.0)]  # Saturday only
    # two weeks are enough to know a Saturday; with less, the trailing median has to do
    assert baseline(series([*week, *week, *week[:5], 100.0]), START + timedelta(days=19), START).expected == 20.0
    assert baseline(series([*week, 100.0, 100.0, 100.0]), START + timedelta(days=10), START).method == "trailing_median"


def test_under_a_week_of_history_only_a_new_scope_is_noticed():
    values = series([250.0, 260.0, 5000.0])
    (v,) = detect(values, days(3), SETTINGS, data_start=START - timedelta(days=10))  # appeared after the data began
    assert (v.kind, v.day, v.actual) == ("new_spend", START, 250.0)
    # a scope there since the data began is not new, and 3 days are too few to judge the $5,000 day
    assert detect(values, days(3), SETTINGS, data_start=START) == []
    assert judge(series([150.0]), START, START, SETTINGS, is_new=True) is None  # under the $200 notice


def test_trailing_median_with_one_to_four_weeks_of_history():
    history = [100.0, 110.0, 90.0, 100.0, 105.0, 95.0, 100.0, 130.0, 100.0, 70.0]
    values = series([*history, 200.0])
    base = baseline(values, START + timedelta(days=10), START)
    # median 100; residuals 0, 10, -10, 0, 5, -5, 0, 30, 0, -30 -> median 0, MAD 5 -> 1.4826 x 5
    assert base.expected == 100.0
    assert base.scale == pytest.approx(7.413)
    assert judge(values, START + timedelta(days=10), START, SETTINGS).z == pytest.approx(13.49, 0.01)


def test_a_level_shift_becomes_the_new_normal():
    values = series([100.0] * 35 + [200.0] * 42)
    found = [v.day for v in detect(values, days(77), SETTINGS)]
    step = START + timedelta(days=35)
    assert found[0] == step
    # every weekday's median needs 3 of its 4 weeks at the new level: alerts stop after 2 weeks
    assert max(found) < step + timedelta(days=14)


def test_drops_are_not_spend_anomalies():
    assert detect(series([100.0] * 35 + [0.0]), days(36), SETTINGS) == []


@pytest.mark.parametrize(("impact", "expected", "z", "budget", "tier"), [
    (40.0, 100.0, 9.0, None, "info"),  # under $50
    (60.0, 1000.0, 9.0, None, "info"),  # under 10 % of $1,000
    (60.0, 100.0, 4.0, None, "digest"),
    (300.0, 100.0, 4.0, None, "digest"),  # z under 5: not immediate
    (300.0, 100.0, 6.0, None, "immediate"),
    (300.0, 100.0, 6.0, 50_000.0, "critical"),  # 30 x $300 >= 10 % of the monthly budget
])
def test_dollar_gates_decide_who_hears(impact, expected, z, budget, tier):
    assert severity(impact, expected, z, SETTINGS, budget) == tier


def test_judged_days_wait_for_the_bill_and_36_hours():
    now = datetime(2026, 11, 24, 9, 0)
    assert evaluated_through(datetime(2026, 11, 23, 23), now, 36) == date(2026, 11, 21)  # 36 h after 11-22's end
    assert evaluated_through(datetime(2026, 11, 20, 15), now, 36) == date(2026, 11, 19)  # 11-20 not fully billed
    assert evaluated_through(None, now, 36) is None


def _rows(scope: str, per_day: list[tuple[float, int]], team: str = "search") -> list[SeriesRow]:
    return [SeriesRow(d, "model", scope, "cost_per_1m_tokens_fully_loaded", "USD", team, Decimal(str(c)), t)
            for d, (c, t) in zip(days(len(per_day)), per_day, strict=True)]


def test_cost_per_token_regression_week_over_week():
    # $70/day for 1M tokens a day, then the same GPUs serve 0.4M tokens a day from day 14
    rows = _rows("llama", [(70.0, 1_000_000)] * 14 + [(70.0, 400_000)] * 7)
    found = cost_per_token_regressions(rows, START + timedelta(days=20), Alerts())
    first = found[0]
    # day 14: last 7 days $490 for 6.4M tokens ($76.5625 / 1M) against $70 / 1M: +9 %, under 25 %
    assert first["day"] == START + timedelta(days=16)  # $490 / 5.2M = $94.23: +34.6 %
    assert (round(first["actual"], 2), round(first["expected"], 2)) == (Decimal("94.23"), Decimal("70.00"))
    assert round(first["impact"], 2) == Decimal("126.00")  # (94.23 - 70) x 5.2M tokens


def test_spikes_name_their_top_contributors():
    rows = [SeriesRow(d, "team", "search", "effective_cost", "USD", child, Decimal(cost), None)
            for d in days(36)
            for child, cost in (("inference: chat", "100"), ("direct", "10"))]
    rows.append(SeriesRow(START + timedelta(days=36), "team", "search", "effective_cost", "USD", "inference: chat",
                          Decimal("100"), None))
    rows.append(SeriesRow(START + timedelta(days=36), "team", "search", "effective_cost", "USD", "direct",
                          Decimal("910"), None))
    (row,) = spikes(rows, START, START + timedelta(days=36), SETTINGS, {"search": 100_000.0})
    assert (row["scope"], row["actual"], row["expected"], row["severity"]) == (
        "search", Decimal("1010.0000000000"), Decimal("110.0000000000"), "critical")  # 30 x $900 >= $10,000
    assert row["top_contributors"] == (
        '[{"name": "direct", "actual": 910.0, "expected": 10.0, "deviation": 900.0}, '
        '{"name": "inference: chat", "actual": 100.0, "expected": 100.0, "deviation": 0.0}]')


def test_idle_gpus_and_budgets_are_rules():
    streaks = [("i-0abc", gpu, "USD", datetime(2026, 10, 31, gpu), 48 - gpu, Decimal("131.76") - gpu)
               for gpu in range(4)] + [("i-0abc", 0, "USD", datetime(2026, 11, 1, 20), 12, Decimal("30"))]
    first, second = idle_gpus(streaks, date(2026, 11, 2), SETTINGS)
    assert (first["scope"], first["day"], first["impact"], first["severity"], first["method"]) == (
        "i-0abc", date(2026, 10, 31), Decimal("521.0400000000"), "immediate",  # 4 x 131.76 - 6; no z: the gate
        "4 GPUs idle up to 48 h in a row from 2026-10-31 00:00 UTC")
    assert [c["name"] for c in json.loads(first["top_contributors"])] == ["GPU 0", "GPU 1", "GPU 2"]
    assert (second["day"], second["impact"], second["severity"]) == (
        date(2026, 11, 1), Decimal("30.0000000000"), "info")
    rows = over_budget([("research", "USD", Decimal("32502.50"), Decimal("26000")),
                        ("search", "USD", Decimal("9000"), Decimal("12000"))], date(2026, 11, 4), date(2026, 11, 4))
    assert [(r["scope"], r["deviation"], r["severity"]) for r in rows] == [
        ("research", Decimal("6502.5000000000"), "immediate")]  # 25 % over


def test_a_cost_per_token_doubling_is_a_spike_whatever_the_unit_price():
    # $0.50 per 1M tokens for 5 weeks (10 billion tokens a day), then $1.00: the scale floor is $1 of
    # the day's tokens (0.0001 per 1M), not $1 per 1M, which no self-hosted model ever moves by
    rows = _rows("llama", [(5000.0, 10**10)] * 35 + [(10000.0, 10**10)])
    (row,) = spikes(rows, START, START + timedelta(days=35), SETTINGS, {})
    assert (row["kind"], row["expected"], row["actual"], row["z"]) == (
        "spike", Decimal("0.5000000000"), Decimal("1.0000000000"), 20.0)  # scale: 5 % of $0.50
    assert (row["impact"], row["severity"]) == (Decimal("5000.0000000000"), "immediate")
