"""Async domain services. Each takes the ``Platform`` (its dependencies) and the acting ``Actor``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.access_cache import AccessCache
from domain.crypto import SecretBox
from domain.db import Database
from domain.effects import Enqueue
from domain.errors import Conflict
from domain.tokens import TokenSigner
from storage import BlobStore


@dataclass
class Platform:
    db: Database
    box: SecretBox
    signer: TokenSigner
    admin_group: str = "TERRAKUBE_ADMIN"
    access_token_max_days: int = 365
    # Blob storage (state, plans, logs, archives); None only where a caller needs no blobs.
    store: BlobStore | None = None
    # `file://` git sources (repositories on the platform's own machines) may be used.
    allow_file_sources: bool = True
    # Remembered authentications and team lookups (None: every request asks the database).
    access_cache: AccessCache | None = None

    # Performs queue effects after the transaction that decided them has committed.
    dispatch: Callable[[Sequence[Enqueue]], Awaitable[None]] = field(default=lambda effects: _no_dispatch(effects))

    @property
    def blobs(self) -> BlobStore:
        if self.store is None:
            raise RuntimeError("this platform was built without blob storage")
        return self.store


async def _no_dispatch(effects: Sequence[Enqueue]) -> None:
    return None


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


# Registers the flush hook that turns job and step status writes into live events.
import domain.live  # noqa: E402, F401
