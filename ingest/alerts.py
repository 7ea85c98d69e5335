"""Spend-anomaly alerts: incidents from `marts.spend_anomalies`, the alert ledger that makes each
message go out once, Block Kit rendering, and delivery through slack-sdk or to the console.

No Dagster here: `orchestration/alerts.py` wires this into a job and sensors.

An incident is one run of anomalous days of one series (scope_type, scope, metric), keyed by its
start day. It is notified when it opens, then only on escalation (a higher severity tier, or a
deviation at least twice the last notified one), once more when it has lasted long enough to be
the new baseline (then never again), and it closes after enough normal days. Every message is
claimed in `alerts.alert_ledger` before it is posted and marked sent after; see `notify` for the
one window where a message can go out twice, and why that side was chosen.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple, Protocol

import duckdb
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler, RetryHandler
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.webhook import WebhookClient

from ingest.config import Alerts, Slack
from ingest.warehouse import utc_now

SCHEMA = "alerts"
LEDGER = f"{SCHEMA}.alert_ledger"
ANOMALIES = "marts.spend_anomalies"
ASSET_PATH = "/assets/marts/spend_anomalies"

OPEN, NEW_BASELINE, ESCALATION = "open", "new_baseline", "escalation"
SEVERITY_RANK = {"info": 0, "digest": 1, "immediate": 2, "critical": 3}
NOTIFIED = "digest"  # the lowest tier that is posted; `info` rows are stored, never notified
# An incident nobody was told about whose last anomalous day is older than this is history, not
# news: without it the first run over a warehouse with months of anomalies would post them all.
STALE_AFTER_DAYS = 14
DAYS_PER_MONTH = 30

_LEDGER_DDL = f"""
create schema if not exists {SCHEMA};
create sequence if not exists {SCHEMA}.alert_ledger_seq;
create table if not exists {LEDGER} (
    scope_type varchar not null,
    scope varchar not null,
    metric varchar not null,
    start_day date not null,          -- the incident's first anomalous day: with the three above, the incident
    message_kind varchar not null,    -- open | escalation:N | new_baseline
    seq bigint not null default nextval('{SCHEMA}.alert_ledger_seq'),  -- claim order
    state varchar not null,           -- pending (claimed, delivery not confirmed) | sent
    day date not null,                -- the day whose figures the message shows
    severity varchar not null,
    deviation decimal(38,10) not null,
    currency varchar,
    text varchar not null,
    blocks varchar not null,          -- Block Kit JSON: a pending message is re-sent exactly as claimed
    channel varchar,                  -- where it went: a Slack channel, webhook or console
    slack_ts varchar,                 -- chat.postMessage's ts (a bot token only): later messages thread on it
    attempts integer not null,
    last_error varchar,
    run_id varchar,
    claimed_at timestamp not null,
    sent_at timestamp,
    primary key (scope_type, scope, metric, start_day, message_kind)
);
"""

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
CENT = Decimal("0.01")


class AlertDeliveryError(Exception):
    """Slack did not take a message. The text names the environment variable, never its value."""


# ---------------------------------------------------------------------------------------------
# Rows and incidents


class SeriesKey(NamedTuple):
    scope_type: str
    scope: str
    metric: str


@dataclass(frozen=True)
class Contributor:
    name: str
    actual: Decimal
    expected: Decimal
    deviation: Decimal


@dataclass(frozen=True)
class Anomaly:
    """One row of marts.spend_anomalies."""

    day: date
    series: SeriesKey
    currency: str
    kind: str
    actual: Decimal
    expected: Decimal
    deviation: Decimal
    z: float | None
    severity: str
    history_days: int | None
    method: str | None
    top_contributors: tuple[Contributor, ...]

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.severity]

    @property
    def notified(self) -> bool:
        return self.rank >= SEVERITY_RANK[NOTIFIED]


@dataclass(frozen=True)
class Incident:
    series: SeriesKey
    start_day: date
    anomalies: tuple[Anomaly, ...]  # one per anomalous day, ascending

    @property
    def last_day(self) -> date:
        return self.anomalies[-1].day

    def peak(self) -> Anomaly | None:
        """The notifiable day to report: the highest tier, then the largest deviation."""
        notifiable = [a for a in self.anomalies if a.notified]
        return max(notifiable, key=lambda a: (a.rank, abs(a.deviation))) if notifiable else None

    def settled_deviation(self) -> Decimal:
        """The deviation of the day after the first, when that day is anomalous too."""
        second = [a for a in self.anomalies if (a.day - self.start_day).days == 1]
        return abs(second[0].deviation) if second else Decimal(0)

    def first_streak(self, days: int) -> tuple[Anomaly, ...] | None:
        """The first `days` strictly consecutive anomalous days, if the incident has them."""
        streak: list[Anomaly] = []
        for a in self.anomalies:
            streak = [*streak, a] if streak and (a.day - streak[-1].day).days == 1 else [a]
            if len(streak) == days:
                return tuple(streak)
        return None


@dataclass(frozen=True)
class LedgerEntry:
    series: SeriesKey
    start_day: date
    message_kind: str
    state: str
    severity: str
    deviation: Decimal
    text: str
    blocks: list[dict]
    slack_ts: str | None


@dataclass(frozen=True)
class Planned:
    """A message the state machine decided on, before it is rendered and claimed."""

    incident: Incident
    kind: str
    shown: Anomaly  # the day whose figures the message shows
    severity: str
    streak: tuple[Anomaly, ...] = ()  # new_baseline only: the consecutive days that made it the new normal

    @property
    def deviation(self) -> Decimal:
        """What the ledger compares escalations with (a new baseline: its lasting excess)."""
        return lasting_excess(self.streak) if self.streak else self.shown.deviation


def _contributors(text: str | None) -> tuple[Contributor, ...]:
    items = json.loads(text) if text else []
    return tuple(Contributor(str(c["name"]), _decimal(c.get("actual")), _decimal(c.get("expected")),
                             _decimal(c.get("deviation"))) for c in items[:3])


def _decimal(value: object) -> Decimal:
    # JSON numbers arrive as floats: go through str so 0.1 stays 0.1
    return Decimal(str(value)) if value is not None else Decimal(0)


def read_anomalies(con: duckdb.DuckDBPyConnection) -> tuple[list[Anomaly], date | None]:
    """Every stored anomaly and the last day the detector judged (None while the mart is absent or empty)."""
    exists = con.execute("select count(*) from information_schema.tables "
                         "where table_schema = 'marts' and table_name = 'spend_anomalies'").fetchone()[0]
    if not exists:
        return [], None
    rows = con.execute(f"""
        select day, scope_type, scope, metric, currency, kind, actual, expected, deviation, z, severity,
               history_days, method, top_contributors, evaluated_through
        from {ANOMALIES} order by scope_type, scope, metric, day""").fetchall()
    anomalies = [Anomaly(day=r[0], series=SeriesKey(r[1], r[2], r[3]), currency=r[4], kind=r[5], actual=r[6],
                         expected=r[7], deviation=r[8], z=r[9], severity=r[10], history_days=r[11], method=r[12],
                         top_contributors=_contributors(r[13])) for r in rows]
    # One value per detector run; should several runs' rows coexist, the latest judgement counts.
    return anomalies, max((r[14] for r in rows), default=None)


def group_incidents(anomalies: Iterable[Anomaly], close_after_normal_days: int,
                    known_starts: Mapping[SeriesKey, Sequence[date]]) -> list[Incident]:
    """Anomalous days of a series belong to one incident until `close_after_normal_days` normal
    days separate them. An incident keeps the start day the ledger already knows when a
    restatement moved its first anomalous day, so restated data never opens it a second time."""
    by_series: dict[SeriesKey, dict[date, Anomaly]] = defaultdict(dict)
    for a in anomalies:
        seen = by_series[a.series].get(a.day)
        if seen is None or (a.rank, abs(a.deviation)) > (seen.rank, abs(seen.deviation)):
            by_series[a.series][a.day] = a  # two kinds on one day: the more severe speaks for it
    incidents = []
    for series, days in by_series.items():
        runs: list[list[Anomaly]] = []
        for a in sorted(days.values(), key=lambda a: a.day):
            if runs and (a.day - runs[-1][-1].day).days - 1 < close_after_normal_days:
                runs[-1].append(a)
            else:
                runs.append([a])
        for run in runs:
            start = _known_start(run[0].day, run[-1].day, known_starts.get(series, ()), close_after_normal_days)
            incidents.append(Incident(series, start, tuple(run)))
    return incidents


def _known_start(first: date, last: date, known: Sequence[date], close_after_normal_days: int) -> date:
    # A ledger start day this close to the run cannot belong to an earlier, closed incident: that
    # one ended at least `close_after_normal_days` normal days before `first`.
    overlapping = [d for d in known if first - timedelta(days=close_after_normal_days) <= d <= last]
    return min(overlapping, default=first)


def next_message(incident: Incident, sent: Sequence[LedgerEntry], evaluated_through: date,
                 new_baseline_after_days: int) -> Planned | None:
    """What, if anything, this incident should say now, given what the ledger says it already said
    (`sent`, in claim order, pending claims included: they are going out)."""
    kinds = {e.message_kind for e in sent}
    peak = incident.peak()
    if peak is None or NEW_BASELINE in kinds:
        return None  # only `info` days, or already accepted as the new normal: silent for good
    if not sent and (evaluated_through - incident.last_day).days > STALE_AFTER_DAYS:
        return None
    streak = incident.first_streak(new_baseline_after_days)
    if streak:
        return Planned(incident, NEW_BASELINE, streak[-1], peak.severity, streak)
    if OPEN not in kinds:
        return Planned(incident, OPEN, peak, peak.severity)
    if escalates(peak, sent[-1], incident.settled_deviation()):
        escalations = sum(e.message_kind.startswith(ESCALATION) for e in sent)
        return Planned(incident, f"{ESCALATION}:{escalations + 1}", peak, peak.severity)
    return None


def escalates(peak: Anomaly, last: LedgerEntry, settled: Decimal = Decimal(0)) -> bool:
    """A higher tier than last notified, or at least twice the notified deviation (or twice the
    incident's second day: a change made mid-day shows only part of itself on its first day)."""
    reference = max(abs(last.deviation), settled)
    doubled = abs(peak.deviation) > 0 and abs(peak.deviation) >= 2 * reference
    return peak.rank > SEVERITY_RANK[last.severity] or doubled


def lasting_excess(streak: Sequence[Anomaly]) -> Decimal:
    """The new baseline's excess: the streak's mean deviation, per month for a daily amount."""
    mean = sum((a.deviation for a in streak), Decimal(0)) / len(streak)
    return mean * DAYS_PER_MONTH if metric_format(streak[0].series.metric).per_day else mean


def plan_messages(anomalies: Sequence[Anomaly], evaluated_through: date, ledger: Sequence[LedgerEntry],
                  alerts: Alerts) -> list[Planned]:
    """Every message the current anomalies call for that the ledger has not claimed yet."""
    by_incident: dict[tuple[SeriesKey, date], list[LedgerEntry]] = defaultdict(list)
    known_starts: dict[SeriesKey, list[date]] = defaultdict(list)
    for e in ledger:
        by_incident[(e.series, e.start_day)].append(e)
        known_starts[e.series].append(e.start_day)
    incidents = group_incidents(anomalies, alerts.close_after_normal_days, known_starts)
    planned = [next_message(i, by_incident[(i.series, i.start_day)], evaluated_through,
                            alerts.new_baseline_after_days) for i in incidents]
    return sorted((p for p in planned if p), key=lambda p: (p.shown.day, -SEVERITY_RANK[p.severity]))


# ---------------------------------------------------------------------------------------------
# Formatting and Block Kit


class MetricFormat(NamedTuple):
    label: str
    unit: str  # money | hours
    suffix: str
    per_day: bool  # a daily amount: a lasting excess reads per month


METRICS = {
    "effective_cost": MetricFormat("spend", "money", "", True),
    "cost_per_1m_tokens_fully_loaded": MetricFormat("cost per 1M tokens (fully loaded)", "money", " per 1M tokens",
                                                    False),
    "idle_hours": MetricFormat("idle GPU-hours", "hours", " GPU-hours", True),
    "idle_cost": MetricFormat("idle GPU cost", "money", "", True),
    "month_end_forecast": MetricFormat("month-end forecast", "money", "", False),
}
SCOPE_TYPES = {"provider_service": "provider × service", "idle_gpu": "idle GPU"}


def metric_format(metric: str) -> MetricFormat:
    return METRICS.get(metric, MetricFormat(metric.replace("_", " "), "money", "", False))


def format_money(amount: Decimal, currency: str, signed: bool = False) -> str:
    """`$1,234.56`, `-$3.10`, `+$834.56`; currencies without a symbol here as `1,234.56 CHF`."""
    cents = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    sign = "-" if cents < 0 else "+" if signed else ""
    symbol = CURRENCY_SYMBOLS.get(currency)
    digits = f"{abs(cents):,.2f}"
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{digits} {currency}"


def format_amount(amount: Decimal, metric: str, currency: str, signed: bool = False) -> str:
    fmt = metric_format(metric)
    if fmt.unit == "hours":
        return f"{'+' if signed and amount >= 0 else ''}{amount:,.1f}{fmt.suffix}"
    return format_money(amount, currency, signed) + fmt.suffix


def _percent(deviation: Decimal, expected: Decimal) -> str:
    return f"{deviation / expected:+.0%}" if expected else "new"


def _escape(text: str) -> str:
    # Slack mrkdwn reserves these three; a scope name must not become a link or a mention
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _days(n: int) -> str:
    return f"{n} day{'s' if n != 1 else ''}"


def describe_scope(series: SeriesKey) -> str:
    return f"{SCOPE_TYPES.get(series.scope_type, series.scope_type)} {series.scope}"


def asset_url(ui_url: str) -> str:
    return ui_url.rstrip("/") + ASSET_PATH


def render_message(p: Planned, evaluated_through: date, ui_url: str) -> tuple[str, list[dict]]:
    """The text fallback (notifications, screen readers, the console) and the Block Kit blocks."""
    a, series = p.shown, p.incident.series
    fmt = metric_format(series.metric)
    since = p.incident.anomalies[0].day
    scope = describe_scope(series)
    actual, expected = (format_amount(v, series.metric, a.currency) for v in (a.actual, a.expected))
    deviation = format_amount(a.deviation, series.metric, a.currency, signed=True)
    expected_word = "budget" if a.kind == "budget" else "expected"
    if p.kind == NEW_BASELINE:
        excess = format_amount(p.deviation, series.metric, a.currency, signed=True)
        excess += "/month" if fmt.per_day else ""
        header = f"New baseline: {scope}"
        text = (f"New baseline ({p.severity}): {scope} {fmt.label} {excess} since {p.streak[0].day} "
                f"({len(p.streak)} anomalous days in a row; no more messages for this incident)")
        headline = (f"{_escape(scope)} {fmt.label} has been above {expected_word} every day since *{p.streak[0].day}*: "
                    f"new baseline *{excess}*. Last day *{a.day}*: *{actual}* against *{expected}* {expected_word}.")
        footer = "accepted as the new normal: no more messages for this incident"
    else:
        escalated = p.kind.startswith(ESCALATION)
        header = f"Spend anomaly{' escalated' if escalated else ''}: {scope} ({p.severity})"
        text = (f"{'Escalated' if escalated else 'Spend anomaly'} ({p.severity}): {scope} {fmt.label} "
                f"{actual} against {expected} {expected_word} on {a.day} ({deviation}, "
                f"{_percent(a.deviation, a.expected)}), since {since}")
        headline = (f"*{actual}* against *{expected}* {expected_word} on *{a.day}*: "
                    f"*{deviation} ({_percent(a.deviation, a.expected)})*, anomalous since *{since}*.")
        footer = "next message only if it escalates or becomes the new baseline"
    fields = [f"*Scope*\n{_escape(scope)}", f"*Metric*\n{fmt.label} (`{series.metric}`)",
              f"*Kind*\n{a.kind.replace('_', ' ')}",
              f"*Severity*\n{p.severity}" + (f" · z = {a.z:.1f}" if a.z is not None else ""),
              f"*Since*\n{since} ({_days(len(p.incident.anomalies))} anomalous)"]
    if a.method:
        history = f", {a.history_days} days of history" if a.history_days is not None else ""
        fields.append(f"*Expected from*\n{_escape(a.method)}{history}")
    blocks = [
        HeaderBlock(text=_clip(header, HeaderBlock.text_max_length)),
        SectionBlock(text=MarkdownTextObject(text=_clip(headline, SectionBlock.text_max_length))),
        SectionBlock(fields=[MarkdownTextObject(text=_clip(f, 2000)) for f in fields]),
    ]
    if a.top_contributors:
        lines = [f"• `{_escape(c.name)}`: {format_amount(c.deviation, series.metric, a.currency, signed=True)} "
                 f"({format_amount(c.actual, series.metric, a.currency)} against "
                 f"{format_amount(c.expected, series.metric, a.currency)})" for c in a.top_contributors]
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text=_clip("*Top contributors*\n" + "\n".join(lines), SectionBlock.text_max_length))))
    blocks += [
        ActionsBlock(elements=[ButtonElement(text="Open in Dagster", url=asset_url(ui_url),
                                             action_id="open_spend_anomalies")]),
        ContextBlock(elements=[MarkdownTextObject(text=_clip(
            f"incident `{series.scope_type}/{_escape(series.scope)}/{series.metric}` since {p.incident.start_day} · "
            f"evaluated through {evaluated_through} · {footer}", 2000))]),
    ]
    return text, [b.to_dict() for b in blocks]


@dataclass(frozen=True)
class FailedStep:
    step_key: str
    error_class: str


def render_run_failure(job_name: str, run_id: str, steps: Sequence[FailedStep],
                       ui_url: str) -> tuple[str, list[dict]]:
    """A failed run: what and where, never the error text (it can hold connection strings)."""
    url = f"{ui_url.rstrip('/')}/runs/{run_id}"
    failed = ", ".join(f"{s.step_key} ({s.error_class})" for s in steps) or "no step failed (the run itself did)"
    text = f"Dagster run failed: {job_name} (run {run_id}); failed steps: {failed}. {url}"
    blocks = [
        HeaderBlock(text=_clip(f"Run failed: {job_name}", HeaderBlock.text_max_length)),
        SectionBlock(fields=[MarkdownTextObject(text=f"*Job*\n`{job_name}`"),
                             MarkdownTextObject(text=f"*Run*\n`{run_id}`"),
                             MarkdownTextObject(text=_clip(f"*Failed steps*\n{_escape(failed)}", 2000))]),
        ActionsBlock(elements=[ButtonElement(text="Open the run", url=url, action_id="open_run")]),
    ]
    return text, [b.to_dict() for b in blocks]


# ---------------------------------------------------------------------------------------------
# The ledger


def ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_LEDGER_DDL)


def read_ledger(con: duckdb.DuckDBPyConnection) -> list[LedgerEntry]:
    rows = con.execute(f"""
        select scope_type, scope, metric, start_day, message_kind, state, severity, deviation, text, blocks, slack_ts
        from {LEDGER} order by seq""").fetchall()
    return [LedgerEntry(SeriesKey(r[0], r[1], r[2]), r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]), r[10])
            for r in rows]


def claim(con: duckdb.DuckDBPyConnection, p: Planned, text: str, blocks: list[dict], run_id: str) -> None:
    """Record the decision to send before sending. The primary key makes a second claim of the
    same message fail loudly rather than post it twice."""
    s, a = p.incident.series, p.shown
    con.execute(f"""
        insert into {LEDGER} (scope_type, scope, metric, start_day, message_kind, state, day, severity, deviation,
                              currency, text, blocks, attempts, run_id, claimed_at)
        values (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, 0, ?, ?)""",
                [s.scope_type, s.scope, s.metric, p.incident.start_day, p.kind, a.day, p.severity,
                 p.deviation, a.currency, text, json.dumps(blocks),
                 run_id, utc_now()])


def _entry_key(e: LedgerEntry) -> list:
    return [e.series.scope_type, e.series.scope, e.series.metric, e.start_day, e.message_kind]


def mark_sent(con: duckdb.DuckDBPyConnection, e: LedgerEntry, channel: str, slack_ts: str | None) -> None:
    con.execute(f"""
        update {LEDGER} set state = 'sent', channel = ?, slack_ts = ?, sent_at = ?, attempts = attempts + 1,
                            last_error = null
        where scope_type = ? and scope = ? and metric = ? and start_day = ? and message_kind = ?""",
                [channel, slack_ts, utc_now(), *_entry_key(e)])


def mark_failed(con: duckdb.DuckDBPyConnection, e: LedgerEntry, error: str) -> None:
    con.execute(f"""
        update {LEDGER} set attempts = attempts + 1, last_error = ?
        where scope_type = ? and scope = ? and metric = ? and start_day = ? and message_kind = ?""",
                [error, *_entry_key(e)])


def _thread_of(e: LedgerEntry, ledger: Sequence[LedgerEntry]) -> str | None:
    # With a bot token, escalations and the new baseline reply in the thread of the first message
    return next((x.slack_ts for x in ledger if (x.series, x.start_day) == (e.series, e.start_day) and x.slack_ts),
                None)


# ---------------------------------------------------------------------------------------------
# Sending


class Sender(Protocol):
    channel: str

    def post(self, text: str, blocks: list[dict], thread_ts: str | None) -> str | None:
        """Deliver one message; the Slack ts when there is one. Raises AlertDeliveryError."""
        ...


class ConsoleSender:
    """No Slack configured: alerts are printed (and the caller logs them to the run)."""

    channel = "console"

    def __init__(self, out: Callable[[str], None] = print) -> None:
        self._out = out

    def post(self, text: str, blocks: list[dict], thread_ts: str | None) -> str | None:
        self._out(text)
        return None


class _SecretFilter(logging.Filter):
    """Blanks known secrets in whatever still reaches the Slack clients' logger (slack_sdk logs
    error texts at ERROR, and a proxy's error could echo a URL)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            record.msg, record.args = redact(message, self.secrets), None
        return True


# slack_sdk 3.47 logs the full webhook URL (the secret) at INFO on every retry and at DEBUG on
# every request, for any logger left at NOTSET: its clients get this one, at WARNING.
SLACK_LOGGER = logging.getLogger("gpuledger.alerts.slack")
SLACK_LOGGER.setLevel(logging.WARNING)
_SECRETS = _SecretFilter()
SLACK_LOGGER.addFilter(_SECRETS)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _summary(body: object) -> str:
    return redact(" ".join(str(body).split())[:120], _SECRETS.secrets)


@dataclass(frozen=True)
class Delivery:
    """How hard to try: Slack allows about one message a second per channel and answers 429 with
    Retry-After; slack_sdk's default client retries only connection errors."""

    pace_seconds: float = 1.1
    rate_limit_retries: int = 3
    server_error_retries: int = 2
    retry_backoff_seconds: float = 0.5
    timeout_seconds: int = 10

    def retry_handlers(self) -> list[RetryHandler]:
        backoff = BackoffRetryIntervalCalculator(backoff_factor=self.retry_backoff_seconds)
        return [ConnectionErrorRetryHandler(max_retry_count=2, interval_calculator=backoff),
                RateLimitErrorRetryHandler(max_retry_count=self.rate_limit_retries),  # sleeps Retry-After
                ServerErrorRetryHandler(max_retry_count=self.server_error_retries, interval_calculator=backoff)]


class _Pacer:
    """`with pacer:` around a post starts it at least `seconds` after the previous one ended
    (counting from the end, not the start, so a slow request cannot bunch two arrivals)."""

    def __init__(self, seconds: float) -> None:
        self._seconds, self._last = seconds, float("-inf")

    def __enter__(self) -> None:
        time.sleep(max(0.0, self._last + self._seconds - time.monotonic()))

    def __exit__(self, *exc: object) -> None:
        self._last = time.monotonic()


class WebhookSender:
    """An incoming webhook: its URL is the secret, and it fixes the channel."""

    channel = "webhook"

    def __init__(self, url: str, env_var: str, delivery: Delivery) -> None:
        _SECRETS.secrets.add(url)
        self._env_var, self._pacer = env_var, _Pacer(delivery.pace_seconds)
        self._client = WebhookClient(url, timeout=delivery.timeout_seconds, logger=SLACK_LOGGER,
                                     retry_handlers=delivery.retry_handlers())

    def post(self, text: str, blocks: list[dict], thread_ts: str | None) -> str | None:
        try:
            with self._pacer:
                response = self._client.send(text=text, blocks=blocks, unfurl_links=False)
        except (OSError, SlackClientError) as err:
            raise AlertDeliveryError(f"could not reach the Slack webhook in ${self._env_var} "
                                     f"({type(err).__name__})") from None
        if response.status_code != 200:  # send() returns errors, it does not raise them
            raise AlertDeliveryError(f"the Slack webhook in ${self._env_var} answered HTTP {response.status_code} "
                                     f"{_summary(response.body)} after retries")
        return None


class BotSender:
    """chat.postMessage with a bot token: any channel the bot is in, threads, no secret in the URL."""

    def __init__(self, token: str, channel: str, env_var: str, delivery: Delivery, base_url: str | None) -> None:
        _SECRETS.secrets.add(token)
        self.channel, self._env_var, self._pacer = channel, env_var, _Pacer(delivery.pace_seconds)
        self._client = WebClient(token=token, base_url=base_url or WebClient.BASE_URL,
                                 timeout=delivery.timeout_seconds, logger=SLACK_LOGGER,
                                 retry_handlers=delivery.retry_handlers())

    def post(self, text: str, blocks: list[dict], thread_ts: str | None) -> str | None:
        try:
            with self._pacer:
                response = self._client.chat_postMessage(channel=self.channel, text=text, blocks=blocks,
                                                         thread_ts=thread_ts, unfurl_links=False)
        except SlackApiError as err:
            data = err.response.data
            reason = data.get("error") if isinstance(data, dict) else _summary(data)
            raise AlertDeliveryError(f"Slack chat.postMessage (token in ${self._env_var}) answered HTTP "
                                     f"{err.response.status_code} {reason} after retries") from None
        except (OSError, SlackClientError) as err:
            raise AlertDeliveryError(f"could not reach Slack chat.postMessage (token in ${self._env_var}) "
                                     f"({type(err).__name__})") from None
        return response.get("ts")


def make_sender(slack: Slack, webhook_url: str | None, bot_token: str | None, delivery: Delivery,
                out: Callable[[str], None] = print) -> Sender:
    """A bot token when set (preferred), else a webhook, else the console."""
    if bot_token:
        if not slack.channel:
            raise AlertDeliveryError(f"${slack.bot_token_env} is set: alerts.slack.channel must name the channel")
        return BotSender(bot_token, slack.channel, slack.bot_token_env, delivery, slack.base_url)
    if webhook_url:
        return WebhookSender(webhook_url, slack.webhook_url_env, delivery)
    return ConsoleSender(out)


# ---------------------------------------------------------------------------------------------
# One notification pass


@dataclass(frozen=True)
class NotifyResult:
    sent: int
    retried: int  # of them, claims an earlier run had left pending
    info_only: int  # anomalies stored at `info` and, by design, not notified


def notify(con: duckdb.DuckDBPyConnection, sender: Sender, alerts: Alerts, run_id: str,
           log: Callable[[str], None]) -> NotifyResult:
    """Claim every message the anomalies call for, then deliver every pending claim, oldest first.

    Exactly once, as far as Slack allows: a claim is committed before its post and marked sent
    after it, and a message whose claim is `sent` is never posted again, whatever re-runs,
    restatements or sensor retries happen. Slack has no idempotency key, so one window remains: a
    crash (or a 5xx that Slack had in fact accepted) after the post and before `sent` is
    committed leaves the claim pending, and the next run posts it again. We err on that side,
    at-least-once, because a spend alert lost costs more than one seen twice; the alternative
    (mark sent first) would silently drop the alert on every crash in the window.
    A delivery error stops the pass: the claim stays pending with the error and the run fails.
    """
    ensure_ledger(con)
    anomalies, evaluated_through = read_anomalies(con)
    pending_before = {tuple(_entry_key(e)) for e in read_ledger(con) if e.state == "pending"}
    if evaluated_through is not None:
        for p in plan_messages(anomalies, evaluated_through, read_ledger(con), alerts):
            text, blocks = render_message(p, evaluated_through, alerts.dagster_ui_url)
            claim(con, p, text, blocks, run_id)
    sent = retried = 0
    ledger = read_ledger(con)
    for i, e in enumerate(ledger):
        if e.state != "pending":
            continue
        try:
            ts = sender.post(e.text, e.blocks, _thread_of(e, ledger))
        except AlertDeliveryError as err:
            mark_failed(con, e, str(err))
            raise
        mark_sent(con, e, sender.channel, ts)
        # the first message's ts threads the ones after it; kept here, not read back from the ledger
        # after every post (409 alerts of a 10,000-GPU fleet's first run took 14 s that way)
        ledger[i] = replace(e, state="sent", slack_ts=ts)
        sent += 1
        retried += tuple(_entry_key(e)) in pending_before
        log(f"alert {e.message_kind} sent to {sender.channel}: {e.text}")
    return NotifyResult(sent, retried, sum(not a.notified for a in anomalies))
