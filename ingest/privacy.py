"""What a serving log may keep of a request besides its counts: never conversation text, never a
secret. Shared by every serving-log reader."""

from __future__ import annotations

import hashlib
import json
import re

MAX_METADATA_VALUE = 200
# Metadata keys that can hold conversation text, whatever their value looks like.
TEXT_KEYS = re.compile(r"message|prompt|response|content|input|output|completion", re.IGNORECASE)


def key_hash(key: str) -> str:
    """A raw `sk-` key as `sha256:<hex>`; anything else (a gateway's or LiteLLM's stored hash) as it is."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest() if key.startswith("sk-") else key


def _scalar(value: str | int | float | bool) -> str | int | float | bool:
    return key_hash(value)[:MAX_METADATA_VALUE] if isinstance(value, str) else value


def kept_metadata(meta: dict) -> str:
    """Request metadata as a JSON object of its scalar values, minus keys that can hold text.

    Nested values are dropped: they are where clients and proxies put conversation text and errors.
    """
    kept = {k: _scalar(v) for k, v in meta.items()
            if isinstance(v, str | int | float | bool) and not TEXT_KEYS.search(k)}
    return json.dumps(kept, sort_keys=True, separators=(",", ":"))
