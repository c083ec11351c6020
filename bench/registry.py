"""Private registry read path: what `terraform init` calls, under many concurrent clients.

    .venv/bin/python bench/registry.py [--db sqlite|postgresql] [--concurrency 50] [--requests 10000]
                                       [--server-workers N] [--cache-seconds S] [--json]

Seeds an organization with one module (30 versions) and a READ team, issues a personal token of a
team member (what a terraform user has: a token lookup and a team lookup, which an admin token
would skip), starts `terrakube serve --workers N` (production mode, default one process per core,
its own SQLite file or PostgreSQL database, Redis at 127.0.0.1:6379) and drives it over HTTP/1.1
keep-alive with ``--concurrency`` clients (each one connection, closed loop):

- ``healthz``: ``GET /healthz`` (one ``SELECT 1``), the baseline of the same run;
- ``versions``: ``GET /terraform/modules/v1/{org}/{name}/{provider}/versions``;
- ``download``: ``GET …/{version}/download`` (204 + a signed ``X-Terraform-Get``; counted).

It prints p50/p99 latency, requests per second, and the ratios to ``healthz`` (medians of
interleaved rounds), then checks the goal p99 <= 20 ms for ``versions`` and ``download``. The
client is a minimal HTTP/1.1 client on asyncio streams (uvloop when installed) so that it takes
little of the CPU the server needs (client and server share the machine). Every response's status
is checked, and every body or ``X-Terraform-Get`` header too.
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.serve_process import benchmark_database, serving  # noqa: E402

ORG, MODULE, PROVIDER, TEAM = "bench-org", "vpc", "aws", "bench-readers"
VERSIONS = [f"1.{minor}.{patch}" for minor in range(6) for patch in range(5)]  # 30 versions
GOAL_P99_MS = 20.0


async def seed(url: str, key: str, storage: Path) -> str:
    """Rows written directly (no git needed: the measured endpoints never read archives)."""
    from domain.crypto import SecretBox
    from domain.db import Database
    from domain.models import Module, ModuleVersion, Organization, Team
    from domain.services import Platform
    from domain.services.access_tokens import issue_token
    from domain.tokens import TokenSigner
    from storage import LocalBlobStore
    from storage.keys import module_archive_key

    db = Database(url)
    try:
        org = Organization(name=ORG)
        module = Module(organization_id=org.id, name=MODULE, provider=PROVIDER, source="https://example.com/vpc.git")
        async with db.transaction() as s:
            s.add(org)
            await s.flush()
            s.add(Team(organization_id=org.id, name=TEAM, role="READ"))
            s.add(module)
            await s.flush()
            s.add_all(
                ModuleVersion(module_id=module.id, version=v, tag=f"v{v}", commit="0" * 40,
                              archive_key=module_archive_key(ORG, MODULE, PROVIDER, f"{v}.bench"))
                for v in VERSIONS
            )
        platform = Platform(db=db, box=SecretBox(key), signer=TokenSigner(key), store=LocalBlobStore(storage))
        new = await issue_token(platform, owner="bench-user", email=None, groups=[TEAM], description="bench",
                                days=1, kind="personal")
        return new.secret
    finally:
        await db.dispose()


# -- a minimal keep-alive HTTP/1.1 client --------------------------------------------------------


class Connection:
    def __init__(self, port: int, token: str | None) -> None:
        self.port = port
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.head = "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:" + str(port) + "\r\n" + auth + "Accept: application/json\r\n\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(self.head.format(path=path).encode())
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        length = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(length) if length else b""
        return int(status_line.split()[1]), headers, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


ENDPOINTS = {
    "healthz": ("/healthz", 200),
    "versions": (f"/terraform/modules/v1/{ORG}/{MODULE}/{PROVIDER}/versions", 200),
    "download": (f"/terraform/modules/v1/{ORG}/{MODULE}/{PROVIDER}/" + "{version}/download", 204),
}


VERIFIED_DOCUMENTS: set[bytes] = set()  # versions documents already parsed and found right


def check(name: str, status: int, headers: dict[str, str], body: bytes) -> None:
    expected = ENDPOINTS[name][1]
    if status != expected:
        raise SystemExit(f"{name}: HTTP {status} (expected {expected}): {body[:500]!r}")
    if name == "versions" and body not in VERIFIED_DOCUMENTS:  # parsed once, then compared (cheaper)
        if len(json.loads(body)["modules"][0]["versions"]) != len(VERSIONS):
            raise SystemExit(f"versions: wrong document {body[:500]!r}")
        VERIFIED_DOCUMENTS.add(body)
    if name == "download" and "signature=" not in headers.get("x-terraform-get", ""):
        raise SystemExit(f"download: no signed X-Terraform-Get: {headers}")


async def run(port: int, token: str, name: str, n: int, concurrency: int) -> dict[str, float]:
    template = ENDPOINTS[name][0]
    latencies: list[float] = []
    counter = iter(range(n))
    conns = [Connection(port, token) for _ in range(concurrency)]

    async def worker(conn: Connection) -> None:
        for i in counter:
            path = template.format(version=VERSIONS[i % len(VERSIONS)])
            t0 = time.perf_counter()
            status, headers, body = await conn.get(path)
            latencies.append((time.perf_counter() - t0) * 1000)
            check(name, status, headers, body)

    for conn in conns:  # connect first: connection setup is not what we measure
        await conn.get("/healthz")
    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    wall = time.perf_counter() - start
    for conn in conns:
        conn.close()
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"n": n, "p50_ms": statistics.median(latencies), "p90_ms": q[89], "p99_ms": q[98], "rps": n / wall}


def run_loop(coroutine: Any) -> Any:
    """The load generator runs on uvloop when it is installed (uvicorn's does): the client shares
    the machine with the server, and every cycle it saves is one the server can use."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


async def measure(port: int, token: str, n: int, concurrency: int, rounds: int) -> dict[str, Any]:
    for name in ENDPOINTS:  # warm-up: imports, compiled statements, connection pool
        await run(port, token, name, 200, min(concurrency, 10))
    gc.collect()
    gc.freeze()
    per_round: list[dict[str, dict[str, float]]] = []
    for _ in range(rounds):  # interleaved rounds: background noise hits every endpoint alike
        per_round.append({name: await run(port, token, name, n, concurrency) for name in ENDPOINTS})
    rows: dict[str, dict[str, float]] = {}
    for name in ENDPOINTS:
        samples = [r[name] for r in per_round]
        rows[name] = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    base = rows["healthz"]
    for row in rows.values():
        row.update(p50_ratio=row["p50_ms"] / base["p50_ms"], p99_ratio=row["p99_ms"] / base["p99_ms"],
                   rps_ratio=row["rps"] / base["rps"])
    return rows


def report(r: dict[str, Any]) -> str:
    lines = [
        f"Registry benchmark: db={r['db']} cores={r['cores']} python={r['python']} load-before={r['load']} "
        f"concurrency={r['concurrency']} requests/endpoint/round={r['requests']} rounds={r['rounds']} (medians) "
        f"server processes={r['server_workers']}"
        + (f"  [registry cache {r['cache_seconds']:g} s]" if r["cache_seconds"] is not None else ""),
        f"{'endpoint':<10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'req/s':>10}{'p50 x':>8}{'p99 x':>8}{'rps x':>8}",
    ]
    for name, m in r["rows"].items():
        lines.append(f"{name:<10}{m['p50_ms']:>9.2f}{m['p90_ms']:>9.2f}{m['p99_ms']:>9.2f}{m['rps']:>10.1f}"
                     f"{m['p50_ratio']:>8.2f}{m['p99_ratio']:>8.2f}{m['rps_ratio']:>8.3f}")
    for g in r["goals"]:
        lines.append(f"goal ({g['endpoint']}) p99 <= {GOAL_P99_MS:.0f} ms at c={r['concurrency']}: "
                     f"{g['p99_ms']:.2f} ms  {'PASS' if g['pass'] else 'MISS'}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--requests", type=int, default=10000, help="per endpoint and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--uvicorn-log", action="store_true")
    ap.add_argument("--cache-seconds", type=float, default=None,
                    help="TERRAKUBE_REGISTRY_CACHE_SECONDS for the server (default: the setting's default, 5)")
    ap.add_argument("--server-workers", type=int, default=os.cpu_count() or 1,
                    help="`terrakube serve --workers N` (default: one per core, as docs/registry.md advises)")
    args = ap.parse_args()
    key = secrets.token_urlsafe(36)
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())

    env = {"TERRAKUBE_PUBLIC_URL": "https://registry.example.com"}
    if args.cache_seconds is not None:
        env["TERRAKUBE_REGISTRY_CACHE_SECONDS"] = str(args.cache_seconds)
    with tempfile.TemporaryDirectory(prefix="terrakube-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with benchmark_database(args.db, tmp) as url:
            token = asyncio.run(seed(url, key, tmp / "storage"))
            with serving(url, key, tmp, show_log=args.uvicorn_log, env=env,
                         args=("--workers", str(args.server_workers))) as port:
                rows = run_loop(measure(port, token, args.requests, args.concurrency, args.rounds))

    goals = [{"endpoint": e, "p99_ms": rows[e]["p99_ms"], "pass": rows[e]["p99_ms"] <= GOAL_P99_MS}
             for e in ("versions", "download")]
    result = {"db": args.db, "server_workers": args.server_workers, "cache_seconds": args.cache_seconds, "cores": os.cpu_count(), "python": sys.version.split()[0], "load": load,
              "concurrency": args.concurrency, "requests": args.requests, "rounds": args.rounds, "rows": rows,
              "goals": goals}
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
