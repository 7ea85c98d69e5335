"""A local Slack on 127.0.0.1 for the alert tests: incoming webhooks (`POST /services/...`, JSON,
answers `ok`) and the Web API's `chat.postMessage` (`POST /api/chat.postMessage`, JSON or form,
answers {"ok": true, "ts": ...}). It records every request and can be told to answer the next N
with 429 (Retry-After: 1) or 500, as Slack does when rate limited or down."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived
    status: int  # what the fake answered

    @property
    def payload(self) -> dict:
        """The message: a JSON body, or a form whose `blocks` field is JSON."""
        text = self.body.decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(text)
        form = {k: v[0] for k, v in parse_qs(text).items()}
        if "blocks" in form:
            form["blocks"] = json.loads(form["blocks"])
        return form


@dataclass
class FakeSlack:
    requests: list[Request] = field(default_factory=list)
    _failures: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: int = 0

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, headers, answer = fake._answer(self.path)
                with fake._lock:
                    fake.requests.append(Request(self.path, dict(self.headers), body, time.monotonic(), status))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass  # http.server would print each request line, webhook secret included, to stderr

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def webhook_url(self, secret: str) -> str:
        return f"{self.base_url}/services/T0000/B0000/{secret}"

    def fail_next(self, count: int, status: int) -> None:
        """Answer the next `count` requests with `status` (429 carries Retry-After: 1)."""
        with self._lock:
            self._failures += [status] * count

    @property
    def delivered(self) -> list[dict]:
        """The messages Slack accepted, in order."""
        return [r.payload for r in self.requests if r.status == 200]

    def _answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        api = path.startswith("/api/")
        with self._lock:
            status = self._failures.pop(0) if self._failures else 200
            self._ts += 1
            ts = f"1767225600.{self._ts:06d}"
        if status == 429:
            return 429, {"Retry-After": "1", "Content-Type": "application/json" if api else "text/plain"}, \
                b'{"ok": false, "error": "ratelimited"}' if api else b"rate_limited"
        if status != 200:
            return status, {"Content-Type": "text/plain"}, b"rollup_error"
        if api:
            return 200, {"Content-Type": "application/json"}, json.dumps({"ok": True, "ts": ts}).encode()
        return 200, {"Content-Type": "text/plain"}, b"ok"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
