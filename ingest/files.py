"""Reading landing-zone files defensively: what a reader gets back, and what it quarantines.

A reader never raises on bad input. It returns the rows it could read and, for every row or
file it could not, a quarantine entry naming the file, the row and the reason.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
from isal import igzip, isal_zlib

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


# --- many files' lines at once, for readers that parse in DuckDB ---------------------------------

LINE_SCHEMA = pa.schema([("file", pa.int32()), ("line", pa.int64()), ("text", pa.large_string())])


@dataclass
class LineBatch:
    """Every line of a batch of files as one Arrow table (`file`: the file's index in the batch,
    `line`: its 1-based line number, `text`: the line with its newline), and the files it could
    not take as they are (a damaged gzip stream, a carriage return, bytes that are not UTF-8):
    those are read by their per-file reader, which says exactly what is wrong with them."""

    table: pa.Table
    unreadable: list[int]
    sizes: list[int]  # uncompressed bytes per file (0 for an unreadable one)


_TRAILING_COMMA = re.compile(rb",[ \t]*[\]}]")


def has_trailing_comma(data: bytes) -> bool:
    """`_TRAILING_COMMA.search(data)`, read in numpy from the byte after each comma: about half the
    CPU of the regex, which tries a match at every comma (0.57-0.87 s against 1.08-1.37 s on 800 MB
    of collector lines; `b",}" in data` and the like take longer still). Only where a comma is
    followed by a blank (not in compact JSON, as collectors write it) is the regex asked."""
    codes = np.frombuffer(data, np.uint8)
    after = codes[np.flatnonzero(codes[:-1] == ord(",")) + 1]
    if ((after == ord("]")) | (after == ord("}"))).any():
        return True
    return bool(((after == ord(" ")) | (after == ord("\t"))).any()) and _TRAILING_COMMA.search(data) is not None


def _whole_text(path: Path) -> bytes | None:
    """The file's bytes, gunzipped, when they split into lines exactly as `complete_lines` splits
    them (on b"\\n" alone) and are UTF-8; else None."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            # ISA-L's inflate: zlib's output, CRC checks and errors, at 1.8x the speed (a 1,000-GPU
            # day is 4 GB of JSON lines); every member; raises on a truncated or corrupt stream
            data = igzip.decompress(raw)
        except (OSError, EOFError, isal_zlib.error):
            return None
    else:
        data = raw
    if b"\r" in data:  # Arrow and DuckDB would see a line break where Python sees whitespace
        return None
    # DuckDB's JSON reader accepts a trailing comma, json.loads does not (a string holding ",}"
    # sends its file to the per-file reader too, which then reads it all the same)
    if has_trailing_comma(data):
        return None
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return data


def read_line_batch(paths: list[Path], threads: int = 2) -> LineBatch:
    """Decompression runs on `threads` threads (zlib releases the GIL); the lines are views of the
    decompressed bytes, never copied one by one."""
    with ThreadPoolExecutor(threads) as pool:
        texts = list(pool.map(_whole_text, paths))
    parts, unreadable, sizes = [], [], []
    for i, data in enumerate(texts):
        if data is None:
            unreadable.append(i)
            sizes.append(0)
            continue
        sizes.append(len(data))
        if data and not data.endswith(b"\n"):
            data += b"\n"  # an undamaged file's last line without a newline is still a line
        ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10) + 1
        offsets = np.concatenate([np.zeros(1, np.int64), ends.astype(np.int64)])
        text = pa.LargeStringArray.from_buffers(len(ends), pa.py_buffer(offsets), pa.py_buffer(data))
        parts.append(pa.table([pa.array(np.full(len(ends), i, np.int32)),
                               pa.array(np.arange(1, len(ends) + 1, dtype=np.int64)), text], schema=LINE_SCHEMA))
    table = pa.concat_tables(parts) if parts else LINE_SCHEMA.empty_table()
    return LineBatch(table, unreadable, sizes)


# --- SQL that reads a JSON field exactly as `require` / `optional` do -----------------------------
# A field is taken from `from_json(text, '{"key": "JSON", ...}')`, so its JSON type can be checked
# (DuckDB's typed JSON reading would turn "3", 2.5 or true into an integer without a word).

SQL_TYPES = {"int": "bigint", "int32": "integer", "number": "double"}


def json_struct(keys: Iterable[str], **nested: str) -> str:
    """The `from_json` structure that keeps each key's value as JSON text (NULL when absent); a key
    in `nested` is read into that structure instead, in the same parse of the line."""
    leaf = '"JSON"'
    return "{" + ",".join(f'"{k}":{nested.get(k, leaf)}' for k in [*keys, *nested]) + "}"


def sql_missing(x: str) -> str:
    """`obj.get(key) is None`: absent or JSON null."""
    return f"({x} is null or {x} = 'null')"


# The checks read the value's JSON text (DuckDB writes it compactly) rather than parse it again:
# a string starts with '"', an integer is the digits its value prints as, and so on.

def sql_value(x: str, kind: str) -> str:
    """The field's value as the Python reader stores it (NULL when missing; any value when the
    field is of the wrong kind, which `sql_ok` rejects)."""
    if kind == "str":
        return f"json_extract_string({x}, '$')"
    if kind == "bool":
        return f"({x} = 'true')"
    return f"try_cast(cast({x} as varchar) as {SQL_TYPES[kind]})"


def sql_ok(x: str, kind: str, required: bool = False) -> str:
    """True when `optional(obj, key, ...)` (or `require`) accepts the field and its value fits its
    Arrow column (an integer too large makes the Python reader fail, so it goes there to do so)."""
    text = f"cast({x} as varchar)"
    if kind == "str":
        present = f"starts_with({text}, '\"')"
    elif kind == "bool":
        present = f"{text} in ('true', 'false')"
    elif kind == "number":  # no JSON text but a number casts to a double ('"1"', 'true' and 'null' do not)
        present = f"({sql_value(x, kind)} is not null)"
    else:  # an integer: its text is the digits of its value (not 1.0, 1e3, "1", true or -0)
        present = f"coalesce(cast({sql_value(x, kind)} as varchar) = {text}, false)"
    # CASE, not OR: DuckDB evaluates both sides of an OR
    return f"(case when {sql_missing(x)} then {'false' if required else 'true'} else {present} end)"


def sql_falsy(x: str) -> str:
    """Python's `not value` for a JSON field: absent, null, false, 0, "", [] or {}."""
    return (f"({sql_missing(x)} or {x} in ('false', '\"\"', '[]', '{{}}') "
            f"or coalesce(try_cast(cast({x} as varchar) as double) = 0, false))")


def sql_object_line(text: str) -> str:
    """The line holds a JSON object (not blank, not an array or scalar). `from_json` raises on a line
    that is not JSON at all, which sends its file to the per-file reader; a trailing comma, which
    it accepts and json.loads does not, already did (`_whole_text`). (It also keeps the first of a
    repeated key where json.loads keeps the last; no JSON writer repeats a key.)"""
    # (CASE, not OR: DuckDB evaluates both sides of an OR, and ltrim copies the line)
    return f"(case when starts_with({text}, '{{') then true else starts_with(ltrim({text}, ' \t\n'), '{{') end)"


def sql_blank(text: str) -> str:
    """`not line.strip()` (bytes.strip: space, \\t, \\n, \\r, \\v, \\f)."""
    # trim() copies the line: only one that does not start with '{' can be blank (CASE, not AND:
    # DuckDB evaluates both sides of an AND)
    return (f"(case when starts_with({text}, '{{') then false "
            f"else trim({text}, ' \t\n\r' || chr(11) || chr(12)) = '' end)")


# '2026-11-02T00:00:10.024Z' and the ISO forms around it that datetime.fromisoformat reads the same
_TS = r"\d{4}-\d\d-\d\d[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?"


def sql_utc(s: str) -> str:
    """`parse_utc` of the string `s` for the common ISO-8601 forms (NULL for any other, which the
    per-file reader then judges): naive UTC, an offset applied."""
    offset = (f"case when ends_with({s}, 'Z') then 0 when regexp_matches({s}, '[+-]\\d\\d:\\d\\d$') then "
              f"(case when substr({s}, -6, 1) = '-' then -1 else 1 end) * "
              f"(cast(substr({s}, -5, 2) as integer) * 60 + cast(substr({s}, -2, 2) as integer)) else 0 end")
    micros = (f"case when strlen({s}) = 24 and ends_with({s}, 'Z') then cast(substr({s}, 21, 3) as bigint) * 1000 "
              f"else coalesce(cast(rpad(nullif(regexp_extract({s}, '\\.(\\d+)', 1), ''), 6, '0') as bigint), 0) end")
    return (f"case when regexp_full_match({s}, '{_TS}') then try_cast(left({s}, 19) as timestamp) "
            f"+ to_microseconds({micros}) - to_minutes({offset}) end")


@dataclass(frozen=True)
class FastReader:
    """A source's batched reader in DuckDB SQL, for files whose every line it reads exactly as the
    source's per-file reader would.

    `stage` runs in order over the view `_fast_lines_in` (`file`, `line`, `text`: see `LineBatch`)
    and creates temporary tables; `bad_files` selects the `file` of every line the SQL cannot vouch
    for (a row the per-file reader would quarantine, or a value it stores otherwise): such files go
    to the per-file reader whole. `tables` gives, per raw table, its Arrow schema and the SQL that
    selects `file` and the table's columns from the staged tables.
    """

    stage: tuple[str, ...]
    bad_files: str
    tables: dict[str, tuple[pa.Schema, str]]
    temp_tables: tuple[str, ...]
