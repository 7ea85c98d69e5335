"""`gpuledger`: generate a demo fleet, run the pipeline, query the marts.

    gpuledger demo                      generate a 31-GPU, 14-day fleet, run everything, print the headlines
    gpuledger generate --out DIR ...    write a demo fleet's landing zone, config and ground truth
    gpuledger run                       materialize every asset for the configured sources
    gpuledger sql "select ..." [--csv]  read-only SQL against the marts
    gpuledger docs                      build and serve the dbt docs site (every model and column)
    gpuledger collect --out DIR         the NVML collector, on a GPU host
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import socket
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

from ingest.config import CONFIG_ENV_VAR, TELEMETRY_TOOLS, ConfigError, config_path_from_env, load_config

DAGSTER_YAML = """\
# Written by gpuledger. Runs launched from the CLI and from `dagster dev` share this instance.
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1  # duckdb_writer: DuckDB allows one writing process per file
"""

HEADLINES = {
    "Cost per 1M tokens by model and team": """
        select model, team,
               sum(requests) as requests,
               sum(input_tokens + output_tokens) as tokens,
               sum(inference_cost) as inference_cost,
               sum(inference_cost) * 1e6 / nullif(sum(input_tokens + output_tokens), 0) as per_1m_tokens,
               sum(fully_loaded_cost) * 1e6 / nullif(sum(input_tokens + output_tokens), 0) as per_1m_fully_loaded
        from unit_economics_daily
        group by model, team
        order by model, inference_cost desc""",
    "Spend by team and category (effective cost)": """
        select team,
               sum(effective_cost) filter (where category = 'inference') as inference,
               sum(effective_cost) filter (where category = 'idle_deployed') as idle_deployed,
               sum(effective_cost) filter (where category in ('training', 'batch')) as jobs,
               sum(effective_cost) filter (where category in ('idle', 'unmonitored')) as idle_gpus,
               sum(effective_cost) filter (where category = 'direct') as direct,
               sum(effective_cost) filter (where category = 'shared') as shared,
               sum(effective_cost) as total
        from cost_ledger_hourly
        group by team
        order by total desc""",
    "Idle share of GPU spend": """
        select currency,
               sum(effective_cost) as gpu_cost,
               coalesce(sum(effective_cost) filter (where category = 'idle'), 0) as idle,
               coalesce(sum(effective_cost) filter (where category = 'idle_deployed'), 0) as idle_deployed,
               coalesce(sum(effective_cost) filter (where category = 'unmonitored'), 0) as unmonitored,
               coalesce(round(100.0 * sum(effective_cost) filter (where category in ('idle', 'idle_deployed',
                     'unmonitored')) / nullif(sum(effective_cost), 0), 1), 0) as idle_percent
        from cost_ledger_hourly
        where category in ('inference', 'idle_deployed', 'training', 'batch', 'idle', 'unmonitored')
        group by currency""",
    "Team spend this month against budget": """
        select team, currency, max(day) as as_of, arg_max(month_to_date_cost, day) as month_to_date,
               arg_max(month_end_forecast, day) as month_end_forecast, max(monthly_budget) as budget,
               bool_or(forecast_over_budget) filter (where day = (select max(day) from team_spend_daily))
                   as over_budget
        from team_spend_daily
        where date_trunc('month', day) = (select date_trunc('month', max(day)) from team_spend_daily)
        group by team, currency
        order by month_end_forecast desc""",
    "What the same GPU-hours would cost in the cloud (TCO)": """
        select workload, provider, gpu_model, sum(gpu_hours) as gpu_hours, sum(actual_cost) as actual_cost,
               sum(on_demand_cost) as cloud_on_demand, sum(spot_cost) as cloud_spot,
               sum(committed_cost) as cloud_committed
        from tco_comparison
        group by workload, provider, gpu_model
        order by actual_cost desc""",
    "Spend anomalies (the alerts above; info-only rows are in marts.spend_anomalies)": """
        select day, scope_type, scope, kind, actual, expected, impact, severity
        from spend_anomalies
        where severity <> 'info'
        order by impact desc
        limit 15""",
    "Reconciliation with the bill": """
        select billing_period, provider, billing_account_id, currency, source_charges,
               source_effective_cost, ledger_effective_cost, unallocated_cost, difference
        from cost_reconciliation
        order by billing_period, provider, billing_account_id""",
}


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal | float):
        if abs(value) < 0.00005:
            return "0.0000"  # never "-0.0000" for a rounding residue
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(columns: list[str], rows: list[tuple]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(r[i], int | float | Decimal) or r[i] is None for r in rows) for i in range(len(columns))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True))

    lines = [line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)]
    return "\n".join(ln.rstrip() for ln in lines)


def query_marts(published: Path, sql: str) -> tuple[list[str], list[tuple]]:
    """`sql` against the published marts (ingest/publish.py): never the warehouse, which a run may be writing."""
    from ingest.publish import CATALOG, connect_catalog

    if not (published / CATALOG).exists():
        raise ConfigError(f"no published marts at {published} yet: run `gpuledger run` (or `gpuledger demo`) first")
    con = connect_catalog(published)
    try:
        rel = con.execute(sql)
        return [d[0] for d in rel.description], rel.fetchall()
    finally:
        con.close()


def print_headlines(published: Path) -> None:
    for title, sql in HEADLINES.items():
        columns, rows = query_marts(published, sql)
        print(f"\n== {title} ==\n{format_table(columns, rows)}")


def ensure_dagster_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path.cwd() / ".dagster_home"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(DAGSTER_YAML)
    return home


def run_pipeline(config_path: Path) -> bool:
    """Materialize every asset through Dagster, recorded in the instance the UI shows."""
    config_path = config_path.resolve()
    config = load_config(config_path)  # fail on a bad config before anything starts
    os.environ[CONFIG_ENV_VAR] = str(config_path.resolve())
    os.environ.setdefault("DO_NOT_TRACK", "1")
    ensure_dagster_home()
    from dagster import DagsterInstance

    from orchestration.runs import run_everything

    print(f"gpuledger: running every asset for {config_path} into {config.warehouse_path}", flush=True)
    began = time.perf_counter()
    with DagsterInstance.get() as instance:
        pipeline = run_everything(config_path, instance, say=lambda m: print(m, flush=True))
    status = "succeeded" if pipeline.success else "FAILED"
    runs = ", ".join(r.run_id[:8] for r in pipeline.results)
    print(f"gpuledger: runs {runs} {status} in {time.perf_counter() - began:.1f} s", flush=True)
    return pipeline.success


def _cmd_generate(args: argparse.Namespace) -> int:
    from ingest.demo_fleet import generate

    fleet = generate(Path(args.out), gpus=args.gpus, days=args.days, seed=args.seed, start=args.start,
                     telemetry=args.telemetry)
    print(f"gpuledger: wrote {fleet.files} files for {args.gpus} GPUs x {args.days} days to {fleet.out} "
          f"in {fleet.seconds:.1f} s; config {fleet.config_path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ingest.demo_fleet import generate
    from ingest.report import REPORT_FILE

    began = time.perf_counter()
    print(f"gpuledger: generating a demo fleet of {args.gpus} GPUs x {args.days} days in {args.out}", flush=True)
    fleet = generate(Path(args.out).resolve(), gpus=args.gpus, days=args.days, seed=args.seed)
    print(f"gpuledger: {fleet.files} files in {fleet.seconds:.1f} s", flush=True)
    ok = run_pipeline(fleet.config_path)
    if ok:
        published = load_config(fleet.config_path).published_path
        print_headlines(published)
        print(f"\n== Spend report (charts, opens offline) ==\n{(published / REPORT_FILE).resolve().as_uri()}")
    print(f"\ngpuledger: demo {'done' if ok else 'FAILED'} in {time.perf_counter() - began:.1f} s. Explore it with\n"
          f"  export {CONFIG_ENV_VAR}={fleet.config_path}\n"
          f"  gpuledger sql \"select * from unit_economics_daily limit 20\"\n"
          f"  dagster dev -w workspace.yaml")
    return 0 if ok else 1


def _cmd_run(args: argparse.Namespace) -> int:
    return 0 if run_pipeline(Path(args.config)) else 1


def _cmd_docs(args: argparse.Namespace) -> int:
    """dbt's documentation site: every model, column, test and the lineage, with the warehouse's
    own column types (dbt reads them, so run it when no pipeline run is writing)."""
    from orchestration.assets.dbt import MEMORY_LIMIT_ENV_VAR, WAREHOUSE_ENV_VAR
    from orchestration.project import DBT_PROJECT_DIR, run_dbt

    cfg = load_config(Path(args.config))
    if not cfg.warehouse_path.exists():
        raise ConfigError(f"no warehouse at {cfg.warehouse_path} yet: run `gpuledger run` (or `gpuledger demo`) first")
    env = {WAREHOUSE_ENV_VAR: str(cfg.warehouse_path), MEMORY_LIMIT_ENV_VAR: cfg.memory_limit}
    target = DBT_PROJECT_DIR / "target" / "docs"
    run_dbt("docs", "generate", "--target-path", str(target), env=env)
    print(f"gpuledger: dbt docs in {target} (index.html, manifest.json, catalog.json)")
    if not args.no_serve:
        run_dbt("docs", "serve", "--target-path", str(target), "--port", str(args.port), "--host", "127.0.0.1",
                "--no-browser", env=env)
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    from ingest.collector import DEFAULT_ENV_ALLOWLIST, CollectorOptions, NvmlUnavailable, collect_until_signalled

    host = args.host or socket.gethostname()
    resource_id = args.resource_id or os.environ.get("GPULEDGER_RESOURCE_ID")
    if resource_id is None and config_path_from_env().is_file():  # the config's host -> resource mapping
        resource_id = load_config(config_path_from_env()).hosts.get(host)
    options = CollectorOptions(out=Path(args.out), interval=args.interval, host=host, resource_id=resource_id,
                               env_allowlist=tuple(args.env_allow or DEFAULT_ENV_ALLOWLIST), duration=args.duration)
    try:
        stats = collect_until_signalled(options)
    except NvmlUnavailable as err:
        print(f"gpuledger collect: {err}", file=sys.stderr)
        return 2
    print(f"gpuledger collect: {stats.samples} samples in {stats.cycles} cycles, {len(stats.files)} files, "
          f"{stats.cpu_ms_per_sample:.3f} ms CPU per sample")
    return 0


def _cmd_sql(args: argparse.Namespace) -> int:
    columns, rows = query_marts(load_config(Path(args.config)).published_path, args.query)
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        print(format_table(columns, rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpuledger", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def fleet_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--gpus", type=int, default=31,
                       help="GPUs in the fleet (default 31: AWS, GCP, Azure and an on-prem server); 1,000 GPUs x "
                       "30 days takes about 20 minutes, 3 GB of memory and 13 GB of disk")
        p.add_argument("--days", type=int, default=14,
                       help="days of data (default 14: enough history for the anomaly detectors)")
        p.add_argument("--seed", type=int, default=42, help="random seed; the same seed gives the same bytes")

    gen = sub.add_parser("generate", help="write a demo fleet's landing zone, gpuledger.yaml and ground_truth.json")
    gen.add_argument("--out", required=True, help="folder to write to")
    gen.add_argument("--start", type=date.fromisoformat, default=date(2026, 10, 29), help="first day (UTC)")
    gen.add_argument("--telemetry", choices=TELEMETRY_TOOLS, default="nvml",
                     help="the tool the GPU hosts' files come from (default: gpuledger's NVML collector)")
    fleet_options(gen)
    gen.set_defaults(func=_cmd_generate)

    demo = sub.add_parser("demo", help="generate a demo fleet, run the pipeline on it and print the headlines")
    demo.add_argument("--out", default="data/demo", help="where the demo fleet and its warehouse go")
    fleet_options(demo)
    demo.set_defaults(func=_cmd_demo)

    run = sub.add_parser("run", help="materialize every asset for the configured sources")
    run.add_argument("--config", default=str(config_path_from_env()), help=f"gpuledger.yaml (${CONFIG_ENV_VAR})")
    run.set_defaults(func=_cmd_run)

    collect = sub.add_parser("collect", help="sample every GPU of this host through NVML into hourly files")
    collect.add_argument("--out", required=True, help="folder the hourly files go to (a landing zone)")
    collect.add_argument("--interval", type=float, default=10.0, help="seconds between samples (default 10)")
    collect.add_argument("--host", help="host name to record (default: this machine's)")
    collect.add_argument("--resource-id", help="the billing resource id of this host, e.g. its EC2 instance id "
                         "(default: $GPULEDGER_RESOURCE_ID, else the config's hosts mapping)")
    collect.add_argument("--env-allow", nargs="*", help="environment variables of GPU processes to record (default: "
                         "GPULEDGER_WORKLOAD, GPULEDGER_JOB, VLLM_SERVED_MODEL_NAME, MODEL_NAME, SLURM_JOB_*)")
    collect.add_argument("--duration", type=float, help="stop after this many seconds (default: run until SIGTERM)")
    collect.set_defaults(func=_cmd_collect)

    sql = sub.add_parser("sql", help="run a read-only query against the marts")
    sql.add_argument("query")
    sql.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    sql.add_argument("--config", default=str(config_path_from_env()), help=f"gpuledger.yaml (${CONFIG_ENV_VAR})")
    sql.set_defaults(func=_cmd_sql)

    docs = sub.add_parser("docs", help="build dbt's documentation site of every model and column, and serve it")
    docs.add_argument("--port", type=int, default=8080, help="where to serve it (default 8080)")
    docs.add_argument("--no-serve", action="store_true", help="only build it (dbt_project/target/docs)")
    docs.add_argument("--config", default=str(config_path_from_env()), help=f"gpuledger.yaml (${CONFIG_ENV_VAR})")
    docs.set_defaults(func=_cmd_docs)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Progress of the plain-Python parts; Dagster and dbt report through Dagster's own logger.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("gpuledger: %(message)s"))
    logging.getLogger("ingest").addHandler(handler)
    logging.getLogger("ingest").setLevel(logging.INFO)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"gpuledger: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        import duckdb

        if isinstance(err, duckdb.Error) and args.command == "sql":
            print(f"gpuledger: query failed: {err}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
