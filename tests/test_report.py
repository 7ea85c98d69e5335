"""The spend report (ingest/report.py, asset reports/spend_report) as a user opens it: in headless
Chromium, offline, every chart drawn, and the numbers on the page equal to SQL over the warehouse.

It reads the report the pipeline itself wrote for conftest.py's anomaly_fleet (12 GPUs x 14 days
with a $900 egress charge of team search injected on day 11), so no other pipeline is built.
"""

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from browser import chromium
from pipeline import query
from plotly.offline import get_plotlyjs

from ingest.config import load_config
from ingest.report import HEATMAP_GPUS, NONE_NOTE, REPORT_FILE, Window, default_window, money, render, write_report

# The charts the page draws when every mart has rows: cost per token, team, category, idle, heatmap, TCO.
CHARTS = 6
CHART_TITLES = {"cost per 1M tokens": 0, "by team": 1, "by category": 2, "idle": 3, "utilization": 4, "TCO": 5}
READ_PAGE = """() => {
    const charts = [...document.querySelectorAll('.plotly-graph-div')].map(d => ({
        id: d.id,
        title: d.layout.title.text,
        svg: d.querySelectorAll('svg.main-svg').length,
        data: d.data.map(t => ({name: t.name, type: t.type, x: t.x, y: t.y, z: t.z || null,
                                customdata: t.customdata || null})),
    }));
    const tables = {};
    for (const t of document.querySelectorAll('table')) {
        tables[t.id] = [...t.querySelectorAll('tbody tr')].map(r => [...r.cells].map(c => c.textContent));
    }
    const headline = {};
    for (const v of document.querySelectorAll('.tile .value')) { headline[v.id] = v.textContent; }
    return {
        declared: Number(document.querySelector('meta[name=gpuledger-charts]').content),
        charts, tables, headline,
        notes: [...document.querySelectorAll('.none')].map(n => n.textContent),
    };
}"""


def open_report(path: Path, screenshot: Path | None = None) -> tuple[dict, list[str], list[str]]:
    """The page as Chromium drew it, the console and page errors, and every URL it requested."""
    with chromium() as b:
        requested: list[str] = []
        b.page.on("request", lambda r: requested.append(r.url))
        b.page.goto(path.resolve().as_uri(), wait_until="load")
        b.page.wait_for_function("document.querySelectorAll('.plotly-graph-div .main-svg').length > 0 || "
                                 "document.querySelectorAll('.plotly-graph-div').length === 0")
        seen = b.page.evaluate(READ_PAGE)
        if screenshot is not None:
            b.page.screenshot(path=str(screenshot), full_page=True)
        return seen, b.errors, requested


@pytest.fixture(scope="module")
def report(anomaly_fleet, tmp_path_factory):
    warehouse, labels, config = anomaly_fleet
    path = load_config(config).published_path / REPORT_FILE
    shot = tmp_path_factory.mktemp("report") / "spend_report.png"
    seen, errors, requested = open_report(path, shot)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        window = default_window(con, "USD")
    return {"path": path, "seen": seen, "errors": errors, "requested": requested, "shot": shot,
            "warehouse": warehouse, "labels": labels, "window": window}


def chart(seen: dict, words: str) -> dict:
    (found,) = [c for c in seen["charts"] if words.lower() in c["title"].lower()]
    return found


def cents(value: float | Decimal | None) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def by_day(x: str) -> date:
    return date.fromisoformat(str(x)[:10])


def test_the_pipeline_writes_a_report_chromium_draws_without_errors(report):
    seen = report["seen"]
    assert report["path"].stat().st_size > 1_000_000  # plotly.js itself is inlined
    assert report["errors"] == []
    # Every chart the page declares is drawn, with its SVG; this fleet has rows in every mart.
    assert seen["declared"] == CHARTS == len(seen["charts"])
    assert all(c["svg"] >= 1 for c in seen["charts"]), [(c["title"], c["svg"]) for c in seen["charts"]]
    assert all(c["data"] for c in seen["charts"])
    assert seen["notes"] == []
    assert set(seen["tables"]) == {"anomalies", "reconciliation"}
    assert report["shot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and report["shot"].stat().st_size > 50_000


def test_the_report_needs_no_network(report):
    text = report["path"].read_text(encoding="utf-8")
    # plotly.js is inlined once, not once per chart, and nothing is loaded from elsewhere. (The bundle
    # itself names URLs, for map tiles and its logo link, that a chart without maps never requests.)
    assert text.count(get_plotlyjs()) == 1
    assert not re.search(r"https?://|<script[^>]+src=|<link[^>]+href=", text.replace(get_plotlyjs(), ""),
                         re.IGNORECASE)
    assert report["requested"] == [report["path"].resolve().as_uri()]


def test_the_headline_numbers_equal_sql_on_the_ledger(report):
    w: Window = report["window"]
    total, gpu, idle = query(report["warehouse"], """
        select sum(effective_cost),
               sum(effective_cost) filter (where category in
                   ('inference', 'idle_deployed', 'training', 'batch', 'idle', 'unmonitored')),
               sum(effective_cost) filter (where category in ('idle', 'idle_deployed', 'unmonitored'))
        from marts.cost_ledger_hourly where cast(hour_start as date) between ? and ?""",
                             [w.first_day, w.last_day])[0]
    (tokens, cost), = query(report["warehouse"], """
        select sum(input_tokens + output_tokens), sum(effective_cost) filter (where category = 'inference')
        from marts.cost_ledger_hourly where cast(hour_start as date) between ? and ?""",
                           [w.first_day, w.last_day])
    headline = report["seen"]["headline"]
    assert headline["total-spend"] == money(total, "USD")
    assert headline["tokens"] == f"{int(tokens):,}"
    assert headline["cost-per-1m-tokens"] == money(cost * 1_000_000 / tokens, "USD")
    assert headline["idle-share"] == f"{100 * idle / gpu:.1f} %"
    assert total > 0 and 0 < idle < gpu


@pytest.mark.parametrize("column", ["team", "category"])
def test_spend_bars_add_up_to_the_ledger_to_the_cent(report, column):
    w: Window = report["window"]
    expected = {(k, d): cents(v) for k, d, v in query(report["warehouse"], f"""
        select {column}, cast(hour_start as date), sum(effective_cost)
        from marts.cost_ledger_hourly where cast(hour_start as date) between ? and ?
        group by all""", [w.first_day, w.last_day])}
    bars = chart(report["seen"], f"by {column}")
    drawn = {(t["name"], by_day(x)): cents(y) for t in bars["data"] for x, y in zip(t["x"], t["y"], strict=True)}
    assert drawn == expected
    assert len({k for k, _ in expected}) > 1


def test_cost_per_1m_tokens_lines_equal_sql_per_model_and_day(report):
    w: Window = report["window"]
    rows = query(report["warehouse"], """
        select model, cast(hour_start as date), sum(input_tokens + output_tokens),
               sum(effective_cost) * 1000000 / sum(input_tokens + output_tokens)
        from marts.cost_ledger_hourly
        where category = 'inference' and cast(hour_start as date) between ? and ?
        group by all having sum(input_tokens + output_tokens) > 0""", [w.first_day, w.last_day])
    lines = {t["name"]: t for t in chart(report["seen"], "cost per 1M tokens")["data"]}
    assert {m for m, *_ in rows} == {n for n in lines if not n.endswith("(fully loaded)")}
    for model, day, tokens, per_1m in rows:
        trace = lines[model]
        i = [by_day(x) for x in trace["x"]].index(day)
        assert trace["customdata"][i] == tokens, (model, day)
        assert trace["y"][i] == pytest.approx(float(per_1m), abs=5e-5), (model, day)


def test_idle_chart_equals_the_ledger(report):
    w: Window = report["window"]
    rows = query(report["warehouse"], """
        select cast(hour_start as date), category, sum(effective_cost)
        from marts.cost_ledger_hourly
        where category in ('idle', 'idle_deployed', 'unmonitored') and cast(hour_start as date) between ? and ?
        group by all""", [w.first_day, w.last_day])
    traces = {t["name"]: t for t in chart(report["seen"], "idle")["data"]}
    drawn = {(by_day(x), name): cents(y) for name in ("idle", "idle_deployed", "unmonitored")
             for x, y in zip(traces[name]["x"], traces[name]["y"], strict=True) if y}
    assert drawn == {(d, c): cents(v) for d, c, v in rows if cents(v)}
    share = traces["share of GPU cost"]["y"]
    assert all(0 <= s <= 1 for s in share) and max(share) > 0


def test_the_heatmap_shows_the_costliest_gpus_by_hour(report):
    w: Window = report["window"]
    heatmap = chart(report["seen"], "utilization")
    assert f"top {HEATMAP_GPUS} by cost" in heatmap["title"]
    (trace,) = heatmap["data"]
    costs = query(report["warehouse"], """
        select resource_id || ' GPU ' || gpu_index, sum(effective_cost), sum(utilized), sum(monitored)
        from (select *, avg_utilization * (billed_gpu_hours - unmonitored_hours) as utilized,
                     billed_gpu_hours - unmonitored_hours as monitored
              from marts.gpu_efficiency_daily where day between ? and ?)
        group by all order by 2 desc, 1""", [w.first_day, w.last_day])
    assert trace["y"] == [g for g, *_ in costs][:HEATMAP_GPUS]
    hours = [str(x) for x in trace["x"]]
    assert hours == sorted(hours) and w.first_day <= by_day(hours[0]) and by_day(hours[-1]) <= w.last_day
    # Each GPU's average over its monitored hours is the mart's (every billed hour of this fleet is whole).
    for row, (gpu, _, utilized, monitored) in zip(trace["z"], costs, strict=False):
        cells = [z for z in row if z is not None]
        assert len(cells) == pytest.approx(float(monitored), abs=1e-6), gpu
        assert sum(cells) == pytest.approx(utilized, abs=1e-2), gpu


def test_the_anomalies_table_shows_the_injected_egress_spike(report):
    (label,) = [x for x in report["labels"] if x["scope_type"] == "team"]
    assert label["scope"] == "search"
    rows = report["seen"]["tables"]["anomalies"]
    spike = [r for r in rows if r[1:4] == ["team", "search", "effective_cost"] and r[0] == label["start_day"]]
    assert len(spike) == 1, rows
    day, _, _, _, kind, actual, expected, impact, severity = spike[0]
    (a, e, i), = query(report["warehouse"], """
        select actual, expected, impact from marts.spend_anomalies
        where scope_type = 'team' and scope = 'search' and metric = 'effective_cost' and day = ?""", [day])
    assert (kind, actual, expected, impact) == ("spike", money(a, "USD"), money(e, "USD"), money(i, "USD"))
    assert severity != "info"
    assert float(impact.replace("$", "").replace(",", "")) == pytest.approx(label["excess"], rel=0.1)
    # Ranked by impact, biggest first.
    impacts = [Decimal(r[7].replace("$", "").replace(",", "")) for r in rows]
    assert impacts == sorted(impacts, reverse=True)


def test_the_reconciliation_table_shows_each_bill_balanced(report):
    rows = report["seen"]["tables"]["reconciliation"]
    expected = query(report["warehouse"], """
        select billing_period, provider, source_effective_cost, ledger_effective_cost
        from marts.cost_reconciliation order by billing_period, provider, billing_account_id""")
    assert [(r[0], r[1], r[3], r[4], r[7]) for r in rows] == [
        (p, prov, money(s, "USD"), money(ledger, "USD"), "balanced") for p, prov, s, ledger in expected]


def test_the_tco_chart_equals_the_mart(report):
    (actual, on_demand), = query(report["warehouse"], "select sum(actual_cost), sum(on_demand_cost) "
                                 "from marts.tco_comparison")
    traces = {t["name"]: t for t in chart(report["seen"], "TCO")["data"]}
    assert cents(sum(traces["actual"]["y"])) == cents(actual)
    assert cents(sum(y or 0 for y in traces["cloud on-demand"]["y"])) == cents(on_demand)


def marts_without_anomalies(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """The warehouse's marts and GPU-hours as views, with an empty spend_anomalies."""
    con = duckdb.connect()
    con.execute(f"attach '{warehouse}' as wh (read_only)")
    for schema, table in con.execute("""
            select table_schema, table_name from information_schema.tables
            where table_catalog = 'wh' and table_schema in ('marts', 'intermediate')""").fetchall():
        con.execute(f"create schema if not exists {schema}")
        where = " where false" if table == "spend_anomalies" else ""
        con.execute(f'create view {schema}."{table}" as select * from wh.{schema}."{table}"{where}')
    return con


def test_no_anomalies_and_an_empty_window_render_a_none_note(report, tmp_path):
    with marts_without_anomalies(report["warehouse"]) as con:
        quiet = render(con, report["window"])
        empty = render(con, Window(date(2020, 1, 1), date(2020, 1, 31), "USD"))
    seen, errors, _ = open_report(write_report(quiet, tmp_path / "quiet.html"))
    assert errors == []
    assert seen["declared"] == quiet.charts == CHARTS == len(seen["charts"])
    assert all(c["svg"] >= 1 for c in seen["charts"])
    assert seen["notes"] == [NONE_NOTE] and "anomalies" not in seen["tables"]

    seen, errors, _ = open_report(write_report(empty, tmp_path / "empty.html"))
    assert errors == []
    assert seen["declared"] == empty.charts == 0 == len(seen["charts"])
    assert seen["notes"] == [NONE_NOTE] * 8 and seen["tables"] == {}
    assert seen["headline"]["total-spend"] == "$0.00" and seen["headline"]["idle-share"] == "n/a"
