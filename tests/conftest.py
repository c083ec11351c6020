from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

import migrations
from app import Services, create_app
from domain.services.access_tokens import issue_admin_token, issue_token
from settings import Settings
from tests.cluster import cluster  # noqa: F401  (a fixture: serve + worker on PostgreSQL and Redis)
from tests.services import PG_ADMIN_URL, PG_HOST, PG_PORT, require

SECRET = "test-secret-" + "x" * 40


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    require("PostgreSQL", PG_HOST, PG_PORT)
    name = f"terrakube_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every test that uses the database runs on SQLite and on PostgreSQL, migrated to head."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'terrakube.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    migrations.upgrade(url)
    return url


def make_settings(db_url: str, data_dir: Path, **extra: Any) -> Settings:
    # No access log on the test's stdout (tests/test_request_path.py and the cluster test it).
    extra.setdefault("access_log", False)
    return Settings(
        database_url=db_url, secret_key=SECRET, data_dir=data_dir, **extra  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
async def app_services(
    db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    app = create_app(make_settings(db_url, tmp_path_factory.mktemp("data")))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, app.state.services


@pytest.fixture(scope="session")
def client(app_services: tuple[httpx.AsyncClient, Services]) -> httpx.AsyncClient:
    return app_services[0]


@pytest.fixture(scope="session")
def services(app_services: tuple[httpx.AsyncClient, Services]) -> Services:
    return app_services[1]


@pytest.fixture(scope="session")
async def admin_token(services: Services) -> str:
    return (await issue_admin_token(services.platform)).secret


@pytest.fixture
def unique() -> str:
    """A name no other test uses (tests share one database per backend)."""
    return "t" + secrets.token_hex(5)


class GraphQLClient:
    def __init__(self, client: httpx.AsyncClient, token: str | None) -> None:
        self.client = client
        self.token = token

    async def raw(self, query: str, **variables: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return await self.client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.raw(query, **variables)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]


@pytest.fixture
def gql(client: httpx.AsyncClient, admin_token: str) -> GraphQLClient:
    """GraphQL as a member of the admin group."""
    return GraphQLClient(client, admin_token)


@pytest.fixture
def as_groups(client: httpx.AsyncClient, services: Services):  # type: ignore[no-untyped-def]
    """Returns an async factory: a GraphQL client for a user in the given groups."""

    async def make(*groups: str, owner: str | None = None) -> GraphQLClient:
        new = await issue_token(
            services.platform,
            owner=owner or f"user-{secrets.token_hex(4)}",
            email=None,
            groups=list(groups),
            description="test user",
            days=1,
            kind="personal",
        )
        return GraphQLClient(client, new.secret)

    return make


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI the suite needs both services; say so once, up front, instead of in every test."""
    from tests.services import REDIS_HOST, REDIS_PORT, in_ci, reachable

    if not in_ci():
        return
    missing = [
        f"{name} at {host}:{port}"
        for name, host, port in (("PostgreSQL", PG_HOST, PG_PORT), ("Redis", REDIS_HOST, REDIS_PORT))
        if not reachable(host, port)
    ]
    if missing:
        pytest.exit("CI needs " + " and ".join(missing) + ", which cannot be reached", returncode=3)
