"""Reading landing-zone files defensively: what a reader gets back, and what it quarantines.

A reader never raises on bad input. It returns the rows it could read and, for every row or
file it could not, a quarantine entry naming the file, the row and the reason.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

CHUNK = 1 << 20
GZIP_CHUNK = 1 << 14  # small input steps: on damage, everything before the bad step is kept


@dataclass(frozen=True)
class Quarantined:
    source_file: str
    row_number: int | None  # 1-based line or row; None when the whole file is rejected
    reason: str


@dataclass
class Parsed:
    """What one reader made of one file (or one billing delivery)."""

    source_file: str
    tables: dict[str, pa.Table] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)

    def reject(self, row: int | None, reason: str, source_file: str | None = None) -> None:
        self.quarantined.append(Quarantined(source_file or self.source_file, row, reason))

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.tables.values())


@dataclass(frozen=True)
class Fingerprint:
    path: str
    size: int
    sha256: str


def fingerprint(path: Path) -> Fingerprint:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return Fingerprint(str(path), path.stat().st_size, digest.hexdigest())


def read_text_bytes(path: Path, gzipped: bool | None = None) -> tuple[bytes, str | None]:
    """The file's bytes, gunzipped when it ends in .gz (or `gzipped` says so), and why it stopped
    early if it did.

    A truncated or corrupt gzip keeps everything that decompressed before the damage, so the
    good rows of a half-copied file still land.
    """
    raw = path.read_bytes()
    if not (path.suffix == ".gz" if gzipped is None else gzipped):
        return raw, None
    out = bytearray()
    data = raw
    while data:
        dec = zlib.decompressobj(wbits=31)
        try:
            for i in range(0, len(data), GZIP_CHUNK):
                out += dec.decompress(data[i : i + GZIP_CHUNK])
        except zlib.error as err:
            return bytes(out), f"corrupt gzip data ({err})"
        if not dec.eof:
            return bytes(out), "file truncated: the gzip stream ends early"
        data = dec.unused_data  # concatenated gzip members are legal
    return bytes(out), None


def complete_lines(parsed: Parsed, path: Path) -> tuple[list[bytes], str | None]:
    """The file's lines and why it stopped early if it did. When damage cut the last line short
    (no newline after it) that line is quarantined rather than read; the caller records the damage."""
    data, damage = read_text_bytes(path)
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    elif damage:
        lines.pop()
        parsed.reject(len(lines) + 1, "truncated line at the end of a damaged file")
    return lines, damage


def iter_json_lines(parsed: Parsed, path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each good JSON-object line; every other line is quarantined."""
    lines, damage = complete_lines(parsed, path)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            parsed.reject(number, f"not UTF-8 text (byte {err.start} of the line)")
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            parsed.reject(number, f"malformed JSON: {err.msg} at column {err.colno}")
            continue
        if not isinstance(obj, dict):
            parsed.reject(number, f"expected a JSON object, got {type(obj).__name__}")
            continue
        yield number, obj
    if damage:
        parsed.reject(None, damage)


def parse_utc(value: object) -> datetime:
    """An ISO-8601 timestamp as naive UTC (the warehouse stores every time in UTC)."""
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO-8601 timestamp, got {value!r}")
    t = datetime.fromisoformat(value)
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


class RowError(ValueError):
    """A field of one row is missing or has a value of the wrong kind."""


def require(obj: dict, key: str, kind: type | tuple[type, ...]) -> object:
    value = obj.get(key)
    if value is None:
        raise RowError(f"missing field '{key}'")
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise RowError(f"field '{key}' has {type(value).__name__} {value!r}, expected {_kind_name(kind)}")
    return value


def optional(obj: dict, key: str, kind: type | tuple[type, ...]) -> object | None:
    return None if obj.get(key) is None else require(obj, key, kind)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def rows_to_table(rows: list[tuple], schema: pa.Schema) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    return pa.table([pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)], schema=schema)
