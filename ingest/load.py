"""Load a source's landing zones into the warehouse: skip what is unchanged, replace what changed."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from ingest import aws_cur
from ingest.files import Parsed
from ingest.landing import Landing, LandingFile
from ingest.warehouse import already_ingested, duplicate_of, load_parsed, replacing

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


def file_day(f: LandingFile) -> date:
    """The UTC day a telemetry or serving file belongs to (its daily partition): the last date in
    its key, since collectors and log shippers name files and folders by day; else the day it was
    last written."""
    for year, _, month, day in reversed(_DAY_IN_KEY.findall(f.key)):
        try:
            return date(int(year), int(month), int(day))
        except ValueError:  # 2026-02-30
            continue
    return datetime.fromtimestamp(f.modified, UTC).date()


def label(landing: Landing, f: LandingFile) -> str:
    """How a file is named in rows and the quarantine: its path, or its s3:// URI."""
    return f"{landing.uri.rstrip('/')}/{f.key}"


def list_files(landings: Iterable[Landing], suffixes: tuple[str, ...]) -> list[tuple[Landing, LandingFile]]:
    """Complete files of the landing zones; a collector's in-progress `.tmp` files never match."""
    return [(landing, f) for landing in landings for f in landing.list(suffixes)]


def load_files(con: duckdb.DuckDBPyConnection, source: str, files: list[tuple[Landing, LandingFile]],
               reader: Reader, progress: Callable[[str], None] = log.info) -> LoadReport:
    report = LoadReport(source)
    last = time.monotonic()
    for i, (landing, f) in enumerate(files, start=1):
        report.seen += 1
        name = label(landing, f)
        if already_ingested(con, source, name, f.version):
            report.unchanged += 1
            continue
        if original := duplicate_of(con, source, name, f.version):
            parsed = Parsed(name)
            parsed.reject(None, f"duplicate of {original} (same bytes): not loaded again")
        else:
            parsed = reader(landing.local_path(f), name, f.key)
        load_parsed(con, source, parsed, name, {"_source_file": name}, f.size, f.version)
        report.add(parsed)
        if time.monotonic() - last > 5 or i == len(files):
            progress(f"{source}: {i}/{len(files)} files, {sum(report.rows.values()):,} rows loaded so far")
            last = time.monotonic()
    return report


CUR_SUFFIXES = ("Manifest.json", ".parquet", ".csv", ".csv.gz")


def newest_deliveries(landing: Landing, export_name: str, flavour: aws_cur.CurFlavour = "cur2",
                      ) -> tuple[list[aws_cur.Delivery], list[Parsed], dict[str, LandingFile]]:
    """The latest delivery of each billing period (by when its manifest was written), a rejection
    for each unusable manifest, and the export's files by landing key."""
    files = {f.key: f for f in landing.list(CUR_SUFFIXES) if f.key.startswith(f"{export_name}/")}
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
                 period: str | None = None) -> LoadReport:
    """Each billing period's newest delivery replaces whatever was loaded for that period (only
    `period`'s, when given)."""
    report = LoadReport(aws_cur.CUR)
    deliveries, rejected, files = newest_deliveries(landing, export_name, flavour)
    if period is not None:
        deliveries = [d for d in deliveries if d.billing_period == period]
    for bad in rejected:
        report.seen += 1
        load_parsed(con, aws_cur.CUR, bad, bad.source_file, {}, 0, "unusable")
        report.add(bad)
    for delivery in deliveries:
        report.seen += 1
        size, version = delivery_version(delivery, files)
        if already_ingested(con, aws_cur.CUR, delivery.key, version):
            report.unchanged += 1
            continue

        def fetch(key: str) -> Path | None:
            return landing.local_path(files[key]) if key in files else None

        parsed = Parsed(delivery.label(delivery.manifest))
        scope = {"_export_name": export_name, "_billing_period": delivery.billing_period}
        rows = 0
        with replacing(con, aws_cur.CUR, parsed, delivery.key, scope, size, version, [aws_cur.CUR]) as insert:
            for i, part in enumerate(aws_cur.iter_delivery(delivery, fetch, parsed), start=1):
                insert(aws_cur.CUR, part)
                rows += part.num_rows
                progress(f"aws_cur: {delivery.key}: {i}/{len(delivery.data_files)} files, {rows:,} line items")
        report.add(parsed, {aws_cur.CUR: rows})
        progress(f"aws_cur: {delivery.key} loaded ({rows:,} line items, {len(parsed.quarantined)} quarantined)")
    return report
