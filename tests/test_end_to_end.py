"""The whole chain on a generated fleet: Dagster + dbt + a real DuckDB file, held against the
generator's ground truth (computed from its plan, never by running the pipeline)."""

import json
import logging
import os
import re
import subprocess
import warnings
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from pipeline import close, failed_checks, materialize_all, query, run_messages, unit_economics_mismatches

from ingest.config import load_config
from ingest.day_windows import REQUEST_TABLES, TELEMETRY_TABLES, union_of
from ingest.demo_fleet import generate, hold_back_day
from ingest.demo_fleet.serving import COMPLETION_CANARY, PROMPT_CANARY
from orchestration.assets.dbt import REBUILD_TAG, WAREHOUSE_ENV_VAR, daily_models, gpuledger_models
from orchestration.definitions import defs
from orchestration.jobs import billing_period_job, gpuledger_job, telemetry_and_serving_job
from orchestration.partitions import day_range_tags
from orchestration.project import DBT_EXECUTABLE, DBT_PROJECT_DIR
from orchestration.runs import PipelineRun, run_config, run_days, run_everything

# 31 GPUs: AWS's SP-covered p5, on-demand g5, spot g6 (with a 3-hour collector outage) and a p4d
# that idles over the weekend; a GCP a2 VM under a committed-use discount; an Azure NC A100 VM; an
# on-prem H100 server serving the p5's model too (pooled, and routed by LiteLLM's api_base) and
# running a fine-tune across midnight; two days that cross a billing-period boundary (and GCP's
# Pacific-time invoice month).
FLEET = {"gpus": 31, "days": 2, "seed": 7, "start": date(2026, 10, 31)}


SECOND_DAY = "2026-11-01"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Built the way a deployment builds it day by day: the bills and the first day's telemetry and
    serving files, then the second day's files landing and loading as that day's partition."""
    out = tmp_path_factory.mktemp("fleet")
    generated = generate(out, **FLEET)
    held = hold_back_day(out, date.fromisoformat(SECOND_DAY), tmp_path_factory.mktemp("held"))
    assert len(held) > 20
    instance = dg.DagsterInstance.ephemeral()
    first = run_everything(generated.config_path, instance, log_level="WARNING", say=lambda _: None)
    assert first.success, "the first day's run failed"
    for original, kept in held:
        kept.rename(original)
    second = run_days(generated.config_path, instance, SECOND_DAY, SECOND_DAY, log_level="INFO", say=lambda _: None)
    assert second.success, "the second day's run failed"
    truth = json.loads((out / "ground_truth.json").read_text())
    return {"config": generated.config_path, "warehouse": load_config(generated.config_path).warehouse_path,
            "truth": truth, "result": PipelineRun(first.results + second.results),
            "second_day_logs": run_messages(instance, second.results),
            "instance": instance}


def test_a_new_day_rebuilds_only_that_days_gpu_hours_and_ledger(fleet):
    assert f"daily models: rebuilding {SECOND_DAY} up to 2026-11-02" in fleet["second_day_logs"]
    # the second day's processes were all seen on the first: each keeps its workload, none is resolved again
    (holders,), = query(fleet["warehouse"], "select count(*) from config.process_workloads")
    assert (f"process workloads: {holders:,} holders, 0 resolved by the rules (the others known from a run with "
            "the same rules)") in fleet["second_day_logs"]
    assert f"ledger and marts: rebuilding {SECOND_DAY} up to 2026-11-02 {LEDGER_WINDOW_REASON}" in fleet[
        "second_day_logs"]
    days = query(fleet["warehouse"], """
        select cast(date_trunc('day', hour_start) as date), count(distinct gpu_uuid)
        from intermediate.int_gpu_hours_observed group by 1 order by 1""")
    assert days == [(date(2026, 10, 31), 31), (date(2026, 11, 1), 31)]


def test_a_run_with_nothing_new_rebuilds_nothing_unless_asked(fleet, caplog, capsys):
    """The fixed cost of a run: the day's files are listed again, and neither the days nor the
    ledger are rebuilt. Runs before the tests below that reload files into the warehouse."""
    instance = fleet["instance"]
    before = _marts(fleet["warehouse"])
    holders_before = query(fleet["warehouse"], "select * from config.process_workloads order by all")
    with caplog.at_level(logging.WARNING):
        again = run_days(fleet["config"], instance, SECOND_DAY, SECOND_DAY, say=lambda _: None)
    assert again.success
    # a quiet run says nothing alarming: no "blocking asset check emitted no result" for each
    # dbt test of a model that a Python asset reads
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    # nor a line naming every dbt test that did not run (4,000 characters): the console names three
    # of each asset's and counts the others
    console = capsys.readouterr().err
    assert max(len(line) for line in console.splitlines()) < 600
    unyielded = re.findall(
        r"op '(\w+)' did not yield or return expected outputs \{'\w+', '\w+', '\w+', \.\.\. (\d+) more\}", console)
    assert sorted((op, int(more) + 3) for op, more in unyielded) == [
        ("daily_models", len(list(daily_models.check_specs))),
        ("gpuledger_models", len(list(gpuledger_models.check_specs)))]
    logs = run_messages(instance, again.results)
    assert any(m.startswith("daily models: no telemetry or request ingested since ") and m.endswith(
        "and nothing changed: no day rebuilt") for m in logs)
    assert "ledger and marts: nothing loaded or changed since their last build: not rebuilt" in logs
    # no new holder, the same rules: the holders' workloads are left as they were, none resolved again
    assert "process workloads: no GPU holder ingested since the last run, the same rules: unchanged" in logs
    assert holders_before  # the fleet has GPU holders to keep
    assert query(fleet["warehouse"], "select * from config.process_workloads order by all") == holders_before
    assert {key for key in materialized(again) if key.split("/")[0] in BUILT_LAYERS} == set()
    assert _marts(fleet["warehouse"]) == before
    # the rebuild tag rebuilds the ledger all the same, to the same marts
    forced = defs.resolve_job_def(gpuledger_job.name).execute_in_process(
        instance=instance, run_config=run_config(fleet["config"], "WARNING"), tags={REBUILD_TAG: "all"})
    assert {"marts/cost_ledger_hourly", "marts/unit_economics_daily", "marts/spend_anomalies"} <= materialized(
        PipelineRun([forced]))
    assert _marts(fleet["warehouse"]) == before


def test_a_reloaded_billing_period_rebuilds_the_ledger_over_that_period_only(fleet):
    """AWS delivers the October CUR again (as it does when it restates a period): the ledger's
    hour-grain models rebuild October's days, not November's, the charges only AWS's October (and
    the on-prem charges, rebuilt every time), and the marts come out the same."""
    instance, before = fleet["instance"], _marts(fleet["warehouse"])
    untouched = "marked before the build"  # on one charge per billing partition: gone where it was rebuilt
    with duckdb.connect(str(fleet["warehouse"])) as con:
        marked = con.execute("""
            select charge_id, charge_description from intermediate.int_billing_charges
            where charge_id in (select min(charge_id) from intermediate.int_billing_charges
                                group by x_source_format, billing_period)""").fetchall()
        con.execute("update intermediate.int_billing_charges set charge_description = ? where charge_id in "
                    "(select unnest(?))", [untouched, [charge for charge, _ in marked]])
        forgotten = con.execute("delete from raw.ingested_files where source = 'aws_cur' "  # so that it loads again
                                "and scope like '%BILLING_PERIOD=2026-10'").fetchone()
    assert forgotten == (1,)
    config = run_config(fleet["config"], "INFO")
    billing = defs.resolve_job_def(billing_period_job.name).execute_in_process(
        partition_key="2026-10-01", instance=instance, run_config=config)
    ledger = defs.resolve_job_def(gpuledger_job.name).execute_in_process(instance=instance, run_config=config)
    logs = run_messages(instance, [billing, ledger])
    assert f"ledger and marts: rebuilding 2026-10-01 up to 2026-11-01 {LEDGER_WINDOW_REASON}" in logs
    with duckdb.connect(str(fleet["warehouse"])) as con:
        kept = con.execute("select x_source_format, billing_period from intermediate.int_billing_charges "
                           "where charge_description = ? order by all", [untouched]).fetchall()
        con.executemany("update intermediate.int_billing_charges set charge_description = ? where charge_id = ?",
                        [[description, charge] for charge, description in marked])
    assert kept == [("aws-cur", "2026-11"), ("focus", "2026-10"), ("focus", "2026-11"),
                    ("gcp-billing-export", "2026-10"), ("gcp-billing-export", "2026-11")], kept
    assert _marts(fleet["warehouse"]) == before


def test_a_rebuild_of_every_day_rebuilds_the_ledgers_every_day(fleet):
    """A daily run tagged to rebuild every day (as a changed workload rule does) leaves no day of the
    ledger as it was: the next ledger build takes every day too, to the same marts."""
    instance, before = fleet["instance"], _marts(fleet["warehouse"])
    config = run_config(fleet["config"], "INFO")
    days = defs.resolve_job_def(telemetry_and_serving_job.name).execute_in_process(
        instance=instance, run_config=config, tags={**day_range_tags(SECOND_DAY, SECOND_DAY), REBUILD_TAG: "all"})
    ledger = defs.resolve_job_def(gpuledger_job.name).execute_in_process(instance=instance, run_config=config)
    logs = run_messages(instance, [days, ledger])
    assert f"{REBUILD_TAG} tag: rebuilding every day" in logs
    assert ("a daily build since the ledger's last rebuilt every day (or a hand-picked few models): "
            "rebuilding the ledger's every day") in logs
    assert _marts(fleet["warehouse"]) == before


def test_a_builds_checks_read_what_it_wrote_and_dbt_test_reads_everything(fleet, tmp_path):
    """A late file for the second day rebuilds that day; the build's checks read the day it wrote
    and the charges it rebuilt, not all history (a unique test over a year of CUR lines grew every
    daily run). Rows planted where the build does not write, a duplicate ledger row on the first
    day, a repeated charge id and a GPU instance type missing from the seed in a kept billing
    partition, pass its checks; `dbt test` reads every row and finds all three."""
    instance, warehouse, before = fleet["instance"], fleet["warehouse"], _marts(fleet["warehouse"])
    with duckdb.connect(str(warehouse)) as con:
        # a copy of a first-day row's key with no money (a duplicate dollar would break the
        # reconciliation, which reads the whole ledger)
        planted = """
            select * replace (0 as effective_cost, 0 as billed_cost, 0 as list_cost)
            from marts.cost_ledger_hourly where hour_start < timestamp '2026-11-01' and category = 'direct'"""
        con.execute(f"insert into marts.cost_ledger_hourly {planted} order by all limit 1")
        (kept_id, moved_id, description), = con.execute("""
            select min(charge_id), max(charge_id), max_by(charge_description, charge_id)
            from intermediate.int_billing_charges where x_source_format = 'focus' and billing_period = '2026-10'
            """).fetchall()
        con.execute("update intermediate.int_billing_charges set charge_id = ?, charge_description = 'planted' "
                    "where charge_id = ?", [kept_id, moved_id])
        (cpu_id, cpu_type), = con.execute("""
            select min(charge_id), min_by(x_instance_type, charge_id) from intermediate.int_billing_charges
            where charge_category = 'Usage' and not is_gpu_compute and x_ingested_at is not null""").fetchall()
        con.execute("update intermediate.int_billing_charges set x_instance_type = 'p9.48xlarge' where charge_id = ?",
                    [cpu_id])
        late = con.execute("delete from raw.ingested_files where source = 'nvml' and scope like '%T23.jsonl.gz' "
                           "and scope like '%20261101%' returning scope").fetchall()
    assert len(late) > 1
    late_day = run_days(fleet["config"], instance, SECOND_DAY, SECOND_DAY, log_level="INFO", say=lambda _: None)
    assert late_day.success
    assert f"ledger and marts: rebuilding {SECOND_DAY} up to 2026-11-02 {LEDGER_WINDOW_REASON}" in run_messages(
        instance, late_day.results)
    assert failed_checks(late_day) == []

    everything = dbt_test(warehouse, tmp_path, "int_billing_charges", "cost_ledger_hourly")
    failures, warned = reported_tests(everything.stdout, "Failure"), reported_tests(everything.stdout, "Warning")
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update intermediate.int_billing_charges set x_instance_type = ? where charge_id = ?",
                    [cpu_type, cpu_id])
        con.execute("update intermediate.int_billing_charges set charge_id = ?, charge_description = ? "
                    "where charge_description = 'planted'", [moved_id, description])
        con.execute("delete from marts.cost_ledger_hourly where hour_start < timestamp '2026-11-01' "
                    "and category = 'direct' and effective_cost = 0 and billed_cost = 0")
    assert everything.returncode == 1, everything.stdout
    assert failures == [
        "unique_combination_cost_ledger_hourly_hour_start__billing_period__provider__billing_account_id__currency__"
        "resource_id__team__model__workload__category", "unique_int_billing_charges_charge_id"], failures
    assert warned == ["unknown_gpu_instance_types"], everything.stdout
    assert _marts(warehouse) == before


LEDGER_WINDOW_REASON = "(the days rebuilt and billing periods loaded since their last build), then the marts over them"
BUILT_LAYERS = ("staging", "intermediate", "marts", "published", "reports")  # what dbt and the rest build from raw


def dbt_test(warehouse: Path, tmp_path: Path, *select: str) -> subprocess.CompletedProcess:
    """`dbt test` of `select` on the warehouse, over every day (no day window in the environment)."""
    return subprocess.run(
        [DBT_EXECUTABLE, "test", "--select", *select, "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(tmp_path / "dbt-target")],
        cwd=DBT_PROJECT_DIR, capture_output=True, text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("GPULEDGER_DAY_")},
             WAREHOUSE_ENV_VAR: str(warehouse), "DO_NOT_TRACK": "1"})


def reported_tests(dbt_output: str, kind: str) -> list[str]:
    """The tests dbt's summary names after "<kind> in test " (Failure or Warning), sorted."""
    marker = f"{kind} in test "
    return sorted(line.split(marker)[1].split(" ")[0] for line in dbt_output.splitlines() if marker in line)


def test_the_dbt_unit_tests_pass_here_and_the_pipelines_builds_leave_them_out(fleet, tmp_path):
    log = (fleet["warehouse"].parent / "dbt-target" / "dbt.log").read_text().splitlines()
    events = [json.loads(line) for line in log if line.startswith("{")]
    built = [e["data"]["node_info"]["unique_id"] for e in events if e["info"]["name"] == "NodeFinished"]
    assert any(uid.startswith("model.gpuledger.int_gpu_hour_occupancy") for uid in built)
    assert not [uid for uid in built if uid.startswith("unit_test.")]
    unit = dbt_test(fleet["warehouse"], tmp_path, "test_type:unit")
    assert unit.returncode == 0, unit.stdout
    # the hand-costed CUR lines (stg_aws__cur), a DCGM scrape delivered twice (stg_dcgm__samples), and
    # which GPUs' samples and which devices' holders are combined (int_gpu_timestamps, int_gpu_sample_holders)
    assert "Done. PASS=4 WARN=0 ERROR=0 SKIP=0" in unit.stdout, unit.stdout


def materialized(run: PipelineRun) -> set[str]:
    return {e.asset_key.to_user_string() for e in run.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}


def test_every_team_model_day_matches_ground_truth(fleet):
    assert len(fleet["truth"]["unit_economics"]) > 20
    assert unit_economics_mismatches(fleet["warehouse"], fleet["truth"]) == []


def test_token_counts_are_exact(fleet):
    (requests, tokens), = query(fleet["warehouse"], """
        select sum(requests), sum(input_tokens + output_tokens) from marts.unit_economics_daily""")
    expected = fleet["truth"]["unit_economics"]
    assert requests == sum(e["requests"] for e in expected)
    assert tokens == sum(e["input_tokens"] + e["output_tokens"] for e in expected)


def test_every_category_matches_ground_truth(fleet):
    actual = dict(query(fleet["warehouse"],
                        "select category, sum(effective_cost) from marts.cost_ledger_hourly group by 1"))
    expected = fleet["truth"]["categories"]
    assert set(actual) == set(expected)
    for category, dollars in expected.items():
        assert close(actual[category], dollars), (category, actual[category], dollars)


def test_reconciliation_keeps_every_cent_of_three_providers(fleet):
    rows = query(fleet["warehouse"], """
        select provider, billing_period, source_effective_cost, ledger_effective_cost, difference
        from marts.cost_reconciliation order by 1, 2""")
    periods = {(p["provider"], p["billing_period"]): p for p in fleet["truth"]["billing_periods"]}
    assert [r[:2] for r in rows] == sorted(periods) == [
        ("AWS", "2026-10"), ("AWS", "2026-11"), ("Google Cloud", "2026-10"), ("Google Cloud", "2026-11"),
        ("Microsoft", "2026-10"), ("Microsoft", "2026-11"), ("On-Premises", "2026-10"), ("On-Premises", "2026-11")]
    for provider, period, source, ledger, difference in rows:
        assert abs(float(source) - periods[(provider, period)]["effective_cost"]) < 0.01
        assert abs(float(ledger) - periods[(provider, period)]["effective_cost"]) < 0.01
        assert abs(difference) <= 0.01


def test_every_check_passes(fleet):
    assert failed_checks(fleet["result"]) == []


def _mismatches(expected: list[dict], actual: dict[tuple, tuple], key: tuple[str, ...], fields: tuple[str, ...]):
    """Rows of a mart (by key) against the truth's rows, both ways, every field within tolerance."""
    out = []
    for e in expected:
        got = actual.pop(tuple(e[k] for k in key), None)
        if got is None:
            out.append(f"missing {[e[k] for k in key]}")
            continue
        out += [f"{[e[k] for k in key]} {f}: {a} != {e[f]}" for f, a in zip(fields, got, strict=True)
                if not (a == e[f] if e[f] is None or isinstance(e[f], str) else close(a, e[f]))]
    return out + [f"not in the ground truth: {k}" for k in actual]


def test_team_spend_and_budgets_match_ground_truth(fleet):
    fields = ("effective_cost", "month_to_date_cost", "month_end_forecast", "monthly_budget")
    rows = query(fleet["warehouse"], """
        select cast(day as varchar), team, sum(effective_cost), max(month_to_date_cost), max(month_end_forecast),
               max(monthly_budget)
        from marts.team_spend_daily group by all""")
    expected = fleet["truth"]["team_spend_daily"]
    assert any(e["month_end_forecast"] > (e["monthly_budget"] or 1e12) for e in expected)  # one team over budget
    assert _mismatches(expected, {r[:2]: r[2:] for r in rows}, ("day", "team"), fields) == []


def test_training_runs_match_ground_truth(fleet):
    rows = query(fleet["warehouse"], """
        select workload, strftime(run_start, '%Y-%m-%dT%H:%M:%S+00:00'), team,
               strftime(run_end, '%Y-%m-%dT%H:%M:%S+00:00'), gpu_hours, cost, energy_kwh
        from marts.training_runs""")
    expected = fleet["truth"]["training_runs"]
    assert any(e["start"][:10] != e["end"][:10] for e in expected)  # a run across midnight
    assert _mismatches(expected, {r[:2]: r[2:] for r in rows}, ("workload", "start"),
                       ("team", "end", "gpu_hours", "cost", "energy_kwh")) == []


def test_tco_comparison_matches_ground_truth(fleet):
    rows = query(fleet["warehouse"], """
        select strftime(month, '%Y-%m'), workload, gpu_model, sum(gpu_hours), sum(actual_cost), sum(on_demand_cost),
               sum(spot_cost), sum(committed_cost)
        from marts.tco_comparison group by all""")
    expected = fleet["truth"]["tco_comparison"]
    assert any(e["workload"].startswith("onprem") for e in expected)
    assert _mismatches(expected, {r[:3]: r[3:] for r in rows}, ("month", "workload", "gpu_model"),
                       ("gpu_hours", "effective_cost", "on_demand_cost", "spot_cost", "committed_cost")) == []


def test_no_prompt_or_completion_text_reaches_the_warehouse(fleet):
    data = Path(fleet["warehouse"]).read_bytes()
    assert PROMPT_CANARY.encode() not in data
    assert COMPLETION_CANARY.encode() not in data


def test_unknown_api_keys_stay_unattributed_with_their_hash(fleet):
    rows = query(fleet["warehouse"], """
        select count(*), count(distinct api_key_hash) from intermediate.int_requests_attributed
        where team = 'unattributed'""")
    (count, hashes), = rows
    assert count > 0 and hashes == 2  # the leaked key and the old hackathon key


def _marts(warehouse: Path) -> dict[str, list[tuple]]:
    """The marts, and the day-partitioned GPU-hours under them."""
    tables = [f"marts.{t}" for t in ("cost_ledger_hourly", "unit_economics_daily", "cost_reconciliation",
                                     "team_spend_daily", "training_runs", "tco_comparison", "gpu_efficiency_daily")]
    tables += ["intermediate.int_gpu_hours_observed", "intermediate.int_gpu_hour_occupancy"]
    marts = {t: query(warehouse, f"select * from {t} order by all") for t in tables}
    marts["charges"] = query(warehouse, "select * exclude (x_ingested_at, x_built_at) "
                                        "from intermediate.int_billing_charges order by all")
    return marts


def test_running_again_changes_no_mart(fleet):
    """The fixture built day by day; this run, with no earlier build recorded, rebuilds every day
    with a limit under a day's raw rows, as for a fleet too large for one build: a day per dbt
    build, each a slice of its GPUs at a time. The two must agree row for row."""
    before = _marts(fleet["warehouse"])
    with duckdb.connect(str(fleet["warehouse"]), read_only=True) as con:
        rows = union_of(con, TELEMETRY_TABLES + REQUEST_TABLES, "ts")
        per_day = [n for (n,) in con.execute(f"select count(*) from ({rows}) group by date_trunc('day', ts) "
                                             "order by date_trunc('day', ts)").fetchall()]
    limit = min(per_day) // 2
    text = fleet["config"].read_text()
    fleet["config"].write_text(text + f"daily_build_rows: {limit}\n")
    try:
        instance = dg.DagsterInstance.ephemeral()
        again = run_everything(fleet["config"], instance, log_level="INFO", say=lambda _: None)
    finally:
        fleet["config"].write_text(text)
    assert again.success
    logs = run_messages(instance, again.results)
    slices = [-(-n // limit) for n in per_day]
    assert len(per_day) == 2 and all(n >= 2 for n in slices)
    assert [m for m in logs if m.startswith("daily models: building") or m.startswith("daily models: GPU slice")] == [
        f"daily models: building 2026-10-31 up to 2026-11-01 (1 of 2, at most {limit:,} raw rows a build)",
        *(f"daily models: GPU slice {k} of {slices[0]} (a day of over {limit:,} raw rows is built a slice of its "
          "GPUs at a time)" for k in range(1, slices[0] + 1)),
        f"daily models: building 2026-11-01 up to 2026-11-02 (2 of 2, at most {limit:,} raw rows a build)",
        *(f"daily models: GPU slice {k} of {slices[1]} (a day of over {limit:,} raw rows is built a slice of its "
          "GPUs at a time)" for k in range(1, slices[1] + 1))]
    assert _marts(fleet["warehouse"]) == before
    # and the second run loaded no file a second time: every raw row was loaded exactly once
    (loaded,) = query(fleet["warehouse"], "select sum(rows_loaded) from raw.ingested_files")[0]
    tables = [t for (t,) in query(fleet["warehouse"], """
        select table_name from information_schema.tables
        where table_schema = 'raw' and table_name not in ('quarantine', 'ingested_files', 'parquet_scopes')""")]
    assert len(tables) == 16
    assert loaded == sum(query(fleet["warehouse"], f"select count(*) from raw.{t}")[0][0] for t in tables)


def test_reingesting_the_same_files_changes_no_mart(fleet):
    before = _marts(fleet["warehouse"])
    with duckdb.connect(str(fleet["warehouse"])) as con:
        con.execute("delete from raw.ingested_files")  # forget every fingerprint: every file loads again
    assert materialize_all(fleet["config"]).success
    assert _marts(fleet["warehouse"]) == before


VALIDATOR = Path(__file__).resolve().parents[2] / "shared" / "tools" / "focus-validate"
# Failed rules we accept, and why. Anything else that fails is a conformance bug of ours.
ACCEPTED_FAILURES = {
    # The open billing period has no invoice yet: AWS leaves bill_invoice_id empty until the invoice is
    # issued, and FOCUS wants InvoiceId null then; the validator checks it unconditionally.
    "InvoiceId-C-005-C :: Nullability",
}


def test_the_focus_export_passes_the_finops_foundation_validator(fleet, tmp_path):
    export, junit = tmp_path / "focus.parquet", tmp_path / "junit.xml"
    with duckdb.connect(str(fleet["warehouse"]), read_only=True) as con:
        con.execute(f"copy (select * from marts.focus_cost_and_usage) to '{export}' (format parquet)")
    run = subprocess.run([str(VALIDATOR), str(export), str(junit)], capture_output=True, text=True, timeout=900)
    if run.returncode == 2:
        pytest.skip(f"THE FOCUS VALIDATOR COULD NOT RUN ON THIS MACHINE (conformance tests in dbt still ran): "
                    f"{run.stderr.strip()[-500:]}")
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    failed = {c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None}
    skipped = sum(c.find("skipped") is not None for c in cases)
    warnings.warn(f"FOCUS 1.2 validator on the generated fleet's export: {len(cases) - len(failed) - skipped} "
                  f"passed, {len(failed)} failed ({', '.join(sorted(failed))}), {skipped} skipped", stacklevel=1)
    assert failed <= ACCEPTED_FAILURES, run.stdout
    assert len(cases) - len(failed) - skipped >= 130  # the rules that apply to our columns did run
