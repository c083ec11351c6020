"""GraphQL read-path benchmark against a real `terrakube serve` process.

    .venv/bin/python bench/graphql.py [--db postgresql|sqlite] [--requests N] [--concurrency C] [--json]

Seeds 1 organization x 1,000 workspaces x 5 variables into a fresh database, measures latency and
throughput of three queries over HTTP/1.1 keep-alive, and counts SQL statements per query in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
# This file is named graphql.py: keep its folder off sys.path so `import graphql` finds graphql-core.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.serve_process import benchmark_database, serving  # noqa: E402

ORG, WORKSPACES, VARS_PER_WS = "bench-org", 1000, 5
IN_REQUEST: ContextVar[bool] = ContextVar("in_bench_request", default=False)
GOALS = {"a": 20.0, "b": 100.0}  # p99 ms at the latency pass
BASELINE = "{ __typename }"
QUERY_A = "query($o:String!,$n:String!){ workspace(organization:$o, name:$n){ id name description branch terraformVersion } }"
QUERY_B = (
    "query($o:String!){ organization(name:$o){ workspaces(first:%d){ edges{ cursor node{ id name description "
    "source branch folder terraformVersion executionMode locked variables{ id key value category sensitive hcl } } } "
    "pageInfo{ hasNextPage endCursor } } } }"
)


def ws_name(i: int) -> str:
    return f"ws-{i:04d}"


def payload(query: str, i: int) -> dict[str, Any]:
    if query == "a":
        return {"query": QUERY_A, "variables": {"o": ORG, "n": ws_name(i % WORKSPACES)}}
    if query == "b":
        return {"query": QUERY_B % 100, "variables": {"o": ORG}}
    return {"query": BASELINE}


def check(query: str, body: dict[str, Any], first: int = 100) -> None:
    """Abort loudly on any error or on a (b) page that is not 100 x 5 with hidden secrets."""
    if body.get("errors") or "data" not in body:
        raise SystemExit(f"query {query} failed: {json.dumps(body)[:2000]}")
    if query == "a" and not body["data"]["workspace"]:
        raise SystemExit(f"query a found no workspace: {body}")
    if query == "b":
        edges = body["data"]["organization"]["workspaces"]["edges"]
        if len(edges) != first:
            raise SystemExit(f"query b returned {len(edges)} edges, expected {first}")
        for e in edges:
            vs = e["node"]["variables"]
            if len(vs) != VARS_PER_WS or any((v["value"] is None) != v["sensitive"] for v in vs):
                raise SystemExit(f"query b: bad variables for {e['node']['name']}: {vs}")


async def seed(url: str, key: str) -> str:
    """Insert the rows directly (one transaction) and return an admin token."""
    from domain.crypto import SecretBox
    from domain.db import Database
    from domain.models import Organization, Variable, Workspace
    from domain.services import Platform
    from domain.services.access_tokens import issue_admin_token
    from domain.tokens import TokenSigner

    db, box = Database(url), SecretBox(key)
    try:
        org = Organization(name=ORG)
        workspaces: list[Workspace] = []
        variables: list[Variable] = []
        for i in range(WORKSPACES):
            ws = Workspace(organization_id=org.id, name=ws_name(i), description=f"workspace {i}",
                           source="https://github.com/example/infra.git", terraform_version="1.11.4")
            workspaces.append(ws)
            n_sensitive = 1 + i % 2  # one or two sensitive variables per workspace
            for j in range(VARS_PER_WS):
                sensitive = j < n_sensitive
                value = f"value-{i}-{j}"
                variables.append(Variable(
                    workspace_id=ws.id, key=f"var_{j}", category="TERRAFORM" if j % 2 else "ENV",
                    value=box.encrypt(value) if sensitive else value, sensitive=sensitive,
                ))
        async with db.transaction() as s:  # no ORM relationships: flush parents first
            for batch in ([org], workspaces, variables):
                s.add_all(batch)
                await s.flush()
        platform = Platform(db=db, box=box, signer=TokenSigner(key))
        return (await issue_admin_token(platform)).secret
    finally:
        await db.dispose()


FREEZE = "import gc, app, cli; gc.collect(); gc.freeze(); cli.main()"  # the --gc-freeze experiment


async def run(client: httpx.AsyncClient, query: str, n: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            body = payload(query, i)
            t0 = time.perf_counter()
            r = await client.post("/graphql", json=body)
            latencies.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise SystemExit(f"query {query}: HTTP {r.status_code}: {r.text[:2000]}")
            check(query, r.json())

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98]
    return {"n": n, "p50_ms": statistics.median(latencies), "p99_ms": p99, "rps": n / wall}


async def measure(base: str, token: str, counts: dict[str, int], passes: list[int]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    limits = httpx.Limits(max_connections=max(passes), max_keepalive_connections=max(passes))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:
        for q in counts:
            await run(client, q, 50, 1)  # warm-up
        gc.collect()
        gc.freeze()  # keep the client's own full collections (seeding, imports) out of the latencies
        for c in passes:
            rows = {q: await run(client, q, counts[q], c) for q in counts}
            b = rows["baseline"]
            for row in rows.values():
                row.update(p50_ratio=row["p50_ms"] / b["p50_ms"], p99_ratio=row["p99_ms"] / b["p99_ms"],
                           rps_ratio=row["rps"] / b["rps"])
            results[f"c{c}"] = {"concurrency": c, "queries": rows}
    return results


async def count_statements(url: str, key: str, token: str, tmp: Path) -> dict[str, Any]:
    """Statements per request, in-process (embedded mode, no Redis), auth lookup included."""
    from asgi_lifespan import LifespanManager
    from sqlalchemy import event

    from app import create_app
    from settings import Settings

    settings = Settings(database_url=url, secret_key=key, data_dir=tmp / "inproc", storage_local_path=tmp / "storage",
                        access_log=False)  # the counting pass prints figures, not access lines
    app = create_app(settings)
    statements: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if IN_REQUEST.get():  # not the embedded mode's background loops (job/schedule polling)
            statements.append(" ".join(sql.split())[:100])

    cases = {  # name: (query kind, request body, expected edges)
        "baseline": ("baseline", payload("baseline", 0), 0),
        "a": ("a", payload("a", 7), 0),
        "b_first10": ("b", {"query": QUERY_B % 10, "variables": {"o": ORG}}, 10),
        "b_first100": ("b", {"query": QUERY_B % 100, "variables": {"o": ORG}}, 100),
    }
    out: dict[str, Any] = {}
    async with LifespanManager(app) as manager:
        engine = app.state.services.platform.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", on_execute)
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            for name, (kind, body, first) in cases.items():
                await client.post("/graphql", json=body)  # warm (connection, compiled caches)
                statements.clear()
                marker = IN_REQUEST.set(True)  # inherited by the request's tasks (DataLoader) and greenlets
                try:
                    r = await client.post("/graphql", json=body)
                finally:
                    IN_REQUEST.reset(marker)
                check(kind, r.json(), first)
                queries = [q for q in statements if not q.upper().startswith(("BEGIN", "COMMIT", "ROLLBACK"))]
                out[name] = {"count": len(statements), "queries": len(queries), "statements": list(statements)}
    out["b_constant"] = out["b_first10"]["count"] == out["b_first100"]["count"]
    return out


def report(r: dict[str, Any]) -> str:
    freeze = "  [server started with gc.freeze()]" if r["server_gc_freeze"] else ""
    lines = [
        f"GraphQL benchmark: db={r['db']} cores={r['cores']} python={r['python']} load-before={r['load']} "
        f"data=1 org x {WORKSPACES} workspaces x {VARS_PER_WS} vars{freeze}",
        f"{'pass':<5}{'query':<10}{'n':>6}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'p50 x':>8}{'p99 x':>8}{'rps x':>8}",
    ]
    for p in r["passes"].values():
        for q, m in p["queries"].items():
            lines.append(f"c={p['concurrency']:<3}{q:<10}{m['n']:>6}{m['p50_ms']:>9.2f}{m['p99_ms']:>9.2f}"
                         f"{m['rps']:>9.1f}{m['p50_ratio']:>8.2f}{m['p99_ratio']:>8.2f}{m['rps_ratio']:>8.3f}")
    s = r["sql"]
    lines.append("SQL statements/request, incl. token lookup (of which queries): " + ", ".join(
        f"{k}={s[k]['count']} ({s[k]['queries']})" for k in ("baseline", "a", "b_first10", "b_first100"))
        + f"; (b) constant for 10 vs 100: {'YES' if s['b_constant'] else 'NO'}")
    for g in r["goals"]:
        lines.append(f"goal ({g['query']}) p99 <= {g['target_ms']:.0f} ms at c={g['concurrency']}: "
                     f"{g['p99_ms']:.2f} ms  {'PASS' if g['pass'] else 'MISS'}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("--requests", type=int, default=None, help="per query (default 1000, 300 for (b))")
    ap.add_argument("--concurrency", type=int, default=1, help="latency pass (a c=8 pass always follows)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--uvicorn-log", action="store_true", help="show the server's log (default: a file)")
    ap.add_argument("--gc-freeze", action="store_true",
                    help="experiment: start the server with gc.freeze() after imports (not how production runs)")
    args = ap.parse_args()
    n = args.requests
    counts = {"baseline": n or 1000, "a": n or 1000, "b": n or 300}
    passes = sorted({args.concurrency, 8}, key=lambda c: (c != args.concurrency, c))
    key = secrets.token_urlsafe(36)  # 48 characters
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())  # before we add our own

    with tempfile.TemporaryDirectory(prefix="terrakube-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with benchmark_database(args.db, tmp) as url:
            t0 = time.perf_counter()
            token = asyncio.run(seed(url, key))
            print(f"seeded in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            sql = asyncio.run(count_statements(url, key, token, tmp))
            entry = [str(ROOT / ".venv/bin/python"), "-c", FREEZE] if args.gc_freeze else None
            with serving(url, key, tmp, show_log=args.uvicorn_log, entry=entry) as port:
                passes_out = asyncio.run(measure(f"http://127.0.0.1:{port}", token, counts, passes))

    lat = passes_out[f"c{passes[0]}"]
    goals = [{"query": q, "target_ms": t, "concurrency": passes[0], "p99_ms": lat["queries"][q]["p99_ms"],
              "pass": lat["queries"][q]["p99_ms"] <= t} for q, t in GOALS.items()]
    result = {"db": args.db, "cores": os.cpu_count(), "python": sys.version.split()[0], "load": load,
              "server_gc_freeze": args.gc_freeze, "passes": passes_out, "sql": sql, "goals": goals}
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
