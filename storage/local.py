"""`BlobStore` on a local directory: the embedded default, and the reference for the contract.

Every file system call runs in a worker thread so a large state upload never stalls the event
loop, and objects move in bounded chunks so memory does not grow with object size.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat as stat_mod
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from ._threads import FileChunks, offload
from .base import (
    BlobNotFound,
    InvalidKey,
    ObjectInfo,
    StorageError,
    one_chunk,
    probe_round_trip,
    validate_key,
    validate_prefix,
)

__all__ = ["CHUNK_SIZE", "LocalBlobStore"]

CHUNK_SIZE = 1 << 20
# Temp files live inside root so that os.replace stays a same-filesystem (atomic) rename.
_TMP_DIR = ".tmp"
# A concurrent delete may prune an empty parent directory between our mkdir and our rename.
_COMMIT_ATTEMPTS = 5
_SETTING = "TERRAKUBE_STORAGE_LOCAL_PATH"

T = TypeVar("T")


def _write_parts(f: BinaryIO, hasher: hashlib._Hash, parts: list[bytes]) -> None:
    # Hashing here too: hashlib releases the GIL for large buffers, so the loop stays free.
    for part in parts:
        f.write(part)
        hasher.update(part)


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable, not only the file's contents.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore:
    """Objects are files under `root`, at the path spelled by their key."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        # No I/O here: root is created on first write or by check(), so a bad path is
        # reported by check() with a helpful message rather than by a constructor crash.
        self.root = Path(root).expanduser().absolute()
        self._tmp = self.root / _TMP_DIR

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    # -- paths ---------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        validate_key(key)
        if key.split("/", 1)[0] == _TMP_DIR:
            raise InvalidKey(f"key {key!r} is reserved for temp files of the local store")
        return self.root.joinpath(*key.split("/"))

    def _confine(self, path: Path) -> None:
        # validate_key already refuses '..'; this also catches a symlink inside root that
        # points elsewhere. Runs in a thread because realpath touches the file system.
        root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if real != root and not real.startswith(root + os.sep):
            raise StorageError(f"{path} resolves to {real}, outside the storage root {root}")

    async def _io(self, what: str, fn: Callable[..., T], *args: object) -> T:
        # One exception type for backend failures across all backends: callers never have
        # to know that this one speaks OSError.
        try:
            return await offload(fn, *args)
        except OSError as e:
            raise StorageError(f"local storage: {what} failed under {self.root}: {e}") from e

    # -- writing -------------------------------------------------------------------------

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> ObjectInfo:
        path = self._path(key)
        tmp = self._tmp / f"{uuid.uuid4().hex}.part"
        hasher = hashlib.sha256()
        size = 0
        f: BinaryIO | None = None
        try:
            f = await self._io(f"put {key}", self._open_temp, tmp)
            # Coalesce small chunks so a stream of tiny pieces does not cost a thread hop
            # each; at most about one CHUNK_SIZE is held at a time.
            pending: list[bytes] = []
            pending_size = 0
            async for chunk in chunks:
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise TypeError(f"put({key!r}) chunks must be bytes, got {type(chunk).__name__}")
                if not chunk:
                    continue
                pending.append(bytes(chunk))
                pending_size += len(chunk)
                if pending_size >= CHUNK_SIZE:
                    await self._io(f"put {key}", _write_parts, f, hasher, pending)
                    size += pending_size
                    pending, pending_size = [], 0
            if pending:
                await self._io(f"put {key}", _write_parts, f, hasher, pending)
                size += pending_size
            await self._io(f"put {key}", self._commit, f, tmp, path)
        except BaseException:
            # Synchronous on purpose: it must also run when the task is being cancelled,
            # where another await could be cancelled again and leak the temp file. Cleanup
            # errors are swallowed so they never hide the original failure.
            with contextlib.suppress(OSError):
                if f is not None:
                    f.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return ObjectInfo(key=key, size=size, sha256=hasher.hexdigest())

    def _open_temp(self, tmp: Path) -> BinaryIO:
        self._tmp.mkdir(parents=True, exist_ok=True)
        return open(tmp, "xb")

    def _commit(self, f: BinaryIO, tmp: Path, path: Path) -> None:
        f.flush()
        os.fsync(f.fileno())
        f.close()
        for attempt in range(_COMMIT_ATTEMPTS):
            path.parent.mkdir(parents=True, exist_ok=True)
            self._confine(path.parent)
            try:
                os.replace(tmp, path)
                break
            except FileNotFoundError:
                if attempt == _COMMIT_ATTEMPTS - 1:
                    raise
        _fsync_dir(path.parent)

    async def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        return await self.put(key, one_chunk(data))

    # -- reading -------------------------------------------------------------------------

    async def get(self, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        path = self._path(key)
        # Opening before returning both reports a missing key up front and pins the current
        # version: a concurrent put replaces the name, not the file we are reading.
        f = await self._io(f"get {key}", self._open_read, path, key)
        return FileChunks(f, chunk_size)

    def _open_read(self, path: Path, key: str) -> BinaryIO:
        self._confine(path)
        try:
            return open(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise BlobNotFound(key) from None

    async def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        f = await self._io(f"read {key}", self._open_read, path, key)
        try:
            return await self._io(f"read {key}", f.read)
        finally:
            f.close()

    async def exists(self, key: str) -> bool:
        path = self._path(key)
        return await self._io(f"exists {key}", self._is_file, path)

    def _is_file(self, path: Path) -> bool:
        self._confine(path)
        return path.is_file()

    async def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        st = await self._io(f"stat {key}", self._stat, path, key)
        return ObjectInfo(key=key, size=st.st_size)

    def _stat(self, path: Path, key: str) -> os.stat_result:
        self._confine(path)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise BlobNotFound(key) from None
        if not stat_mod.S_ISREG(st.st_mode):
            raise BlobNotFound(key)  # a directory is a folder of keys, not an object
        return st

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        validate_prefix(prefix)
        # Collected in one thread hop, then sorted: directory order is not key order.
        files, _ = await self._io(f"list {prefix!r}", self._scan, prefix)
        for key, size in files:
            yield ObjectInfo(key=key, size=size)

    def _scan(self, prefix: str) -> tuple[list[tuple[str, int]], list[str]]:
        """(key, size) of files whose key starts with `prefix`, and folders wholly inside it."""
        # Start at the deepest folder the prefix names in full; a trailing partial segment
        # ('state/org/w') is matched by string below, as S3 would.
        base = prefix[: prefix.rfind("/") + 1]
        if base.split("/", 1)[0] == _TMP_DIR:
            return [], []  # in-flight uploads are not objects (and must not be deleted)
        start = self.root.joinpath(*base.strip("/").split("/")) if base else self.root
        self._confine(start)
        files: list[tuple[str, int]] = []
        dirs: list[str] = []

        def walk(directory: Path, rel: str) -> None:
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError):
                return
            for entry in entries:
                name = rel + entry.name
                if not rel and entry.name == _TMP_DIR:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    sub = name + "/"
                    if sub.startswith(prefix) or prefix.startswith(sub):
                        if sub.startswith(prefix):
                            dirs.append(name)
                        walk(Path(entry.path), sub)
                elif entry.is_file(follow_symlinks=False) and name.startswith(prefix):
                    try:
                        validate_key(name)
                    except InvalidKey:
                        continue  # a stray file no key can address; not an object of ours
                    files.append((name, entry.stat(follow_symlinks=False).st_size))

        walk(start, base)
        files.sort()
        return files, dirs

    # -- deleting ------------------------------------------------------------------------

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await self._io(f"delete {key}", self._delete, path)

    def _delete(self, path: Path) -> None:
        self._confine(path)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        self._prune(path.parent)

    def _prune(self, directory: Path) -> None:
        # Empty folders are left-overs of deleted keys; removing them keeps the tree (and
        # later scans) small. rmdir refuses non-empty folders, so this never loses data.
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    async def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix, allow_empty=False)
        return await self._io(f"delete_prefix {prefix!r}", self._delete_prefix, prefix)

    def _delete_prefix(self, prefix: str) -> int:
        files, dirs = self._scan(prefix)
        removed = 0
        for key, _ in files:
            try:
                os.unlink(self.root.joinpath(*key.split("/")))
                removed += 1
            except FileNotFoundError:
                pass  # deleted concurrently: not ours to count
        for rel in sorted(dirs, key=lambda d: d.count("/"), reverse=True):
            try:
                self.root.joinpath(*rel.split("/")).rmdir()
            except OSError:
                pass  # a concurrent put landed in it; keep it
        base = prefix[: prefix.rfind("/") + 1].strip("/")
        if base:
            self._prune(self.root.joinpath(*base.split("/")))
        return removed

    # -- lifecycle -----------------------------------------------------------------------

    async def check(self) -> None:
        hint = f"set {_SETTING} to a writable directory"
        try:
            await offload(self.root.mkdir, 0o777, True, True)
        except OSError as e:
            raise StorageError(
                f"local storage root {self.root} cannot be created ({e.strerror or e}); {hint}"
            ) from e
        try:
            await probe_round_trip(self, f"local storage root {self.root}")
        except StorageError as e:
            raise StorageError(f"local storage root {self.root} is not usable ({e}); {hint}") from e

    async def close(self) -> None:
        # Nothing is held open between calls; present for the protocol.
        return None
