"""The blob store contract shared by every backend (local disk, S3, Azure, GCS).

This module imports nothing of ours: `domain`, `workers` and `registry` depend on this
protocol, never on a concrete backend, so a backend can be swapped by configuration alone.
"""

from __future__ import annotations

import asyncio
import io
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "MAX_KEY_LENGTH",
    "BlobNotFound",
    "BlobStore",
    "InvalidKey",
    "ObjectInfo",
    "StorageError",
    "validate_key",
    "validate_prefix",
]

# S3 caps keys at 1024 bytes; using the strictest backend's limit keeps every key portable.
MAX_KEY_LENGTH = 1024

# A conservative alphabet that is safe as a file name, an S3 key, an Azure blob name and a GCS
# object name alike, so one key layout works on every backend without escaping.
_SEGMENT = re.compile(r"[A-Za-z0-9._=+@-]+")


class BlobNotFound(Exception):
    """The key names no object. Carries the key so callers can report what was missing."""

    def __init__(self, key: str) -> None:
        super().__init__(f"blob not found: {key}")
        self.key = key


class StorageError(Exception):
    """The backend failed (unreachable, not writable, misconfigured), as opposed to a bad key."""


class InvalidKey(ValueError):
    """A key or prefix outside the portable key alphabet, or one that could escape the store."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    # Only known when it was computed while writing; backends do not re-read objects to get it.
    sha256: str | None = None


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a valid object key, else raise InvalidKey.

    Keys are '/'-separated relative paths; '.' and '..' segments are refused so that a key
    can never address anything outside the store when mapped onto a file system.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey("key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"key longer than {MAX_KEY_LENGTH} characters: {key[:64]}...")
    if key.startswith("/"):
        raise InvalidKey(f"key must be relative (no leading '/'): {key!r}")
    for segment in key.split("/"):
        if not segment:
            raise InvalidKey(f"key has an empty segment: {key!r}")
        if segment in (".", ".."):
            raise InvalidKey(f"key has a {segment!r} segment: {key!r}")
        if not _SEGMENT.fullmatch(segment):
            raise InvalidKey(f"key segment {segment!r} has characters outside [A-Za-z0-9._=+@-]: {key!r}")
    return key


def validate_prefix(prefix: str, *, allow_empty: bool = True) -> str:
    """Return `prefix` unchanged if it is a valid listing prefix, else raise InvalidKey.

    A prefix is matched as a plain string prefix of keys (as S3 does), so 'state/org/' selects
    that folder while 'state/org' would also select 'state/org2/...'. It may end with '/'.
    The empty prefix selects the whole store; callers that must not act on everything
    (delete_prefix) pass allow_empty=False.
    """
    if not isinstance(prefix, str):
        raise InvalidKey("prefix must be a string")
    if prefix == "":
        if allow_empty:
            return prefix
        raise InvalidKey("empty prefix refused: it would select the whole store")
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


@runtime_checkable
class BlobStore(Protocol):
    """An object store addressed by validated keys. Objects are streamed, never held whole."""

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> ObjectInfo:
        """Write the streamed chunks as the object `key`, replacing any previous one.

        Atomic for readers: they see the previous object or the whole new one, never a part.
        If `chunks` raises or the call is cancelled, the previous object is left intact.
        Returns the size and sha256 hex digest of what was written.
        """
        ...

    async def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """`put` for a payload that is already in memory."""
        ...

    async def get(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Open `key` and return an iterator over its chunks.

        A coroutine (not an async generator) so that a missing key raises BlobNotFound at
        `await store.get(key)`, before a caller has e.g. sent response headers.
        """
        ...

    async def read_bytes(self, key: str) -> bytes:
        """The whole object in memory; only for objects known to be small."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def stat(self, key: str) -> ObjectInfo:
        """Size (and sha256 where the backend stores it) of `key`; BlobNotFound if missing."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error so deletes can be retried safely."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with `prefix`; return how many were removed."""
        ...

    def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """Objects whose key starts with `prefix`, sorted by key (an async generator)."""
        ...

    async def check(self) -> None:
        """Write, read back and delete a probe object; StorageError naming the bad setting."""
        ...

    async def close(self) -> None: ...


class RemoteBlobStore:
    """What the remote backends (S3, Azure, GCS) share, built on each one's own ``put``, ``get``,
    ``stat``, ``list`` and ``_delete`` (one object; False when it was already gone)."""

    delete_concurrency = 16  # single-object deletes in flight during ``delete_prefix``

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> ObjectInfo:
        raise NotImplementedError

    async def get(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        raise NotImplementedError

    async def stat(self, key: str) -> ObjectInfo:
        raise NotImplementedError

    def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        raise NotImplementedError

    async def _delete(self, key: str) -> bool:
        raise NotImplementedError

    async def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        return await self.put(key, one_chunk(data))

    async def read_bytes(self, key: str) -> bytes:
        return await collect(await self.get(key))

    async def exists(self, key: str) -> bool:
        try:
            await self.stat(key)
        except BlobNotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        validate_key(key)
        await self._delete(key)

    async def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix, allow_empty=False)
        keys = [info.key async for info in self.list(prefix)]
        # One delete per object (batches are not supported everywhere), a few at a time.
        return await delete_each(self._delete, keys, self.delete_concurrency)


async def probe_round_trip(store: BlobStore, where: str) -> None:
    """The startup check of a remote store: write, read back and delete a probe object;
    ``where`` names the bucket or container (and the setting) in the error."""
    probe = f".probe/{uuid.uuid4().hex}"
    payload = b"terrakube storage probe " + probe.encode()
    try:
        await store.put_bytes(probe, payload)
        if await store.read_bytes(probe) != payload:
            raise StorageError(f"{where} returned other bytes than written")
        await store.delete(probe)
    except BlobNotFound as exc:
        raise StorageError(f"a probe written to {where} could not be read back: {exc}") from exc


async def delete_each(delete_one: Callable[[str], Awaitable[bool]], keys: list[str], concurrency: int) -> int:
    """Deletes keys one request each, ``concurrency`` at a time; returns how many existed."""
    gate = asyncio.Semaphore(concurrency)

    async def one(key: str) -> bool:
        async with gate:
            return await delete_one(key)

    return sum(await asyncio.gather(*(one(k) for k in keys)))


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    """``data`` as a stream, for ``put_bytes`` over ``put``."""
    yield data


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    # BytesIO hands its buffer over without a copy; b"".join of a list would hold the object twice.
    buffer = io.BytesIO()
    async for chunk in chunks:
        buffer.write(chunk)
    return buffer.getvalue()


def is_our_key(key: str) -> bool:
    """Foreign objects a key could not name (e.g. with spaces) are not objects of ours."""
    try:
        validate_key(key)
    except ValueError:
        return False
    return True
