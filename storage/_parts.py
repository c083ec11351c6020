"""Helpers shared by the cloud backends: cutting a stream into upload parts, and re-cutting a
download into chunks of the size a caller asked for.

Both keep at most one part (plus one look-ahead chunk) in memory, which is what bounds the
memory of an upload by the part size rather than by the object size.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

__all__ = ["Part", "Upload", "rechunk", "split_parts"]


class _PartReader(io.RawIOBase):
    """A seekable, read-only file over a list of chunks, so that an HTTP client can stream a
    part (and rewind it for a checksum or a retry) without first joining it into one buffer."""

    def __init__(self, chunks: list[bytes], size: int) -> None:
        super().__init__()
        self._chunks = chunks
        self._size = size
        self._pos = 0
        # (chunk index, offset of that chunk) of the position, to resume copying cheaply.
        self._index = 0
        self._base = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def __len__(self) -> int:
        return self._size

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = min(max(base + offset, 0), self._size)
        self._index, self._base = 0, 0
        while self._index < len(self._chunks) and self._base + len(self._chunks[self._index]) <= self._pos:
            self._base += len(self._chunks[self._index])
            self._index += 1
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        written = 0
        while written < len(view) and self._index < len(self._chunks):
            chunk = self._chunks[self._index]
            start = self._pos - self._base
            n = min(len(chunk) - start, len(view) - written)
            view[written : written + n] = chunk[start : start + n]
            written += n
            self._pos += n
            if start + n == len(chunk):
                self._base += len(chunk)
                self._index += 1
        return written


@dataclass
class Part:
    """One upload part: its chunks, held until the part is sent."""

    chunks: list[bytes] = field(default_factory=list)
    size: int = 0

    def reader(self) -> io.RawIOBase:
        return _PartReader(self.chunks, self.size)

    def release(self) -> None:
        """Drop the bytes once sent, even if an HTTP client still references a reader of them."""
        self.chunks.clear()
        self.size = 0

    def to_bytes(self) -> bytes:
        # For clients that want a bytes body; a one-chunk part needs no copy.
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)


@dataclass
class Upload:
    """What was read from the caller's stream: its size and sha256 so far."""

    size: int = 0
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)

    @property
    def digest(self) -> str:
        return self.sha256.hexdigest()


async def split_parts(
    chunks: AsyncIterable[bytes], part_size: int, upload: Upload, key: str
) -> AsyncIterator[tuple[Part, bool]]:
    """Yield (part, is_last) with parts of at least `part_size` bytes (but the last).

    One chunk is read ahead once a part is full, so the caller learns whether a part is the
    last one: a stream that fits one part can then be written with one simple request.
    An empty stream yields one empty last part.
    """
    part = Part()
    iterator = aiter(chunks)
    pending: bytes | None = None
    while True:
        if pending is not None:
            chunk, pending = pending, None
        else:
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                yield part, True
                return
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"put({key!r}) chunks must be bytes, got {type(chunk).__name__}")
        if not chunk:
            continue
        data = bytes(chunk)
        upload.sha256.update(data)
        upload.size += len(data)
        part.chunks.append(data)
        part.size += len(data)
        if part.size >= part_size:
            try:
                pending = await anext(iterator)
            except StopAsyncIteration:
                yield part, True
                return
            yield part, False
            part = Part()


async def rechunk(source: AsyncIterator[bytes], chunk_size: int) -> AsyncIterator[bytes]:
    """Re-cut `source` into chunks of at most `chunk_size` bytes (clients read in their own sizes)."""
    async for block in source:
        if len(block) <= chunk_size:
            if block:
                yield bytes(block)
            continue
        view = memoryview(block)
        for start in range(0, len(view), chunk_size):
            yield bytes(view[start : start + chunk_size])
