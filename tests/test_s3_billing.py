"""A CUR export in S3 (moto's server on 127.0.0.1, spoken to over HTTP by boto3), read by the real
pipeline; then AWS restates a month while the old delivery's files are still in the bucket."""

import os
import time
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import BUCKET, admin
from pipeline import materialize_all, query
from test_readers import cur_rows, write_delivery

from ingest.config import load_config


def upload(folder: Path, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            admin().put_object(Bucket=BUCKET, Key=f"{prefix}/{path.relative_to(folder)}", Body=path.read_bytes())


def period_totals(warehouse: Path) -> list[tuple]:
    return query(warehouse, """
        select _billing_period, count(*), sum(line_item_unblended_cost) from raw.aws_cur group by 1 order by 1""")


@pytest.fixture
def config(s3_endpoint, tmp_path) -> Path:
    path = tmp_path / "gpuledger.yaml"
    path.write_text(f"sources:\n  aws_cur: [{{location: 's3://{BUCKET}/exports', export_name: cur}}]\n")
    return path


def test_a_restated_period_in_s3_replaces_the_old_delivery(config, tmp_path):
    staging = tmp_path / "export"
    write_delivery(staging, "2026-10", {"cur-00001.parquet": cur_rows(4, cost=2.0)})
    write_delivery(staging, "2026-11", {"cur-00001.parquet": cur_rows(3, cost=1.0)})
    upload(staging, "exports")
    warehouse = load_config(config).warehouse_path

    assert materialize_all(config).success
    assert period_totals(warehouse) == [("2026-10", 4, 8.0), ("2026-11", 3, 3.0)]
    october_loaded = query(warehouse, "select ingested_at from raw.ingested_files where scope like '%2026-10'")

    # AWS restates November into new files; the old file stays in the bucket but leaves the manifest.
    time.sleep(1.1)  # S3 LastModified has one-second resolution: the new manifest must be newer
    restated = tmp_path / "restated"
    write_delivery(restated, "2026-11", {"cur-00001-v2.parquet": cur_rows(2, 1.25),
                                         "cur-00002-v2.parquet": cur_rows(2, 1.25)})
    upload(restated, "exports")
    keys = {o["Key"] for o in admin().list_objects_v2(Bucket=BUCKET, Prefix="exports/cur/data/")["Contents"]}
    assert "exports/cur/data/BILLING_PERIOD=2026-11/cur-00001.parquet" in keys

    assert materialize_all(config).success
    assert period_totals(warehouse) == [("2026-10", 4, 8.0), ("2026-11", 4, 5.0)]
    # October did not change, so it was neither fetched nor loaded again
    assert query(warehouse, "select ingested_at from raw.ingested_files where scope like '%2026-10'") == october_loaded
    assert query(warehouse, """
        select billing_period, source_effective_cost, ledger_effective_cost from marts.cost_reconciliation
        order by 1""") == [("2026-10", Decimal("8"), Decimal("8")), ("2026-11", Decimal("5"), Decimal("5"))]
    files = query(warehouse, "select distinct _source_file from raw.aws_cur order by 1")
    assert [f for (f,) in files] == [
        f"s3://{BUCKET}/exports/cur/data/BILLING_PERIOD=2026-10/cur-00001.parquet",
        f"s3://{BUCKET}/exports/cur/data/BILLING_PERIOD=2026-11/cur-00001-v2.parquet",
        f"s3://{BUCKET}/exports/cur/data/BILLING_PERIOD=2026-11/cur-00002-v2.parquet",
    ]
    assert os.listdir(warehouse.parent / "landing-cache" / BUCKET / "exports" / "cur" / "data")
