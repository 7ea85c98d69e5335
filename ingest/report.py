"""The spend report: one self-contained HTML page of plotly charts over the marts.

Team leads open it from a chat link or a file share, often with no internet, so plotly.js is
inlined once and nothing is fetched. It reads the warehouse's marts (and the hourly GPU table
for the heatmap) for a window of days ending at the ledger's newest day, in one currency.
Money stays DECIMAL in SQL; it becomes float only for plotting, and tables print it to the cent.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

REPORT_FILE = "spend_report.html"
DEFAULT_DAYS = 30
# A 1,000-GPU fleet has 720,000 GPU-hours a month: the heatmap shows the costliest GPUs only.
HEATMAP_GPUS = 40
TOP_ANOMALIES = 15
NONE_NOTE = "None in this window."
# Categories of GPU time (the rest of the ledger is non-GPU cost: direct, shared).
GPU_CATEGORIES = ("inference", "idle_deployed", "training", "batch", "idle", "unmonitored")
# As the CLI's headline "Idle share of GPU spend": GPU cost that served nothing, or nobody watched.
IDLE_CATEGORIES = ("idle", "idle_deployed", "unmonitored")


@dataclass(frozen=True)
class Window:
    first_day: date
    last_day: date
    currency: str

    @property
    def params(self) -> list:
        return [self.first_day, self.last_day, self.currency]


@dataclass(frozen=True)
class Section:
    """One block of the page: a chart (a figure), a table (HTML) or the note that there is no data."""

    title: str
    figure: go.Figure | None = None
    table: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Report:
    html: str
    charts: int
    window: Window


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def default_window(con: duckdb.DuckDBPyConnection, currency: str, days: int = DEFAULT_DAYS,
                   last_day: date | None = None) -> Window:
    """`days` days ending at `last_day`, by default the newest day of GPU cost. Not the ledger's
    newest hour: a monthly charge (support, storage) is spread to the end of its month, which
    may lie weeks ahead. The window starts no earlier than the first day of GPU cost, so a young
    warehouse is not shown as weeks of nothing."""
    first_gpu_day, last_gpu_day = con.execute(f"""
        select min(day), max(day) from marts.team_spend_daily
        where currency = ? and category in {_in(GPU_CATEGORIES)}""", [currency]).fetchone()
    last_day = last_day or last_gpu_day or date.today()
    first_day = last_day - timedelta(days=days - 1)
    if first_gpu_day is not None and first_gpu_day <= last_day:
        first_day = max(first_day, first_gpu_day)
    return Window(first_day, last_day, currency)


def money(value: Decimal | float | None, currency: str) -> str:
    """Dollars (or another currency) to the cent, the sign before the symbol."""
    if value is None:
        return ""
    cents = Decimal(str(value)).quantize(Decimal("0.01"))
    if cents == 0:
        cents = Decimal("0.00")  # never "-$0.00" for a rounding residue
    symbol = "$" if currency == "USD" else f"{currency} "
    return f"{'-' if cents < 0 else ''}{symbol}{abs(cents):,.2f}"


def _float(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


def _layout(fig: go.Figure, title: str, y_title: str, **kwargs) -> go.Figure:
    fig.update_layout(**{"title": title, "yaxis_title": y_title, "template": "plotly_white", "height": 420,
                         "margin": {"l": 70, "r": 30, "t": 60, "b": 50}, **kwargs})
    return fig


# ---- headline numbers ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Headlines:
    total_spend: Decimal
    tokens: int
    cost_per_1m_tokens: Decimal | None
    cost_per_1m_tokens_fully_loaded: Decimal | None
    gpu_cost: Decimal
    idle_cost: Decimal

    @property
    def idle_share(self) -> float | None:
        return float(self.idle_cost / self.gpu_cost) if self.gpu_cost else None


def headlines(con: duckdb.DuckDBPyConnection, w: Window) -> Headlines:
    spend, gpu, idle = con.execute(f"""
        select coalesce(sum(effective_cost), 0),
               coalesce(sum(effective_cost) filter (where category in {_in(GPU_CATEGORIES)}), 0),
               coalesce(sum(effective_cost) filter (where category in {_in(IDLE_CATEGORIES)}), 0)
        from marts.team_spend_daily
        where day between ? and ? and currency = ?""", w.params).fetchone()
    tokens, served, loaded = con.execute("""
        select coalesce(sum(input_tokens + output_tokens), 0),
               sum(inference_cost) * 1000000 / nullif(sum(input_tokens + output_tokens), 0),
               sum(fully_loaded_cost) * 1000000 / nullif(sum(input_tokens + output_tokens), 0)
        from marts.unit_economics_daily
        where day between ? and ? and currency = ?""", w.params).fetchone()
    return Headlines(spend, int(tokens), served, loaded, gpu, idle)


def headlines_html(h: Headlines, w: Window) -> str:
    per_1m = "n/a" if h.cost_per_1m_tokens is None else money(h.cost_per_1m_tokens, w.currency)
    loaded = "" if h.cost_per_1m_tokens_fully_loaded is None else \
        f"fully loaded {money(h.cost_per_1m_tokens_fully_loaded, w.currency)}"
    share = "n/a" if h.idle_share is None else f"{100 * h.idle_share:.1f} %"
    tiles = [
        ("total-spend", "Total spend", money(h.total_spend, w.currency), "effective (amortised) cost"),
        ("cost-per-1m-tokens", "Cost per 1M tokens", per_1m, f"served; {loaded}" if loaded else "served"),
        ("tokens", "Tokens served", f"{h.tokens:,}", "input + output"),
        ("idle-share", "Idle share of GPU cost", share,
         f"{money(h.idle_cost, w.currency)} of {money(h.gpu_cost, w.currency)}: idle, idle_deployed, unmonitored"),
    ]
    return '<div class="tiles">' + "".join(
        f'<div class="tile"><div class="label">{label}</div><div class="value" id="{id_}">{html.escape(value)}</div>'
        f'<div class="sub">{html.escape(sub)}</div></div>' for id_, label, value, sub in tiles) + "</div>"


# ---- charts -------------------------------------------------------------------------------------

def cost_per_token_section(con: duckdb.DuckDBPyConnection, w: Window) -> Section:
    title = f"Cost per 1M tokens by model and day ({w.currency}; solid: served, dotted: fully loaded)"
    rows = con.execute("""
        select model, day,
               sum(inference_cost) * 1000000 / nullif(sum(input_tokens + output_tokens), 0),
               sum(fully_loaded_cost) * 1000000 / nullif(sum(input_tokens + output_tokens), 0),
               sum(input_tokens + output_tokens)
        from marts.unit_economics_daily
        where day between ? and ? and currency = ?
        group by model, day
        having sum(input_tokens + output_tokens) > 0
        order by model, day""", w.params).fetchall()
    if not rows:
        return Section(title, note=NONE_NOTE)
    fig = go.Figure()
    for model in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == model]
        x = [r[1] for r in mine]
        tokens = [int(r[4]) for r in mine]
        fig.add_scatter(x=x, y=[_float(r[2]) for r in mine], mode="lines+markers", name=model, legendgroup=model,
                        customdata=tokens, hovertemplate="%{y:$.4f} per 1M tokens, %{customdata:,} tokens")
        fig.add_scatter(x=x, y=[_float(r[3]) for r in mine], mode="lines", name=f"{model} (fully loaded)",
                        legendgroup=model, line={"dash": "dot"}, customdata=tokens,
                        hovertemplate="%{y:$.4f} per 1M tokens fully loaded")
    return Section(title, _layout(fig, title, f"{w.currency} per 1M tokens"))


def _stacked_spend(con: duckdb.DuckDBPyConnection, w: Window, column: str, title: str) -> Section:
    rows = con.execute(f"""
        select {column}, day, sum(effective_cost)
        from marts.team_spend_daily
        where day between ? and ? and currency = ?
        group by {column}, day
        order by {column}, day""", w.params).fetchall()
    if not rows:
        return Section(title, note=NONE_NOTE)
    totals: dict[str, Decimal] = {}
    for key, _, cost in rows:
        totals[key] = totals.get(key, Decimal(0)) + cost
    fig = go.Figure()
    # Biggest first, so the legend reads as a ranking.
    for key in sorted(totals, key=lambda k: -totals[k]):
        mine = [r for r in rows if r[0] == key]
        fig.add_bar(x=[r[1] for r in mine], y=[_float(r[2]) for r in mine], name=key,
                    hovertemplate="%{x|%Y-%m-%d}: %{y:$,.2f}")
    return Section(title, _layout(fig, title, w.currency, barmode="relative"))


def team_spend_section(con: duckdb.DuckDBPyConnection, w: Window) -> Section:
    return _stacked_spend(con, w, "team", f"Spend by team and day ({w.currency}, effective cost)")


def category_spend_section(con: duckdb.DuckDBPyConnection, w: Window) -> Section:
    return _stacked_spend(con, w, "category", f"Spend by category and day ({w.currency}, effective cost)")


def idle_section(con: duckdb.DuckDBPyConnection, w: Window) -> Section:
    title = f"Idle GPU cost by day ({w.currency}) and its share of GPU cost"
    rows = con.execute(f"""
        select day,
               coalesce(sum(effective_cost) filter (where category = 'idle'), 0),
               coalesce(sum(effective_cost) filter (where category = 'idle_deployed'), 0),
               coalesce(sum(effective_cost) filter (where category = 'unmonitored'), 0),
               sum(effective_cost)
        from marts.team_spend_daily
        where day between ? and ? and currency = ? and category in {_in(GPU_CATEGORIES)}
        group by day
        order by day""", w.params).fetchall()
    if not rows:
        return Section(title, note=NONE_NOTE)
    days = [r[0] for r in rows]
    fig = go.Figure()
    for i, name in enumerate(IDLE_CATEGORIES, start=1):
        fig.add_bar(x=days, y=[_float(r[i]) for r in rows], name=name, hovertemplate="%{y:$,.2f}")
    share = [float((r[1] + r[2] + r[3]) / r[4]) if r[4] else None for r in rows]
    fig.add_scatter(x=days, y=share, name="share of GPU cost", yaxis="y2", mode="lines+markers",
                    hovertemplate="%{y:.1%}")
    return Section(title, _layout(fig, title, w.currency, barmode="stack", yaxis2={
        "title": "share of GPU cost", "overlaying": "y", "side": "right", "tickformat": ".0%", "rangemode": "tozero"}))


def utilization_section(con: duckdb.DuckDBPyConnection, w: Window, gpus: int = HEATMAP_GPUS) -> Section:
    """GPU utilisation by hour for the `gpus` costliest GPUs of the window (the allocation table's
    busy GPU-hours over monitored GPU-hours; an hour without telemetry stays blank)."""
    title = f"GPU utilization by hour: the {gpus} costliest GPUs of the window"
    rows = con.execute("""
        with top as (
            select resource_id, gpu_index, sum(effective_cost) as cost
            from marts.gpu_efficiency_daily
            where day between ? and ? and currency = ?
            group by resource_id, gpu_index
            order by cost desc, resource_id, gpu_index
            limit ?
        )
        select a.resource_id || ' GPU ' || a.gpu_index as gpu, a.hour_start,
               sum(a.busy_gpu_hours) / nullif(sum(a.gpu_hours) filter (where a.holder_kind <> 'unmonitored'), 0),
               max(top.cost) as cost
        from intermediate.int_gpu_hour_allocation as a
        inner join top on a.resource_id = top.resource_id and a.gpu_index = top.gpu_index
        where a.hour_start >= ? and a.hour_start < ? and a.billing_currency = ?
        group by a.resource_id, a.gpu_index, a.hour_start
        order by cost desc, gpu, a.hour_start""",
                       [*w.params, gpus, w.first_day, w.last_day + timedelta(days=1), w.currency]).fetchall()
    if not rows:
        return Section(title, note=NONE_NOTE)
    gpu_names = list(dict.fromkeys(r[0] for r in rows))
    title = f"GPU utilization by hour: the {len(gpu_names)} costliest GPUs of the window (top {gpus} by cost)"
    hours = sorted({r[1] for r in rows})
    column = {h: i for i, h in enumerate(hours)}
    line = {g: i for i, g in enumerate(gpu_names)}
    z: list[list[float | None]] = [[None] * len(hours) for _ in gpu_names]
    for gpu, hour, util, _ in rows:
        z[line[gpu]][column[hour]] = None if util is None else round(float(util), 4)
    fig = go.Figure(go.Heatmap(x=hours, y=gpu_names, z=z, zmin=0, zmax=1, colorscale="Viridis",
                               colorbar={"title": "utilization", "tickformat": ".0%"},
                               hovertemplate="%{y}<br>%{x|%Y-%m-%d %H:00}: %{z:.0%}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")  # costliest at the top
    # Room on the left for "i-0123456789abcdef0 GPU 7" labels.
    return Section(title, _layout(fig, title, "", height=max(320, 120 + 18 * len(gpu_names)),
                                  margin={"l": 200, "r": 30, "t": 60, "b": 50}))


def tco_section(con: duckdb.DuckDBPyConnection, w: Window) -> Section:
    title = (f"TCO: what the GPU-hours cost where they ran vs the same hours in the cloud "
             f"({w.currency}, months in the window)")
    rows = con.execute("""
        select workload || ' (' || provider || ', ' || gpu_model || ')', sum(gpu_hours), sum(actual_cost),
               sum(on_demand_cost), sum(spot_cost), sum(committed_cost)
        from marts.tco_comparison
        where month between date_trunc('month', cast(? as date)) and ? and currency = ?
        group by workload, provider, gpu_model
        order by sum(actual_cost) desc""", w.params).fetchall()
    if not rows:
        return Section(title, note=NONE_NOTE)
    labels = [r[0] for r in rows]
    fig = go.Figure()
    for i, name in enumerate(("actual", "cloud on-demand", "cloud spot", "cloud 1-year committed"), start=2):
        fig.add_bar(x=labels, y=[_float(r[i]) for r in rows], name=name, customdata=[float(r[1]) for r in rows],
                    hovertemplate="%{y:$,.2f} for %{customdata:,.1f} GPU-hours")
    return Section(title, _layout(fig, title, w.currency, barmode="group"))


# ---- tables -------------------------------------------------------------------------------------

def _table(columns: list[str], rows: list[list[str]], numeric: set[int], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{html.escape(v)}</td>'
                                    for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def anomalies_section(con: duckdb.DuckDBPyConnection, w: Window, top: int = TOP_ANOMALIES) -> Section:
    title = f"Top spend anomalies (by impact, up to {top}; info-only rows are in marts.spend_anomalies)"
    rows = con.execute("""
        select day, scope_type, scope, metric, kind, actual, expected, impact, severity
        from marts.spend_anomalies
        where day between ? and ? and currency = ? and severity <> 'info'
        order by impact desc nulls last, day, scope_type, scope
        limit ?""", [*w.params, top]).fetchall()
    if not rows:
        return Section(title, note=NONE_NOTE)
    # Every anomaly metric is money (a day's cost, an idle cost, a cost per 1M tokens, a forecast).
    cells = [[str(r[0]), r[1], r[2], r[3], r[4], money(r[5], w.currency), money(r[6], w.currency),
              money(r[7], w.currency), r[8]] for r in rows]
    columns = ["day", "scope type", "scope", "metric", "kind", "actual", "expected", "impact", "severity"]
    return Section(title, table=_table(columns, cells, {5, 6, 7}, "anomalies"))


def reconciliation_section(con: duckdb.DuckDBPyConnection, w: Window) -> Section:
    title = "Reconciliation with the bill (billing periods in the window): every billed dollar in the ledger"
    rows = con.execute("""
        select billing_period, provider, billing_account_id, source_effective_cost, ledger_effective_cost,
               unallocated_cost, difference
        from marts.cost_reconciliation
        where billing_period between strftime(cast(? as date), '%Y-%m') and strftime(cast(? as date), '%Y-%m')
          and currency = ?
        order by billing_period, provider, billing_account_id""", w.params).fetchall()
    if not rows:
        return Section(title, note=NONE_NOTE)
    c = w.currency
    # The dbt test holds |difference| <= 0.01; the report says so per row rather than hiding a failure.
    cells = [[r[0], r[1], r[2] or "", money(r[3], c), money(r[4], c), money(r[5], c), money(r[6], c),
              "balanced" if abs(r[6]) <= Decimal("0.01") else "MISMATCH"] for r in rows]
    columns = ["billing period", "provider", "account", "billed (source)", "allocated (ledger)", "unallocated",
               "difference", "status"]
    return Section(title, table=_table(columns, cells, {3, 4, 5, 6}, "reconciliation"))


# ---- the page -----------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { margin: 0 0 4px; } .window { color: #666; margin-bottom: 16px; }
.tiles { display: flex; gap: 16px; flex-wrap: wrap; margin-bottom: 16px; }
.tile { border: 1px solid #ddd; border-radius: 8px; padding: 12px 16px; min-width: 220px; }
.tile .label { color: #666; font-size: 13px; } .tile .value { font-size: 28px; font-weight: 600; }
.tile .sub { color: #888; font-size: 12px; max-width: 320px; }
section { margin: 24px 0; } h2 { font-size: 17px; margin: 0 0 8px; }
.none { color: #666; font-style: italic; padding: 12px; border: 1px dashed #ccc; border-radius: 6px; }
table { border-collapse: collapse; font-size: 13px; } th, td { padding: 4px 10px; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
"""


def sections(con: duckdb.DuckDBPyConnection, w: Window) -> list[Section]:
    return [cost_per_token_section(con, w), team_spend_section(con, w), category_spend_section(con, w),
            idle_section(con, w), utilization_section(con, w), anomalies_section(con, w), tco_section(con, w),
            reconciliation_section(con, w)]


def _section_html(s: Section, index: int) -> str:
    if s.figure is not None:
        # The title is drawn in the chart; plotly.js is in the page once, not per chart.
        body = s.figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{index}",
                                config={"displaylogo": False, "responsive": True})
        return f'<section class="chart">{body}</section>'
    body = s.table if s.table is not None else f'<p class="none">{html.escape(s.note or NONE_NOTE)}</p>'
    return f'<section><h2>{html.escape(s.title)}</h2>{body}</section>'


def other_currencies(con: duckdb.DuckDBPyConnection, w: Window) -> list[str]:
    return [r[0] for r in con.execute("""
        select distinct currency from marts.team_spend_daily
        where day between ? and ? and currency <> ? order by currency""", w.params).fetchall()]


def render(con: duckdb.DuckDBPyConnection, window: Window) -> Report:
    parts = sections(con, window)
    charts = sum(s.figure is not None for s in parts)
    h = headlines(con, window)
    # Amounts in two currencies never add up: the report keeps to one and says what it left out.
    others = other_currencies(con, window)
    left_out = f" Spend in {', '.join(others)} is not shown." if others else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="gpuledger-charts" content="{charts}">
<title>gpuledger spend report {window.first_day} to {window.last_day}</title>
<style>{STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>GPU and LLM spend</h1>
<div class="window">{window.first_day} to {window.last_day} (UTC days), amounts in {html.escape(window.currency)},
effective (amortised) cost; from the gpuledger marts.{html.escape(left_out)}</div>
{headlines_html(h, window)}
{"".join(_section_html(s, i) for i, s in enumerate(parts))}
</body></html>
"""
    return Report(page, charts, window)


def write_report(report: Report, path: Path) -> Path:
    """Atomically, as ingest/publish.py writes the marts: a reader never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{os.getpid()}.tmp"
    temporary.write_text(report.html, encoding="utf-8")
    os.replace(temporary, path)
    return path
