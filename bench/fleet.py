"""Benchmark: the daily run of a generated fleet, as a deployment runs it, against bare DuckDB.

    .venv/bin/python bench/fleet.py [--gpus 1000] [--history 7 28] [--scale-gpus 10000 | 0]
                                    [--workdir DIR] [--keep]

For each history length H it generates a fleet of H + 1 days (`gpuledger generate`: AWS, GCP and
Azure bills, NVML telemetry every 10 s, gateway and LiteLLM logs), holds the last day's telemetry
and serving files back, and then times, each run in its own child process on the fleet's own
persistent Dagster instance (DAGSTER_HOME in the fleet's folder), exactly what `gpuledger run` and
the daemon do:

  (a) first load: every billing period, then the H days of telemetry and serving as one ranged
      run, then the ledger, marts, anomalies, published marts and report;
  (b) a new day: its files land, and the day's partition runs (raw ingestion of the new files,
      the day's GPU-hours and requests), then the ledger and marts;
  (c) the same day again with no new file: the fixed overhead of a run;

and (d) a bare-DuckDB reference that reads the new day's files once (NVML, gateway, LiteLLM and
the AWS CUR) and computes cost per 1M tokens by model x team: each AWS GPU-hour's cost split over
the workloads holding it by samples, each model's cost over teams by output tokens. It is the
practical floor of reading and aggregating the day, not a re-implementation of every attribution
rule (no GCP or Azure bill, no token weights, no shared cost, no de-duplication), so its dollars
are not the pipeline's. With --scale-gpus (10,000 unless 0), a second fleet at that size (1 day
of history, then the new day) gives the marginal cost per million input rows of the pipeline's
new day and of the reference, and their ratio. Input rows are what the reference reads: the lines
of the new day's files (a GPU sample, a request) and its CUR lines; both marginals are over the same
input rows. The pipeline writes more raw rows than that (each process on a GPU is a row of
`raw.nvml_processes`), shown beside them.

Peak RSS is each child's own (wait4: the child and the dbt processes it waited for). Where the
time goes is read back from the Dagster instance: every step's duration in the new day's runs, with
the machine's busy cores while it ran (a step near 1 of 2 cores leaves one idle).
Nothing here is a timed assertion; the figures mean something as ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
from common import BusyCores, Child, Quiet, add_workdir_options, gib, load_average, run_child, table, workdir

from ingest.config import load_config
from ingest.demo_fleet import generate, hold_back_day

START = date(2026, 9, 1)
SEED = 8


@dataclass
class Fleet:
    config: Path
    root: Path
    new_day: date
    held: list[tuple[Path, Path]]  # (landing path, where it waits) of the new day's files

    @property
    def dagster_home(self) -> Path:
        # One instance per fleet: a run of a kept fleet repeated by hand finds its own last builds,
        # where an instance shared with another fleet made its next run rebuild every day.
        return self.root / "dagster_home"


def make_fleet(root: Path, gpus: int, history: int) -> tuple[Fleet, float]:
    t0 = time.perf_counter()
    generated = generate(root, gpus=gpus, days=history + 1, seed=SEED, start=START)
    seconds = time.perf_counter() - t0
    new_day = START + timedelta(days=history)
    held = hold_back_day(root, new_day, root.parent / f"{root.name}-held")
    return Fleet(generated.config_path, root, new_day, held), seconds


def stage(work: Path, fleet: Fleet, name: str, *args: str) -> Child:
    """One pipeline run in a child process on the fleet's Dagster instance."""
    env = {**os.environ, "DAGSTER_HOME": str(fleet.dagster_home), "DO_NOT_TRACK": "1"}
    fleet.dagster_home.mkdir(exist_ok=True)
    (fleet.dagster_home / "dagster.yaml").touch()  # sqlite storage in the folder, said explicitly
    log = work / f"{fleet.root.name}-{name}.log"
    child = run_child([sys.executable, __file__, "--stage", name, "--config", str(fleet.config), *args], env, log)
    if child.returncode != 0:
        sys.stderr.write(log.read_text(errors="replace")[-6000:])
        raise RuntimeError(f"{name} failed; its log is {log}")
    return child


def run_stage(name: str, config: Path, day: str | None) -> int:
    import dagster as dg

    from orchestration.runs import run_days, run_everything

    instance = dg.DagsterInstance.get()
    if name == "first":
        result = run_everything(config, instance, log_level="WARNING")
    else:
        result = run_days(config, instance, day, day, log_level="WARNING")
    return 0 if result.success else 1


def step_seconds(fleet: Fleet, since: float, cores: BusyCores) -> list[tuple[str, float, float | None]]:
    """Every step of the fleet's runs that started after `since`, slowest first: (step, seconds,
    the machine's busy CPU seconds while it ran)."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(fleet.dagster_home)
    with dg.DagsterInstance.get() as instance:
        steps: dict[str, tuple[float, float | None]] = {}
        for record in instance.get_run_records():
            if (record.start_time or 0) < since:
                continue
            for s in instance.get_run_step_stats(record.dagster_run.run_id):
                if s.start_time and s.end_time:
                    key = f"{record.dagster_run.job_name}:{s.step_key}"
                    seconds, busy = steps.get(key, (0.0, 0.0))
                    step_busy = cores.cpu_seconds(s.start_time, s.end_time)
                    steps[key] = (seconds + s.end_time - s.start_time,
                                  None if busy is None or step_busy is None else busy + step_busy)
    return sorted(((k, seconds, busy) for k, (seconds, busy) in steps.items()), key=lambda kv: -kv[1])


def reference(fleet: Fleet, work: Path) -> tuple[float, int, list[tuple]]:
    """The bare-DuckDB floor for the new day: (seconds, input rows read, cost per 1M tokens by model x team)."""
    cfg = load_config(fleet.config)
    files = [landing for landing, _ in fleet.held]
    nvml = [str(p) for p in files if "/telemetry/" in str(p)]
    gateway = [str(p) for p in files if "/serving/gateway/" in str(p)]
    litellm = [str(p) for p in files if "/serving/litellm/" in str(p)]
    cur = [str(p) for p in (fleet.root / "billing" / "aws").rglob("*.parquet")]
    identities = [(t, v) for t, team in cfg.teams.items() for v in (*team.api_keys, *team.litellm_team_ids)]
    models = [(w.name, m) for w in cfg.workloads for m in w.models]
    day = fleet.new_day.isoformat()
    con = duckdb.connect(str(work / f"{fleet.root.name}-reference.duckdb"))
    con.execute("create table identities (team varchar, value varchar)")
    con.executemany("insert into identities values (?, ?)", identities)
    con.execute("create table workload_models (workload varchar, model varchar)")
    con.executemany("insert into workload_models values (?, ?)", models)
    t0 = time.perf_counter()
    con.execute(f"""
        create table samples as
        select resource_id, date_trunc('hour', ts) as hour_start,
            coalesce(json_extract_string(processes[1].env, '$.GPULEDGER_WORKLOAD'),
                     case when processes[1].name = 'pt_main_thread' then 'training' end) as workload
        from read_ndjson({nvml}, compression = 'gzip', columns = {{
            ts: 'TIMESTAMP', resource_id: 'VARCHAR', processes: 'STRUCT(name VARCHAR, env JSON)[]'}})""")
    con.execute(f"""
        create table requests as
        select model, coalesce(api_key_alias, api_key_hash) as identity, usage.completion_tokens as output_tokens,
            usage.prompt_tokens + usage.completion_tokens as tokens
        from read_ndjson({gateway}, compression = 'gzip', columns = {{model: 'VARCHAR', api_key_alias: 'VARCHAR',
            api_key_hash: 'VARCHAR', usage: 'STRUCT(prompt_tokens BIGINT, completion_tokens BIGINT)'}})
        {f'''union all
        select model, coalesce(metadata.user_api_key_team_id, api_key), completion_tokens,
            prompt_tokens + completion_tokens
        from read_ndjson({litellm}, compression = 'gzip', columns = {{model: 'VARCHAR', api_key: 'VARCHAR',
            prompt_tokens: 'BIGINT', completion_tokens: 'BIGINT', metadata: 'STRUCT(user_api_key_team_id VARCHAR)'}})'''
          if litellm else ''}""")
    rows = con.execute(f"""
        with bill as (
            select line_item_resource_id as resource_id, date_trunc('hour', line_item_usage_start_date) as hour_start,
                sum(case line_item_line_item_type
                    when 'SavingsPlanCoveredUsage' then savings_plan_savings_plan_effective_cost
                    when 'DiscountedUsage' then reservation_effective_cost
                    when 'Usage' then line_item_unblended_cost end) as cost
            from read_parquet({cur}, union_by_name = true)
            where line_item_usage_start_date >= '{day}'::timestamp
                and line_item_usage_start_date < '{day}'::timestamp + interval 1 day
            group by resource_id, hour_start
        ),
        shares as (
            select resource_id, hour_start, workload,
                count(*) / sum(count(*)) over (partition by resource_id, hour_start) as share
            from samples group by resource_id, hour_start, workload
        ),
        model_cost as (
            select workload_models.model, sum(bill.cost * shares.share) as cost
            from shares
            inner join bill using (resource_id, hour_start)
            inner join workload_models on shares.workload = workload_models.workload
            group by workload_models.model
        ),
        team_tokens as (
            select requests.model, coalesce(identities.team, 'unattributed') as team,
                sum(requests.output_tokens) as output_tokens, sum(requests.tokens) as tokens
            from requests
            left join identities on requests.identity = identities.value
                or replace(requests.identity, 'sha256:', '') = replace(identities.value, 'sha256:', '')
            group by requests.model, coalesce(identities.team, 'unattributed')
        )
        select team_tokens.model, team_tokens.team,
            model_cost.cost * team_tokens.output_tokens / sum(team_tokens.output_tokens)
                over (partition by team_tokens.model) / team_tokens.tokens * 1e6 as cost_per_1m_tokens
        from team_tokens
        inner join model_cost using (model)
        order by all""").fetchall()
    seconds = time.perf_counter() - t0
    read = con.execute("select (select count(*) from samples) + (select count(*) from requests)").fetchone()[0]
    read += con.execute(f"""select count(*) from read_parquet({cur}, union_by_name = true)
        where line_item_usage_start_date >= '{day}'::timestamp
          and line_item_usage_start_date < '{day}'::timestamp + interval 1 day""").fetchone()[0]
    con.close()
    return seconds, read, rows


def raw_rows_of_day(fleet: Fleet) -> int:
    """Raw rows the new day's files wrote: GPU samples, a row per process on a GPU, requests."""
    with duckdb.connect(str(load_config(fleet.config).warehouse_path), read_only=True) as con:
        files = [f"{landing}" for landing, _ in fleet.held]
        return sum(con.execute(f"select count(*) from raw.{t} where _source_file in (select unnest(?))",
                               [files]).fetchone()[0]
                   for (t,) in con.execute("""
                       select table_name from information_schema.columns
                       where table_schema = 'raw' and column_name = '_source_file'""").fetchall())


@dataclass
class DayRun:
    gpus: int
    history: int
    generate_s: float
    first: Child
    new_day: Child
    no_change: Child
    reference_s: float
    reference_rows: int
    raw_rows: int
    steps: list[tuple[str, float, float | None]]  # (step, seconds, busy CPU seconds)
    prices: list[tuple]


def one_fleet(work: Path, gpus: int, history: int, keep: bool) -> DayRun:
    root = work / f"fleet-{gpus}x{history}"
    print(f"generating {gpus} GPUs x {history + 1} days ...", flush=True)
    fleet, generate_s = make_fleet(root, gpus, history)
    print(f"  {generate_s:.1f} s; the new day {fleet.new_day} has {len(fleet.held)} files", flush=True)
    first = stage(work, fleet, "first")
    print(f"  first load of {history} days: {first.seconds:.1f} s", flush=True)
    for landing, waiting in fleet.held:
        waiting.rename(landing)
    began = time.time()
    with BusyCores() as cores:
        new_day = stage(work, fleet, "day", "--day", fleet.new_day.isoformat())
    steps = step_seconds(fleet, began, cores)
    # the child's start (Python, Dagster and the definitions imported), creating the runs, its exit
    outside = new_day.seconds - sum(seconds for _, seconds, _ in steps)
    all_busy, steps_busy = cores.total(), [busy for _, _, busy in steps]
    if outside > 0 and all_busy is not None and None not in steps_busy:
        steps.append(("(outside any step: start, imports, creating the runs)", outside, all_busy - sum(steps_busy)))
        steps.sort(key=lambda step: -step[1])
    print(f"  new day: {new_day.seconds:.1f} s", flush=True)
    no_change = stage(work, fleet, "day", "--day", fleet.new_day.isoformat())
    print(f"  the same day, nothing new: {no_change.seconds:.1f} s", flush=True)
    reference_s, reference_rows, prices = reference(fleet, work)
    raw_rows = raw_rows_of_day(fleet)
    if not keep:
        shutil.rmtree(root)
        shutil.rmtree(root.parent / f"{root.name}-held", ignore_errors=True)
    return DayRun(gpus, history, generate_s, first, new_day, no_change, reference_s, reference_rows, raw_rows,
                  steps, prices)


def report(runs: list[DayRun]) -> None:
    print()
    print(table(["fleet", "generate s", "first load s", "peak RSS", "new day s", "peak RSS", "no new file s",
                 "reference s", "input rows", "raw rows", "new day / reference"],
                [[f"{r.gpus} GPUs, {r.history} days of history", f"{r.generate_s:.1f}", f"{r.first.seconds:.1f}",
                  gib(r.first.peak_rss), f"{r.new_day.seconds:.1f}", gib(r.new_day.peak_rss),
                  f"{r.no_change.seconds:.1f}", f"{r.reference_s:.2f}", f"{r.reference_rows:,}", f"{r.raw_rows:,}",
                  f"{r.new_day.seconds / r.reference_s:.1f}x"] for r in runs]))
    for r in runs:
        print(f"\nwhere the new day's time went ({r.gpus} GPUs, {r.history} days of history), by step, with the "
              f"machine's busy cores while it ran (of {os.cpu_count()}):")
        print(table(["step", "s", "cores"], [[k, f"{v:.1f}", "n/a" if busy is None or not v else f"{busy / v:.2f}"]
                                             for k, v, busy in r.steps[:10]]))
    by_size = sorted({r.gpus: r for r in runs}.values(), key=lambda r: r.gpus)
    if len(by_size) >= 2:
        small, big = by_size[0], by_size[-1]
        # Both over the same input rows, so the ratio is that of the two times. The raw rows the
        # pipeline writes are 1.8x as many (a GPU's processes are rows of their own): dividing by
        # them, as sessions before the twelfth did, made the ratio look 1.8x smaller.
        rows = (big.reference_rows - small.reference_rows) / 1e6
        pipeline = (big.new_day.seconds - small.new_day.seconds) / rows
        bare = (big.reference_s - small.reference_s) / rows
        print(f"\nmarginal cost per million input rows, {small.gpus} -> {big.gpus} GPUs: pipeline {pipeline:.2f} s, "
              f"bare DuckDB {bare:.2f} s, ratio {pipeline / bare:.1f}x")
        per_raw_row = (big.new_day.seconds - small.new_day.seconds) / ((big.raw_rows - small.raw_rows) / 1e6)
        print(f"(the pipeline's time per million raw rows written, as the eleventh and earlier sessions divided it: "
              f"{per_raw_row:.2f} s, {per_raw_row / bare:.1f}x bare DuckDB's)")
    # the reference reads the AWS bill only: models served on GCP, Azure or on-prem GPUs have no cost in it
    priced = [(m, t, c) for m, t, c in runs[0].prices if c is not None]
    print(f"\nreference cost per 1M tokens (AWS GPUs only, output-token split; not the pipeline's dollars), "
          f"{len(priced)} of {len(runs[0].prices)} model x team pairs served on AWS:")
    print(table(["model", "team", "$ / 1M tokens"], [[m, t, f"{c:.4f}"] for m, t, c in priced[:12]]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=1000)
    parser.add_argument("--history", type=int, nargs="+", default=[7, 28], help="days of history before the new day")
    parser.add_argument("--scale-gpus", type=int, default=10_000,
                        help="a second fleet size, for the marginal cost per million rows (0: none)")
    parser.add_argument("--stage", choices=("first", "day"), help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--day", help=argparse.SUPPRESS)
    add_workdir_options(parser, "generated fleets, warehouses, Dagster instance, logs", dbt=False)
    args = parser.parse_args()
    if args.stage:
        return run_stage(args.stage, args.config, args.day)
    quiet = Quiet()
    print(load_average())
    with workdir(args.workdir, args.keep) as work:
        runs = [one_fleet(work, args.gpus, h, args.keep) for h in args.history]
        if args.scale_gpus:
            runs.append(one_fleet(work, args.scale_gpus, 1, args.keep))
        report(runs)
    print(load_average())
    print(quiet.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
