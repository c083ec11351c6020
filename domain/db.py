"""Database engine and sessions (PostgreSQL through asyncpg, or SQLite through aiosqlite)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.access_cache import ACCESS_KEY, access_changed_here

log = logging.getLogger("terrakube.db")
EVENTS_KEY = "terrakube.job_events"  # filled by domain.live while a transaction flushes


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if is_sqlite(url):
        # The driver's own implicit BEGIN is turned off: we emit BEGIN ourselves, IMMEDIATE for
        # write transactions so two writers serialize up front instead of failing on a stale
        # snapshot mid-way; readers stay deferred and, with WAL, never wait for a writer.
        engine = create_async_engine(url, connect_args={"timeout": 30, "isolation_level": None})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    # No pre-ping (it doubles the round trips of every short session); connections are
    # recycled instead, and a dropped one surfaces as an error of that one request.
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers run beside the writer.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    immediate = connection.get_execution_options().get(IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


IMMEDIATE = "terrakube_sqlite_immediate"


class Database:
    """Owns the engine; hands out one short session per unit of work."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        self._sqlite = is_sqlite(url)
        # Receives the job/step transitions of each committed transaction (the live broker).
        self.on_events: Callable[[list[Any]], Awaitable[None]] | None = None
        # Tells the other processes that tokens, teams or organizations changed (the broker).
        self.on_access_changed: Callable[[], Awaitable[None]] | None = None
        self._sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on any error."""
        async with self._sessions() as session:
            async with session.begin():
                if self._sqlite:
                    await session.connection(execution_options={IMMEDIATE: True})
                yield session
            # Committed: now tell the world what changed. Access first: the writer's next
            # request, here or elsewhere, must not be answered from a cache of before.
            if session.sync_session.info.pop(ACCESS_KEY, False):
                await self._access_changed()
            events = session.sync_session.info.pop(EVENTS_KEY, [])
            if events and self.on_events is not None:
                try:
                    await self.on_events(events)
                except Exception:
                    log.warning("publishing %d job events failed", len(events), exc_info=True)

    async def _access_changed(self) -> None:
        access_changed_here()
        if self.on_access_changed is not None:
            try:
                await self.on_access_changed()
            except Exception:
                # Other processes keep their answers until their cache's max age runs out.
                log.warning("announcing an access change failed", exc_info=True)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
