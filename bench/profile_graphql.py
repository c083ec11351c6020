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
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
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

    app = create_app(Settings(database_url=url, secret_key=key, data_dir=tmp, storage_local_path=tmp / "storage"))
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
    pstats.Stats(pr, stream=out).sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["postgresql", "sqlite"], default="sqlite")
    ap.add_argument("--query", choices=["baseline", "a", "b"], default="b")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--sort", default="tottime")
    ap.add_argument("--pyinstrument", action="store_true")
    args = ap.parse_args()
    key = secrets.token_urlsafe(36)

    import migrations

    with tempfile.TemporaryDirectory(prefix="terrakube-prof-") as tmpdir:
        tmp = Path(tmpdir)
        dbname = f"terrakube_bench_{uuid.uuid4().hex[:12]}"
        if args.db == "postgresql":
            url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{dbname}"
            asyncio.run(bench.pg_admin(f'CREATE DATABASE "{dbname}"'))
        else:
            url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
        try:
            migrations.upgrade(url)
            token = asyncio.run(bench.seed(url, key))
            asyncio.run(profile(url, key, token, tmp, args))
        finally:
            if args.db == "postgresql":
                asyncio.run(bench.pg_admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))


if __name__ == "__main__":
    sys.exit(main())
