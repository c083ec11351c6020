"""Migrations run on PostgreSQL and SQLite, both ways, and agree with the models."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import domain.models  # noqa: F401
import migrations
from domain.db import create_engine, is_sqlite
from tests.services import PG_HOST, PG_PORT, require

EXPECTED_TABLES = {
    "organization", "team", "workspace", "variable", "template", "job", "step", "state_version",
    "state_output", "state_lock", "schedule", "module", "module_version", "provider", "provider_version",
    "provider_platform", "signing_key", "access_token", "configuration_version",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    require("PostgreSQL", PG_HOST, PG_PORT)
    # A database of its own: downgrading the shared test database would break other tests.
    import asyncpg

    name = f"terrakube_mig_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    request.addfinalizer(lambda: asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')))
    return f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"


async def _tables_and_diff(url: str) -> tuple[set[str], list[object]]:
    engine = create_engine(url, pool_size=1)

    def inspect_sync(conn):  # type: ignore[no-untyped-def]
        tables = set(inspect(conn).get_table_names()) - {"alembic_version"}
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": is_sqlite(url)})
        return tables, compare_metadata(ctx, SQLModel.metadata)

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(inspect_sync)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade_and_models_agree(empty_db: str) -> None:
    await asyncio.to_thread(migrations.upgrade, empty_db)
    tables, diff = await _tables_and_diff(empty_db)
    assert tables == EXPECTED_TABLES
    assert diff == [], f"models and migrations differ: {diff}"

    await asyncio.to_thread(migrations.downgrade, empty_db, "base")
    tables, _ = await _tables_and_diff(empty_db)
    assert tables == set()

    await asyncio.to_thread(migrations.upgrade, empty_db)
    tables, diff = await _tables_and_diff(empty_db)
    assert tables == EXPECTED_TABLES and diff == []
