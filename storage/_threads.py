"""Thread offloading for blocking file I/O, safe under cancellation.

Kept apart from the store so that other file-backed code in this package can share it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import BinaryIO, TypeVar

__all__ = ["FileChunks", "offload"]

T = TypeVar("T")


async def offload(fn: Callable[..., T], *args: object) -> T:
    """Run `fn` in a thread; on cancellation, wait for it to finish before propagating.

    A thread cannot be interrupted. Letting the call finish first guarantees the caller's
    cleanup (closing a file, unlinking a temp file) never races a write still in flight.
    """
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                continue
        if not task.cancelled():
            task.exception()  # mark retrieved: the caller only cares about the cancellation
        raise


class FileChunks(AsyncIterator[bytes]):
    """Chunks of an already opened file; closes it at the end, on error, or on aclose()."""

    def __init__(self, f: BinaryIO, chunk_size: int) -> None:
        self._f: BinaryIO | None = f
        self._chunk_size = chunk_size

    async def __anext__(self) -> bytes:
        f = self._f
        if f is None:
            raise StopAsyncIteration
        try:
            chunk = await offload(f.read, self._chunk_size)
        except BaseException:
            self._close()
            raise
        if not chunk:
            self._close()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        self._close()

    def _close(self) -> None:
        # Closing a read-only file is a cheap syscall, fine to do on the loop.
        if self._f is not None:
            self._f.close()
            self._f = None

    def __del__(self) -> None:
        self._close()
