"""Reaching the machine's PostgreSQL and Redis: in CI a missing service fails the test,
on a laptop it skips with the reason."""

from __future__ import annotations

import os
import socket

import pytest

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
PG_ADMIN_URL = os.environ.get("TERRAKUBE_TEST_PG_ADMIN_URL", f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres")
REDIS_URL = os.environ.get("TERRAKUBE_TEST_REDIS_URL", f"redis://{REDIS_HOST}:{REDIS_PORT}/0")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    if reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if in_ci():
        pytest.fail(message + " (CI needs it)")
    pytest.skip(message)
