"""Load a source's landing zones into the warehouse: skip what is unchanged, replace what changed."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ingest import aws_cur, gateway, nvml
from ingest.files import FastReader, LineBatch, Parsed, read_line_batch
from ingest.landing import Landing, LandingFile, hashed_version
from ingest.warehouse import (
    RAW,
    Ingestion,
    ensure_parquet_table,
    ensure_raw_table,
    first_row,
    load_parsed,
    parquet_root,
    record_ingested,
    remember_listing,
    replacing_parquet,
    scalar,
    table_exists,
    utc_now,
)

log = logging.getLogger(__name__)

Reader = Callable[[Path, str, str], Parsed]  # (local copy, label, landing key)


@dataclass
class LoadReport:
    source: str
    seen: int = 0
    loaded: int = 0
    unchanged: int = 0
    rows: Counter = field(default_factory=Counter)
    quarantined: int = 0
    problems: list[str] = field(default_factory=list)  # a few quarantine reasons, for the run log

    def add(self, parsed: Parsed, rows: dict[str, int] | None = None) -> None:
        """`rows` per table, where the parts were loaded as they were read rather than kept in `parsed`."""
        self.loaded += 1
        self.rows.update(rows or {name: t.num_rows for name, t in parsed.tables.items()})
        self.quarantined += len(parsed.quarantined)
        for q in parsed.quarantined[: max(0, 5 - len(self.problems))]:
            where = f"{q.source_file}" + (f" row {q.row_number}" if q.row_number else "")
            self.problems.append(f"{where}: {q.reason}")

    def merge(self, other: LoadReport) -> None:
        self.seen += other.seen
        self.loaded += other.loaded
        self.unchanged += other.unchanged
        self.rows.update(other.rows)
        self.quarantined += other.quarantined
        self.problems += other.problems[: max(0, 5 - len(self.problems))]

    def summary(self) -> str:
        rows = ", ".join(f"{n:,} {t}" for t, n in sorted(self.rows.items())) or "no rows"
        return (f"{self.source}: {self.seen} files seen, {self.loaded} loaded, {self.unchanged} unchanged; "
                f"{rows}; {self.quarantined} quarantined")


def host_of(key: str) -> str:
    """The host a telemetry file belongs to: its first folder (`<host>/...`), else its name."""
    return key.split("/", 1)[0] if "/" in key else key.split(".", 1)[0]


# 2026-11-24, 2026/11/24 or 20261124 (the collector's `...-20261124T10.jsonl.gz`), not inside a longer number.
_DAY_IN_KEY = re.compile(r"(?<!\d)(20\d\d)([-/]?)(0[1-9]|1[0-2])\2(0[1-9]|[12]\d|3[01])(?!\d)")


def key_day(key: str) -> date | None:
    """The last date in a landing key, if it has one."""
    for year, _, month, day in reversed(_DAY_IN_KEY.findall(key)):
        try:
            return date(int(year), int(month), int(day))
        except ValueError:  # 2026-02-30
            continue
    return None


def file_day(f: LandingFile) -> date:
    """The UTC day a telemetry or serving file belongs to (its daily partition): the last date in
    its key, since collectors and log shippers name files and folders by day; else the day it was
    last written."""
    return key_day(f.key) or datetime.fromtimestamp(f.modified, UTC).date()


def label(landing: Landing, f: LandingFile) -> str:
    """How a file is named in rows and the quarantine: its path, or its s3:// URI."""
    return f"{landing.uri.rstrip('/')}/{f.key}"


def list_files(landings: Iterable[Landing], suffixes: tuple[str, ...],
               days: tuple[date, date] | None = None) -> list[tuple[Landing, LandingFile]]:
    """Complete files of the landing zones (of the days [first, end) when `days` is given, by
    `file_day`); a collector's in-progress `.tmp` files never match.

    Local files are listed by size and mtime, not hashed: `load_files` hashes only those it has
    not loaded with that size and mtime, so a run over a year of files reads only the new ones.
    A file whose key dates it outside `days` is not even stat'ed: a day of a 10,000-GPU fleet is
    53,000 files, and every day of history kept in the landing zone added their stats to each run."""
    if days is None:
        return [(landing, f) for landing in landings for f in landing.list(suffixes, hash_content=False)]
    first, end = days
    undated: set[str] = set()  # dated by when they were written: the stat tells

    def may_be_in_days(key: str) -> bool:
        day = key_day(key)
        if day is None:
            undated.add(key)
        return day is None or first <= day < end

    listed = [(landing, f) for landing in landings
              for f in landing.list(suffixes, hash_content=False, keys=may_be_in_days)]
    return [(landing, f) for landing, f in listed if f.key not in undated or first <= file_day(f) < end]


# Sources whose files are also read many at a time in DuckDB (`FastReader`), the per-file reader
# taking only the files that SQL cannot vouch for: the two that carry a fleet's volume.
FAST_READERS: dict[str, FastReader] = {"nvml": nvml.FAST_READER, "gateway": gateway.FAST_READER}
BATCH_BYTES = 32 << 20  # listed (gzip) bytes per batch: ~0.4 GiB of JSON lines in memory at once
BATCH_FILES = 500


def load_files(con: duckdb.DuckDBPyConnection, source: str, files: list[tuple[Landing, LandingFile]],
               reader: Reader, progress: Callable[[str], None] = log.info,
               fast: FastReader | bool = True) -> LoadReport:
    """Load each new or changed file, replacing what it loaded before; skip unchanged ones; a copy
    of a file already loaded is quarantined rather than counted twice.

    Where the source has a `FastReader` (`fast=True`: the one in FAST_READERS; or the one given),
    files are read in batches in DuckDB and each batch lands in one transaction; a file the SQL
    cannot vouch for (a bad line, a damaged gzip stream, a value of the wrong kind) is read by
    `reader` alone, so its rows and quarantine reasons are exactly the per-file reader's.
    """
    fast_reader = FAST_READERS.get(source) if fast is True else (fast or None)
    report = LoadReport(source)
    names = [label(landing, f) for landing, f in files]
    known = Ingested.read(con, source, names)
    search_all = fast_reader is not None and not accounts_for_every_row(con, source, fast_reader.tables)
    if search_all:
        progress(f"{source}: raw.ingested_files does not account for every row of the raw tables (records "
                 "cleared by hand?): every file's earlier rows are looked for, which reads all of them")
    last = time.monotonic()
    batch: list[tuple[Landing, LandingFile, str]] = []
    batch_bytes = 0  # summed as files join, not over the batch at each file (0.35 s of a 52,000-file day)

    def one_file(landing: Landing, f: LandingFile, name: str) -> None:
        parsed = reader(landing.local_path(f), name, f.key)
        load_parsed(con, source, parsed, name, {"_source_file": name}, f.size, f.version, listed.get(name))
        report.add(parsed)
        known.record(name, f.version, parsed.rows, listed.get(name))

    # A closed batch's lines are read (gunzip, split, checked) on a thread while DuckDB loads the
    # batch before it: at most two batches in memory.
    pool = ThreadPoolExecutor(1)
    reading: list[tuple[list[tuple[Landing, LandingFile, str]], Future[LineBatch]]] = []

    pending: set[str] = set()  # versions in `batch` and `reading`

    def load_read() -> None:
        files_, lines = reading.pop()
        pending.difference_update(f.version for _, f, _ in files_)
        for landing, f, name in load_batch(con, source, fast_reader, files_, lines.result(), known, report, listed,
                                           search_all):
            one_file(landing, f, name)

    def flush(wait: bool = False) -> None:
        nonlocal batch_bytes
        if batch:
            closed = list(batch)
            batch.clear()
            batch_bytes = 0
            future = pool.submit(read_line_batch, [landing.local_path(f) for landing, f, _ in closed])
            if reading:
                load_read()
            reading.append((closed, future))
        if wait and reading:
            load_read()

    listed: dict[str, str] = {}  # label -> size:mtime_ns of the files listed quickly

    def consider(landing: Landing, f: LandingFile, name: str) -> None:
        nonlocal batch_bytes
        if not f.hashed:
            if known.listed.get(name) == f.version:
                report.unchanged += 1
                return
            listed[name] = f.version
            f = hashed_version(landing, f)
        if known.sha256.get(name) == f.version:
            report.unchanged += 1
            if name in listed:  # the same bytes, touched: remember the new mtime
                remember_listing(con, source, name, listed[name])
                known.listed[name] = listed[name]
            return
        if f.version in pending:
            flush(wait=True)  # a copy is judged once its original has loaded
        if original := known.duplicate_of(name, f.version):
            parsed = Parsed(name)
            parsed.reject(None, f"duplicate of {original} (same bytes): not loaded again")
            load_parsed(con, source, parsed, name, {"_source_file": name}, f.size, f.version, listed.get(name))
            report.add(parsed)
            known.record(name, f.version, 0, listed.get(name))
        elif fast_reader is None:
            one_file(landing, f, name)
        else:
            batch.append((landing, f, name))
            batch_bytes += f.size
            pending.add(f.version)
            if batch_bytes >= BATCH_BYTES or len(batch) >= BATCH_FILES:
                flush()

    try:
        for i, ((landing, f), name) in enumerate(zip(files, names, strict=True), start=1):
            report.seen += 1
            consider(landing, f, name)
            if i == len(files):
                flush(wait=True)
            if time.monotonic() - last > 5 or i == len(files):
                progress(f"{source}: {i}/{len(files)} files, {sum(report.rows.values()):,} rows loaded so far")
                last = time.monotonic()
        flush(wait=True)
    finally:
        pool.shutdown(cancel_futures=True)
    return report


@dataclass
class Ingested:
    """raw.ingested_files of one source, for the files a load considers, read once per load and
    kept up to date as files land. Which files hold the same bytes is read for the whole source
    only when a changed file needs it. A run with nothing new thus reads a record per file listed,
    not one per file of history: for a day of a 10,000-GPU fleet with a day before it, 52,654
    records in 0.15 s instead of 106,918 in 0.27 s, a difference that grows with each day kept."""

    con: duckdb.DuckDBPyConnection
    source: str
    sha256: dict[str, str]
    listed: dict[str, str]  # scope -> size:mtime_ns of the local file when it was loaded
    _with_rows: dict[str, set[str]] | None = None  # sha256 -> scopes that loaded rows with those bytes

    @classmethod
    def read(cls, con: duckdb.DuckDBPyConnection, source: str, scopes: list[str]) -> Ingested:
        rows = con.execute(f"select scope, sha256, listed_version from {RAW}.ingested_files "
                           "where source = ? and scope in (select unnest(?))", [source, scopes]).fetchall()
        return cls(con, source, {scope: sha for scope, sha, _ in rows},
                   {scope: listed for scope, _, listed in rows if listed is not None})

    @property
    def with_rows(self) -> dict[str, set[str]]:
        # Read when first needed, from the table: every file recorded so far is in it by then.
        if self._with_rows is None:
            self._with_rows = {}
            for scope, sha in self.con.execute(f"select scope, sha256 from {RAW}.ingested_files "
                                               "where source = ? and rows_loaded > 0", [self.source]).fetchall():
                self._with_rows.setdefault(sha, set()).add(scope)
        return self._with_rows

    def record(self, scope: str, sha256: str, rows: int, listed: str | None = None) -> None:
        if self._with_rows is not None:
            if (old := self.sha256.get(scope)) is not None:
                self._with_rows.get(old, set()).discard(scope)
            if rows > 0:
                self._with_rows.setdefault(sha256, set()).add(scope)
        self.sha256[scope] = sha256
        if listed is None:
            self.listed.pop(scope, None)
        else:
            self.listed[scope] = listed

    def duplicate_of(self, scope: str, sha256: str) -> str | None:
        """Another file of the source with the same bytes that loaded rows (`warehouse.duplicate_of`)."""
        return min((s for s in self.with_rows.get(sha256, ()) if s != scope), default=None)


def accounts_for_every_row(con: duckdb.DuckDBPyConnection, source: str, tables: Iterable[str]) -> bool:
    """Whether the rows raw.ingested_files records for `source` add up to the rows of its raw
    tables: then a file it has no record of has no rows there to replace."""
    recorded = scalar(con, f"select coalesce(sum(rows_loaded), 0) from {RAW}.ingested_files where source = ?",
                      [source])
    held = sum(scalar(con, f"select count(*) from {RAW}.{t}") for t in tables if table_exists(con, RAW, t))
    return held == recorded


def _run_stage(con: duckdb.DuckDBPyConnection, fast: FastReader, lines: pa.Table, files: list[int]) -> set[int]:
    """The reader's SQL over `files` of the batch (its staged tables then hold them); the files
    whose lines it cannot vouch for."""
    every = pc.unique(lines["file"]).to_pylist()
    subset = lines if sorted(every) == sorted(files) else lines.filter(pc.is_in(lines["file"],
                                                                                 pa.array(files, pa.int32())))
    con.register("_fast_lines_in", subset)
    try:
        for sql in fast.stage:
            con.execute(sql)
        return {f for (f,) in con.execute(fast.bad_files).fetchall()}
    finally:
        con.unregister("_fast_lines_in")


def _rejected(con: duckdb.DuckDBPyConnection, fast: FastReader, lines: pa.Table, files: list[int]) -> set[int]:
    """The files whose lines make DuckDB fail the query (a line that is not JSON at all), by halving."""
    try:
        _run_stage(con, fast, lines, files)
        return set()
    except duckdb.Error:
        if len(files) == 1:
            return set(files)
    half = len(files) // 2
    return _rejected(con, fast, lines, files[:half]) | _rejected(con, fast, lines, files[half:])


def _stage(con: duckdb.DuckDBPyConnection, fast: FastReader, lines: pa.Table, files: list[int]) -> set[int]:
    """Stage `files`; the ones to leave to the per-file reader."""
    try:
        return _run_stage(con, fast, lines, files)
    except duckdb.Error:
        if len(files) == 1:
            return set(files)
    rejected = _rejected(con, fast, lines, files)
    rest = [f for f in files if f not in rejected]
    return rejected | (_run_stage(con, fast, lines, rest) if rest else set())


def load_batch(con: duckdb.DuckDBPyConnection, source: str, fast: FastReader,
               batch: list[tuple[Landing, LandingFile, str]], lines: LineBatch, known: Ingested,
               report: LoadReport, listed: dict[str, str], search_all: bool,
               ) -> list[tuple[Landing, LandingFile, str]]:
    """Parse a batch's lines in DuckDB and load the good files in one transaction; the files left
    for the per-file reader, in batch order."""
    readable = [i for i in range(len(batch)) if i not in lines.unreadable]
    bad = set(lines.unreadable) | (_stage(con, fast, lines.table, readable) if readable else set())
    good = [i for i in range(len(batch)) if i not in bad]
    del lines
    if good:
        _insert_batch(con, source, fast, [(i, *batch[i]) for i in good], known, report, listed, search_all)
    for name in fast.temp_tables:
        con.execute(f"drop table if exists {name}")
    return [batch[i] for i in sorted(bad)]


CUR_SUFFIXES = ("Manifest.json", ".parquet", ".csv", ".csv.gz")


def newest_deliveries(landing: Landing, export_name: str, flavour: aws_cur.CurFlavour = "cur2",
                      ) -> tuple[list[aws_cur.Delivery], list[Parsed], dict[str, LandingFile]]:
    """The latest delivery of each billing period (by when its manifest was written), a rejection
    for each unusable manifest, and the export's files by landing key, listed quickly (a local
    file's version is its size and mtime: a month of a large account is GBs to hash)."""
    files = {f.key: f for f in landing.list(CUR_SUFFIXES, hash_content=False) if f.key.startswith(f"{export_name}/")}
    newest: dict[str, tuple[float, aws_cur.Delivery]] = {}
    rejected: list[Parsed] = []
    for key, f in sorted(files.items()):
        if not aws_cur.is_manifest(key, export_name, flavour):
            continue
        try:
            text = landing.local_path(f).read_bytes()
            delivery = aws_cur.parse_manifest(text, landing.uri, key, export_name, flavour)
        except ValueError as err:
            bad = Parsed(label(landing, f))
            bad.reject(None, f"unusable manifest: {err}")
            rejected.append(bad)
            continue
        current = newest.get(delivery.billing_period)
        if current is None or f.modified >= current[0]:
            newest[delivery.billing_period] = (f.modified, delivery)
    return [newest[p][1] for p in sorted(newest)], rejected, files


def delivery_version(delivery: aws_cur.Delivery, files: dict[str, LandingFile]) -> tuple[int, str]:
    """A delivery changes when its manifest or any file it lists does."""
    digest = hashlib.sha256()
    size = 0
    for key in (delivery.manifest, *delivery.data_files):
        f = files.get(key)
        digest.update(f"{key}={f.version if f else 'missing'};".encode())
        size += f.size if f else 0
    return size, digest.hexdigest()


def load_aws_cur(con: duckdb.DuckDBPyConnection, landing: Landing, export_name: str,
                 flavour: aws_cur.CurFlavour = "cur2", progress: Callable[[str], None] = log.info,
                 period: str | None = None, fast: bool = True) -> LoadReport:
    """Each billing period's newest delivery replaces whatever was loaded for that period (only
    `period`'s, when given). `fast`: Parquet files are read by DuckDB together where it can vouch
    for them (else every file goes through the Arrow reader alone)."""
    report = LoadReport(aws_cur.CUR)
    columns = ensure_aws_cur_view(con, progress)
    deliveries, rejected, files = newest_deliveries(landing, export_name, flavour)
    if period is not None:
        deliveries = [d for d in deliveries if d.billing_period == period]
    for bad in rejected:
        report.seen += 1
        load_parsed(con, aws_cur.CUR, bad, bad.source_file, {}, 0, "unusable")
        report.add(bad)
    for delivery in deliveries:
        report.seen += 1
        _, listed = delivery_version(delivery, files)
        recorded = first_row(con, f"select sha256, listed_version from {RAW}.ingested_files "
                                  "where source = ? and scope = ?", [aws_cur.CUR, delivery.key])
        if recorded and recorded[1] == listed:  # listed as it was loaded: not read, nor hashed, again
            report.unchanged += 1
            continue
        hashed = {key: hashed_version(landing, files[key]) for key in (delivery.manifest, *delivery.data_files)
                  if key in files}
        size, version = delivery_version(delivery, hashed)
        if recorded and recorded[0] == version:  # the same bytes, touched: remember the new listing
            remember_listing(con, aws_cur.CUR, delivery.key, listed)
            report.unchanged += 1
            continue

        def fetch(key: str) -> Path | None:
            return landing.local_path(files[key]) if key in files else None

        try:
            parsed, rows = _load_delivery(con, delivery, fetch, size, version, listed, progress, fast, columns)
        except duckdb.Error as err:  # a Parquet file damaged past its footer: the per-file reader says which
            progress(f"aws_cur: {delivery.key}: DuckDB could not read its Parquet files together "
                     f"({str(err).splitlines()[0]}); reading them one at a time")
            parsed, rows = _load_delivery(con, delivery, fetch, size, version, listed, progress, False, columns)
        report.add(parsed, {aws_cur.CUR: rows})
        progress(f"aws_cur: {delivery.key} loaded ({rows:,} line items, {len(parsed.quarantined)} quarantined)")
    return report


def ensure_aws_cur_view(con: duckdb.DuckDBPyConnection, progress: Callable[[str], None] = log.warning,
                        ) -> list[tuple[str, str]]:
    """raw.aws_cur, kept as Parquet files (a 100 M-line month loads faster, and a restatement swaps
    a folder), and its columns; a delivery whose files were lost is said and forgotten."""
    columns, lost = ensure_parquet_table(con, aws_cur.CUR, aws_cur.RAW_SCHEMA, aws_cur.SCOPE_COLUMNS,
                                         aws_cur.SCOPE_SQL)
    for key in lost:
        progress(f"aws_cur: {key}: its Parquet files under {parquet_root(con)} are gone; "
                 "the billing asset loads it again from its landing zone")
    return columns


def _load_delivery(con: duckdb.DuckDBPyConnection, delivery: aws_cur.Delivery, fetch: Callable[[str], Path | None],
                   size: int, version: str, listed: str, progress: Callable[[str], None], fast: bool,
                   columns: list[tuple[str, str]]) -> tuple[Parsed, int]:
    """The delivery replaces its period's line items (`replacing_parquet`). Its Parquet files are read
    by DuckDB together where their footers allow (`fast`), the other files by the Arrow reader one
    at a time; (the quarantine, line items loaded)."""
    parsed = Parsed(delivery.label(delivery.manifest))
    scope = {"_export_name": delivery.export_name, "_billing_period": delivery.billing_period}
    groups = aws_cur.parquet_groups(delivery, fetch) if fast else {}
    together = {key for files in groups.values() for key, _ in files}
    rest = replace(delivery, data_files=tuple(k for k in delivery.data_files if k not in together))
    types = dict(columns)
    rows = done = 0

    def read(files: int, written: int) -> None:
        nonlocal rows, done
        rows, done = rows + written, done + files
        progress(f"aws_cur: {delivery.key}: {done}/{len(delivery.data_files)} files, {rows:,} line items")

    load = Ingestion(delivery.key, size, version, 0, 0, listed)  # the rows are counted as they are written
    with replacing_parquet(con, aws_cur.CUR, parsed, load, scope, aws_cur.CUR, columns) as write:
        for signature, files in groups.items():
            paths, labels = [path for _, path in files], [delivery.label(key) for key, _ in files]
            progress(f"aws_cur: {delivery.key}: reading {len(files)} Parquet file(s) in DuckDB")
            for label_, row in con.execute(aws_cur.parquet_bad_lines_sql(paths, labels)).fetchall():
                parsed.reject(row, aws_cur.BAD_LINE_REASON, label_)
            read(len(files), write(con.sql(aws_cur.parquet_lines_sql(signature, paths, labels, types))))
        for part in aws_cur.iter_delivery(rest, fetch, parsed):
            read(1, write(part))
    return parsed, rows


def _insert_batch(con: duckdb.DuckDBPyConnection, source: str, fast: FastReader,
                  good: list[tuple[int, Landing, LandingFile, str]], known: Ingested, report: LoadReport,
                  listed: dict[str, str], search_all: bool) -> None:
    """One transaction: the batch's staged rows of `good` files replace what those files loaded
    before, and each file's fingerprint and row count are recorded (what `replacing` does per file).
    Only files with a record are looked for in the raw tables, unless `search_all`
    (`accounts_for_every_row` found rows no record accounts for): DuckDB keeps 8 bytes of a string
    column's min and max, too few to skip row groups by file name, so the delete reads every row of
    the raw table, once a batch, a cost that grew with history and with the square of the fleet."""
    now = utc_now()
    batch_files = pa.table({
        "file": pa.array([i for i, *_ in good], pa.int32()),
        "label": pa.array([name for *_, name in good], pa.string()),
    })
    replaced = [name for *_, name in good if search_all or name in known.sha256]
    counts: dict[int, dict[str, int]] = {i: {} for i, *_ in good}
    con.begin()
    try:
        con.register("_fast_files", batch_files)
        for table, (schema, sql) in fast.tables.items():
            ensure_raw_table(con, table, schema, ["_source_file"])
            if replaced:
                con.execute(f"delete from {RAW}.{table} where _source_file in (select unnest(?))", [replaced])
            columns = ", ".join(f'"{c}"' for c in schema.names)
            con.execute(
                f"insert into {RAW}.{table} by name select {columns}, f.label as _source_file, "
                f"?::timestamp as _ingested_at from ({sql}) t join _fast_files f using (file)", [now])
            for i, n in con.execute(f"select file, count(*) from ({sql}) t semi join _fast_files f using (file) "
                                    "group by file").fetchall():
                counts[i][table] = n
        con.execute(f"delete from {RAW}.quarantine where source = ? and scope in (select unnest(?))",
                    [source, [name for *_, name in good]])
        record_ingested(con, source, [Ingestion(name, f.size, f.version, sum(counts[i].values()), 0, listed.get(name))
                                      for i, _, f, name in good], now)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        con.unregister("_fast_files")
    for i, _, f, name in good:
        report.loaded += 1
        report.rows.update({table: counts[i].get(table, 0) for table in fast.tables})
        known.record(name, f.version, sum(counts[i].values()), listed.get(name))
