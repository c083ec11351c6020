"""Request ids and the access log: one line per HTTP request, written in batches.

    2026-11-26T10:00:00.123Z 10.0.0.7 "GET /terraform/modules/v1/acme/vpc/aws/versions" 200 1.4ms id=5f3a…

uvicorn's own access log is turned off: it wrote the query string (a signed download URL's
``signature`` is a credential for its lifetime) and cost more than the registry's whole answer
(about 100 µs per request through ``logging``; this is about 5 µs). Lines are buffered and written
every ``flush_seconds`` or ``max_lines`` lines, and once more at shutdown.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import sys
import time
from typing import Any, TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph.asgi import REQUEST_ID_KEY


class AccessLog:
    def __init__(self, stream: TextIO | None = None, flush_seconds: float = 0.5, max_lines: int = 512) -> None:
        self.stream = stream
        self.flush_seconds = flush_seconds
        self.max_lines = max_lines
        self._lines: list[str] = []
        self._second, self._stamp = -1, ""

    def record(self, client: str, method: str, path: str, status: int, seconds: float, request_id: str) -> None:
        if '"' in path or not path.isprintable():  # a decoded %0A or %22 must not forge a line
            path = path.encode("unicode_escape").decode("ascii").replace('"', '\\"')
        now = time.time()
        second = int(now)
        if second != self._second:  # formatting a date costs more than the rest of the line
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self._lines.append(f'{self._stamp}.{int((now - second) * 1000):03d}Z {client} "{method} {path}" {status} '
                           f'{seconds * 1000:.1f}ms id={request_id}\n')
        if len(self._lines) >= self.max_lines:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            stream = self.stream or sys.stdout
            stream.write("".join(self._lines))
            stream.flush()
            self._lines.clear()

    async def run(self) -> None:
        """Flushes periodically until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(self.flush_seconds)
                self.flush()
        finally:
            self.flush()


class RequestLog:
    """Gives every request an id (or keeps the caller's), echoed in ``X-Request-ID``, and writes
    its access line (without the query string) when the response is complete."""

    def __init__(self, app: ASGIApp, access_log: AccessLog | None = None) -> None:
        self.app = app
        self.access_log = access_log
        # Ids must be unique, not secret: a random per-process prefix and a counter (32 hex digits).
        self._prefix = secrets.token_hex(12)
        self._counter = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else self._new_id()
        scope[REQUEST_ID_KEY] = request_id
        started, status = time.perf_counter(), 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log is not None and scope["type"] == "http":
                client: Any = scope.get("client")
                self.access_log.record(client[0] if client else "-", scope["method"], scope["path"], status,
                                       time.perf_counter() - started, request_id)

    def _new_id(self) -> str:
        return f"{self._prefix}{next(self._counter):08x}"


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return ""
