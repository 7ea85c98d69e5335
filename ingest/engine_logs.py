"""Serving-engine logs as they really appear: vLLM V0 and V1, the Hugging Face TGI and TEI routers and
the SGLang scheduler (see ../shared/samples/serving-logs/*.log).

Request lines become `engine_requests` rows: vLLM's `Received request <id>: prompt: ...,
params: SamplingParams(..., max_tokens=N, ...)` (only the id and max_tokens are read; vLLM logs
no token counts per request) and the routers' `Success` line, whose span holds `inference_time`
and, for TGI, `time_per_token` (output tokens = their ratio). Stats lines become `engine_stats`
rows: vLLM's periodic `Avg prompt throughput: ...` (V0 `Pending`, V1 `Waiting`; V0 logs its
`Prefix cache hit rate: GPU: ...` as a separate line, folded into the stats row it follows) and
SGLang's `Prefill batch` / `Decode batch` (three format generations). Lines are recognised by
their message, never by the logger's file name, which changes with every release. Every other
line (startup, access log, SpecDecoding, DEBUG) is skipped. A recognised line that cannot be
parsed whole, including one cut off, is quarantined; its text never goes into the reason.

vLLM stamps lines `MM-DD HH:MM:SS`, with no year and no zone. The year is the caller's, else the
first date in the label (`2026-11-02`, `20261102`), else the file's mtime year; a month more than
6 months before the previous line's (Dec -> Jan) starts the next year. Times without a zone are in
`timezone` and stored as naive UTC. Rows keep file order: a mixed file may jump backwards in time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import timezone as fixed_zone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa

from ingest.files import Parsed, RowError, complete_lines, rows_to_table

ENGINE_REQUESTS = "engine_requests"
ENGINE_STATS = "engine_stats"
FILE_SUFFIXES = (".log", ".log.gz", ".txt", ".txt.gz")

# `(APIServer pid=N) INFO 05-22 02:20:59 ...`, `2025-05-14 17:45:10.901 ...`, `[2025-02-27 04:37:29 TP0] ...`,
# `2025-08-09T19:36:02.798333Z  INFO ...`
STAMP = re.compile(
    r"^(?:\([^)]*\)\s*)?(?:[A-Z]+\s+)?\[?(?:(?P<date>\d{4}-\d\d-\d\d)[ T]|(?P<month>\d\d)-(?P<day>\d\d) )"
    r"(?P<time>\d\d:\d\d:\d\d(?:[.,]\d+)?)(?P<zone>Z|[+-]\d\d:?\d\d)?"
)
LABEL_DATE = re.compile(r"(?<!\d)(\d{4})(-?)(0[1-9]|1[0-2])\2(0[1-9]|[12]\d|3[01])(?!\d)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
RECEIVED = re.compile(r"\bReceived request (?P<id>[^\s:,]+):\s")
MAX_TOKENS = re.compile(r"\bmax_tokens=(\d+|None)\b")
VLLM_STATS = "Avg prompt throughput:"
# Every field of the line has its unit, so a line cut after a number does not pass as whole.
VLLM_FIELD = re.compile(r"(?P<key>[A-Za-z][A-Za-z ]*): (?P<value>\d+(?:\.\d+)?) ?(?P<unit>tokens/s|reqs|%)")
V0_PREFIX = "Prefix cache hit rate: GPU:"
V0_PREFIX_LINE = re.compile(r"Prefix cache hit rate: GPU: (?P<gpu>\d+(?:\.\d+)?)%, CPU: \d+(?:\.\d+)?%\.?\s*$")
SGLANG = re.compile(r"\b(?P<kind>Prefill|Decode) batch[.,]\s*(?P<fields>.*)$")
SGLANG_FIELD = re.compile(r"(?P<key>#?[A-Za-z][\w #()/-]*?): (?P<value>\d+(?:\.\d+)?|True|False)")
SGLANG_REQUIRED = {"Prefill": ("#new-token", "#cached-token"), "Decode": ("gen throughput (token/s)",)}
# The tracing line a router logs once per answered request: `INFO <span>{fields}: <crate>::<module>: <file>: Success`.
ROUTER = re.compile(
    r"\bINFO\s+\w+\{(?P<span>.*)\}: (?P<crate>text_(?:generation|embeddings)_router)(?:::\w+)*: \S+: Success\s*$"
)
# A quoted span field. User strings in the span (TGI's stop sequences) are Debug-printed with their quotes
# escaped (`\"`), so no text inside them can pass for `inference_time="...`.
SPAN_FIELD = re.compile(r'(?<![\w\\])(?P<key>inference_time|time_per_token)="(?P<value>[^"]*)"')
DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)(?P<unit>s|ms|µs|μs|us|ns)")
DURATION_EXP = {"s": 0, "ms": -3, "µs": -6, "μs": -6, "us": -6, "ns": -9}
ENGINES = {"text_generation_router": "tgi", "text_embeddings_router": "tei"}

REQUEST_SCHEMA = pa.schema([
    ("ts", pa.timestamp("us")),
    ("deployment", pa.string()),
    ("engine", pa.string()),  # 'vllm' | 'tgi' | 'tei'
    ("request_id", pa.string()),  # vLLM's; TGI and TEI log none
    ("max_tokens", pa.int64()),  # vLLM SamplingParams.max_tokens
    ("output_tokens", pa.int64()),  # TGI: inference_time / time_per_token
    ("inference_seconds", pa.float64()),  # TGI and TEI
    ("status", pa.string()),  # 'success' for a router's Success line
    ("line_number", pa.int64()),
])
STATS_SCHEMA = pa.schema([
    ("ts", pa.timestamp("us")),
    ("deployment", pa.string()),
    ("engine", pa.string()),  # 'vllm' | 'sglang'
    ("prompt_tokens_per_s", pa.float64()),
    ("generation_tokens_per_s", pa.float64()),
    ("running", pa.int64()),
    ("waiting", pa.int64()),  # V0 Pending, V1 Waiting, SGLang #queue-req
    ("kv_cache_usage", pa.float64()),  # fraction 0-1
    ("prefix_cache_hit_rate", pa.float64()),  # fraction 0-1
    ("new_tokens", pa.int64()),  # SGLang prefill #new-token
    ("cached_tokens", pa.int64()),  # SGLang prefill #cached-token
    ("line_number", pa.int64()),
])
PREFIX_RATE = STATS_SCHEMA.names.index("prefix_cache_hit_rate")


def _log_year(path: Path, label: str | None) -> int:
    """The year of vLLM's year-less stamps when the caller does not know it."""
    if m := LABEL_DATE.search(label or str(path)):
        return int(m[1])
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).year


def _fraction(percent: str) -> float:
    return float(Decimal(percent) / 100)  # exact decimal division: 57.9 -> 0.579


def _seconds(text: str) -> Decimal:
    """A tracing duration (`1.195713965s`, `355.849981ms`, `686.203µs`) in seconds, exactly."""
    if (m := DURATION.fullmatch(text)) is None:
        raise RowError("a router time that is not a duration like 355.8ms")
    return Decimal(m["number"]).scaleb(DURATION_EXP[m["unit"]])


def _time_of_day(text: str) -> tuple[int, int, int, int]:
    hms, _, fraction = text.replace(",", ".").partition(".")
    hour, minute, second = (int(part) for part in hms.split(":"))
    return hour, minute, second, int((fraction + "000000")[:6])


@dataclass
class _Clock:
    """Line stamps to naive UTC. Only the stamps of lines that become rows move the year on."""

    year: int
    zone: ZoneInfo
    last_month: int | None = None

    def utc(self, line: str) -> datetime:
        if (m := STAMP.match(line)) is None:
            raise RowError("no timestamp")
        if m["date"]:
            year, month, day = (int(part) for part in m["date"].split("-"))
        else:
            month, day = int(m["month"]), int(m["day"])
            if self.last_month is not None and self.last_month - month > 6:
                self.year += 1
            self.last_month, year = month, self.year
        try:
            local = datetime(year, month, day, *_time_of_day(m["time"]))
        except ValueError as err:
            raise RowError(f"timestamp is not a date: {err}") from None
        zone = self._fixed(m["zone"]) if m["zone"] else self.zone
        return local.replace(tzinfo=zone).astimezone(UTC).replace(tzinfo=None)

    @staticmethod
    def _fixed(offset: str) -> fixed_zone:
        if offset == "Z":
            return UTC
        digits = offset[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        return fixed_zone(-delta if offset[0] == "-" else delta)


def _pairs(text: str, pattern: re.Pattern[str], what: str) -> dict[str, re.Match[str]]:
    """`name: value, name: value, ...` as a dict of matches; every part must match (a cut line does not)."""
    parts = text.rstrip(" ,.").split(", ")
    matches = [pattern.fullmatch(part) for part in parts]
    if not all(matches):
        raise RowError(f"{what} has a part that is not 'name: value' (cut off?)")
    return {m["key"]: m for m in matches if m}


def _number(fields: dict[str, re.Match[str]], key: str, kind: type[int] | type[float]) -> int | float | None:
    return kind(fields[key]["value"]) if key in fields else None


@dataclass
class _Reader:
    """What one log file has produced so far."""

    deployment: str
    clock: _Clock
    requests: list[tuple] = field(default_factory=list)
    stats: list[list] = field(default_factory=list)
    seen_ids: set[str] = field(default_factory=set)

    def line(self, number: int, line: str) -> None:
        """Adds the rows of one line, skips it, or raises RowError."""
        if m := RECEIVED.search(line):
            self.vllm_request(number, line, m)
        elif VLLM_STATS in line:
            self.vllm_stats(number, line)
        elif V0_PREFIX in line:
            self.vllm_prefix(number, line)
        elif m := SGLANG.search(line):
            self.sglang(number, line, m)
        elif m := ROUTER.search(line):
            self.router(number, line, m)

    def vllm_request(self, number: int, line: str, m: re.Match[str]) -> None:
        ts = self.clock.utc(line)
        if m["id"] in self.seen_ids:
            return  # logged twice (an engine and its wrapper both log it): one request
        self.seen_ids.add(m["id"])
        # The last SamplingParams is vLLM's own: the prompt, which could hold any text, comes before it.
        params = line.rfind("SamplingParams(")
        found = MAX_TOKENS.search(line, params) if params >= 0 else None
        max_tokens = int(found[1]) if found and found[1] != "None" else None
        self.requests.append((ts, self.deployment, "vllm", m["id"], max_tokens, None, None, None, number))

    def vllm_stats(self, number: int, line: str) -> None:
        fields = _pairs(line[line.index(VLLM_STATS):], VLLM_FIELD, "vLLM stats line")
        missing = [k for k in ("Avg prompt throughput", "Avg generation throughput", "Running") if k not in fields]
        if missing:
            raise RowError(f"vLLM stats line without {', '.join(missing)}")
        waiting = fields.get("Waiting") or fields.get("Pending")
        kv = fields.get("GPU KV cache usage") or fields.get("KV cache usage")
        prefix = fields.get("Prefix cache hit rate")
        self.stats.append([
            self.clock.utc(line), self.deployment, "vllm", float(fields["Avg prompt throughput"]["value"]),
            float(fields["Avg generation throughput"]["value"]), int(fields["Running"]["value"]),
            int(waiting["value"]) if waiting else None, _fraction(kv["value"]) if kv else None,
            _fraction(prefix["value"]) if prefix else None, None, None, number,
        ])

    def vllm_prefix(self, number: int, line: str) -> None:
        """V0 logs the GPU prefix-cache hit rate right after its stats line, with the same stamp."""
        if (m := V0_PREFIX_LINE.search(line)) is None:
            raise RowError("vLLM prefix cache line is not 'GPU: P%, CPU: P%'")
        ts, rate = self.clock.utc(line), _fraction(m["gpu"])
        last = self.stats[-1] if self.stats else None
        if last and last[0] == ts and last[2] == "vllm" and last[PREFIX_RATE] is None:
            last[PREFIX_RATE] = rate
        else:
            self.stats.append([ts, self.deployment, "vllm", None, None, None, None, None, rate, None, None, number])

    def sglang(self, number: int, line: str, m: re.Match[str]) -> None:
        fields = _pairs(m["fields"], SGLANG_FIELD, f"SGLang {m['kind']} batch line")
        missing = [k for k in SGLANG_REQUIRED[m["kind"]] if k not in fields]
        if missing:
            raise RowError(f"SGLang {m['kind']} batch line without {', '.join(missing)}")
        usage = "token usage" if "token usage" in fields else "full token usage"  # hybrid models: full layers
        self.stats.append([
            self.clock.utc(line), self.deployment, "sglang", _number(fields, "input throughput (token/s)", float),
            _number(fields, "gen throughput (token/s)", float), _number(fields, "#running-req", int),
            _number(fields, "#queue-req", int), _number(fields, usage, float), None,
            _number(fields, "#new-token", int), _number(fields, "#cached-token", int), number,
        ])

    def router(self, number: int, line: str, m: re.Match[str]) -> None:
        times = {f["key"]: f["value"] for f in SPAN_FIELD.finditer(m["span"])}
        if "inference_time" not in times:
            raise RowError("router Success line without inference_time")
        engine = ENGINES[m["crate"]]
        inference = _seconds(times["inference_time"])
        per_token = _seconds(times["time_per_token"]) if engine == "tgi" and "time_per_token" in times else None
        output = round(inference / per_token) if per_token else None
        self.requests.append((self.clock.utc(line), self.deployment, engine, None, None, output, float(inference),
                              "success", number))


def read_engine_log(path: Path, label: str | None, deployment: str, year: int | None = None,
                    timezone: str = "UTC") -> Parsed:
    """Request and stats rows of one engine log; `label` names the file (its landing URI; the local path by default)."""
    parsed = Parsed(label or str(path))
    reader = _Reader(deployment, _Clock(year if year is not None else _log_year(path, label), ZoneInfo(timezone)))
    lines, damage = complete_lines(parsed, path)
    for number, raw in enumerate(lines, start=1):
        try:
            reader.line(number, ANSI.sub("", raw.decode("utf-8")).rstrip("\r"))
        except UnicodeDecodeError as err:
            parsed.reject(number, f"not UTF-8 text (byte {err.start} of the line)")
        except (RowError, ValueError) as err:
            parsed.reject(number, str(err))
    if damage:
        parsed.reject(None, damage)
    parsed.tables[ENGINE_REQUESTS] = rows_to_table(reader.requests, REQUEST_SCHEMA)
    parsed.tables[ENGINE_STATS] = rows_to_table(reader.stats, STATS_SCHEMA)
    return parsed
