"""The detectors and the alerts on a generated fleet with labelled, injected anomalies, through the
real pipeline: every injected anomaly is found on its day, with about its excess, and alerted once.

12 GPUs (the p5 and a g5) for 14 days: a one-day $900 data-transfer charge tagged team search on
day 11, and from day 8 the p5's llama deployment gets 40 % of its traffic while holding its GPUs
(its cost per 1M tokens rises week over week). The labels come from the generator's ground truth.
The fleet (conftest.py's anomaly_fleet) is built once per session: test_report.py reads it too.
"""

from datetime import date

import pytest
from pipeline import materialize_all, query


def test_every_injected_anomaly_is_found_on_its_day(anomaly_fleet):
    warehouse, labels, _ = anomaly_fleet
    assert {(x["kind"], x["scope_type"]) for x in labels} == {
        ("spike", "team"), ("spike", "provider_service"), ("cost_per_token_regression", "model")}
    for label in labels:
        rows = query(warehouse, """
            select kind, impact, severity from marts.spend_anomalies
            where scope_type = ? and scope = ? and metric = ? and day = ?""",
                     [label["scope_type"], label["scope"], label["metric"], date.fromisoformat(label["start_day"])])
        assert [r[0] for r in rows] == [label["kind"]], label
        (_, impact, tier), = rows
        assert tier != "info"
        assert float(impact) == pytest.approx(label["excess"], rel=0.1), label


def test_each_incident_is_alerted_once_and_a_rerun_sends_nothing(anomaly_fleet):
    warehouse, _, config = anomaly_fleet
    ledger = "select scope_type, scope, message_kind, state, text from alerts.alert_ledger"
    before = query(warehouse, ledger + " order by all")
    spike = [r for r in before if r[:2] == ("team", "search") and r[2] == "open"]
    assert len(spike) == 1 and spike[0][3] == "sent"
    assert "search" in spike[0][4] and "expected on 2026-11-09" in spike[0][4]
    assert materialize_all(config).success
    assert query(warehouse, ledger + " order by all") == before
