"""What every request goes through before and after its handler: the request id and access
line (``access_log``), the registry's hot path, and the registry's answer cache."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from access_log import AccessLog, RequestLog
from registry.answer_cache import AnswerCache
from registry.hot_path import HotPath

# -- request ids and the access log --------------------------------------------------------------


def logged_app(log: AccessLog) -> RequestLog:
    async def hello(request: Request) -> Response:
        if "boom" in request.query_params:
            raise RuntimeError("handler failed")
        return PlainTextResponse("hi", status_code=201)

    return RequestLog(Starlette(routes=[Route("/{rest:path}", hello)]), log)


async def test_each_request_gets_an_id_and_one_access_line_without_its_query() -> None:
    out = io.StringIO()
    log = AccessLog(out)
    transport = httpx.ASGITransport(app=logged_app(log), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        first = await client.get("/files/a.zip?expires=1&signature=SECRET")
        second = await client.get("/x", headers={"X-Request-ID": "caller-chosen"})
        failed = await client.get("/x?boom=1")
        forged = await client.get("/a%0A2026-01-01T00:00:00.000Z 1.2.3.4 \"GET /admin\" 200")
    assert first.status_code == 201 and failed.status_code == 500 and forged.status_code == 404
    assert second.headers["x-request-id"] == "caller-chosen"
    assert first.headers["x-request-id"] != failed.headers["x-request-id"]
    assert out.getvalue() == ""  # buffered until flushed
    log.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert '"GET /files/a.zip" 201' in lines[0] and f"id={first.headers['x-request-id']}" in lines[0]
    assert "SECRET" not in out.getvalue() and "expires" not in out.getvalue()
    assert '"GET /x" 201' in lines[1] and lines[1].endswith("id=caller-chosen")
    assert '"GET /x" 500' in lines[2]  # the failure is logged too
    assert lines[3].count(' "') == 1 and '\\"GET /admin\\"' in lines[3] and "\\n" in lines[3]  # no forged line


async def test_the_access_log_writes_when_full_and_when_stopped() -> None:
    out = io.StringIO()
    log = AccessLog(out, flush_seconds=3600, max_lines=2)
    log.record("c", "GET", "/a", 200, 0.001, "1")
    assert out.getvalue() == ""
    log.record("c", "GET", "/b", 200, 0.001, "2")
    assert len(out.getvalue().splitlines()) == 2
    log.record("c", "GET", "/c", 200, 0.001, "3")
    task = asyncio.create_task(log.run())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert out.getvalue().splitlines()[-1].endswith('"GET /c" 200 1.0ms id=3')


# -- the hot path --------------------------------------------------------------------------------


async def test_the_hot_path_answers_only_its_own_get_routes() -> None:
    async def hot(request: Request) -> Response:
        return PlainTextResponse(f"hot {request.path_params['name']}")

    async def general(request: Request) -> Response:
        return PlainTextResponse(f"general {request.method}")

    route = Route("/things/{name}/versions", hot, methods=["GET"])
    inner = Starlette(routes=[Route("/{rest:path}", general, methods=["GET", "POST", "HEAD"])])
    transport = httpx.ASGITransport(app=HotPath(inner, [route]))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/things/x%2Fy/versions")).text == "general GET"  # %2F is no separator
        assert (await client.get("/things/vpc/versions")).text == "hot vpc"
        assert (await client.post("/things/vpc/versions")).text == "general POST"
        assert (await client.get("/things/vpc/versions/extra")).text == "general GET"


# -- the registry's answer cache ---------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Loader:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> Any:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise LookupError("database down")
        return f"v{self.calls}"


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_answers_are_refreshed_ahead_of_expiry_and_never_older_than_the_ttl() -> None:
    clock, load = Clock(), Loader()
    cache = AnswerCache(10, clock=clock)
    assert await cache.get_or_load("k", load) == "v1"
    clock.now = 5
    assert await cache.get_or_load("k", load) == "v1" and load.calls == 1  # fresh: no load
    clock.now = 8  # in the last quarter: answered at once, refreshed behind the caller
    assert await cache.get_or_load("k", load) == "v1"
    await settle()
    assert load.calls == 2 and await cache.get_or_load("k", load) == "v2"
    clock.now = 8 + 10  # expired (no traffic refreshed it): the caller waits for a new load
    assert await cache.get_or_load("k", load) == "v3"


async def test_a_failed_refresh_keeps_the_answer_until_it_expires() -> None:
    clock, load = Clock(), Loader()
    cache = AnswerCache(10, clock=clock)
    await cache.get_or_load("k", load)
    load.fail, clock.now = True, 9
    assert await cache.get_or_load("k", load) == "v1"
    await settle()
    assert await cache.get_or_load("k", load) == "v1"
    clock.now = 10
    try:
        await cache.get_or_load("k", load)
    except LookupError:
        pass
    else:
        raise AssertionError("an expired answer must not be served")


async def test_concurrent_misses_share_one_load_and_ttl_zero_always_loads() -> None:
    load = Loader()
    load.gate = asyncio.Event()
    cache = AnswerCache(10)
    waiting = [asyncio.create_task(cache.get_or_load("k", load)) for _ in range(20)]
    await settle()
    load.gate.set()
    assert set(await asyncio.gather(*waiting)) == {"v1"} and load.calls == 1
    load.gate = None
    off = AnswerCache(0)
    assert [await off.get_or_load("k", load) for _ in range(2)] == ["v2", "v3"]
