"""A `terrakube serve` process for the benchmarks that drive one over HTTP (graphql.py,
registry.py): a free port, production settings from the environment, a wait until healthy, a stop,
and the PostgreSQL admin connection that creates and drops the benchmark's database."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def benchmark_database(db: str, tmp: Path) -> Iterator[str]:
    """A fresh migrated database: its own PostgreSQL database (dropped after), or a SQLite file in ``tmp``."""
    import migrations

    name = f"terrakube_bench_{uuid.uuid4().hex[:12]}"
    postgres = db == "postgresql"
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}" if postgres else f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    if postgres:
        asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        migrations.upgrade(url)
        yield url
    finally:
        if postgres:
            asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def serving(url: str, key: str, tmp: Path, *, show_log: bool = False, **options: Any) -> Iterator[int]:
    """``start_server`` for the block's length (its port); on a failure the server log's tail is printed."""
    proc, port = start_server(url, key, tmp, show_log=show_log, **options)
    try:
        yield port
    except BaseException:
        if not show_log:
            print(f"server log tail:\n{tail(tmp / 'server.log')}", file=sys.stderr)
        raise
    finally:
        stop_server(proc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    url: str, key: str, tmp: Path, *, show_log: bool = False, env: dict[str, str] | None = None,
    args: tuple[str, ...] = (), entry: list[str] | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """`terrakube serve ARGS` (or ``ENTRY serve ARGS``) on a free port, once ``/healthz`` answers 200.
    Its output goes to ``tmp/server.log`` unless ``show_log``."""
    port, log = free_port(), tmp / "server.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TERRAKUBE_")}
    full_env.update(TERRAKUBE_MODE="production", TERRAKUBE_DATABASE_URL=url, TERRAKUBE_SECRET_KEY=key,
                    TERRAKUBE_REDIS_URL="redis://127.0.0.1:6379/0", TERRAKUBE_DATA_DIR=str(tmp),
                    TERRAKUBE_STORAGE_LOCAL_PATH=str(tmp / "storage"), TERRAKUBE_ALLOW_FILE_SOURCES="true",
                    TERRAKUBE_REDIS_PREFIX=f"bench-{uuid.uuid4().hex[:8]}", **(env or {}))
    out: Any = None if show_log else log.open("wb")
    cmd = [*(entry or [str(ROOT / ".venv/bin/terrakube")]), "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT if out else None)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}; log: {log}\n{tail(log)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_server(proc)
    raise SystemExit(f"server not healthy within 30 s; log: {log}\n{tail(log)}")


def tail(log: Path) -> str:
    """The server log's last lines, without the access lines of successful requests."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join([line for line in lines if '" 20' not in line][-30:])


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
