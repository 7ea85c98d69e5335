"""Spend-anomaly alerts in Dagster: a sensor that starts one notification run per new
materialization of `marts/spend_anomalies`, the job that sends (ingest/alerts.py decides what),
and a sensor that posts failed runs to the same place."""

from typing import TYPE_CHECKING

import dagster as dg

from ingest.alerts import AlertDeliveryError, FailedStep, notify, render_run_failure
from orchestration.assets.anomalies import SPEND_ANOMALIES
from orchestration.resources import WRITER_POOL, GpuledgerResource, SlackResource

STORAGE_ID_TAG = "gpuledger/spend_anomalies_storage_id"
MATERIALIZATIONS_PER_TICK = 50

if TYPE_CHECKING:
    from dagster_shared.error import SerializableErrorInfo


@dg.op(
    pool=WRITER_POOL,  # the alert ledger lives in the warehouse
    description="Turn marts.spend_anomalies into incidents and send each message the alert ledger has not sent.",
)
def send_spend_anomaly_alerts(context: dg.OpExecutionContext, gpuledger: GpuledgerResource,
                              slack: SlackResource) -> None:
    alerts = gpuledger.config.alerts
    try:
        sender = slack.sender(alerts.slack, out=print)
        with gpuledger.connect() as con:
            result = notify(con, sender, alerts, context.run_id, context.log.info)
    except AlertDeliveryError as err:
        # A claim not delivered stays pending in alerts.alert_ledger: the next run sends it.
        raise dg.Failure(description=f"alert not delivered: {err}") from None
    context.log_event(dg.AssetObservation(asset_key=SPEND_ANOMALIES, metadata={
        "alerts_sent": result.sent, "alerts_resent_from_pending": result.retried,
        "info_anomalies_not_notified": result.info_only, "channel": sender.channel}))


@dg.job(description="Send the spend-anomaly alerts marts.spend_anomalies calls for, each exactly once "
        "(alerts.alert_ledger); to Slack, or to the console and the run log when no Slack is configured.")
def notify_spend_anomalies():
    send_spend_anomaly_alerts()


@dg.sensor(
    # by name: a sensor holding the job object is rebuilt to bind its resources (a BetaWarning in 1.13)
    job_name=notify_spend_anomalies.name,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts a notify_spend_anomalies run for every new materialization of marts/spend_anomalies, "
    "oldest first (its cursor is the last storage id handled).",
)
def spend_anomaly_alerts(context: dg.SensorEvaluationContext):
    # Not @asset_sensor: it looks only at the latest materialization and would skip the others
    # of a backfill. The cursor moves only when the tick succeeds, and the run key makes a
    # retried tick start no second run.
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SPEND_ANOMALIES, after_storage_id=after),
        limit=MATERIALIZATIONS_PER_TICK, ascending=True).records
    if not records:
        return dg.SkipReason("no new materialization of marts/spend_anomalies")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"spend_anomalies:{r.storage_id}",
                                    tags={STORAGE_ID_TAG: str(r.storage_id)}) for r in records],
        cursor=str(records[-1].storage_id),
    )


def _innermost_class(error: "SerializableErrorInfo | None") -> str:
    # Dagster wraps an op's exception in DagsterExecutionStepExecutionError; the cause says what broke
    while error is not None and error.cause is not None:
        error = error.cause
    return error.cls_name if error is not None and error.cls_name else "unknown error"


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts every failed run (job, run id, failing steps and their error class, a link to the run) "
    "where the spend alerts go. Never the error text: it can hold connection strings.",
)
def post_failed_runs(context: dg.RunFailureSensorContext, gpuledger: GpuledgerResource, slack: SlackResource):
    # Run-status sensors move their cursor even when a tick fails (at most once), and this one does
    # not touch the warehouse: a run may be writing it, and DuckDB allows one writer.
    run = context.dagster_run
    steps = [FailedStep(e.step_key or "?", _innermost_class(e.step_failure_data.error))
             for e in context.get_step_failure_events()]
    text, blocks = render_run_failure(run.job_name, run.run_id, steps, gpuledger.config.alerts.dagster_ui_url)
    sender = slack.sender(gpuledger.config.alerts.slack, out=print)
    sender.post(text, blocks, None)
    context.log.info(f"posted to {sender.channel}: {text}")
