"""Load a source's landing zone into the warehouse: skip what is unchanged, replace what changed."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ingest import aws_cur
from ingest.files import Parsed, fingerprint
from ingest.warehouse import already_ingested, load_parsed

log = logging.getLogger(__name__)

Reader = Callable[[Path], Parsed]


@dataclass
class LoadReport:
    source: str
    seen: int = 0
    loaded: int = 0
    unchanged: int = 0
    rows: Counter = field(default_factory=Counter)
    quarantined: int = 0
    problems: list[str] = field(default_factory=list)  # a few quarantine reasons, for the run log

    def add(self, parsed: Parsed) -> None:
        self.loaded += 1
        self.rows.update({name: t.num_rows for name, t in parsed.tables.items()})
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


def local_root(location: str) -> Path:
    if location.startswith("s3://"):
        raise NotImplementedError(
            f"{location}: reading sources from S3 is not supported yet; copy the files to a folder "
            "(for example with `aws s3 sync`) and point the source at it"
        )
    root = Path(location)
    if not root.is_dir():
        raise FileNotFoundError(f"source location {root} does not exist or is not a folder")
    return root


def list_files(locations: Iterable[str], suffixes: tuple[str, ...]) -> list[Path]:
    """Complete files under the locations; a collector's in-progress `.tmp` files never match."""
    return sorted(
        p for location in locations for p in local_root(location).rglob("*")
        if p.is_file() and p.name.endswith(suffixes)
    )


def load_files(con: duckdb.DuckDBPyConnection, source: str, files: Iterable[Path], reader: Reader,
               progress: Callable[[str], None] = log.info) -> LoadReport:
    report = LoadReport(source)
    files = list(files)
    last = time.monotonic()
    for i, path in enumerate(files, start=1):
        report.seen += 1
        fp = fingerprint(path)
        if already_ingested(con, source, fp.path, fp.sha256):
            report.unchanged += 1
            continue
        parsed = reader(path)
        load_parsed(con, source, parsed, fp.path, {"_source_file": fp.path}, fp.size, fp.sha256)
        report.add(parsed)
        if time.monotonic() - last > 5 or i == len(files):
            progress(f"{source}: {i}/{len(files)} files, {sum(report.rows.values()):,} rows loaded so far")
            last = time.monotonic()
    return report


def _delivery_fingerprint(delivery: aws_cur.Delivery) -> tuple[int, str]:
    digest = hashlib.sha256(delivery.manifest.read_bytes())
    size = 0
    for path in delivery.data_files:
        if path.is_file():
            fp = fingerprint(path)
            size += fp.size
            digest.update(fp.sha256.encode())
        else:
            digest.update(b"missing:" + str(path).encode())
    return size, digest.hexdigest()


def newest_deliveries(location: str, export_name: str) -> tuple[list[aws_cur.Delivery], list[Parsed]]:
    """The latest delivery of each billing period, and a rejection for each unreadable manifest."""
    root = local_root(location)
    by_period: dict[str, aws_cur.Delivery] = {}
    rejected: list[Parsed] = []
    for manifest in aws_cur.find_manifests(root, export_name):
        try:
            delivery = aws_cur.parse_manifest(manifest, root / export_name, export_name)
        except ValueError as err:
            bad = Parsed(str(manifest))
            bad.reject(None, f"unusable manifest: {err}")
            rejected.append(bad)
            continue
        current = by_period.get(delivery.billing_period)
        if current is None or manifest.stat().st_mtime > current.manifest.stat().st_mtime:
            by_period[delivery.billing_period] = delivery
    return [by_period[p] for p in sorted(by_period)], rejected


def load_aws_cur(con: duckdb.DuckDBPyConnection, location: str, export_name: str,
                 progress: Callable[[str], None] = log.info) -> LoadReport:
    """Each billing period's newest delivery replaces whatever was loaded for that period."""
    report = LoadReport(aws_cur.CUR)
    deliveries, rejected = newest_deliveries(location, export_name)
    for bad in rejected:
        fp = fingerprint(Path(bad.source_file))
        report.seen += 1
        load_parsed(con, aws_cur.CUR, bad, fp.path, {}, fp.size, fp.sha256)
        report.add(bad)
    for delivery in deliveries:
        report.seen += 1
        size, digest = _delivery_fingerprint(delivery)
        if already_ingested(con, aws_cur.CUR, delivery.key, digest):
            report.unchanged += 1
            continue
        parsed = aws_cur.read_delivery(delivery)
        scope = {"_export_name": export_name, "_billing_period": delivery.billing_period}
        load_parsed(con, aws_cur.CUR, parsed, delivery.key, scope, size, digest)
        report.add(parsed)
        progress(f"aws_cur: {delivery.key} loaded ({parsed.rows:,} line items, {len(parsed.quarantined)} quarantined)")
    return report
