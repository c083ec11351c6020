"""A production-shaped cluster for tests: a fresh PostgreSQL database migrated by
`terrakube migrate`, `terrakube serve`, and `terrakube worker` processes on Redis, sharing one
local blob store; torn down with its database and Redis keys."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from domain.services import Platform
from tests.procs import TERRAKUBE, Api, Server, clean_env
from tests.services import PG_ADMIN_URL, PG_HOST, PG_PORT, REDIS_HOST, REDIS_PORT, REDIS_URL, require

HEARTBEAT_TTL = 6  # TERRAKUBE_HEARTBEAT_TTL_SECONDS of every process below
SWEEP_SECONDS = 2


# -- the cluster: one database, one API process, worker processes ----------------------------


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def cluster_platform(env: dict[str, str], data_dir: Path) -> AsyncIterator[Platform]:
    """The cluster's platform, opened in the test process (to mint tokens, seed rows)."""
    from settings import Settings
    from wiring import open_platform

    settings = Settings(
        mode="production",  # type: ignore[arg-type]
        database_url=env["TERRAKUBE_DATABASE_URL"],
        secret_key=env["TERRAKUBE_SECRET_KEY"],
        data_dir=data_dir,
        storage_local_path=Path(env["TERRAKUBE_STORAGE_LOCAL_PATH"]),
    )
    platform = await open_platform(settings)
    try:
        yield platform
    finally:
        await platform.blobs.close()
        await platform.db.dispose()


async def _mint_admin_token(env: dict[str, str], data_dir: Path) -> str:
    from domain.services.access_tokens import issue_admin_token

    async with cluster_platform(env, data_dir) as platform:
        return (await issue_admin_token(platform)).secret


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (terraform runs in its own session, so a kill of the
    worker alone would leave it running)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@dataclass
class Cluster:
    base: Path
    env: dict[str, str]
    serve: Server
    api: Api
    workers: list[Server] = field(default_factory=list)

    def start_worker(self, name: str) -> Server:
        worker = Server(data_dir=self.base / "data", log_dir=self.base, name=name, command=["worker"], env=self.env)
        self.workers.append(worker)
        worker.start()
        return worker

    @property
    def worker(self) -> Server:
        """The newest worker process that is still running."""
        running = [w for w in self.workers if w.proc is not None and w.proc.poll() is None]
        assert running, self.output()
        return running[-1]

    def output(self) -> str:
        return self.serve.output() + "".join(w.output() for w in self.workers)

    def sigkill_worker(self, worker: Server) -> list[int]:
        """SIGKILL the worker, then everything it started (terraform and its provisioner),
        so nothing of the lost run keeps going. Returns the killed children."""
        assert worker.proc is not None
        children = descendants(worker.proc.pid)
        worker.kill()
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return children


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require("PostgreSQL", PG_HOST, PG_PORT)
    require("Redis", REDIS_HOST, REDIS_PORT)
    base = tmp_path_factory.mktemp("distributed")
    db_name = f"terrakube_dist_{uuid.uuid4().hex[:12]}"
    prefix = f"tktest-{secrets.token_hex(6)}"
    serve = Server(data_dir=base / "data", log_dir=base, name="serve", command=["serve"])
    env = {
        "TERRAKUBE_MODE": "production",
        "TERRAKUBE_DATABASE_URL": f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{db_name}",
        "TERRAKUBE_SECRET_KEY": secrets.token_urlsafe(48),
        "TERRAKUBE_REDIS_URL": REDIS_URL,
        "TERRAKUBE_REDIS_PREFIX": prefix,
        "TERRAKUBE_DATA_DIR": str(base / "data"),
        "TERRAKUBE_STORAGE_LOCAL_PATH": str(base / "data" / "storage"),
        "TERRAKUBE_PUBLIC_URL": serve.base_url,
        "TERRAKUBE_ALLOW_FILE_SOURCES": "true",  # the tests' code lives in local repositories
        "TERRAKUBE_SWEEP_SECONDS": str(SWEEP_SECONDS),
        "TERRAKUBE_HEARTBEAT_SECONDS": "1",
        "TERRAKUBE_HEARTBEAT_TTL_SECONDS": str(HEARTBEAT_TTL),
        "CHECKPOINT_DISABLE": "1",
    }
    serve.env = env
    (base / "data").mkdir()
    asyncio.run(_pg_admin(f'CREATE DATABASE "{db_name}"'))
    cluster: Cluster | None = None
    try:
        migrated = subprocess.run([str(TERRAKUBE), "migrate"], env={**clean_env(), **env}, cwd=base,
                                  capture_output=True, text=True, timeout=120)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        token = asyncio.run(_mint_admin_token(env, base / "data"))
        cluster = Cluster(base, env, serve, Api(serve, token))
        serve.start()
        cluster.start_worker("worker-1")
        serve.wait_healthy()
        yield cluster
    finally:
        try:
            for worker in cluster.workers if cluster else []:
                if worker.proc is not None:
                    for pid in descendants(worker.proc.pid):
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                worker.kill()
            serve.kill()
        finally:
            try:
                asyncio.run(_forget_redis_keys(env["TERRAKUBE_DATABASE_URL"], prefix))
            finally:
                asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))


async def _forget_redis_keys(database_url: str, prefix: str) -> None:
    """This run's keys: everything under its prefix, and arq's keys of its sweeps, jobs and steps."""
    import redis.asyncio as aioredis

    ids: set[str] = set()
    try:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            for table in ("job", "step"):
                ids |= {str(row["id"]) for row in await conn.fetch(f"SELECT id FROM {table}")}
        finally:
            await conn.close()
    except Exception:
        pass
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        keys += [key async for key in client.scan_iter(match=f"arq:*:{prefix}:*", count=1000)]  # the cron sweep
        if ids:
            async for key in client.scan_iter(match="arq:*", count=1000):
                name = key.decode(errors="replace")
                if any(part in ids for part in name.split(":")):
                    keys.append(key)
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# -- helpers ------------------------------------------------------------------------------
