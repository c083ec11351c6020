"""`BlobStore` on Azure Blob Storage (or Azurite) through `azure.storage.blob.aio`.

Writes stream as staged blocks committed with one Put Block List, so memory is bounded by the
block size and readers see the previous blob until the commit (Azure makes it visible at once).
A stream that fits one block is written with one Put Blob. Blocks of a failed write are never
committed: they stay invisible and Azure discards uncommitted blocks after a week. They are not
deleted here because no Azure call removes them without also touching the committed blob, which
a concurrent writer may just have replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import aiohttp
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.blob import BlobBlock
from azure.storage.blob.aio import BlobServiceClient, ContainerClient, LinearRetry

from ._parts import Upload, rechunk, split_parts
from .base import (
    BlobNotFound,
    ObjectInfo,
    RemoteBlobStore,
    StorageError,
    collect,
    is_our_key,
    probe_round_trip,
    validate_key,
    validate_prefix,
)

__all__ = ["DEFAULT_BLOCK_SIZE", "AzureBlobStore"]

DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024
# A read is a series of ranged GETs of the block size (at most this), each held in memory a
# few times over by the SDK; its default first GET of 32 MiB would hold far more.
MAX_DOWNLOAD_CHUNK = 8 * 1024 * 1024
CHUNK_SIZE = 1 << 20
_READ_ATTEMPTS = 3
_AUTH_CODES = {"AuthenticationFailed", "AuthorizationFailure", "AuthorizationPermissionMismatch",
               "InvalidAuthenticationInfo", "AccountIsDisabled"}


class AzureBlobStore(RemoteBlobStore):
    def __init__(
        self,
        container: str,
        *,
        connection_string: str | None = None,
        account_name: str | None = None,
        account_key: str | None = None,
        endpoint: str | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        if not connection_string and not (account_name and account_key):
            raise StorageError(
                "azure storage needs TERRAKUBE_STORAGE_AZURE_CONNECTION_STRING, or "
                "TERRAKUBE_STORAGE_AZURE_ACCOUNT_NAME and TERRAKUBE_STORAGE_AZURE_ACCOUNT_KEY"
            )
        self.container = container
        self.block_size = block_size
        self._connection_string = connection_string
        self._account_name = account_name
        self._account_key = account_key
        self._endpoint = endpoint or (f"https://{account_name}.blob.core.windows.net" if account_name else None)
        if connection_string:
            self._credentials = "TERRAKUBE_STORAGE_AZURE_CONNECTION_STRING"
        else:
            self._credentials = "TERRAKUBE_STORAGE_AZURE_ACCOUNT_NAME / TERRAKUBE_STORAGE_AZURE_ACCOUNT_KEY"
        # Opened on first use: the SDK's HTTP session belongs to the running event loop.
        self._service: BlobServiceClient | None = None
        self._client: ContainerClient | None = None
        # Blobs per listing page (Azure's maximum; tests lower it to cross pages cheaply).
        self.page_size = 5000

    def __repr__(self) -> str:
        return f"AzureBlobStore(container={self.container!r}, endpoint={self._where})"

    @property
    def _where(self) -> str:
        if self._service is not None:
            return self._service.url.rstrip("/")
        return self._endpoint or "the connection string's BlobEndpoint"

    def _container(self) -> ContainerClient:
        if self._client is None:
            options: dict[str, Any] = {
                "max_single_get_size": min(self.block_size, MAX_DOWNLOAD_CHUNK),
                "max_chunk_get_size": min(self.block_size, MAX_DOWNLOAD_CHUNK),
                # The SDK's default waits 15 s and more between retries: a wrong endpoint would
                # keep startup silent for a minute before saying so.
                "retry_policy": LinearRetry(backoff=1, retry_total=3, random_jitter_range=1),
                "connection_timeout": 10,
                "read_timeout": 120,
            }
            try:
                if self._connection_string:
                    service = BlobServiceClient.from_connection_string(self._connection_string, **options)
                else:
                    credential = {"account_name": self._account_name, "account_key": self._account_key}
                    service = BlobServiceClient(self._endpoint or "", credential=credential, **options)
            except (ValueError, AzureError) as exc:
                raise StorageError(f"azure: the storage settings are not usable ({exc}); check {self._credentials}") from exc
            self._service = service
            self._client = service.get_container_client(self.container)
        return self._client

    def _error(self, what: str, exc: BaseException) -> StorageError:
        """One StorageError that names the setting most likely at fault."""
        code = str(getattr(exc, "error_code", "") or "")
        status = getattr(exc, "status_code", None)
        if code == "ContainerNotFound":
            return StorageError(
                f"azure: container {self.container!r} does not exist at {self._where}; "
                "create it or fix TERRAKUBE_STORAGE_AZURE_CONTAINER"
            )
        if isinstance(exc, ClientAuthenticationError) or code in _AUTH_CODES or status == 403:
            return StorageError(
                f"azure: {what} was refused at {self._where} ({code or status}: {_brief(exc)}); "
                f"check {self._credentials}"
            )
        if isinstance(exc, ServiceRequestError | aiohttp.ClientConnectionError | asyncio.TimeoutError):
            setting = "TERRAKUBE_STORAGE_AZURE_CONNECTION_STRING (BlobEndpoint)" if self._connection_string \
                else "TERRAKUBE_STORAGE_AZURE_ENDPOINT"
            return StorageError(f"azure: cannot reach {self._where} ({exc}); check {setting}")
        if isinstance(exc, ValueError):  # e.g. an account key that is not base64
            return StorageError(f"azure: {what} could not be signed ({exc}); check {self._credentials}")
        return StorageError(f"azure: {what} failed in container {self.container!r} at {self._where}: {_brief(exc)}")

    async def _call(self, what: str, coro: Any) -> Any:
        try:
            return await coro
        except (TimeoutError, AzureError, aiohttp.ClientError, ValueError) as exc:
            raise self._error(what, exc) from exc

    # -- writing -------------------------------------------------------------------------

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> ObjectInfo:
        validate_key(key)
        blob = self._container().get_blob_client(key)
        upload = Upload()
        # Block ids must all have the same length within a blob; a fresh prefix per upload
        # keeps concurrent writers of one key from committing each other's blocks.
        prefix = uuid.uuid4().hex
        blocks: list[BlobBlock] = []
        async with contextlib.aclosing(split_parts(chunks, self.block_size, upload, key)) as parts:
            async for part, last in parts:
                if not blocks and last:
                    await self._call(f"put {key}", blob.upload_blob(part.to_bytes(), length=part.size, overwrite=True))
                    return ObjectInfo(key=key, size=upload.size, sha256=upload.digest)
                block_id = f"{prefix}-{len(blocks):06d}"
                body, size = part.to_bytes(), part.size
                part.release()  # keep one copy of the block, not two
                await self._call(f"put {key}", blob.stage_block(block_id, body, length=size))
                del body
                blocks.append(BlobBlock(block_id=block_id))
        await self._call(f"put {key}", blob.commit_block_list(blocks))
        return ObjectInfo(key=key, size=upload.size, sha256=upload.digest)

    # -- reading -------------------------------------------------------------------------

    async def get(self, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        validate_key(key)
        blob = self._container().get_blob_client(key)
        try:
            # The SDK pins later ranged GETs to the first one's ETag: a blob replaced while it
            # is being read fails the read (an error), it never mixes two versions.
            downloader = await blob.download_blob(max_concurrency=1)
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "BlobNotFound" or exc.status_code == 404 and not exc.error_code:
                raise BlobNotFound(key) from None
            raise self._error(f"get {key}", exc) from exc
        except (TimeoutError, AzureError, aiohttp.ClientError, ValueError) as exc:
            raise self._error(f"get {key}", exc) from exc
        return _Chunks(rechunk(downloader.chunks(), chunk_size), self, key)

    async def read_bytes(self, key: str) -> bytes:
        # A whole-object read can start over when the blob is replaced under it (a stream
        # cannot: its first chunks are already gone), so it returns the old or the new one.
        for attempt in range(_READ_ATTEMPTS):
            try:
                return await collect(await self.get(key))
            except _Replaced:
                if attempt == _READ_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        blob = self._container().get_blob_client(key)
        try:
            props = await blob.get_blob_properties()
        except ResourceNotFoundError as exc:
            if exc.error_code in (None, "BlobNotFound"):
                raise BlobNotFound(key) from None
            raise self._error(f"stat {key}", exc) from exc
        except (TimeoutError, AzureError, aiohttp.ClientError, ValueError) as exc:
            raise self._error(f"stat {key}", exc) from exc
        return ObjectInfo(key=key, size=int(props.size))

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        validate_prefix(prefix)
        # List Blobs returns names in lexical order, 5000 a page: sorted and streamed.
        pages = self._container().list_blobs(name_starts_with=prefix or None, results_per_page=self.page_size)
        try:
            async for item in pages:
                if is_our_key(item.name):
                    yield ObjectInfo(key=item.name, size=int(item.size))
        except (TimeoutError, AzureError, aiohttp.ClientError, ValueError) as exc:
            raise self._error(f"list {prefix!r}", exc) from exc

    # -- deleting ------------------------------------------------------------------------

    async def _delete(self, key: str) -> bool:
        try:
            await self._container().delete_blob(key)
        except ResourceNotFoundError as exc:
            if exc.error_code in (None, "BlobNotFound"):
                return False  # already gone: deletes are retried safely
            raise self._error(f"delete {key}", exc) from exc
        except (TimeoutError, AzureError, aiohttp.ClientError, ValueError) as exc:
            raise self._error(f"delete {key}", exc) from exc
        return True

    # -- lifecycle -----------------------------------------------------------------------

    async def check(self) -> None:
        await probe_round_trip(self, f"azure: container {self.container!r}")

    async def close(self) -> None:
        service, self._service, self._client = self._service, None, None
        if service is not None:
            await service.close()


class _Replaced(StorageError):
    """The blob was overwritten between two ranged GETs of one read."""


class _Chunks(AsyncIterator[bytes]):
    """Downloaded chunks, with the SDK's errors turned into StorageError."""

    def __init__(self, chunks: AsyncIterator[bytes], store: AzureBlobStore, key: str) -> None:
        self._chunks: AsyncIterator[bytes] | None = chunks
        self._store = store
        self._key = key

    async def __anext__(self) -> bytes:
        if self._chunks is None:
            raise StopAsyncIteration
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            self._chunks = None
            raise
        except (ResourceModifiedError, HttpResponseError) as exc:
            if not isinstance(exc, ResourceModifiedError) and exc.status_code != 412:
                await self.aclose()
                raise self._store._error(f"get {self._key}", exc) from exc
            await self.aclose()
            raise _Replaced(
                f"azure: {self._key} was replaced while it was being read (a read spans several ranged GETs "
                "pinned to the first one's ETag, so it fails rather than mixing two versions); read it again"
            ) from exc
        except (TimeoutError, AzureError, aiohttp.ClientError) as exc:
            await self.aclose()
            raise self._store._error(f"get {self._key}", exc) from exc

    async def aclose(self) -> None:
        chunks, self._chunks = self._chunks, None
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


def _brief(exc: BaseException) -> str:
    # The SDK's messages append the whole XML error body; its first line says it all.
    return (str(getattr(exc, "message", None) or exc).strip().splitlines() or [type(exc).__name__])[0]

