"""Settings validation, the `terrakube serve` / `terrakube migrate` commands, and /healthz
when the database is down."""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from settings import (
    MIN_SECRET_LENGTH,
    ConfigurationError,
    Mode,
    Settings,
    load_settings,
)

TERRAKUBE = Path(sys.executable).parent / "terrakube"
COMMAND_TIMEOUT = 60
DB_URL = "postgresql+asyncpg://terrakube:pw@127.0.0.1:1/terrakube"
GOOD_SECRET = secrets.token_urlsafe(48)


@pytest.fixture
def no_terrakube_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("TERRAKUBE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TERRAKUBE_")}
    env["CHECKPOINT_DISABLE"] = "1"
    env.update(extra)
    return env


def terrakube(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TERRAKUBE), *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"\nexit code {result.returncode}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"


# -- (a) load_settings ------------------------------------------------------------------


def test_production_requires_a_database_url(no_terrakube_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(mode="production", secret_key=GOOD_SECRET)
    assert "TERRAKUBE_DATABASE_URL" in str(caught.value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings(mode="production")
    assert "TERRAKUBE_DATABASE_URL" in str(caught.value)


@pytest.mark.parametrize(
    "secret",
    [
        None,
        "",
        "changeme",
        "CHANGEME",
        "  changeme  ",
        "password",
        "x" * 10,
        "y" * (MIN_SECRET_LENGTH - 1),
        " " * 40,
    ],
    ids=["missing", "empty", "changeme", "CHANGEME", "padded-changeme", "password", "10-chars", "31-chars", "blank"],
)
def test_production_refuses_a_weak_secret(no_terrakube_env: pytest.MonkeyPatch, secret: str | None) -> None:
    overrides: dict[str, object] = {"mode": "production", "database_url": DB_URL}
    if secret is not None:
        overrides["secret_key"] = secret
    with pytest.raises(ConfigurationError) as caught:
        load_settings(**overrides)
    message = str(caught.value)
    assert "TERRAKUBE_SECRET_KEY" in message
    assert "TERRAKUBE_DATABASE_URL" not in message
    # A readable sentence, not pydantic's dump.
    assert "Value error" not in message and "validation error" not in message.lower()


def test_weak_secret_from_the_environment_is_refused(no_terrakube_env: pytest.MonkeyPatch) -> None:
    no_terrakube_env.setenv("TERRAKUBE_DATABASE_URL", DB_URL)
    no_terrakube_env.setenv("TERRAKUBE_SECRET_KEY", "changeme")
    with pytest.raises(ConfigurationError, match="TERRAKUBE_SECRET_KEY"):
        load_settings(mode="production")


def test_good_production_config_loads(no_terrakube_env: pytest.MonkeyPatch) -> None:
    settings = load_settings(mode="production", database_url=DB_URL, secret_key=GOOD_SECRET)
    assert isinstance(settings, Settings)
    assert settings.mode is Mode.production
    assert settings.effective_database_url == DB_URL
    assert settings.secret_key == GOOD_SECRET

    exactly_min = load_settings(mode="production", database_url=DB_URL, secret_key="k" * MIN_SECRET_LENGTH)
    assert exactly_min.secret_key == "k" * MIN_SECRET_LENGTH


def test_good_production_config_from_the_environment(no_terrakube_env: pytest.MonkeyPatch) -> None:
    no_terrakube_env.setenv("TERRAKUBE_MODE", "production")
    no_terrakube_env.setenv("TERRAKUBE_DATABASE_URL", DB_URL)
    no_terrakube_env.setenv("TERRAKUBE_SECRET_KEY", GOOD_SECRET)
    settings = load_settings()
    assert settings.mode is Mode.production
    assert settings.database_url == DB_URL and settings.secret_key == GOOD_SECRET


def test_embedded_mode_needs_neither(no_terrakube_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.mode is Mode.embedded
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path / 'terrakube.db'}"


# -- (b) terrakube serve refuses a bad configuration -----------------------------------------


def test_serve_refuses_a_placeholder_secret(tmp_path: Path) -> None:
    env = clean_env(TERRAKUBE_DATABASE_URL=DB_URL, TERRAKUBE_SECRET_KEY="changeme")
    result = terrakube("serve", "--host", "127.0.0.1", "--port", "1", env=env, cwd=tmp_path)
    assert result.returncode == 2, describe(result)
    assert "configuration error" in result.stderr, describe(result)
    assert "TERRAKUBE_SECRET_KEY" in result.stderr, describe(result)
    assert "Traceback" not in result.stderr, describe(result)


def test_serve_refuses_a_missing_database_url(tmp_path: Path) -> None:
    env = clean_env(TERRAKUBE_SECRET_KEY=GOOD_SECRET)
    result = terrakube("serve", "--host", "127.0.0.1", "--port", "1", env=env, cwd=tmp_path)
    assert result.returncode == 2, describe(result)
    assert "configuration error" in result.stderr, describe(result)
    assert "TERRAKUBE_DATABASE_URL" in result.stderr, describe(result)
    assert "Traceback" not in result.stderr, describe(result)


def test_serve_forces_production_mode(tmp_path: Path) -> None:
    """TERRAKUBE_MODE=embedded cannot smuggle an unsafe config into `serve`."""
    env = clean_env(TERRAKUBE_MODE="embedded", TERRAKUBE_DATABASE_URL=DB_URL, TERRAKUBE_SECRET_KEY="changeme")
    result = terrakube("serve", "--host", "127.0.0.1", "--port", "1", env=env, cwd=tmp_path)
    assert result.returncode == 2, describe(result)
    assert "TERRAKUBE_SECRET_KEY" in result.stderr, describe(result)


# -- (c) terrakube migrate ---------------------------------------------------------------


def tables(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def alembic_revisions(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
    finally:
        conn.close()


def test_migrate_creates_the_schema_and_is_idempotent(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"  # does not exist yet
    db = data_dir / "terrakube.db"
    env = clean_env()

    first = terrakube("migrate", "--data-dir", str(data_dir), env=env, cwd=tmp_path)
    assert first.returncode == 0, describe(first)
    assert "latest schema revision" in first.stdout, describe(first)
    assert db.exists(), describe(first)
    found = tables(db)
    assert {"organization", "workspace", "variable", "access_token", "alembic_version"} <= found, found
    revisions = alembic_revisions(db)
    assert len(revisions) == 1, revisions

    second = terrakube("migrate", "--data-dir", str(data_dir), env=env, cwd=tmp_path)
    assert second.returncode == 0, describe(second)
    assert tables(db) == found
    assert alembic_revisions(db) == revisions


# -- (d) /healthz while the database is unreachable ----------------------------------------


async def test_healthz_is_503_while_the_database_is_unreachable(tmp_path: Path) -> None:
    from app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere", tmp_path))
    async with asyncio.timeout(60):
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                response = await client.get("/healthz")
                assert response.status_code == 503, response.text
                body = response.json()
                assert body["status"] == "unavailable", body
                assert body.get("database") != "ok", body
                # Still answers (and still says so) on the next probe.
                again = await client.get("/healthz")
                assert again.status_code == 503, again.text
