"""`BlobStore` on Google Cloud Storage (or gcp-storage-emulator) through `gcloud-aio-storage`.

The library uploads from bytes or a seekable file only, so a write is spooled first: small
objects in memory, larger ones to an unnamed temp file (memory stays bounded; the file vanishes
even if the process dies). The upload itself is one GCS request (simple or resumable), which
GCS makes visible atomically. A side effect worth having: when the caller's stream fails (the
client went away), nothing ever reached GCS, so no upload session is left behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, BinaryIO

import aiohttp
from gcloud.aio.storage import Storage

from ._threads import offload
from .base import (
    BlobNotFound,
    ObjectInfo,
    RemoteBlobStore,
    StorageError,
    is_our_key,
    probe_round_trip,
    validate_key,
    validate_prefix,
)

__all__ = ["GcsBlobStore"]

CHUNK_SIZE = 1 << 20
# Writes up to this size never touch the disk.
SPOOL_IN_MEMORY = 1 << 20
_OCTETS = "application/octet-stream"


def _write(f: BinaryIO, parts: list[bytes]) -> None:
    for part in parts:
        f.write(part)


class GcsBlobStore(RemoteBlobStore):
    def __init__(
        self,
        bucket: str,
        *,
        credentials_file: str | None = None,
        endpoint: str | None = None,
        spool_dir: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self._credentials_file = credentials_file
        self._spool_dir = spool_dir
        # Opened on first use: the library reads the credentials file and binds an HTTP
        # session to the running event loop when it is built.
        self._client: Storage | None = None
        # Objects per listing page (GCS's maximum; tests lower it to cross pages cheaply).
        self.page_size = 1000

    def __repr__(self) -> str:
        return f"GcsBlobStore(bucket={self.bucket!r}, endpoint={self._where})"

    @property
    def _where(self) -> str:
        return self.endpoint or "storage.googleapis.com"

    def _storage(self) -> Storage:
        if self._client is None:
            if self._credentials_file and not os.path.isfile(self._credentials_file):
                raise StorageError(
                    f"gcs: credentials file {self._credentials_file} does not exist; "
                    "fix TERRAKUBE_STORAGE_GCS_CREDENTIALS_FILE"
                )
            try:
                self._client = Storage(service_file=self._credentials_file, api_root=self.endpoint)
            except (OSError, ValueError, KeyError) as exc:
                raise StorageError(
                    f"gcs: the credentials are not usable ({exc}); check TERRAKUBE_STORAGE_GCS_CREDENTIALS_FILE "
                    "(or GOOGLE_APPLICATION_CREDENTIALS)"
                ) from exc
        return self._client

    def _error(self, what: str, exc: BaseException) -> StorageError:
        """One StorageError that names the setting most likely at fault."""
        status = getattr(exc, "status", None)
        if status in (401, 403):
            return StorageError(
                f"gcs: {what} was refused at {self._where} ({status}); check "
                "TERRAKUBE_STORAGE_GCS_CREDENTIALS_FILE and the account's access to the bucket"
            )
        if isinstance(exc, aiohttp.ClientConnectionError | asyncio.TimeoutError):
            return StorageError(f"gcs: cannot reach {self._where} ({exc}); check TERRAKUBE_STORAGE_GCS_ENDPOINT")
        return StorageError(f"gcs: {what} failed in bucket {self.bucket!r} at {self._where}: {exc}")

    def _missing_bucket(self) -> StorageError:
        return StorageError(
            f"gcs: bucket {self.bucket!r} does not exist at {self._where}; create it or fix TERRAKUBE_STORAGE_GCS_BUCKET"
        )

    # -- writing -------------------------------------------------------------------------

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> ObjectInfo:
        validate_key(key)
        storage = self._storage()
        sha = hashlib.sha256()
        size = 0
        pending: list[bytes] = []
        pending_size = 0
        spool: BinaryIO | None = None
        try:
            async for chunk in chunks:
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise TypeError(f"put({key!r}) chunks must be bytes, got {type(chunk).__name__}")
                if not chunk:
                    continue
                data = bytes(chunk)
                sha.update(data)
                size += len(data)
                pending.append(data)
                pending_size += len(data)
                if pending_size > SPOOL_IN_MEMORY:
                    if spool is None:
                        spool = await offload(tempfile.TemporaryFile, "w+b", -1, None, None, "tk-", ".part",
                                              self._spool_dir)
                    await offload(_write, spool, pending)
                    pending, pending_size = [], 0
            if spool is None:
                body: Any = b"".join(pending)
            else:
                await offload(_write, spool, pending)
                pending = []
                await offload(spool.seek, 0)
                body = spool
            try:
                await storage.upload(
                    self.bucket, key, body, content_type=_OCTETS,
                    # Kept with the object so stat() can report it without reading the object.
                    metadata={"metadata": {"sha256": sha.hexdigest()}},
                    # A spooled body goes in one resumable PUT streamed from the file; the
                    # library's multipart form would read it into memory.
                    force_resumable_upload=spool is not None,
                    # Counted for the whole transfer: allow for a slow link on a big state.
                    timeout=60 + size // (1 << 20),
                )
            except aiohttp.ClientResponseError as exc:
                raise self._missing_bucket() if exc.status == 404 else self._error(f"put {key}", exc) from exc
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise self._error(f"put {key}", exc) from exc
        finally:
            if spool is not None:
                spool.close()  # unnamed: closing frees its disk space
        return ObjectInfo(key=key, size=size, sha256=sha.hexdigest())

    # -- reading -------------------------------------------------------------------------

    async def get(self, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        validate_key(key)
        storage = self._storage()
        try:
            # One GET streams one generation of the object: an overwrite does not mix in.
            # The library's timeout covers the whole body by default; bound idle reads instead.
            stream = await storage.download_stream(
                self.bucket, key, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
            )
        except aiohttp.ClientResponseError as exc:
            if exc.status == 404:
                raise BlobNotFound(key) from None
            raise self._error(f"get {key}", exc) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._error(f"get {key}", exc) from exc
        return _StreamChunks(stream, chunk_size, self, key)

    async def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        try:
            meta = await self._storage().download_metadata(self.bucket, key)
        except aiohttp.ClientResponseError as exc:
            if exc.status == 404:
                raise BlobNotFound(key) from None
            raise self._error(f"stat {key}", exc) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._error(f"stat {key}", exc) from exc
        sha256 = (meta.get("metadata") or {}).get("sha256")
        return ObjectInfo(key=key, size=int(meta.get("size", 0)), sha256=sha256 if isinstance(sha256, str) else None)

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        validate_prefix(prefix)
        storage = self._storage()
        token: str | None = None
        # objects.list returns names in lexical order, 1000 a page: sorted and streamed.
        while True:
            params = {"maxResults": str(self.page_size), "fields": "items(name,size),nextPageToken"}
            if prefix:
                params["prefix"] = prefix
            if token:
                params["pageToken"] = token
            try:
                page = await storage.list_objects(self.bucket, params=params)
            except aiohttp.ClientResponseError as exc:
                raise self._missing_bucket() if exc.status == 404 else self._error(f"list {prefix!r}", exc) from exc
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise self._error(f"list {prefix!r}", exc) from exc
            for item in page.get("items") or []:
                if is_our_key(item["name"]):
                    yield ObjectInfo(key=item["name"], size=int(item.get("size", 0)))
            token = page.get("nextPageToken")
            if not token:
                return

    # -- deleting ------------------------------------------------------------------------

    async def _delete(self, key: str) -> bool:
        try:
            await self._storage().delete(self.bucket, key)
        except aiohttp.ClientResponseError as exc:
            if exc.status == 404:
                return False  # already gone: deletes are retried safely
            raise self._error(f"delete {key}", exc) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._error(f"delete {key}", exc) from exc
        return True

    # -- lifecycle -----------------------------------------------------------------------

    async def check(self) -> None:
        await probe_round_trip(self, f"gcs: bucket {self.bucket!r}")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


class _StreamChunks(AsyncIterator[bytes]):
    """The body of one download; releases the connection at the end or on aclose()."""

    def __init__(self, stream: Any, chunk_size: int, store: GcsBlobStore, key: str) -> None:
        self._stream: Any = stream
        self._chunk_size = chunk_size
        self._store = store
        self._key = key

    async def __anext__(self) -> bytes:
        if self._stream is None:
            raise StopAsyncIteration
        try:
            chunk = await self._stream.read(self._chunk_size)
        except (TimeoutError, aiohttp.ClientError) as exc:
            await self.aclose()
            raise self._store._error(f"get {self._key}", exc) from exc
        except BaseException:
            await self.aclose()
            raise
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream._response.release()  # the library's StreamResponse exposes no close



