"""AWS CUR 2.0 deliveries: find each billing period's manifest, read the files it lists.

AWS writes `<location>/<export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json` after the
data files, and each refresh restates the whole period. So the manifest, never a folder listing,
says which files make up a delivery, and a delivery replaces everything loaded for its period.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest.aws_cur_schema import CUR2_SCHEMA, REQUIRED_COLUMNS
from ingest.files import Parsed

CUR = "aws_cur"
PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Delivery:
    export_name: str
    billing_period: str  # YYYY-MM
    manifest: Path
    execution_id: str | None
    data_files: tuple[Path, ...]

    @property
    def key(self) -> str:
        return f"{self.export_name}/BILLING_PERIOD={self.billing_period}"


def _local_data_file(uri: str, export_dir: Path, export_name: str) -> Path:
    """Map a manifest's s3:// data file to the same file under a local copy of the export."""
    marker = f"/{export_name}/data/"
    if marker not in uri:
        raise ValueError(f"data file {uri} is not under the export's data/ folder")
    return export_dir / "data" / uri.split(marker, 1)[1]


def parse_manifest(path: Path, export_dir: Path, export_name: str) -> Delivery:
    """Raises ValueError naming what is wrong with the manifest."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"manifest is not valid JSON: {err}") from None
    files = manifest.get("dataFiles")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise ValueError("manifest has no 'dataFiles' list")
    start = (manifest.get("billingPeriod") or {}).get("start", "")
    period = start[:7] if isinstance(start, str) else ""
    if not PERIOD.match(period):
        raise ValueError(f"manifest has no valid billingPeriod.start (got {start!r})")
    return Delivery(
        export_name=export_name,
        billing_period=period,
        manifest=path,
        execution_id=manifest.get("executionId"),
        data_files=tuple(_local_data_file(f, export_dir, export_name) for f in files),
    )


def find_manifests(location: Path, export_name: str) -> list[Path]:
    return sorted((location / export_name / "metadata").glob("BILLING_PERIOD=*/**/*Manifest.json"))


def _conform(table: pa.Table) -> pa.Table:
    """The delivery's columns in CUR 2.0 order and types; columns this export left out are null."""
    columns = []
    for f in CUR2_SCHEMA:
        if f.name in table.column_names:
            columns.append(table[f.name].cast(f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.table(columns, schema=CUR2_SCHEMA)


def read_delivery(delivery: Delivery) -> Parsed:
    """Every line item of one delivery, with the file and row each came from."""
    parsed = Parsed(str(delivery.manifest))
    parts = []
    for path in delivery.data_files:
        try:
            table = pq.read_table(path)
        except FileNotFoundError:
            parsed.reject(None, "listed in the manifest but missing", str(path))
            continue
        except (pa.ArrowInvalid, OSError) as err:
            parsed.reject(None, f"unreadable Parquet: {err}", str(path))
            continue
        missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
        if missing:
            parsed.reject(None, f"schema drift: missing columns {', '.join(missing)}", str(path))
            continue
        try:
            table = _conform(table)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            parsed.reject(None, f"schema drift: a column has an unexpected type ({err})", str(path))
            continue
        row_numbers = pa.array(range(1, table.num_rows + 1), pa.int64())
        bad = pc.or_kleene(
            pc.or_kleene(pc.is_null(table["line_item_unblended_cost"]),
                         pc.is_null(table["line_item_usage_start_date"])),
            pc.is_null(table["line_item_line_item_type"]),
        )
        for n in pc.filter(row_numbers, bad).to_pylist():
            parsed.reject(n, "line item without cost, usage start or line item type", str(path))
        good = pc.invert(bad)
        table = table.filter(good)
        table = table.append_column("_source_file", pa.array([str(path)] * table.num_rows, pa.string()))
        table = table.append_column("_row_number", pc.filter(row_numbers, good))
        parts.append(table)
    if parts:
        parsed.tables[CUR] = pa.concat_tables(parts)
    return parsed

