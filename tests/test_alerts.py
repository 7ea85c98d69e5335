"""Spend-anomaly alerts: incidents, exactly-once delivery through the alert ledger, Slack's 429
and 500 answers, secrets, the console fallback and Block Kit, against a local fake Slack."""

import json
import logging
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from fake_slack import FakeSlack
from slack_sdk.http_retry import RateLimitErrorRetryHandler
from slack_sdk.models.blocks import Block
from slack_sdk.webhook import WebhookClient

from ingest.alerts import ConsoleSender, Delivery, WebhookSender, notify, render_run_failure
from ingest.config import Alerts
from orchestration.alerts import SPEND_ANOMALIES, notify_spend_anomalies, post_failed_runs, spend_anomaly_alerts
from orchestration.resources import GpuledgerResource, SlackResource

DAY0 = date(2026, 5, 4)
WEBHOOK_ENV, TOKEN_ENV = "GPULEDGER_SLACK_WEBHOOK_URL", "GPULEDGER_SLACK_BOT_TOKEN"
TOKEN = "xoxb-1111-2222-tokensecret"
WEBHOOK_SECRET = "webhooksecretXYZ"
UI = "https://dagster.example.test"
FAST = SlackResource(pace_seconds=0.05, retry_backoff_seconds=0.05)

TABLE = """
create schema if not exists marts;
create or replace table marts.spend_anomalies (
    day date, scope_type varchar, scope varchar, metric varchar, currency varchar, kind varchar,
    actual decimal(38,10), expected decimal(38,10), deviation decimal(38,10), z double, severity varchar,
    history_days integer, method varchar, top_contributors varchar, evaluated_through date)"""


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def anomaly(n: int, actual: str = "1234.56", expected: str = "400.00", severity: str = "immediate",
            scope: str = "ml-research", metric: str = "effective_cost", currency: str = "USD",
            contributors: tuple[dict, ...] = ()) -> dict:
    return {"day": day(n), "scope_type": "team", "scope": scope, "metric": metric, "currency": currency,
            "kind": "spike", "actual": actual, "expected": expected,
            "deviation": str(float(actual) - float(expected)), "z": 9.1, "severity": severity, "history_days": 28,
            "method": "same_weekday", "top_contributors": json.dumps(list(contributors))}


def write_anomalies(warehouse: Path, evaluated_through: int, rows: list[dict]) -> None:
    """marts.spend_anomalies as the detector leaves it: the rows of one run, all judged through one day."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute(TABLE)
        for r in rows:
            con.execute("insert into marts.spend_anomalies values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [*r.values(), day(evaluated_through)])


def ledger(warehouse: Path, columns: str = "scope, start_day, message_kind, state") -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"select {columns} from alerts.alert_ledger order by seq").fetchall()


def notify_once(warehouse: Path, alerts: Alerts | None = None) -> list[str]:
    """One notification pass to the console sender: the texts it sends."""
    out: list[str] = []
    with duckdb.connect(str(warehouse)) as con:
        notify(con, ConsoleSender(out.append), alerts or Alerts(), "test", lambda _: None)
    return out


@pytest.fixture(autouse=True)
def no_slack_from_the_developer(monkeypatch):
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    monkeypatch.delenv(TOKEN_ENV, raising=False)


@pytest.fixture
def slack():
    fake = FakeSlack()
    yield fake
    fake.close()


@pytest.fixture
def warehouse(tmp_path) -> Path:
    return tmp_path / "gpuledger.duckdb"


def config(tmp_path: Path, **slack: str) -> Path:
    path = tmp_path / "gpuledger.yaml"
    path.write_text(yaml.safe_dump({"warehouse": "gpuledger.duckdb", "alerts": {"dagster_ui_url": UI,
                                                                                 "slack": slack}}))
    return path


def run_job(config_path: Path, instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    return notify_spend_anomalies.execute_in_process(
        resources={"gpuledger": GpuledgerResource(config_path=str(config_path)), "slack": FAST},
        instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=False)


# --- the sensor -------------------------------------------------------------------------------


def test_the_sensor_asks_for_one_run_per_materialization_whatever_the_retries():
    instance = dg.DagsterInstance.ephemeral()
    for _ in range(3):  # a backfill: @asset_sensor would see only the last
        instance.report_runless_asset_event(dg.AssetMaterialization(SPEND_ANOMALIES))

    def evaluate(cursor: str | None):
        return spend_anomaly_alerts(dg.build_sensor_context(instance=instance, cursor=cursor))

    first = evaluate(None)
    keys = [r.run_key for r in first.run_requests]
    ids = [int(k.removeprefix("spend_anomalies:")) for k in keys]
    assert len(keys) == 3 and ids == sorted(ids) and first.cursor == str(ids[-1])

    retried = evaluate(None)  # the tick failed before its cursor was saved: the same run keys, so no new run
    assert [r.run_key for r in retried.run_requests] == keys
    assert isinstance(evaluate(first.cursor), dg.SkipReason)

    instance.report_runless_asset_event(dg.AssetMaterialization(SPEND_ANOMALIES))
    later = evaluate(first.cursor)
    assert len(later.run_requests) == 1 and later.run_requests[0].run_key not in keys


# --- exactly once ----------------------------------------------------------------------------


def test_rerunning_the_notify_job_on_the_same_data_sends_one_message(tmp_path, warehouse, slack, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    path = config(tmp_path, channel="#finops", base_url=slack.api_url)
    driver = {"name": "p5.48xlarge i-0abc", "actual": 900.0, "expected": 200.0, "deviation": 700.0}
    write_anomalies(warehouse, 0, [anomaly(0, contributors=(driver,))])

    assert run_job(path).success and run_job(path).success
    write_anomalies(warehouse, 0, [anomaly(0, contributors=(driver,))])  # re-materialised, same verdict
    assert run_job(path).success

    assert len(slack.delivered) == 1
    message = slack.delivered[0]
    assert message["channel"] == "#finops" and "thread_ts" not in message
    assert message["text"] == ("Spend anomaly (immediate): team ml-research spend $1,234.56 against $400.00 expected "
                               "on 2026-05-04 (+$834.56, +209%), since 2026-05-04")
    assert slack.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert ledger(warehouse, "message_kind, state, severity, deviation, channel, slack_ts") == [
        ("open", "sent", "immediate", Decimal("834.56"), "#finops", "1767225600.000001")]

    write_anomalies(warehouse, 1, [anomaly(0), anomaly(1, severity="critical")])  # escalates: in the thread
    assert run_job(path).success
    assert [m.get("thread_ts") for m in slack.delivered] == [None, "1767225600.000001"]


def test_an_escalation_sent_in_the_run_that_delivers_its_pending_open_goes_in_its_thread(tmp_path, warehouse,
                                                                                         slack, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    path = config(tmp_path, channel="#finops", base_url=slack.api_url)
    write_anomalies(warehouse, 0, [anomaly(0)])
    slack.fail_next(3, 500)  # the first try and both retries: the open stays pending
    assert not run_job(path).success
    write_anomalies(warehouse, 1, [anomaly(0), anomaly(1, severity="critical")])
    assert run_job(path).success  # the pending open, then its escalation in the thread the open started
    assert [(m.get("thread_ts"), m["text"].split(":")[0]) for m in slack.delivered] == [
        (None, "Spend anomaly (immediate)"), ("1767225600.000004", "Escalated (critical)")]  # the 4th request's ts


def test_a_restated_day_is_silent_unless_its_verdict_escalates(warehouse):
    write_anomalies(warehouse, 0, [anomaly(0, "500.00", severity="digest")])
    assert notify_once(warehouse) == ["Spend anomaly (digest): team ml-research spend $500.00 against $400.00 "
                                      "expected on 2026-05-04 (+$100.00, +25%), since 2026-05-04"]

    write_anomalies(warehouse, 0, [anomaly(0, "550.00", severity="digest")])  # restated, still a digest
    assert notify_once(warehouse) == []

    write_anomalies(warehouse, 0, [anomaly(0, "560.00", severity="immediate")])  # restated into a higher tier
    assert notify_once(warehouse) == ["Escalated (immediate): team ml-research spend $560.00 against $400.00 "
                                      "expected on 2026-05-04 (+$160.00, +40%), since 2026-05-04"]
    assert notify_once(warehouse) == []

    # the next day at twice the notified deviation is a change made mid-day showing in full: silent
    write_anomalies(warehouse, 1, [anomaly(0, "560.00"), anomaly(1, "720.00")])
    assert notify_once(warehouse) == []
    # a later day at twice both escalates again, once
    write_anomalies(warehouse, 2, [anomaly(0, "560.00"), anomaly(1, "720.00"), anomaly(2, "1040.00")])
    assert [t.split(":")[0] for t in notify_once(warehouse)] == ["Escalated (immediate)"]
    assert notify_once(warehouse) == []
    assert [k for _, _, k, _ in ledger(warehouse)] == ["open", "escalation:1", "escalation:2"]


def test_seven_anomalous_days_become_the_new_baseline_then_silence(warehouse):
    sent = {}
    for through in range(10):
        rows = [anomaly(n, "500.00", severity="digest") for n in range(min(through, 7) + 1)]
        # after the baseline, even a doubled, critical day says nothing more
        rows += [anomaly(n, "1500.00", severity="critical") for n in range(8, through + 1)]
        write_anomalies(warehouse, through, rows)
        sent[through] = notify_once(warehouse)
    assert sent[0] == ["Spend anomaly (digest): team ml-research spend $500.00 against $400.00 expected "
                       "on 2026-05-04 (+$100.00, +25%), since 2026-05-04"]
    assert sent[6] == ["New baseline (digest): team ml-research spend +$3,000.00/month since 2026-05-04 "
                       "(7 anomalous days in a row; no more messages for this incident)"]
    assert all(sent[d] == [] for d in (1, 2, 3, 4, 5, 7, 8, 9))


def test_an_incident_closes_after_three_normal_days_and_a_later_anomaly_opens_another(warehouse):
    write_anomalies(warehouse, 0, [anomaly(0)])
    assert len(notify_once(warehouse)) == 1

    write_anomalies(warehouse, 2, [anomaly(0), anomaly(2)])  # one normal day between: the same incident
    assert notify_once(warehouse) == []
    write_anomalies(warehouse, 2, [anomaly(2)])  # day 0 restated to normal: still the incident already told
    assert notify_once(warehouse) == []

    write_anomalies(warehouse, 5, [anomaly(2)])  # days 3, 4, 5 normal: closed, nothing to say
    assert notify_once(warehouse) == []
    write_anomalies(warehouse, 6, [anomaly(2), anomaly(6)])
    assert notify_once(warehouse) == ["Spend anomaly (immediate): team ml-research spend $1,234.56 against $400.00 "
                                      "expected on 2026-05-10 (+$834.56, +209%), since 2026-05-10"]
    assert [(s, k) for _, s, k, _ in ledger(warehouse)] == [(day(0), "open"), (day(6), "open")]


def test_info_anomalies_are_stored_but_never_notified(warehouse):
    write_anomalies(warehouse, 1, [anomaly(0, "450.00", severity="info"), anomaly(1, "450.00", severity="info")])
    assert notify_once(warehouse) == []
    write_anomalies(warehouse, 2, [anomaly(n, "450.00", severity="info") for n in (0, 1)] + [anomaly(2)])
    sent = notify_once(warehouse)
    assert len(sent) == 1 and sent[0].endswith("on 2026-05-06 (+$834.56, +209%), since 2026-05-04")
    assert ledger(warehouse, "start_day") == [(day(0),)]


def test_a_crash_between_the_post_and_its_record_resends_rather_than_loses(warehouse, monkeypatch):
    write_anomalies(warehouse, 0, [anomaly(0)])

    def crash(*args):
        raise SystemExit("killed after Slack took the message")

    posted: list[str] = []
    with monkeypatch.context() as patched, pytest.raises(SystemExit), duckdb.connect(str(warehouse)) as con:
        patched.setattr("ingest.alerts.mark_sent", crash)
        notify(con, ConsoleSender(posted.append), Alerts(), "crashed", lambda _: None)
    assert ledger(warehouse, "state") == [("pending",)]

    # the restarted run: at least once, so the message goes out again and is recorded
    assert notify_once(warehouse) == posted
    assert ledger(warehouse, "state") == [("sent",)] and notify_once(warehouse) == []


# --- Slack's answers ---------------------------------------------------------------------------


def test_a_429_is_waited_out_and_the_message_delivered_once(tmp_path, warehouse, slack, monkeypatch):
    monkeypatch.setenv(WEBHOOK_ENV, slack.webhook_url(WEBHOOK_SECRET))
    write_anomalies(warehouse, 0, [anomaly(0)])
    slack.fail_next(1, 429)

    assert run_job(config(tmp_path)).success
    assert [r.status for r in slack.requests] == [429, 200]
    assert slack.requests[1].at - slack.requests[0].at >= 1.0  # Retry-After: 1 honoured
    assert len(slack.delivered) == 1 and "$1,234.56 against $400.00 expected" in slack.delivered[0]["text"]


def test_server_errors_fail_the_run_without_the_secret_and_the_next_run_delivers(tmp_path, warehouse, slack,
                                                                                 monkeypatch):
    monkeypatch.setenv(WEBHOOK_ENV, slack.webhook_url(WEBHOOK_SECRET))
    write_anomalies(warehouse, 0, [anomaly(0)])
    slack.fail_next(3, 500)  # the first try and both retries

    failed = run_job(config(tmp_path))
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
    error = failure.step_failure_data.error
    assert error.message.startswith("dagster._core.definitions.events.Failure: alert not delivered: the Slack "
                                    "webhook in $GPULEDGER_SLACK_WEBHOOK_URL answered HTTP 500 rollup_error")
    assert WEBHOOK_SECRET not in str(error) and WEBHOOK_SECRET not in str(failure)
    assert len(slack.requests) == 3
    assert ledger(warehouse, "state, attempts") == [("pending", 1)]

    assert run_job(config(tmp_path)).success  # Slack is back: the pending claim goes out, once
    assert run_job(config(tmp_path)).success
    assert len(slack.delivered) == 1
    assert ledger(warehouse, "state, attempts, last_error") == [("sent", 2, None)]


def test_posts_to_one_channel_are_paced(warehouse, slack):
    write_anomalies(warehouse, 0, [anomaly(0, scope="ml-research"), anomaly(0, scope="search")])
    sender = WebhookSender(slack.webhook_url(WEBHOOK_SECRET), WEBHOOK_ENV, Delivery(pace_seconds=0.3))
    with duckdb.connect(str(warehouse)) as con:
        assert notify(con, sender, Alerts(), "test", lambda _: None).sent == 2
    assert slack.requests[1].at - slack.requests[0].at >= 0.3


def test_no_secret_reaches_a_log_record_an_event_the_output_or_the_ledger(tmp_path, warehouse, slack, monkeypatch,
                                                                          caplog, capfd):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="slack_sdk")
    webhook = slack.webhook_url(WEBHOOK_SECRET)
    instance = dg.DagsterInstance.ephemeral()
    results = []
    for n, (env, value, slack_config) in enumerate([
            (WEBHOOK_ENV, webhook, {}),
            (TOKEN_ENV, TOKEN, {"channel": "#finops", "base_url": slack.api_url})]):
        monkeypatch.setenv(env, value)
        write_anomalies(warehouse, n, [anomaly(0), anomaly(n, scope=f"team-{n}")])
        slack.fail_next(1, 429)
        slack.fail_next(1, 500)  # retried: the paths where slack_sdk logs the URL at INFO
        results.append(run_job(config(tmp_path, **slack_config), instance))
        slack.fail_next(3, 500)  # exhausted: the failure's text
        write_anomalies(warehouse, n, [anomaly(0), anomaly(n, scope=f"team-{n}"), anomaly(n, scope=f"other-{n}")])
        results.append(run_job(config(tmp_path, **slack_config), instance))
        monkeypatch.delenv(env)
    assert [r.success for r in results] == [True, False, True, False]
    assert len(slack.delivered) == 4  # two per transport: the bot also delivered the webhook's pending claim

    texts = [f"{r.getMessage()} {r.exc_text} {r.args}" for r in caplog.records]
    texts += [f"{e.message} {e.event_specific_data}" for r in results for e in r.all_events]
    texts += [f"{entry.user_message} {entry.dagster_event}" for r in results for entry in instance.all_logs(r.run_id)]
    texts += [*capfd.readouterr(), *(str(row) for row in ledger(warehouse, "*"))]
    texts += [r.body.decode() for r in slack.requests]
    assert texts and caplog.records
    for secret in (WEBHOOK_SECRET, TOKEN):
        assert [t for t in texts if secret in t] == []

    # The check can fail: a client with slack_sdk's own logger writes the webhook URL on a retry.
    caplog.clear()
    slack.fail_next(1, 429)
    WebhookClient(webhook, retry_handlers=[RateLimitErrorRetryHandler()]).send(text="control")
    assert any(WEBHOOK_SECRET in r.getMessage() for r in caplog.records)


def test_without_slack_alerts_print_to_the_console_and_the_run_log(tmp_path, warehouse, capsys):
    write_anomalies(warehouse, 0, [anomaly(0)])
    instance = dg.DagsterInstance.ephemeral()
    result = run_job(config(tmp_path), instance)
    assert result.success
    expected = "Spend anomaly (immediate): team ml-research spend $1,234.56 against $400.00 expected on 2026-05-04"
    assert expected in capsys.readouterr().out
    assert any(expected in (e.user_message or "") for e in instance.all_logs(result.run_id))
    assert ledger(warehouse, "channel, state") == [("console", "sent")]

    assert run_job(config(tmp_path), instance).success
    assert expected not in capsys.readouterr().out  # sent once, to the console too


# --- what a message says ---------------------------------------------------------------------------


def assert_valid_block_kit(blocks: list[dict]) -> None:
    assert 0 < len(blocks) <= 50
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None and type(parsed) is not Block, block  # a known block type
        parsed.validate_json()
        assert parsed.to_dict() == block


def test_messages_are_valid_block_kit_and_say_what_how_much_and_since_when(warehouse):
    drivers = ({"name": "p5.48xlarge i-0abc", "actual": 900.0, "expected": 200.0, "deviation": 700.0},
               {"name": "llama-70b-eval <new>", "actual": 134.56, "expected": 0, "deviation": 134.56})
    write_anomalies(warehouse, 0, [anomaly(0, contributors=drivers),
                                   anomaly(0, "0.9312", "0.4100", metric="cost_per_1m_tokens_fully_loaded",
                                           currency="CHF", scope="x" * 200)])
    notify_once(warehouse, Alerts(dagster_ui_url=UI))
    write_anomalies(warehouse, 6, [anomaly(n, contributors=drivers) for n in range(7)])
    notify_once(warehouse, Alerts(dagster_ui_url=UI))
    messages = ledger(warehouse, "message_kind, text, blocks")
    assert [m[0] for m in messages] == ["open", "open", "new_baseline"]

    for _, text, blocks in messages:
        blocks = json.loads(blocks)
        assert_valid_block_kit(blocks)
        assert text and blocks[0]["type"] == "header" and len(blocks[0]["text"]["text"]) <= 150
        buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
        assert [b["url"] for b in buttons] == [f"{UI}/assets/marts/spend_anomalies"]

    cost_per_token = json.loads(messages[1][2])
    assert cost_per_token[1]["text"]["text"].startswith(
        "*0.93 CHF per 1M tokens* against *0.41 CHF per 1M tokens* expected on *2026-05-04*: "
        "*+0.52 CHF per 1M tokens (+127%)*")
    spend = json.dumps(json.loads(messages[0][2]))
    assert "*Severity*\\nimmediate \\u00b7 z = 9.1" in spend and "*Since*\\n2026-05-04" in spend
    assert "`p5.48xlarge i-0abc`: +$700.00 ($900.00 against $200.00)" in spend
    assert "`llama-70b-eval &lt;new&gt;`: +$134.56" in spend  # a name cannot inject a link or mention
    assert messages[2][1].startswith("New baseline (immediate): team ml-research spend +$25,036.80/month")

    text, blocks = render_run_failure("gpuledger_all", "3f1c9e2a", [], UI)
    assert_valid_block_kit(blocks)


def test_failed_runs_are_posted_without_their_error_text(tmp_path, slack, monkeypatch):
    monkeypatch.setenv(WEBHOOK_ENV, slack.webhook_url(WEBHOOK_SECRET))

    @dg.op
    def load_bill():
        raise ConnectionError("postgres://admin:hunter2@db/ledger unreachable")

    @dg.job
    def billing_period():
        load_bill()

    instance = dg.DagsterInstance.ephemeral()
    result = billing_period.execute_in_process(instance=instance, raise_on_error=False)
    context = dg.build_run_status_sensor_context(
        sensor_name="post_failed_runs", dagster_event=result.get_run_failure_event(), dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"gpuledger": GpuledgerResource(config_path=str(config(tmp_path))), "slack": FAST},
    ).for_run_failure()
    post_failed_runs(context)

    [message] = slack.delivered
    run_id = result.run_id
    assert message["text"] == (f"Dagster run failed: billing_period (run {run_id}); failed steps: load_bill "
                               f"(ConnectionError). {UI}/runs/{run_id}")
    assert_valid_block_kit(message["blocks"])
    assert "hunter2" not in json.dumps(message)


def test_a_slow_start_does_not_flood_slack_with_old_incidents(warehouse):
    # The notifier starts on a warehouse with history: only incidents still recent are news.
    write_anomalies(warehouse, 40, [anomaly(0, scope="long-gone"), anomaly(30)])
    assert [t.split(" spend")[0] for t in notify_once(warehouse)] == ["Spend anomaly (immediate): team ml-research"]
