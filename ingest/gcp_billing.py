"""Google Cloud's detailed usage cost export (`gcp_billing_export_resource_v1_*`), as extracted
from BigQuery to newline-delimited JSON or Parquet.

What a reader must know about it:
- `cost` excludes credits; credits are a repeated record of negative amounts (committed-use,
  sustained-use, promotions, ...). They land as their own rows in `gcp_billing_credits`.
- `invoice.month` (YYYYMM) is in US Pacific time while usage times are UTC: the first hours of a
  UTC month can belong to the previous invoice. The billing period's bounds are computed here in
  UTC from the Pacific month.
- Rows arrive late and extracts overlap (each load re-reads a trailing window), so every row
  carries a hash of its content; staging keeps one row per hash across files.
- BigQuery's JSON extract writes INT64 as strings and TIMESTAMP as `2026-11-02 10:00:00 UTC`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.files import Parsed, RowError, iter_json_lines, rows_to_table
from ingest.tabular import SCALE

EXPORT = "gcp_billing_export"
CREDITS = "gcp_billing_credits"
FILE_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".parquet")
PACIFIC = ZoneInfo("America/Los_Angeles")
MONEY = pa.decimal128(38, 12)

EXPORT_SCHEMA = pa.schema([
    ("row_hash", pa.string()),
    ("billing_account_id", pa.string()),
    ("service_id", pa.string()), ("service_description", pa.string()),
    ("sku_id", pa.string()), ("sku_description", pa.string()),
    ("usage_start_time", pa.timestamp("us")), ("usage_end_time", pa.timestamp("us")),
    ("project_id", pa.string()), ("project_number", pa.string()), ("project_name", pa.string()),
    ("labels", pa.string()), ("project_labels", pa.string()), ("system_labels", pa.string()),
    ("location_region", pa.string()), ("location_zone", pa.string()), ("location_country", pa.string()),
    ("resource_name", pa.string()), ("resource_global_name", pa.string()),
    ("cost", MONEY), ("currency", pa.string()), ("currency_conversion_rate", pa.float64()),
    ("usage_amount", MONEY), ("usage_unit", pa.string()),
    ("usage_amount_in_pricing_units", MONEY), ("usage_pricing_unit", pa.string()),
    ("invoice_month", pa.string()),
    ("billing_period_start", pa.timestamp("us")), ("billing_period_end", pa.timestamp("us")),
    ("cost_type", pa.string()), ("adjustment_info", pa.string()),
    ("export_time", pa.timestamp("us")), ("cost_at_list", MONEY), ("price_effective_price", MONEY),
    ("transaction_type", pa.string()), ("seller_name", pa.string()),
    ("line_number", pa.int64()),
])

CREDIT_SCHEMA = pa.schema([
    ("row_hash", pa.string()), ("credit_index", pa.int32()), ("credit_id", pa.string()),
    ("credit_name", pa.string()), ("credit_full_name", pa.string()), ("credit_type", pa.string()),
    ("amount", MONEY),
])


def _ts(value: object, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if not isinstance(value, str):
        raise RowError(f"{field} is {value!r}, expected a timestamp")
    text = value.strip().replace(" UTC", "+00:00")
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise RowError(f"{field} is {value!r}, expected a timestamp") from None
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def _money(value: object, field: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise RowError(f"{field} is {value!r}, expected a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise RowError(f"{field} is {value!r}, expected a number") from None
    if not number.is_finite():
        raise RowError(f"{field} is {value!r}, expected a finite number")
    return number.quantize(SCALE)


def _struct(obj: dict, key: str) -> dict:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RowError(f"'{key}' must be a record, got {type(value).__name__}")
    return value


def _key_values(value: object, field: str) -> str | None:
    """BigQuery's ARRAY<STRUCT<key, value>> labels as one JSON object."""
    if not value:
        return None
    if not isinstance(value, list) or not all(isinstance(kv, dict) and "key" in kv for kv in value):
        raise RowError(f"'{field}' must be a list of {{key, value}} records")
    return json.dumps({str(kv["key"]): kv.get("value") for kv in value}, sort_keys=True, separators=(",", ":"))


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def billing_period_bounds(invoice_month: str) -> tuple[datetime, datetime]:
    """The invoice month's bounds in UTC: Google's invoice months run on US Pacific time."""
    year, month = int(invoice_month[:4]), int(invoice_month[4:6])
    start = datetime(year, month, 1, tzinfo=PACIFIC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=PACIFIC)
    return (start.astimezone(UTC).replace(tzinfo=None), end.astimezone(UTC).replace(tzinfo=None))


def flatten(obj: dict, line: int) -> tuple[tuple, list[tuple]]:
    """One export row as (export row, credit rows); raises RowError naming the bad field."""
    row_hash = hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
    invoice = _struct(obj, "invoice")
    month = _text(invoice.get("month"))
    if not month or len(month) != 6 or not month.isdigit() or not 1 <= int(month[4:]) <= 12:
        raise RowError(f"invoice.month is {month!r}, expected YYYYMM")
    start = _ts(obj.get("usage_start_time"), "usage_start_time")
    if start is None:
        raise RowError("missing field 'usage_start_time'")
    cost = _money(obj.get("cost"), "cost")
    if cost is None:
        raise RowError("missing field 'cost'")
    if not obj.get("currency"):
        raise RowError("missing field 'currency'")
    service, sku, project = _struct(obj, "service"), _struct(obj, "sku"), _struct(obj, "project")
    location, resource, usage, price = (_struct(obj, k) for k in ("location", "resource", "usage", "price"))
    period_start, period_end = billing_period_bounds(month)
    credits = obj.get("credits") or []
    if not isinstance(credits, list):
        raise RowError("'credits' must be a list")
    credit_rows = []
    for i, c in enumerate(credits):
        if not isinstance(c, dict):
            raise RowError("a credit must be a record")
        amount = _money(c.get("amount"), "credits.amount")
        if amount is None:
            raise RowError("a credit has no amount")
        credit_rows.append((row_hash, i, _text(c.get("id")), _text(c.get("name")), _text(c.get("full_name")),
                            _text(c.get("type")), amount))
    adjustment = obj.get("adjustment_info")
    row = (
        row_hash, _text(obj.get("billing_account_id")),
        _text(service.get("id")), _text(service.get("description")),
        _text(sku.get("id")), _text(sku.get("description")),
        start, _ts(obj.get("usage_end_time"), "usage_end_time"),
        _text(project.get("id")), _text(project.get("number")), _text(project.get("name")),
        _key_values(obj.get("labels"), "labels"), _key_values(project.get("labels"), "project.labels"),
        _key_values(obj.get("system_labels"), "system_labels"),
        _text(location.get("region")), _text(location.get("zone")), _text(location.get("country")),
        _text(resource.get("name")), _text(resource.get("global_name")),
        cost, str(obj["currency"]), obj.get("currency_conversion_rate"),
        _money(usage.get("amount"), "usage.amount"), _text(usage.get("unit")),
        _money(usage.get("amount_in_pricing_units"), "usage.amount_in_pricing_units"),
        _text(usage.get("pricing_unit")),
        month, period_start, period_end,
        _text(obj.get("cost_type")) or "regular",
        json.dumps(adjustment, sort_keys=True) if adjustment else None,
        _ts(obj.get("export_time"), "export_time"), _money(obj.get("cost_at_list"), "cost_at_list"),
        _money(price.get("effective_price"), "price.effective_price"),
        _text(obj.get("transaction_type")), _text(obj.get("seller_name")), line,
    )
    return row, credit_rows


def _objects(path: Path, parsed: Parsed):
    if path.name.endswith(".parquet"):
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as err:
            parsed.reject(None, f"unreadable Parquet: {err}")
            return
        yield from enumerate(table.to_pylist(), start=1)
    else:
        yield from iter_json_lines(parsed, path)


def read_gcp_file(path: Path, label: str | None = None) -> Parsed:
    """`label` names the file in rows and quarantine (its landing URI; the local path by default)."""
    parsed = Parsed(label or str(path))
    rows: list[tuple] = []
    credits: list[tuple] = []
    for number, obj in _objects(path, parsed):
        try:
            row, credit_rows = flatten(obj, number)
        except (RowError, ValueError, TypeError) as err:
            parsed.reject(number, str(err))
            continue
        rows.append(row)
        credits += credit_rows
    parsed.tables[EXPORT] = rows_to_table(rows, EXPORT_SCHEMA)
    parsed.tables[CREDITS] = rows_to_table(credits, CREDIT_SCHEMA)
    return parsed
