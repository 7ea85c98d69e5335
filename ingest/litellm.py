"""LiteLLM proxy spend logs: rows of its `LiteLLM_SpendLogs` table, exported as JSON lines or as the
table's CSV export (see ../shared/samples/serving-logs/litellm-spend-examples.jsonl).

Only the named fields below are copied out of a row. The table can also hold prompt and completion
text (`messages`, `response`, `proxy_server_request`, and anything nested in `metadata`); none of
it is read into a row or a quarantine reason, so it cannot reach the warehouse. A raw virtual key
(`sk-...`) is stored only as `sha256:<hex>`; LiteLLM itself stores the bare SHA-256 hex, kept as
it is. In CSV every value is text: `metadata` is JSON text, an empty field is null, and timestamps
are Postgres' `2026-11-02 10:15:03.123` (UTC, which LiteLLM writes) or ISO with an offset.
A missing cached-token count stays unknown (null), never 0. A retried request may reuse its
request_id: both rows are kept, dedup is the warehouse's job.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pyarrow as pa

from ingest.files import Parsed, RowError, complete_lines, iter_json_lines, parse_utc, rows_to_table
from ingest.privacy import kept_metadata, key_hash

SPEND_LOGS = "litellm_spend_logs"
FILE_SUFFIXES = (".jsonl", ".jsonl.gz", ".csv", ".csv.gz")
MONEY = Decimal("1e-10")
# (lower-case column, as LiteLLM spells it): a row without one of these cannot be costed.
REQUIRED = (("request_id", "request_id"), ("starttime", "startTime"), ("model", "model"))
# A stored `messages` or `response` can be far longer than the csv module's 128 KiB field default.
CSV_FIELD_LIMIT = 1 << 30

SPEND_LOG_SCHEMA = pa.schema([
    ("ts", pa.timestamp("us")),  # startTime
    ("end_ts", pa.timestamp("us")),  # endTime
    ("request_id", pa.string()),
    ("model", pa.string()),
    ("model_group", pa.string()),
    ("model_id", pa.string()),
    ("api_base", pa.string()),
    ("api_key_hash", pa.string()),
    ("key_alias", pa.string()),
    ("team_id", pa.string()),
    ("user_id", pa.string()),
    ("metadata", pa.string()),  # scalar metadata values only, as a JSON object
    ("status", pa.string()),  # 'success' / 'failure' as LiteLLM writes it
    ("cache_hit", pa.bool_()),
    ("prompt_tokens", pa.int64()),
    ("completion_tokens", pa.int64()),
    ("cached_tokens", pa.int64()),
    ("spend", pa.decimal128(38, 10)),
    ("line_number", pa.int64()),
])


def _text(rec: dict, key: str) -> str | None:
    value = rec.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RowError(f"column '{key}' has {type(value).__name__}, expected text")
    return value


def _tokens(rec: dict, key: str) -> int | None:
    value = rec.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdecimal():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise RowError(f"'{key}' must be a non-negative integer, got {value!r}")


def _spend(value: object) -> Decimal | None:
    """From the number's text, never through float arithmetic; kept to 10 places (the money scale)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RowError(f"'spend' must be a number, got {type(value).__name__}")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else str(value))
        if amount.is_finite():
            return amount.quantize(MONEY)  # raises InvalidOperation past 28 digits
    except InvalidOperation:
        pass
    raise RowError(f"'spend' {value!r} is not a finite number of at most 28 digits")


def _cache_hit(value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("", "none"):
        return None
    if text not in ("true", "false"):
        raise RowError(f"'cache_hit' must be True or False, got {value!r}")
    return text == "true"


def _metadata(rec: dict) -> dict:
    meta = rec.get("metadata")
    if meta is None or meta == "":
        return {}
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError:
            raise RowError("'metadata' is not valid JSON") from None
    if not isinstance(meta, dict):
        raise RowError("'metadata' must be a JSON object")
    return meta


def _cached_tokens(meta: dict) -> int | None:
    usage = meta.get("additional_usage_values")
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    cached = _tokens(details, "cached_tokens") if isinstance(details, dict) else None
    return cached if cached is not None else _tokens(usage, "cache_read_input_tokens")


def _first(*values: object) -> str | None:
    return next((v for v in values if isinstance(v, str) and v), None)


def _row(rec: dict, number: int) -> tuple:
    """One spend-log row from a record whose keys are lower case; raises RowError."""
    for key, name in REQUIRED:
        if rec.get(key) in (None, ""):
            raise RowError(f"missing field '{name}'")
    meta = _metadata(rec)
    end = _text(rec, "endtime")
    api_key = _text(rec, "api_key")
    return (
        parse_utc(rec["starttime"]), parse_utc(end) if end else None, _text(rec, "request_id"), _text(rec, "model"),
        _text(rec, "model_group"), _text(rec, "model_id"), _text(rec, "api_base"),
        key_hash(api_key) if api_key else None, _first(meta.get("user_api_key_alias")),
        _first(_text(rec, "team_id"), meta.get("user_api_key_team_id")),
        _first(_text(rec, "user"), _text(rec, "end_user"), meta.get("user_api_key_user_id")),
        kept_metadata(meta), _first(_text(rec, "status"), meta.get("status")), _cache_hit(rec.get("cache_hit")),
        _tokens(rec, "prompt_tokens"), _tokens(rec, "completion_tokens"), _cached_tokens(meta),
        _spend(rec.get("spend")), number,
    )


def _json_records(parsed: Parsed, path: Path) -> Iterator[tuple[int, dict]]:
    for number, obj in iter_json_lines(parsed, path):
        rec = {k.lower(): v for k, v in obj.items()}
        if "event" in rec and "request_id" not in rec:
            parsed.reject(number, "a LiteLLM webhook event (has 'event', no 'request_id'), not a spend-log row")
            continue
        yield number, rec


def _csv_rows(text: str) -> Iterator[tuple[int, list[str] | csv.Error]]:
    """(first line of the record, its fields or the error) per CSV record; a quoted field may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        start = reader.line_num + 1
        try:
            yield start, next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield start, err


def _undecodable(rec: dict[str, str]) -> str | None:
    """The first column we read whose bytes were not UTF-8 (decoded as surrogate escapes)."""
    used = ("request_id", "starttime", "endtime", "model", "model_group", "model_id", "api_base", "api_key",
            "team_id", "user", "end_user", "metadata", "status", "cache_hit", "spend")
    return next((k for k in used if any("\udc80" <= ch <= "\udcff" for ch in rec.get(k) or "")), None)


def _csv_records(parsed: Parsed, path: Path) -> Iterator[tuple[int, dict]]:
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    lines, damage = complete_lines(parsed, path)
    rows = _csv_rows(b"\n".join(lines).decode("utf-8", errors="surrogateescape").removeprefix("\ufeff"))
    _, header = next(rows, (1, []))
    columns = [h.strip().lower() for h in header] if isinstance(header, list) else []
    missing = [name for key, name in REQUIRED if key not in columns]
    if not columns:
        parsed.reject(None, "empty file: no header line")
    elif missing:
        parsed.reject(None, f"schema drift: no column {', '.join(repr(n) for n in missing)} in the header")
    for number, row in rows if columns and not missing else ():
        if not row:
            continue  # a blank line
        if isinstance(row, csv.Error):
            parsed.reject(number, f"malformed CSV: {row}")
        elif len(row) != len(columns):
            parsed.reject(number, f"{len(row)} fields where the header has {len(columns)}")
        elif bad := _undecodable(rec := dict(zip(columns, row, strict=True))):
            parsed.reject(number, f"column '{bad}' is not UTF-8 text")
        else:
            yield number, rec
    if damage:
        parsed.reject(None, damage)


def read_litellm_file(path: Path, label: str | None = None) -> Parsed:
    """`label` names the file in rows and quarantine (its landing URI; the local path by default)."""
    parsed = Parsed(label or str(path))
    is_csv = path.name.lower().removesuffix(".gz").endswith(".csv")
    rows: list[tuple] = []
    for number, rec in (_csv_records if is_csv else _json_records)(parsed, path):
        try:
            rows.append(_row(rec, number))
        except (RowError, ValueError) as err:
            parsed.reject(number, str(err))
    parsed.tables[SPEND_LOGS] = rows_to_table(rows, SPEND_LOG_SCHEMA)
    return parsed
