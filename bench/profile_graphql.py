"""Server-side profile of one GraphQL query, in-process (no HTTP, no client in the numbers).

    .venv/bin/python bench/profile_graphql.py [--db sqlite|postgresql] [--query baseline|a|b] [--requests N]
        [--top 35] [--sort tottime|cumtime] [--pyinstrument]

Seeds the same data as bench/graphql.py, runs the app (embedded mode) under asgi-lifespan with
httpx.ASGITransport, and prints where the time goes per request (cProfile; pyinstrument if installed
and asked for). Also prints a wall-clock split: total, SQL (cursor execute time), auth.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import io
import pstats
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
_spec = importlib.util.spec_from_file_location("bench_graphql", HERE / "graphql.py")
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)  # also fixes sys.path (this folder holds a graphql.py)


async def profile(url: str, key: str, token: str, tmp: Path, args: argparse.Namespace) -> None:
    import httpx
    from asgi_lifespan import LifespanManager
    from sqlalchemy import event

    from app import create_app
    from settings import Settings

    app = create_app(Settings(database_url=url, secret_key=key, data_dir=tmp, storage_local_path=tmp / "storage",
                              access_log=False))
    sql_ms: list[float] = []
    started: dict[int, float] = {}

    def before(conn: Any, cursor: Any, *_: Any) -> None:
        started[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, *_: Any) -> None:
        sql_ms.append((time.perf_counter() - started.pop(id(cursor), time.perf_counter())) * 1000)

    async with LifespanManager(app) as manager:
        services = app.state.services
        engine = services.platform.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        transport = httpx.ASGITransport(app=manager.app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers) as client:

            async def once(i: int) -> None:
                r = await client.post("/graphql", json=bench.payload(args.query, i))
                bench.check(args.query, r.json())

            for i in range(30):
                await once(i)
            # auth alone (JWT decode + token row lookup)
            t0 = time.perf_counter()
            for _ in range(args.requests):
                await services.authenticator.authenticate(token)
            auth_ms = (time.perf_counter() - t0) * 1000 / args.requests
            sql_ms.clear()
            t0 = time.perf_counter()
            for i in range(args.requests):
                await once(i)
            total_ms = (time.perf_counter() - t0) * 1000 / args.requests
            sql_per_req = sum(sql_ms) / args.requests
            print(f"query {args.query} db={args.db}: {total_ms:.2f} ms/request in-process (ASGI, no socket); "
                  f"SQL cursor time {sql_per_req:.2f} ms ({len(sql_ms) / args.requests:.0f} stmts); "
                  f"authenticate() alone {auth_ms:.2f} ms")
            if args.breakdown:
                await breakdown(services, once, args.requests)
                return
            if args.pyinstrument:
                from pyinstrument import Profiler

                prof = Profiler(async_mode="enabled")
                with prof:
                    for i in range(args.requests):
                        await once(i)
                print(prof.output_text(unicode=False, color=False, show_all=False))
                return
            pr = cProfile.Profile()
            pr.enable()
            for i in range(args.requests):
                await once(i)
            pr.disable()
    out = io.StringIO()
    stats = pstats.Stats(pr, stream=out)
    stats.sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())
    print(by_package(stats, args.requests))


class Timer:
    """Accumulates wall time of wrapped callables (all requests run one at a time)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    def add(self, name: str, ms: float) -> None:
        self.ms[name] = self.ms.get(name, 0.0) + ms

    def wrap_async(self, owner: Any, attr: str, name: str) -> None:
        original = getattr(owner, attr)

        async def timed(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await original(*a, **kw)
            finally:
                self.add(name, (time.perf_counter() - t0) * 1000)

        setattr(owner, attr, timed)

    def wrap_sync(self, owner: Any, attr: str, name: str) -> None:
        original = getattr(owner, attr)

        def timed(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                self.add(name, (time.perf_counter() - t0) * 1000)

        setattr(owner, attr, timed)


async def breakdown(services: Any, once: Any, requests: int) -> None:
    """Wall-clock split of a request (no profiler), then the same under different GC settings."""
    import gc
    import statistics

    from sqlalchemy import event
    from sqlmodel.ext.asyncio.session import AsyncSession
    from strawberry.asgi import GraphQL

    from graph.schema import schema

    async def sample(label: str) -> None:
        gc_ms: list[float] = []
        by_gen = [0.0, 0.0, 0.0]
        n_gen = [0, 0, 0]
        gc_t0: list[float] = [0.0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                gc_t0[0] = time.perf_counter()
            else:
                gc_ms.append((time.perf_counter() - gc_t0[0]) * 1000)
                by_gen[info["generation"]] += gc_ms[-1]
                n_gen[info["generation"]] += 1

        lat: list[float] = []
        gc.callbacks.append(on_gc)
        for i in range(requests):
            t0 = time.perf_counter()
            await once(i)
            lat.append((time.perf_counter() - t0) * 1000)
        gc.callbacks.remove(on_gc)
        p99 = statistics.quantiles(lat, n=100, method="inclusive")[98]
        print(f"  {label:<46} p50 {statistics.median(lat):7.2f}  p99 {p99:7.2f}  max {max(lat):7.2f} ms; "
              f"GC {sum(gc_ms) / requests:5.2f} ms/req, {len(gc_ms)} collections, longest {max(gc_ms, default=0):.1f} ms")
        print("    by generation: " + ", ".join(f"gen{g}: {n_gen[g]} x, {by_gen[g] / requests:.2f} ms/req" for g in range(3)))

    gc.collect()
    before = len(gc.get_objects())
    for i in range(requests):
        await once(i)
    gc.collect()
    after = len(gc.get_objects())
    print(f"tracked objects: {before} before, {after} after {requests} more requests "
          f"({(after - before) / requests:+.1f} per request after a full collection)")
    print("latency in-process (includes the bench client's share of CPU):")
    await sample("default GC")
    gc.collect()
    gc.freeze()  # startup objects move to the permanent generation: full collections skip them
    await sample("gc.freeze() after startup")
    gc.set_threshold(50_000, 50, 100)
    await sample("gc.freeze() + set_threshold(50000, 50, 100)")
    gc.disable()
    await sample("gc.disable() (lower bound, not a fix)")
    gc.enable()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)

    timer = Timer()
    engine = services.platform.db.engine.sync_engine
    started: dict[int, float] = {}
    event.listen(engine, "before_cursor_execute", lambda c, cur, *_: started.__setitem__(id(cur), time.perf_counter()))
    event.listen(engine, "after_cursor_execute",
                 lambda c, cur, *_: timer.add("sql cursor", (time.perf_counter() - started.pop(id(cur))) * 1000))
    timer.wrap_async(services.authenticator, "authenticate", "authenticate")
    timer.wrap_async(schema, "execute", "schema.execute")
    timer.wrap_async(AsyncSession, "exec", "session exec+get")
    timer.wrap_async(AsyncSession, "get", "session exec+get")
    timer.wrap_sync(GraphQL, "encode_json", "encode_json")
    t0 = time.perf_counter()
    for i in range(requests):
        await once(i)
    total = (time.perf_counter() - t0) * 1000
    ms = {k: v / requests for k, v in timer.ms.items()}
    print(f"wall-clock split per request ({requests} sequential requests, {total / requests:.2f} ms each; "
          "GC pauses land in whichever step allocates):")
    for k, v in sorted(ms.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<20}{v:8.2f} ms")
    print(f"  => session work beyond the cursor (pool checkout, pre-ping, BEGIN/ROLLBACK, ORM rows): "
          f"{ms['session exec+get'] - ms['sql cursor']:.2f} ms; schema.execute minus session work inside it: "
          f"{ms['schema.execute'] - ms['session exec+get'] + ms['authenticate']:.2f} ms (approx.)")


def by_package(stats: pstats.Stats, requests: int) -> str:
    """Self time (tottime) grouped by library: a rough "where does the time go" (cProfile-inflated)."""
    totals: dict[str, float] = {}
    for (filename, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "site-packages/" in filename:
            group = filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
        elif filename.startswith(str(ROOT)):
            group = "app:" + filename[len(str(ROOT)) + 1 :].split("/", 1)[0].removesuffix(".py")
        elif filename == "~":
            group = "builtins:" + func.split(" of ")[0].strip("<>{}")[:40]
        else:
            group = "stdlib:" + Path(filename).stem
        totals[group] = totals.get(group, 0.0) + tt
    grand = sum(totals.values())
    rows = sorted(totals.items(), key=lambda kv: -kv[1])[:20]
    lines = [f"self time by package (cProfile, {requests} requests, {grand * 1000 / requests:.1f} ms/request):"]
    lines += [f"  {name:<48}{t * 1000 / requests:8.2f} ms/req {100 * t / grand:5.1f}%" for name, t in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["postgresql", "sqlite"], default="sqlite")
    ap.add_argument("--query", choices=["baseline", "a", "b"], default="b")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--sort", default="tottime")
    ap.add_argument("--pyinstrument", action="store_true")
    ap.add_argument("--breakdown", action="store_true", help="wall-clock split and a GC experiment, no profiler")
    args = ap.parse_args()
    key = secrets.token_urlsafe(36)

    from bench.serve_process import benchmark_database

    with tempfile.TemporaryDirectory(prefix="terrakube-prof-") as tmpdir:
        tmp = Path(tmpdir)
        with benchmark_database(args.db, tmp) as url:
            token = asyncio.run(bench.seed(url, key))
            asyncio.run(profile(url, key, token, tmp, args))


if __name__ == "__main__":
    sys.exit(main())
