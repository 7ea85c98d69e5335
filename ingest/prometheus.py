"""The Prometheus text exposition format, as scrapers save it: what the dcgm-exporter and vLLM
`/metrics` readers share.

A sample line is `name{label="value",...} value [timestamp_ms]`; `# HELP` and `# TYPE` lines
describe a metric family. A sample without a timestamp was taken when the scrape was: the
`YYYYMMDDTHHMMSS` time in the file name, else the time the file was written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from ingest.files import Parsed

# Prometheus text lines are simple enough for a regular expression, which also lets one bad line
# be quarantined without losing the rest of the scrape.
LINE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+(?P<ts>-?\d+))?\s*$"
)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
HELP = re.compile(r"^#\s*HELP\s+(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\s+(?P<text>.*)$")
FILE_TIME = re.compile(r"(\d{8}T\d{6})")


def scrape_time(path: Path) -> datetime:
    """The time of samples that carry no timestamp of their own, as naive UTC."""
    if file_time := FILE_TIME.search(path.name):
        return datetime.strptime(file_time[1], "%Y%m%dT%H%M%S")
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)


def sample_time(match: re.Match[str], default: datetime) -> datetime:
    """The line's own timestamp (ms since the epoch) when it has one."""
    if match["ts"] is None:
        return default
    return datetime.fromtimestamp(int(match["ts"]) / 1000, UTC).replace(tzinfo=None)


def help_texts(lines: list[bytes]) -> dict[str, str]:
    """`# HELP` text per metric name."""
    found = (HELP.match(b.decode("utf-8", errors="replace").rstrip("\r")) for b in lines if b.startswith(b"#"))
    return {m["name"]: m["text"] for m in found if m}


def iter_samples(parsed: Parsed, lines: list[bytes]) -> Iterator[tuple[int, re.Match[str]]]:
    """(line number, match of LINE) for each sample line. Comments and blank lines are skipped;
    anything else (an error page, a line cut short, bytes that are not UTF-8) is quarantined."""
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as err:
            parsed.reject(number, f"not UTF-8 text (byte {err.start} of the line)")
            continue
        if not line.strip() or line.startswith("#"):
            continue
        if (m := LINE.match(line)) is None:
            parsed.reject(number, "not a Prometheus text line")
            continue
        yield number, m
