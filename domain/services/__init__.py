"""Async domain services. Each takes the ``Platform`` (its dependencies) and the acting ``Actor``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.crypto import SecretBox
from domain.db import Database
from domain.errors import Conflict
from domain.tokens import TokenSigner


@dataclass
class Platform:
    db: Database
    box: SecretBox
    signer: TokenSigner
    admin_group: str = "TERRAKUBE_ADMIN"
    access_token_max_days: int = 365


@asynccontextmanager
async def unit_of_work(platform: Platform, conflict: str) -> AsyncIterator[AsyncSession]:
    """One transaction; a unique-constraint race surfaces as ``Conflict(conflict)``."""
    try:
        async with platform.db.transaction() as session:
            yield session
    except IntegrityError:
        raise Conflict(conflict) from None


@asynccontextmanager
async def reading(platform: Platform) -> AsyncIterator[AsyncSession]:
    async with platform.db.session() as session:
        yield session
