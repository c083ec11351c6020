"""`BlobStore` on S3 or an S3-compatible server (MinIO, Ceph, SeaweedFS) through aioboto3.

Writes stream: a stream that fits one part is written with one PutObject; a larger one with a
multipart upload whose parts are sent as they fill, so memory is bounded by the part size. Both
are atomic for readers (S3 shows an object only once PutObject/CompleteMultipartUpload
succeeded); a failed or cancelled multipart upload is aborted so no parts linger.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from ._parts import Upload, rechunk, split_parts
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

__all__ = ["DEFAULT_PART_SIZE", "MIN_PART_SIZE", "S3BlobStore"]

# S3 refuses parts under 5 MiB (but the last); 8 MiB is the AWS CLI's default.
MIN_PART_SIZE = 5 * 1024 * 1024
DEFAULT_PART_SIZE = 8 * 1024 * 1024
CHUNK_SIZE = 1 << 20
_DELETE_BATCH = 1000  # DeleteObjects' limit
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "InvalidToken",
    "InvalidClientTokenId", "AuthorizationHeaderMalformed", "403", "Forbidden",
}
_CREDENTIALS = "TERRAKUBE_STORAGE_S3_ACCESS_KEY_ID / TERRAKUBE_STORAGE_S3_SECRET_ACCESS_KEY (or the AWS credential chain)"


class S3BlobStore(RemoteBlobStore):
    def __init__(
        self,
        bucket: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        path_style: bool = False,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise StorageError(f"TERRAKUBE_STORAGE_S3_PART_SIZE_MB must be at least 5 (S3's minimum), got {part_size}")
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region or "us-east-1"
        self.part_size = part_size
        # No I/O here: the client (and the AWS credential chain) is opened on first use.
        self._session = aioboto3.Session(
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            region_name=self.region,
        )
        self._config = AioConfig(
            # No SHA-256 of each part for the signature (S3 skips it over https anyway): over
            # plain http it would read every part once more on the event loop.
            s3={"addressing_style": "path" if path_style else "auto", "payload_signing_enabled": False},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
            max_pool_connections=32,
            # Integrity is checked end to end with our own sha256; asking only for the checksums
            # S3 requires keeps S3-compatible servers that lack the newer CRC headers working.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # Keys per listing page and per DeleteObjects call (S3's maximum; tests lower it).
        self.page_size = _DELETE_BATCH
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, endpoint={self._where})"

    @property
    def _where(self) -> str:
        return self.endpoint_url or f"AWS region {self.region}"

    async def _s3(self) -> Any:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    stack = contextlib.AsyncExitStack()
                    try:
                        client = self._session.client("s3", endpoint_url=self.endpoint_url, config=self._config)
                        self._client = await stack.enter_async_context(client)
                    except Exception as exc:
                        await stack.aclose()
                        raise self._error("opening the client", exc) from exc
                    self._stack = stack
        return self._client

    def _error(self, what: str, exc: BaseException) -> StorageError:
        """One StorageError that names the setting most likely at fault."""
        code = str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""
        if code == "NoSuchBucket":
            return StorageError(
                f"s3: bucket {self.bucket!r} does not exist at {self._where}; "
                "create it or fix TERRAKUBE_STORAGE_S3_BUCKET"
            )
        if code in _BAD_CREDENTIALS:
            return StorageError(
                f"s3: {what} in bucket {self.bucket!r} was refused ({code}): check {_CREDENTIALS} "
                "and the bucket's policy"
            )
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return StorageError(f"s3: no usable credentials: set {_CREDENTIALS}")
        if isinstance(exc, BotoConnectionError | aiohttp.ClientConnectionError | asyncio.TimeoutError):
            setting = "TERRAKUBE_STORAGE_S3_ENDPOINT_URL" if self.endpoint_url else "TERRAKUBE_STORAGE_S3_REGION"
            return StorageError(f"s3: cannot reach {self._where} ({exc}); check {setting}")
        return StorageError(f"s3: {what} failed in bucket {self.bucket!r} at {self._where}: {exc}")

    # -- writing -------------------------------------------------------------------------

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> ObjectInfo:
        validate_key(key)
        s3 = await self._s3()
        upload = Upload()
        upload_id: str | None = None
        etags: list[dict[str, Any]] = []
        try:
            async with contextlib.aclosing(split_parts(chunks, self.part_size, upload, key)) as parts:
                async for part, last in parts:
                    if upload_id is None and last:
                        await self._call("put", s3.put_object, Bucket=self.bucket, Key=key, Body=part.reader(),
                                         ContentLength=part.size)
                        continue  # the last part: the loop ends here
                    if upload_id is None:
                        created = await self._call("put", s3.create_multipart_upload, Bucket=self.bucket, Key=key)
                        upload_id = created["UploadId"]
                    number = len(etags) + 1
                    sent = await self._call("put", s3.upload_part, Bucket=self.bucket, Key=key, UploadId=upload_id,
                                            PartNumber=number, Body=part.reader(), ContentLength=part.size)
                    etags.append({"PartNumber": number, "ETag": sent["ETag"]})
                    # The client's request objects sit in reference cycles that keep our reader
                    # (and so the part) alive until the next GC: free the bytes now.
                    part.release()
            if upload_id is not None:
                await self._call("put", s3.complete_multipart_upload, Bucket=self.bucket, Key=key,
                                 UploadId=upload_id, MultipartUpload={"Parts": etags})
        except BaseException:
            if upload_id is not None:
                # Shielded: it must also run when the put is being cancelled. Parts of an
                # unaborted upload are invisible but billed until a lifecycle rule removes them.
                with contextlib.suppress(Exception):
                    await asyncio.shield(s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id))
            raise
        return ObjectInfo(key=key, size=upload.size, sha256=upload.digest)

    async def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return await fn(**kwargs)
        except (TimeoutError, BotoCoreError, ClientError, aiohttp.ClientError) as exc:
            raise self._error(f"{what} {kwargs.get('Key', '')}".strip(), exc) from exc

    # -- reading -------------------------------------------------------------------------

    async def get(self, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        validate_key(key)
        s3 = await self._s3()
        try:
            response = await s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise BlobNotFound(key) from None
            raise self._error(f"get {key}", exc) from exc
        except (TimeoutError, BotoCoreError, aiohttp.ClientError) as exc:
            raise self._error(f"get {key}", exc) from exc
        # One GET streams one version of the object: a concurrent overwrite does not mix in.
        return _BodyChunks(response["Body"], chunk_size, self, key)

    async def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        s3 = await self._s3()
        try:
            head = await s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise BlobNotFound(key) from None
            raise self._error(f"stat {key}", exc) from exc
        except (TimeoutError, BotoCoreError, aiohttp.ClientError) as exc:
            raise self._error(f"stat {key}", exc) from exc
        return ObjectInfo(key=key, size=int(head["ContentLength"]))

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        validate_prefix(prefix)
        async for key, size in self._keys(prefix):
            yield ObjectInfo(key=key, size=size)

    async def _keys(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        # ListObjectsV2 returns keys in UTF-8 binary order, 1000 a page: sorted and streamed.
        s3 = await self._s3()
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": self.page_size}
            if token:
                kwargs["ContinuationToken"] = token
            page = await self._call(f"list {prefix!r}", s3.list_objects_v2, **kwargs)
            for item in page.get("Contents", []):
                if is_our_key(item["Key"]):
                    yield item["Key"], int(item["Size"])
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    # -- deleting ------------------------------------------------------------------------

    async def delete(self, key: str) -> None:
        validate_key(key)
        s3 = await self._s3()
        await self._call(f"delete {key}", s3.delete_object, Bucket=self.bucket, Key=key)

    async def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix, allow_empty=False)
        s3 = await self._s3()
        removed = 0
        batch: list[str] = []
        async for key, _ in self._keys(prefix):
            batch.append(key)
            if len(batch) >= self.page_size:
                removed += await self._delete_batch(s3, batch)
                batch = []
        if batch:
            removed += await self._delete_batch(s3, batch)
        return removed

    async def _delete_batch(self, s3: Any, keys: list[str]) -> int:
        answer = await self._call(
            "delete_prefix", s3.delete_objects, Bucket=self.bucket,
            Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
        )
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise StorageError(
                f"s3: deleting {len(errors)} of {len(keys)} objects in bucket {self.bucket!r} failed "
                f"(first: {first.get('Key')}: {first.get('Code')} {first.get('Message')})"
            )
        return len(keys)

    # -- lifecycle -----------------------------------------------------------------------

    async def check(self) -> None:
        await probe_round_trip(self, f"s3: bucket {self.bucket!r} at {self._where}")

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()


class _BodyChunks(AsyncIterator[bytes]):
    """The chunks of one GetObject response; closes the connection at the end or on aclose()."""

    def __init__(self, body: Any, chunk_size: int, store: S3BlobStore, key: str) -> None:
        self._body: Any = body
        self._chunks = rechunk(body.iter_chunks(chunk_size), chunk_size)
        self._store = store
        self._key = key

    async def __anext__(self) -> bytes:
        if self._body is None:
            raise StopAsyncIteration
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            await self.aclose()
            raise
        except (TimeoutError, BotoCoreError, aiohttp.ClientError) as exc:
            await self.aclose()
            raise self._store._error(f"get {self._key}", exc) from exc
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


