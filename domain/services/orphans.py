"""Orphaned blobs: objects of the key layout that no row names.

A write stores its blob first and records its row second (so a row always names a complete
blob); a process that dies in between leaves the blob behind, and so does a failed write whose
blob could not be deleted, or a deletion (of a workspace, organization, module or provider)
whose rows were removed but whose objects could not be. The sweep removes such blobs once they
have been orphans for ``older_than``, which leaves writes in progress (blob stored, row not yet
committed) alone. Only the folders of the layout are looked at (``state/``, ``plans/``,
``logs/``, ``config/``, ``registry/``): anything else in a bucket is not ours to delete.

The `BlobStore` protocol reports no modification times, so age is measured from the first
sweep that saw a blob without a row: an orphan is deleted after it was seen as one for
``older_than``. That makes the sweep safe whatever the backend's clock, at the price of a
per-process memory of candidates (lost on restart, which only delays a deletion).

`delete_unrecorded` is the deletions' own cleanup: right after the rows are gone it removes
what they named and whatever else lies under the deleted thing's prefixes, except objects a
remaining row still names (keys are built from names, and a name can be reused after a rename),
and except unrecorded objects while a successor of the same name exists: they may be its writes
in progress (object stored, row not yet committed), so they are left to the sweep's grace.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.models import (
    ConfigurationVersion,
    ModuleVersion,
    ProviderPlatform,
    ProviderVersion,
    StateVersion,
    Step,
)
from domain.models.types import utcnow
from domain.services import Platform, reading
from storage import BlobStore
from storage.base import delete_each

__all__ = ["Owned", "delete_unrecorded", "find_orphans", "keys_outside", "sweep_orphans"]

log = logging.getLogger("terrakube.orphans")

# The columns that name the objects of each top-level folder of the key layout
# (storage/keys.py): a key is recorded when one of its folder's columns holds it.
RECORDED_BY: dict[str, tuple[Any, ...]] = {
    "state/": (StateVersion.blob_key,),
    "plans/": (Step.plan_key,),
    "logs/": (Step.log_key,),
    "config/": (ConfigurationVersion.blob_key,),
    "registry/": (
        ModuleVersion.archive_key,
        ProviderPlatform.blob_key,
        ProviderVersion.shasums_key,
        ProviderVersion.signature_key,
    ),
}
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


def _folder(key: str) -> str:
    return key.split("/", 1)[0] + "/"


async def _unrecorded(platform: Platform, keys: Sequence[str]) -> list[str]:
    """The keys among ``keys`` that no row names. Keys outside the layout's folders count as
    recorded: nothing tells whose they are, so they are never deleted."""
    if not keys:
        return []
    by_folder: dict[str, list[str]] = {}
    for key in keys:
        by_folder.setdefault(_folder(key), []).append(key)
    recorded: set[str] = set()
    async with reading(platform) as session:
        for folder, some in by_folder.items():
            columns = RECORDED_BY.get(folder)
            if columns is None:
                recorded.update(some)
                continue
            for column in columns:
                recorded.update((await session.exec(select(column).where(col(column).in_(some)))).all())
    return [key for key in keys if key not in recorded]


async def _unrecorded_under(platform: Platform, prefix: str) -> AsyncIterator[list[str]]:
    """The unrecorded keys under ``prefix``, a batch at a time: the listing streams page by
    page and rows are looked up per batch, so neither the bucket's size nor a table's is ever
    held whole."""
    batch: list[str] = []
    async for info in platform.blobs.list(prefix):
        batch.append(info.key)
        if len(batch) >= BATCH:
            yield await _unrecorded(platform, batch)
            batch = []
    yield await _unrecorded(platform, batch)


async def find_orphans(
    platform: Platform, older_than: timedelta = DEFAULT_OLDER_THAN, *, now: datetime | None = None
) -> list[str]:
    """Blobs without a row that have been seen as such for at least ``older_than``."""
    now = now or utcnow()
    ledger = _ledger(platform.blobs)
    candidates: list[str] = []
    for prefix in RECORDED_BY:
        async for unrecorded in _unrecorded_under(platform, prefix):
            candidates += unrecorded
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
    """Delete orphaned blobs; returns how many. Never raises: it is a safety net that
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
        log.warning("sweeping orphaned blobs failed (removed %d so far)", removed, exc_info=True)
        return removed
    if removed:
        log.info("removed %d orphaned blob(s) older than %s", removed, older_than)
    return removed



# Deletes in flight at once: a large organization's objects go in reasonable time without
# flooding the store (the order of the backends' own delete_prefix).
DELETE_CONCURRENCY = 8


async def _unrecorded_of(platform: Platform, keys: Sequence[str]) -> AsyncIterator[list[str]]:
    for start in range(0, len(keys), BATCH):
        yield await _unrecorded(platform, keys[start : start + BATCH])


async def _delete_keys(platform: Platform, keys: Sequence[str]) -> list[BaseException]:
    """Delete ``keys`` a few at a time, going on past failures; returns them."""
    failures: list[BaseException] = []

    async def one(key: str) -> bool:
        try:
            await platform.blobs.delete(key)
        except Exception as exc:
            failures.append(exc)
            return False
        return True

    await delete_each(one, list(keys), DELETE_CONCURRENCY)
    return failures


async def _remove(platform: Platform, where: str, batches: AsyncIterator[list[str]]) -> None:
    failures: list[BaseException] = []
    try:
        async for batch in batches:
            failures += await _delete_keys(platform, batch)
    except Exception:
        log.warning("deleting the objects of %s failed", where, exc_info=True)
        return
    if failures:
        # One line for a store that is down, not one per object.
        log.warning("deleting %d object(s) of %s failed", len(failures), where, exc_info=failures[0])


@dataclass(frozen=True)
class Owned:
    """Keys in ``column`` whose row belongs to an owner: ``path`` joins from the column's
    table to the table of ``owner`` (the owner's id column)."""

    column: Any
    path: tuple[Any, ...]
    owner: Any


async def keys_outside(session: AsyncSession, owned: Sequence[Owned], owner_id: Any, prefixes: Sequence[str]) -> list[str]:
    """An owner's object keys that are not under ``prefixes``. Keys embed the names current at
    write time, so objects written before a rename (of an organization or a workspace) are only
    found through their rows. Normally none, so this stays small whatever the owner's size."""
    keys: list[str] = []
    for item in owned:
        query = select(item.column)
        for table in item.path:
            query = query.join(table)
        # autoescape: '_' is allowed in names and would be a LIKE wildcard.
        inside = or_(*(col(item.column).startswith(prefix, autoescape=True) for prefix in prefixes))
        query = query.where(item.owner == owner_id, col(item.column).is_not(None), ~inside)
        keys += [key for key in (await session.exec(query)).all() if key]
    return keys


async def delete_unrecorded(
    platform: Platform,
    prefixes: Sequence[str],
    keys: Iterable[str | None] = (),
    successor: Any = None,
) -> None:
    """Remove a deleted thing's objects; call it after its rows were deleted and committed.

    Removes ``keys`` (what its rows named, e.g. objects written under a name it had before a
    rename) and everything under ``prefixes`` (also what no row named, like the leftovers of a
    failed write), except any object that a remaining row still names.

    ``successor``: a select of the rows that would own objects under ``prefixes`` now (the same
    names, created again). While one exists, the unrecorded objects under ``prefixes`` are left
    to the sweep: they may be its writes in progress. Asked after each batch is listed, so an
    object a successor was writing when it was listed always finds the successor there.

    Never raises: the deletion the user asked for has happened, and whatever could not be
    removed here is an orphan that `sweep_orphans` removes later; failures are logged."""
    if platform.store is None:
        return
    named = sorted({key for key in keys if key})
    if named:
        await _remove(platform, "the deleted rows", _unrecorded_of(platform, named))
    for prefix in prefixes:
        await _remove(platform, prefix, _unless_succeeded(platform, _unrecorded_under(platform, prefix), successor))


async def _unless_succeeded(
    platform: Platform, batches: AsyncIterator[list[str]], successor: Any
) -> AsyncIterator[list[str]]:
    async for batch in batches:
        if batch and successor is not None and await _exists(platform, successor):
            log.info("left %d unrecorded object(s) to the sweep: the name is in use again", len(batch))
            continue
        yield batch


async def _exists(platform: Platform, query: Any) -> bool:
    async with reading(platform) as session:
        return (await session.exec(query.limit(1))).first() is not None
