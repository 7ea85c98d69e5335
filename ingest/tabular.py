"""Typed reading of the CSV billing exports (legacy CUR, CUR 2.0 csv.gz, FOCUS, Azure, OCI).

Each format describes its columns once: which headers feed which raw column, of which kind.
The reader handles what real exports do: a byte-order mark, gzip (even truncated), quoted
fields, literal `NULL`, headers in other letter cases, a column the export added since (kept as
JSON in `x_extra`), dynamic column families such as `resourceTags/user:team` (folded into one
JSON or map column), non-UTF-8 bytes and unparseable values (the row is quarantined, the file
goes on). A missing required column rejects the whole file: its rows cannot be costed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.files import Parsed, read_text_bytes

Kind = Literal["str", "decimal", "float", "int", "timestamp", "json", "map"]
ARROW = {
    "str": pa.string(),
    "decimal": pa.decimal128(38, 12),
    "float": pa.float64(),
    "int": pa.int64(),
    "timestamp": pa.timestamp("us"),
    "json": pa.string(),
    "map": pa.map_(pa.string(), pa.string()),
}
NULLS = {"", "NULL", "null", "None", "N/A"}
TIMESTAMP_FORMATS = ("%m/%d/%Y", "%Y-%m-%d %H:%M:%S", "%Y%m%dT%H%M%S.%fZ", "%Y%m%d")


@dataclass(frozen=True)
class Column:
    name: str  # the raw table's column
    kind: Kind
    headers: tuple[str, ...] = ()  # the export's header names (case-insensitive); default: the name
    required: bool = False


@dataclass(frozen=True)
class Format:
    """How one export format's headers become raw columns."""

    table: str
    columns: tuple[Column, ...]
    # header prefix -> the json/map column that collects that family, e.g. "tags/" -> "tags"
    families: dict[str, str] = field(default_factory=dict)
    # a header without a column or family: None keeps it in x_extra; a function may rename it to a column
    rename: Callable[[str], str | None] | None = None
    # (family column, key as in the header) -> the key stored
    family_key: Callable[[str, str], str] = lambda column, key: key

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(c.name, ARROW[c.kind]) for c in self.columns] + [("x_extra", pa.string()),
                                                                               ("_row_number", pa.int64())])


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 in any of the shapes exports use, or one of the US/compact forms; naive UTC."""
    value = text.strip()
    if value.endswith("Z") and "T" in value and value[-6] != ":" and value.count(":") == 1:
        value = value[:-1] + ":00Z"  # OCI's 2023-11-13T10:00Z
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        for fmt in TIMESTAMP_FORMATS:
            try:
                t = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"not a timestamp: {text!r}") from None
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def _json_object(text: str) -> str:
    """A JSON object as text; Azure's tag column omits the braces (`"a": "b","c": "d"`)."""
    stripped = text.strip()
    obj = json.loads(stripped if stripped.startswith("{") else "{" + stripped + "}")
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _map(text: str) -> list[tuple[str, str]]:
    return [(k, str(v)) for k, v in json.loads(_json_object(text)).items()]


SCALE = Decimal("1e-12")  # raw decimals keep 12 places; money downstream keeps 10


def _decimal(text: str) -> Decimal:
    value = Decimal(text.strip())
    if not value.is_finite():
        raise ValueError(f"not a finite number: {text!r}")
    return value.quantize(SCALE)


CONVERT: dict[Kind, Callable[[str], object]] = {
    "str": str,
    "decimal": _decimal,
    "float": float,
    "int": int,
    "timestamp": parse_timestamp,
    "json": _json_object,
    "map": _map,
}


Resolution = tuple[dict[int, Column], dict[int, tuple[str, str]], dict[int, str]]


def _resolve_headers(fmt: Format, headers: list[str]) -> Resolution:
    """Which header index feeds which column, which family (column, key), and which go to x_extra."""
    by_header = {h.lower(): c for c in fmt.columns for h in (c.headers or (c.name,))}
    by_name = {c.name: c for c in fmt.columns}
    to_column: dict[int, Column] = {}
    to_family: dict[int, tuple[str, str]] = {}
    extra: dict[int, str] = {}
    for i, header in enumerate(headers):
        family = next((p for p in fmt.families if header.startswith(p)), None)
        renamed = by_name.get(fmt.rename(header) or "") if fmt.rename else None
        if (col := by_header.get(header.strip().lower()) or renamed) is not None:
            to_column[i] = col
        elif family is not None:
            to_family[i] = (fmt.families[family], fmt.family_key(fmt.families[family], header[len(family):]))
        else:
            extra[i] = header
    return to_column, to_family, extra


def _native(kind: Kind, value: object) -> object:
    """A typed value from Parquet (numbers, datetimes, maps) in the raw column's kind."""
    if isinstance(value, str):
        return CONVERT[kind](value)
    if kind == "str":
        return str(value)
    if kind == "decimal":
        return _decimal(str(value))
    if kind in ("float", "int"):
        return float(value) if kind == "float" else int(value)
    if kind == "timestamp" and isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if kind in ("json", "map") and isinstance(value, dict | list):
        obj = dict(value)
        return sorted((k, str(v)) for k, v in obj.items()) if kind == "map" else json.dumps(
            obj, sort_keys=True, separators=(",", ":"), default=str)
    raise ValueError(f"cannot read {value!r} as {kind}")


def _to_table(fmt: Format, headers: list[str], rows, label: str, parsed: Parsed, damaged: bool) -> pa.Table | None:
    """Typed rows of `fmt.schema` from (line number, raw values); None when a required column is missing."""
    to_column, to_family, extra = _resolve_headers(fmt, headers)
    present = {c.name for c in to_column.values()}
    missing = [c.headers[0] if c.headers else c.name for c in fmt.columns if c.required and c.name not in present]
    if missing:
        parsed.reject(None, f"schema drift: missing required columns {', '.join(missing)}", label)
        return None
    out: dict[str, list] = {name: [] for name in fmt.schema.names}
    family_kinds = {c.name: c.kind for c in fmt.columns if c.name in fmt.families.values()}
    for number, row in rows:
        try:
            values = _convert_row(row, headers, to_column, to_family, extra, family_kinds)
        except (ValueError, InvalidOperation, UnicodeError) as err:
            parsed.reject(number, str(err), label)
            continue
        values["_row_number"] = number
        for name, column in out.items():
            column.append(values.get(name))
    if damaged and out["_row_number"]:  # the last row of a damaged file may be cut mid-field
        last = out["_row_number"][-1]
        for values in out.values():
            values.pop()
        parsed.reject(last, "truncated row at the end of a damaged file", label)
    return pa.table({n: pa.array(out[n], type=fmt.schema.field(n).type) for n in out}, schema=fmt.schema)


def read_csv(path: Path, fmt: Format, parsed: Parsed, label: str | None = None) -> pa.Table | None:
    """The file's rows as `fmt.schema`, or None when the whole file is unusable (quarantined).
    `label` names the file in the quarantine (its landing URI; the local path by default)."""
    label = label or str(path)
    data, damage = read_text_bytes(path)
    if damage:
        parsed.reject(None, damage, label)
    text = data.decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    headers = next(reader, None)
    if headers is None:
        parsed.reject(None, "empty file: no header line", label)
        return None
    rows = ((n, row) for n, row in enumerate(reader, start=2) if row)  # line 1 is the header
    # a damaged file that still ends in a newline lost no part of its last row
    return _to_table(fmt, headers, rows, label, parsed, damaged=damage is not None and not data.endswith(b"\n"))


def read_parquet(path: Path, fmt: Format, parsed: Parsed, label: str | None = None) -> pa.Table | None:
    label = label or str(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        parsed.reject(None, f"unreadable Parquet: {err}", label)
        return None
    columns = [c.to_pylist() for c in table.columns]
    rows = ((n, [col[n - 1] for col in columns]) for n in range(1, table.num_rows + 1))
    return _to_table(fmt, table.column_names, rows, label, parsed, damaged=False)


def read_table(path: Path, fmt: Format, parsed: Parsed) -> pa.Table | None:
    if path.name.lower().endswith(".parquet"):
        return read_parquet(path, fmt, parsed, parsed.source_file)
    return read_csv(path, fmt, parsed, parsed.source_file)


def _convert_row(row, headers, to_column, to_family, extra, family_kinds) -> dict[str, object]:
    if len(row) != len(headers):
        raise ValueError(f"{len(row)} fields where the header has {len(headers)}")
    values: dict[str, object] = {}
    families: dict[str, dict[str, str]] = {}
    extra_values: dict[str, str] = {}
    for i, raw in enumerate(row):
        if raw is None or (isinstance(raw, str) and raw.strip() in NULLS):
            continue
        if isinstance(raw, str) and any("\udc80" <= ch <= "\udcff" for ch in raw):  # undecodable bytes
            raise UnicodeError(f"column {headers[i]!r}: not UTF-8 text")
        if i in to_column:
            col = to_column[i]
            try:
                values[col.name] = _native(col.kind, raw)
            except (ValueError, TypeError, InvalidOperation, json.JSONDecodeError):
                raise ValueError(f"column {headers[i]!r}: cannot read {str(raw)[:60]!r} as {col.kind}") from None
        elif i in to_family:
            name, key = to_family[i]
            families.setdefault(name, {})[key] = str(raw)
        elif i in extra:
            extra_values[extra[i]] = raw if isinstance(raw, str | int | float | bool) else str(raw)
    for name, kv in families.items():
        if family_kinds[name] == "map":
            values[name] = sorted(kv.items())
        else:
            values[name] = json.dumps(kv, sort_keys=True, separators=(",", ":"))
    if extra_values:
        values["x_extra"] = json.dumps(extra_values, sort_keys=True, separators=(",", ":"))
    return values
