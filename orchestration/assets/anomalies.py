"""marts.spend_anomalies: the detectors of ingest/anomalies.py over the marts' daily series."""

from datetime import UTC, datetime

import dagster as dg

from ingest import anomalies
from ingest.warehouse import first_row, replace_table
from orchestration.resources import WRITER_POOL, GpuledgerResource

SPEND_ANOMALIES = dg.AssetKey(["marts", "spend_anomalies"])
COLUMNS = {
    "day": "The day judged (UTC); for an idle GPU, the day its idle stretch began.",
    "scope_type": "team, provider_service, workload, model, idle_gpu or budget.",
    "scope": "The team, 'provider / service', workload, model, 'resource GPU n' or team (budget).",
    "metric": "effective_cost, cost_per_1m_tokens_fully_loaded, idle_cost or month_end_forecast.",
    "currency": "ISO 4217 currency of the money columns.",
    "kind": "spike, new_spend, cost_per_token_regression, idle_gpu or budget.",
    "actual": "The day's value of the metric.",
    "expected": "Its baseline: same-weekday median (4 weeks), trailing median, last week's cost per token, "
                "0 for idle GPUs, the budget for a forecast.",
    "deviation": "actual - expected, in the metric's unit.",
    "impact": "The excess in currency (for cost per token: the deviation x the day's tokens / 1M).",
    "z": "Modified z-score (deviation / (1.4826 x MAD), scale floored at 5 % of expected and 1); null for rules.",
    "severity": "info (stored only), digest, immediate or critical (30 days of it >= 10 % of the team's budget).",
    "history_days": "Days of history behind the baseline (for idle GPUs: the hours of the stretch).",
    "method": "same_weekday, trailing_median, new_scope, week_over_week, or the rule's description.",
    "top_contributors": "JSON: up to 3 children (categories/workloads, resources, teams) that moved most.",
    "evaluated_through": "The last complete day judged; days up to it without a row were normal.",
}

# When GPU usage data begins, and the newest hour every provider's GPU bill covers: a day is judged
# only once all of it landed.
DATA_WINDOW = """
    select min(first_hour), min(last_hour) from (
        select provider, min(hour_start) as first_hour, max(hour_start) as last_hour
        from marts.cost_ledger_hourly
        where provider is not null and category in ('inference', 'idle_deployed', 'training', 'batch', 'idle')
        group by provider
    )"""


@dg.asset(
    key=SPEND_ANOMALIES,
    deps=[dg.AssetKey(["intermediate", "int_anomaly_series"]), dg.AssetKey(["intermediate", "int_idle_gpu_streaks"]),
          dg.AssetKey(["marts", "team_spend_daily"]), dg.AssetKey(["marts", "cost_ledger_hourly"])],
    group_name="marts",
    kinds={"python", "duckdb"},
    owners=["team:platform"],
    pool=WRITER_POOL,
    description="Spend anomalies: every scope's days out of line with its own history (z >= 3.5 against a "
                "same-weekday median), new spend, GPUs idle for hours in a row, cost per token up week over "
                "week, month-end forecasts over budget; with expected value, impact, severity and top "
                "contributors. Rebuilt every run over complete days only, so restated bills re-judge their days.",
)
def spend_anomalies(context: dg.AssetExecutionContext, gpuledger: GpuledgerResource) -> dg.MaterializeResult:
    cfg = gpuledger.config
    budgets = {team: float(t.monthly_budget) for team, t in cfg.teams.items() if t.monthly_budget is not None}
    with gpuledger.connect() as con:
        first_hour, last_hour = first_row(con, DATA_WINDOW)
        through = anomalies.evaluated_through(last_hour, datetime.now(UTC).replace(tzinfo=None),
                                              cfg.alerts.evaluation_delay_hours)
        rows: list[dict] = []
        if through is not None:
            start = anomalies.first_complete_day(first_hour)
            series = [anomalies.SeriesRow(*r) for r in con.execute("""
                select day, scope_type, scope, metric, currency, child, cost, tokens
                from intermediate.int_anomaly_series where day <= ? order by day""", [through]).fetchall()]
            streaks = con.execute("""
                select resource_id, gpu_index, currency, streak_start, hours, effective_cost
                from intermediate.int_idle_gpu_streaks where cast(streak_start as date) <= ?
                order by streak_start""", [through]).fetchall()
            forecasts = con.execute("""
                select team, currency, max(month_end_forecast), max(monthly_budget)
                from marts.team_spend_daily where day = ? and monthly_budget is not null
                group by team, currency""", [through]).fetchall()
            rows = (anomalies.spikes(series, start, through, cfg.alerts.detector, budgets)
                    + anomalies.cost_per_token_regressions(series, through, cfg.alerts)
                    + anomalies.idle_gpus(streaks, through, cfg.alerts.detector)
                    + anomalies.over_budget(forecasts, through, through))
        replace_table(con, "marts", "spend_anomalies", anomalies.anomalies_table(rows))
    notified = sum(r["severity"] != "info" for r in rows)
    context.log.info(f"spend anomalies: {len(rows)} found through {through}, {notified} to notify")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(rows),
        "dagster/column_schema": dg.TableSchema(columns=[
            dg.TableColumn(f.name, str(f.type), description=COLUMNS[f.name]) for f in anomalies.ANOMALY_SCHEMA]),
        "evaluated_through": str(through),
        "to_notify": notified,
    })
