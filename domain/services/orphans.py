"""Orphaned state blobs: objects under ``state/`` that no state version row names.

A state write stores its blob first and records its row second (so a row always names a
complete blob); a process that dies in between leaves the blob behind, and so does a failed
write whose blob could not be deleted. The sweep removes such blobs once they have been
orphans for ``older_than``, which leaves writes in progress (blob stored, row not yet
committed) alone.

The `BlobStore` protocol reports no modification times, so age is measured from the first
sweep that saw a blob without a row: an orphan is deleted after it was seen as one for
``older_than``. That makes the sweep safe whatever the backend's clock, at the price of a
per-process memory of candidates (lost on restart, which only delays a deletion).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import col, select

from domain.models import StateVersion
from domain.models.types import utcnow
from domain.services import Platform, reading
from storage import BlobStore

__all__ = ["find_orphans", "sweep_orphans"]

log = logging.getLogger("terrakube.orphans")

PREFIX = "state/"
# Keys checked against the database per statement (well under every driver's parameter limit).
BATCH = 500
DEFAULT_OLDER_THAN = timedelta(minutes=60)
# Listing a bucket costs requests (and money on a cloud): the sweep runs at most this often,
# however often the job engine's safety-net sweep calls it.
DEFAULT_EVERY = timedelta(minutes=5)


@dataclass
class _Ledger:
    first_seen: dict[str, datetime] = field(default_factory=dict)
    last_run: datetime | None = None


# One ledger per store object, dropped with it.
_LEDGERS: weakref.WeakKeyDictionary[BlobStore, _Ledger] = weakref.WeakKeyDictionary()


def _ledger(store: BlobStore) -> _Ledger:
    ledger = _LEDGERS.get(store)
    if ledger is None:
        ledger = _LEDGERS[store] = _Ledger()
    return ledger


async def _unrecorded(platform: Platform, keys: Sequence[str]) -> list[str]:
    """The keys among ``keys`` that no state version row names."""
    if not keys:
        return []
    query = select(StateVersion.blob_key).where(col(StateVersion.blob_key).in_(list(keys)))
    async with reading(platform) as session:
        recorded = set((await session.exec(query)).all())
    return [key for key in keys if key not in recorded]


async def find_orphans(
    platform: Platform, older_than: timedelta = DEFAULT_OLDER_THAN, *, now: datetime | None = None
) -> list[str]:
    """State blobs without a row that have been seen as such for at least ``older_than``."""
    now = now or utcnow()
    ledger = _ledger(platform.blobs)
    candidates: list[str] = []
    batch: list[str] = []
    # The listing streams page by page; rows are looked up per batch, so neither the bucket's
    # size nor the table's is ever held whole.
    async for info in platform.blobs.list(PREFIX):
        batch.append(info.key)
        if len(batch) >= BATCH:
            candidates += await _unrecorded(platform, batch)
            batch = []
    candidates += await _unrecorded(platform, batch)
    # Keys that got a row (or vanished) since the last sweep are no longer candidates.
    ledger.first_seen = {key: ledger.first_seen.get(key, now) for key in candidates}
    return [key for key in candidates if now - ledger.first_seen[key] >= older_than]


async def sweep_orphans(
    platform: Platform,
    older_than: timedelta = DEFAULT_OLDER_THAN,
    *,
    every: timedelta = DEFAULT_EVERY,
    now: datetime | None = None,
) -> int:
    """Delete orphaned state blobs; returns how many. Never raises: it is a safety net that
    runs beside the job sweep, and a storage hiccup must not stop that one."""
    now = now or utcnow()
    ledger = _ledger(platform.blobs)
    if ledger.last_run is not None and now - ledger.last_run < every:
        return 0
    ledger.last_run = now
    removed = 0
    try:
        orphans = await find_orphans(platform, older_than, now=now)
        # Checked once more right before deleting: a very slow write may have recorded its row.
        for key in await _unrecorded(platform, orphans):
            await platform.blobs.delete(key)
            ledger.first_seen.pop(key, None)
            removed += 1
    except Exception:
        log.warning("sweeping orphaned state blobs failed (removed %d so far)", removed, exc_info=True)
        return removed
    if removed:
        log.info("removed %d orphaned state blob(s) older than %s", removed, older_than)
    return removed
