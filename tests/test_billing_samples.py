"""The public billing samples, exactly as published, through the whole pipeline: every provider's
totals in the FOCUS model equal the sample files' own totals, and the ledger keeps every cent."""

import csv
import json
import shutil
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from pipeline import failed_checks, materialize_all, query

from ingest.config import load_config

EXPORTS = Path("focus-converters") / "provider-exports"
LEGACY_CUR = EXPORTS / "aws_legacy_cur_sample-anonymous-aws-export-dataset.csv"
AZURE = EXPORTS / "azure_ea_sample-anonymous-ea-export-dataset.csv"
OCI = EXPORTS / "oci_reports_cost-csv_0000000030000269.csv"
FOCUS = Path("focus-sample-data") / "focus_1.0_sample_1000.csv"

CONFIG = """
sources:
  aws_cur: [{location: aws, export_name: legacy-report, format: legacy}]
  focus: [{location: focus}]
  azure_cost_details: [{location: azure}]
  oci_cost_reports: [{location: oci}]
"""


def sums(path: Path, cost_column: str, *group: str) -> dict[tuple, tuple[int, Decimal]]:
    """(rows, cost) per group, read straight from the sample file, NULLs as nothing."""
    out: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])
    with path.open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            key = tuple(row[g] for g in group)
            out[key][0] += 1
            if row[cost_column] not in ("", "NULL"):
                out[key][1] += Decimal(row[cost_column])
    return {k: (n, c) for k, (n, c) in out.items()}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, request) -> Path:
    samples = Path(request.config.rootpath).parent / "shared" / "samples"
    root = tmp_path_factory.mktemp("samples")
    (root / "gpuledger.yaml").write_text(CONFIG)
    for folder, sample in (("focus", FOCUS), ("azure", AZURE), ("oci", OCI)):
        (root / folder).mkdir()
        shutil.copy(samples / sample, root / folder / sample.name)
    # the legacy CUR sample, as AWS delivers it: in its period folder, named by the period's manifest
    period = root / "aws" / "legacy-report" / "20231101-20231201"
    period.mkdir(parents=True)
    shutil.copy(samples / LEGACY_CUR, period / LEGACY_CUR.name)
    (period / "legacy-report-Manifest.json").write_text(json.dumps({
        "assemblyId": "7a1b2c3d", "billingPeriod": {"start": "20231101T000000.000Z", "end": "20231201T000000.000Z"},
        "reportKeys": [f"cur/legacy-report/20231101-20231201/{LEGACY_CUR.name}"],
    }))
    result = materialize_all(root / "gpuledger.yaml")
    assert result.success
    assert failed_checks(result) == []
    return load_config(root / "gpuledger.yaml").warehouse_path


def focus_totals(warehouse: Path, source_format: str, cost: str = "BilledCost") -> dict[tuple, tuple[int, Decimal]]:
    rows = query(warehouse, f"""
        select "ProviderName", "BillingCurrency", count(*), sum("{cost}")
        from marts.focus_cost_and_usage where "x_SourceFormat" = ? group by all""", [source_format])
    return {(p, c): (n, total) for p, c, n, total in rows}


def to_cent(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"))


def at_cent(totals: dict[tuple, tuple[int, Decimal]]) -> dict[tuple, tuple[int, Decimal]]:
    return {k: (n, to_cent(c)) for k, (n, c) in totals.items()}


def test_focus_sample_totals_per_provider_equal_the_file(warehouse, samples):
    for cost in ("BilledCost", "EffectiveCost", "ListCost"):
        expected = sums(samples / FOCUS, cost, "ProviderName", "BillingCurrency")
        actual = focus_totals(warehouse, "focus", cost)
        assert at_cent(actual) == at_cent(expected)
    assert {k[0] for k in actual} == {"AWS", "Microsoft", "Oracle"}


def test_legacy_cur_sample_totals_equal_the_file(warehouse, samples):
    ((rows, unblended),) = sums(samples / LEGACY_CUR, "lineItem/UnblendedCost").values()
    assert focus_totals(warehouse, "aws-cur") == {("AWS", "USD"): (rows, pytest.approx(unblended, abs=Decimal("1e-9")))}
    taxes = query(warehouse, """select count(*) from marts.focus_cost_and_usage
                                where "x_SourceFormat" = 'aws-cur' and "ChargeCategory" = 'Tax'""")
    assert taxes == [(12,)]


def test_azure_and_oci_sample_totals_equal_the_files(warehouse, samples):
    azure = sums(samples / AZURE, "CostInBillingCurrency", "BillingCurrencyCode")
    assert at_cent(focus_totals(warehouse, "azure-cost-details")) == at_cent(
        {("Microsoft", currency): total for (currency,), total in azure.items()})
    oci = sums(samples / OCI, "cost/myCost", "cost/currencyCode")
    assert at_cent(focus_totals(warehouse, "oci-cost-report")) == at_cent(
        {("Oracle", currency): total for (currency,), total in oci.items()})


def test_currencies_are_kept_apart_and_every_cent_reconciles(warehouse):
    rows = query(warehouse, """
        select provider, currency, source_effective_cost, ledger_effective_cost, difference
        from marts.cost_reconciliation order by provider, currency, billing_period""")
    assert {(p, c) for p, c, *_ in rows} == {("AWS", "USD"), ("Microsoft", "CAD"), ("Microsoft", "USD"),
                                             ("Oracle", "USD")}
    assert all(abs(diff) <= Decimal("0.01") and abs(source - ledger) <= Decimal("0.01")
               for _, _, source, ledger, diff in rows)


def test_the_samples_gpu_instance_hours_are_gpu_compute(warehouse):
    """The FOCUS sample's GPU instance-hours (8 of g5.4xlarge, 2 of g3.4xlarge) land as unmonitored GPU-hours."""
    rows = query(warehouse, """
        select "x_InstanceType", "x_GpuModel", count(*) from marts.focus_cost_and_usage
        where "x_GpuCount" is not null group by all order by 1""")
    assert rows == [("g3.4xlarge", "M60 8GB", 2), ("g5.4xlarge", "A10G 24GB", 8)]
    (category,) = query(warehouse, """
        select distinct category from marts.cost_ledger_hourly where provider = 'AWS' and gpu_hours > 0""")
    assert category == ("unmonitored",)
