"""Bad billing input, one defect per file, through the real pipeline: each gets a clear reason in
the quarantine, the good rows still land, nothing is counted twice, and every cent reconciles."""

import csv
import gzip
import io
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pipeline import materialize_all, query
from test_readers import cur_rows, write_delivery

from ingest.config import load_config

HEADER = ["BillingAccountId", "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart",
          "ChargePeriodEnd", "ChargeCategory", "ProviderName", "ServiceName", "ServiceCategory", "ResourceId",
          "BilledCost", "EffectiveCost", "ListCost", "Tags"]
SQL_LOOKING_TEAM = "x'); drop table raw.focus_charges; --"


def focus_row(cost: str, currency: str = "USD", tags: str = '{"team": "search"}', category: str = "Usage") -> list[str]:
    return ["acct-1", currency, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "2026-11-02T10:00:00Z",
            "2026-11-02T11:00:00Z", category, "TestCloud", "Object Storage", "Storage", "bucket-1", cost, cost,
            cost, tags]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buf.getvalue())
    return path.read_bytes()


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    (root / "gpuledger.yaml").write_text(
        "sources:\n  aws_cur: [{location: aws, export_name: cur}]\n  focus: [{location: focus}]\n"
        "billing:\n  team_tags: [team]\n")
    focus = root / "focus"
    focus.mkdir()
    write_csv(focus / "good.csv", HEADER, [focus_row("10.00"), focus_row("-2.50", category="Credit"),
                                           focus_row("7.00", currency="EUR"),
                                           focus_row("1.00", tags=json.dumps({"team": SQL_LOOKING_TEAM}))])
    shutil.copy(focus / "good.csv", focus / "good-copy-from-a-retried-upload.csv")
    write_csv(focus / "no-billed-cost.csv", [h for h in HEADER if h != "BilledCost"],
              [[v for h, v in zip(HEADER, focus_row("3.00"), strict=True) if h != "BilledCost"]])
    write_csv(focus / "new-columns.csv", [*HEADER, "x_Discounts", "NewColumnFrom2027"],
              [[*focus_row("4.00"), '{"bundled": 0}', "surprise"]])
    good = write_csv(focus / "bad-rows.csv", HEADER, [focus_row("5.00"), focus_row("not-a-number"),
                                                      focus_row("6.00")])
    (focus / "bad-rows.csv").write_bytes(good.replace(b"Object Storage", b"Object \xff\xfe Storage", 1))
    whole = gzip.compress(write_csv(focus / "tmp.csv", HEADER, [focus_row("1.00")] * 400))
    (focus / "tmp.csv").unlink()
    (focus / "cut.csv.gz").write_bytes(whole[: len(whole) // 2])

    aws = root / "aws"
    write_delivery(aws, "2026-11", {"ok.parquet": cur_rows(3, cost=2.0), "cut.parquet": cur_rows(50, cost=1.0)})
    part = aws / "cur" / "data" / "BILLING_PERIOD=2026-11" / "cut.parquet"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])  # a copy that stopped half way
    return root


@pytest.fixture(scope="module")
def warehouse(landing) -> Path:
    result = materialize_all(landing / "gpuledger.yaml")
    assert result.success  # bad input never fails the run
    return load_config(landing / "gpuledger.yaml").warehouse_path


def reasons(warehouse: Path) -> dict[tuple[str, int | None], str]:
    return {(Path(f).name, row): reason
            for f, row, reason in query(warehouse, "select source_file, row_number, reason from raw.quarantine")}


def test_each_defect_is_quarantined_with_its_reason(warehouse):
    got = reasons(warehouse)
    # of two files with the same bytes, the one listed second is the copy (names sort "good-copy..." first)
    assert got[("good.csv", None)].startswith("duplicate of ") and "good-copy-from-a-retried-upload.csv" in got[
        ("good.csv", None)]
    assert got[("no-billed-cost.csv", None)] == "schema drift: missing required columns BilledCost"
    assert got[("bad-rows.csv", 2)] == "column 'ServiceName': not UTF-8 text"
    assert got[("bad-rows.csv", 3)] == "column 'BilledCost': cannot read 'not-a-number' as decimal"
    assert got[("cut.csv.gz", None)] == "file truncated: the gzip stream ends early"
    assert got[("cut.parquet", None)].startswith("unreadable Parquet")


def test_the_good_rows_still_land_once(warehouse):
    rows = dict(query(warehouse, """
        select regexp_extract(_source_file, '[^/]+$'), count(*) from raw.focus_charges group by 1"""))
    assert rows["good-copy-from-a-retried-upload.csv"] == 4
    assert "good.csv" not in rows  # the same bytes count once
    assert rows["new-columns.csv"] == 1
    assert rows["bad-rows.csv"] == 1  # row 4 of 4: 6.00
    assert 0 < rows["cut.csv.gz"] < 400  # every complete line before the damage
    assert query(warehouse, "select count(*), sum(line_item_unblended_cost) from raw.aws_cur") == [(3, 6.0)]


def test_new_columns_are_kept_not_dropped(warehouse):
    (extra, provider), = query(warehouse, """
        select x_extra, x_provider_columns from raw.focus_charges where _source_file like '%new-columns.csv'""")
    assert json.loads(extra) == {"NewColumnFrom2027": "surprise"}
    assert json.loads(provider) == {"x_Discounts": '{"bundled": 0}'}


def test_currencies_are_never_summed_together(warehouse):
    rows = query(warehouse, """
        select currency, source_effective_cost, ledger_effective_cost from marts.cost_reconciliation
        where provider = 'TestCloud' order by currency""")
    cut = query(warehouse, "select count(*) from raw.focus_charges where _source_file like '%cut.csv.gz'")[0][0]
    usd = Decimal("10.00") - Decimal("2.50") + Decimal("1.00") + Decimal("4.00") + Decimal("6.00") + cut
    assert rows == [("EUR", Decimal("7.00"), Decimal("7.00")), ("USD", usd, usd)]


def test_negative_costs_are_kept(warehouse):
    assert query(warehouse, """
        select "ChargeCategory", "BilledCost" from marts.focus_cost_and_usage where "BilledCost" < 0""") == [
        ("Credit", Decimal("-2.5"))]


def test_a_tag_that_looks_like_sql_is_just_a_team_name(warehouse):
    assert query(warehouse, "select count(*) from raw.focus_charges")[0][0] > 0  # the table is still there
    (team,) = query(warehouse, "select distinct team from marts.cost_ledger_hourly where team like 'x%'")
    assert team == (SQL_LOOKING_TEAM,)


def test_the_damaged_parquet_is_really_damaged(landing):
    with pytest.raises(Exception):  # noqa: B017 - any Arrow error: the fixture must really be unreadable
        pq.read_table(landing / "aws" / "cur" / "data" / "BILLING_PERIOD=2026-11" / "cut.parquet")
