"""OpenAI-compatible gateway request logs: one JSON line per request with a `usage` object.

Only the fields below are copied out of a line. Prompt and completion text (`messages`,
`request`, `response`, `choices`, ...) is never read into a row, so it cannot reach the warehouse.
`usage` may be the Chat Completions shape (`prompt_tokens`, `completion_tokens`,
`prompt_tokens_details.cached_tokens`) or the Responses shape (`input_tokens`, `output_tokens`,
`input_tokens_details.cached_tokens`). A missing cached count stays unknown (null), not 0.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ingest.files import (
    FastReader,
    Parsed,
    RowError,
    iter_json_lines,
    json_struct,
    optional,
    parse_utc,
    require,
    rows_to_table,
    sql_blank,
    sql_falsy,
    sql_missing,
    sql_object_line,
    sql_ok,
    sql_utc,
    sql_value,
)
from ingest.privacy import MAX_METADATA_VALUE, TEXT_KEYS, kept_metadata, key_hash

REQUESTS = "gateway_requests"
FILE_SUFFIXES = (".jsonl", ".jsonl.gz")

REQUEST_SCHEMA = pa.schema([
    ("ts", pa.timestamp("us")),
    ("request_id", pa.string()),
    ("endpoint", pa.string()),
    ("deployment", pa.string()),  # the workload that served it, where the gateway logs one
    ("api_base", pa.string()),  # the upstream URL it was routed to, where the gateway logs one
    ("model", pa.string()),
    ("api_key_hash", pa.string()),
    ("api_key_alias", pa.string()),
    ("user_id", pa.string()),
    ("metadata", pa.string()),  # scalar metadata values only, as a JSON object
    ("status", pa.int32()),
    ("stream", pa.bool_()),
    ("latency_ms", pa.float64()),
    ("prompt_tokens", pa.int64()),
    ("completion_tokens", pa.int64()),
    ("cached_tokens", pa.int64()),
    ("line_number", pa.int64()),
])


def _count(usage: dict, *keys: str) -> int | None:
    for key in keys:
        value = usage.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise RowError(f"usage.{key} must be a non-negative integer, got {value!r}")
        return value
    return None


def _usage(obj: dict) -> tuple[int | None, int | None, int | None]:
    usage = obj.get("usage")
    if usage is None:
        return None, None, None
    if not isinstance(usage, dict):
        raise RowError("'usage' must be an object")
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    if not isinstance(details, dict):
        raise RowError("usage token details must be an object")
    prompt = _count(usage, "prompt_tokens", "input_tokens")
    cached = _count(details, "cached_tokens")
    if prompt is not None and cached is not None and cached > prompt:
        raise RowError(f"usage says {cached} cached tokens of only {prompt} prompt tokens")
    return prompt, _count(usage, "completion_tokens", "output_tokens"), cached


def _key_hash(obj: dict) -> str | None:
    key = optional(obj, "api_key_hash", str)
    return key_hash(key) if key else None  # a gateway that logs the raw key gets it hashed here


def _metadata(obj: dict) -> str | None:
    meta = obj.get("metadata")
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise RowError("'metadata' must be an object")
    return kept_metadata(meta)


def read_gateway_file(path: Path, label: str | None = None) -> Parsed:
    """`label` names the file in rows and quarantine (its landing URI; the local path by default)."""
    parsed = Parsed(label or str(path))
    rows: list[tuple] = []
    for number, obj in iter_json_lines(parsed, path):
        try:
            ts = parse_utc(obj.get("ts"))
            prompt, completion, cached = _usage(obj)
            rows.append((
                ts, require(obj, "request_id", str), optional(obj, "endpoint", str), optional(obj, "deployment", str),
                optional(obj, "api_base", str), require(obj, "model", str),
                _key_hash(obj), optional(obj, "api_key_alias", str), optional(obj, "user", str),
                _metadata(obj), optional(obj, "status", int), optional(obj, "stream", bool),
                optional(obj, "latency_ms", (int, float)), prompt, completion, cached, number,
            ))
        except (RowError, ValueError) as err:
            parsed.reject(number, str(err))
    parsed.tables[REQUESTS] = rows_to_table(rows, REQUEST_SCHEMA)
    return parsed


# --- the same rows, read in DuckDB for many files at once (ingest.load's fast path) ---------------

_FIELDS = {  # key -> (kind, required)
    "ts": ("str", True), "request_id": ("str", True), "endpoint": ("str", False), "deployment": ("str", False),
    "api_base": ("str", False), "model": ("str", True), "api_key_hash": ("str", False),
    "api_key_alias": ("str", False), "user": ("str", False), "status": ("int32", False), "stream": ("bool", False),
    "latency_ms": ("number", False),
}
_USAGE = ("prompt_tokens", "input_tokens", "completion_tokens", "output_tokens", "prompt_tokens_details",
          "input_tokens_details")
_PRINTABLE = r"[ -~]*"  # printable ASCII: json.dumps writes it as it is, but for '"' and '\'


def _count_ok(x: str) -> str:
    return f"({sql_ok(x, 'int')} and coalesce({sql_value(x, 'int')} >= 0, true))"


def _fast_reader() -> FastReader:
    def first(a: str, b: str) -> str:  # _count's "the first key that is not None"
        return f"(case when {sql_missing(a)} then {b} else {a} end)"

    prompt, completion = first("u.prompt_tokens", "u.input_tokens"), first("u.completion_tokens", "u.output_tokens")
    details = (f"(case when not {sql_falsy('u.prompt_tokens_details')} then u.prompt_tokens_details "
               f"when not {sql_falsy('u.input_tokens_details')} then u.input_tokens_details end)")
    key = sql_value("j.api_key_hash", "str")
    ok = " and ".join([
        sql_object_line("text"), "ts is not null",
        *(sql_ok(f"j.{k}", kind, required) for k, (kind, required) in _FIELDS.items()),
        f"({sql_missing('j.usage')} or starts_with(cast(j.usage as varchar), '{{'))",
        _count_ok("prompt"), _count_ok("completion"),
        "(details is null or starts_with(cast(details as varchar), '{'))", _count_ok("cached"),
        f"coalesce({sql_value('cached', 'int')} <= {sql_value('prompt', 'int')}, true)",
        f"({sql_missing('j.metadata')} or starts_with(cast(j.metadata as varchar), '{{'))",
    ])
    line_struct = json_struct([*_FIELDS, "usage", "metadata"])
    requests = f"""
        create or replace temp table _fast_gateway_lines as
        select file, line, {ok} as ok, ts,
               {", ".join(f"{sql_value(f'j.{k}', kind)} as {'user_id' if k == 'user' else k}"
                          for k, (kind, _) in _FIELDS.items() if k not in ("ts", "api_key_hash"))},
               case when {key} like 'sk-%' then 'sha256:' || sha256({key}) else nullif({key}, '') end as api_key_hash,
               case when {sql_missing('j.metadata')} then null else cast(j.metadata as varchar) end as metadata_json,
               {sql_value('prompt', 'int')} as prompt_tokens, {sql_value('completion', 'int')} as completion_tokens,
               {sql_value('cached', 'int')} as cached_tokens
        from (
            select *, from_json(details, '{json_struct(['cached_tokens'])}').cached_tokens as cached
            from (
                select *, {prompt} as prompt, {completion} as completion, {details} as details
                from (
                    select file, line, text, j, {sql_utc(sql_value('j.ts', 'str'))} as ts,
                           case when starts_with(cast(j.usage as varchar), '{{')
                                then from_json(j.usage, '{json_struct(_USAGE)}') end as u
                    from (select file, line, text, from_json(text, '{line_struct}') as j
                          from _fast_lines_in where not {sql_blank('text')})
                )
            )
        )"""
    # kept_metadata: scalar values of keys that cannot hold text, raw `sk-` keys hashed, strings cut
    # to MAX_METADATA_VALUE, sorted by key; anything json.dumps would write otherwise (a float, a
    # character to escape, a repeated key) sends the file to the per-file reader.
    atom = "json_extract_string(e.value, '$')"
    string = f"(case when {atom} like 'sk-%' then 'sha256:' || sha256({atom}) else {atom} end)"
    value = (f"case when e.type = 'VARCHAR' then '\"' || replace(replace(left({string}, {MAX_METADATA_VALUE}), "
             "'\\', '\\\\'), '\"', '\\\"') || '\"' else e.value end")
    kept = (f"e.type in ('VARCHAR', 'UBIGINT', 'BIGINT', 'DOUBLE', 'BOOLEAN') "
            f"and not regexp_matches(e.key, '{TEXT_KEYS.pattern}', 'i')")
    entry_ok = (f"regexp_full_match(e.key, '{_PRINTABLE}') and not contains(e.key, '\"') and not contains(e.key, '\\') "
                f"and (not ({kept}) or e.type = 'BOOLEAN' "
                f"or (e.type = 'VARCHAR' and regexp_full_match({atom}, '{_PRINTABLE}')) "
                f"or (e.type in ('UBIGINT', 'BIGINT') and cast(try_cast(e.value as hugeint) as varchar) = e.value))")
    # once per distinct metadata object: requests repeat a handful of shapes
    metadata = f"""
        create or replace temp table _fast_gateway_metadata as
        select metadata_json, bool_and({entry_ok}) and count(*) = count(distinct e.key) as ok,
               '{{' || coalesce(string_agg('"' || e.key || '":' || ({value}), ',' order by e.key)
                                filter (where {kept}), '') || '}}' as metadata
        from (select distinct metadata_json from _fast_gateway_lines where ok and metadata_json is not null) g,
             json_each(g.metadata_json) e
        group by metadata_json"""
    columns = ", ".join(f"r.{f.name}" if f.name != "metadata" else
                        "case when r.metadata_json is null then null else coalesce(m.metadata, '{}') end as metadata"
                        for f in REQUEST_SCHEMA)
    return FastReader(
        stage=(requests, metadata),
        bad_files="select file from _fast_gateway_lines where not coalesce(ok, false) "
                  "union select file from _fast_gateway_lines join _fast_gateway_metadata m using (metadata_json) "
                  "where not coalesce(m.ok, false)",
        tables={REQUESTS: (REQUEST_SCHEMA, f"select r.file, {columns} from (select *, line as line_number "
                           "from _fast_gateway_lines) r left join _fast_gateway_metadata m using (metadata_json)")},
        temp_tables=("_fast_gateway_lines", "_fast_gateway_metadata"),
    )


FAST_READER = _fast_reader()
