"""Contract tests for every BlobStore backend, plus the key layout.

Backends are fixture params: adding S3 (moto), Azure (Azurite) or GCS means adding a param to
`store`, `broken_store` and a case to `leftover_temp_objects`; every test then runs on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from storage import (
    BlobNotFound,
    BlobStore,
    InvalidKey,
    LocalBlobStore,
    ObjectInfo,
    StorageError,
    keys,
    open_local_store,
    validate_key,
)

MiB = 1 << 20


def _make_store(kind: str, tmp_path: Path) -> BlobStore:
    if kind == "local":
        return open_local_store(tmp_path / "blobs")
    raise AssertionError(f"unknown backend {kind}")


@pytest.fixture(params=["local"], ids=lambda kind: kind)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    s = _make_store(request.param, tmp_path)
    yield s
    await s.close()


@pytest.fixture(params=["local"], ids=lambda kind: kind)
async def broken_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[BlobStore, str]]:
    """A store whose location can never work, and the setting value the error must name."""
    if request.param == "local":
        blocker = tmp_path / "not-a-dir"
        blocker.write_bytes(b"a regular file where a directory should be")
        root = blocker / "blobs"
        s: BlobStore = LocalBlobStore(root)
        yield s, str(root)
        await s.close()
        return
    raise AssertionError(request.param)


def leftover_temp_objects(s: BlobStore) -> list[str]:
    """Partial uploads a failed put may have left behind (temp files, open multiparts)."""
    if isinstance(s, LocalBlobStore):
        tmp = s.root / ".tmp"
        return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []
    raise AssertionError(f"no temp-object probe for {type(s).__name__}")


async def agen(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def pattern_chunks(count: int, seed: bytes = b"") -> Iterator[bytes]:
    """Distinct 1 MiB chunks, made one at a time so the whole object never exists in memory."""
    for i in range(count):
        yield hashlib.sha256(seed + i.to_bytes(4, "big")).digest() * (MiB // 32)


async def read_all(s: BlobStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in await s.get(key)])


async def list_keys(s: BlobStore, prefix: str) -> list[str]:
    return [info.key async for info in s.list(prefix)]


# -- round trips -------------------------------------------------------------------------


async def test_empty_object_round_trip(store: BlobStore) -> None:
    info = await store.put("state/o/w/empty.tfstate", agen())
    assert info == ObjectInfo("state/o/w/empty.tfstate", 0, hashlib.sha256(b"").hexdigest())
    assert [c async for c in await store.get("state/o/w/empty.tfstate")] == []
    assert await store.read_bytes("state/o/w/empty.tfstate") == b""
    assert await store.exists("state/o/w/empty.tfstate")
    assert (await store.stat("state/o/w/empty.tfstate")).size == 0
    assert await list_keys(store, "state/") == ["state/o/w/empty.tfstate"]


async def test_small_object_round_trip_with_many_small_chunks(store: BlobStore) -> None:
    parts = [f"part {i};".encode() for i in range(500)]
    data = b"".join(parts)
    info = await store.put("logs/o/j/s.log", agen(*parts))
    assert info.key == "logs/o/j/s.log"
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert await store.read_bytes("logs/o/j/s.log") == data
    assert await read_all(store, "logs/o/j/s.log") == data


async def test_put_bytes_round_trip(store: BlobStore) -> None:
    data = bytes(range(256)) * 10
    info = await store.put_bytes("config/o/w/c.tar.gz", data)
    assert (info.size, info.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert await store.read_bytes("config/o/w/c.tar.gz") == data


async def test_50mb_object_streams_with_bounded_memory_and_a_free_loop(store: BlobStore) -> None:
    written = hashlib.sha256()

    async def source() -> AsyncIterator[bytes]:
        for chunk in pattern_chunks(50):
            written.update(chunk)
            yield chunk

    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        # Counts how often the loop gets to run other work while the store does I/O.
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.001)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        info = await store.put("state/o/w/big.tfstate", source())
        ticks_during_put, ticks = ticks, 0
        read = hashlib.sha256()
        size = 0
        largest = 0
        async for chunk in await store.get("state/o/w/big.tfstate"):
            read.update(chunk)
            size += len(chunk)
            largest = max(largest, len(chunk))
        _, peak = tracemalloc.get_traced_memory()
        ticks_during_get = ticks
    finally:
        tracemalloc.stop()
        stop.set()
        await ticking

    assert info.size == size == 50 * MiB
    assert info.sha256 == written.hexdigest() == read.hexdigest()
    assert largest <= MiB
    assert (await store.stat("state/o/w/big.tfstate")).size == 50 * MiB
    # Neither direction holds the object: a few chunks in flight at most.
    assert peak < 8 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"
    assert ticks_during_put >= 3, "the event loop was blocked while writing"
    assert ticks_during_get >= 3, "the event loop was blocked while reading"


async def test_put_overwrites(store: BlobStore) -> None:
    await store.put_bytes("state/o/w/1.tfstate", b"first version, longer")
    info = await store.put_bytes("state/o/w/1.tfstate", b"second")
    assert info.size == 6
    assert await store.read_bytes("state/o/w/1.tfstate") == b"second"
    assert (await store.stat("state/o/w/1.tfstate")).size == 6
    assert await list_keys(store, "state/") == ["state/o/w/1.tfstate"]


async def test_reader_sees_old_or_whole_new_object_never_a_mix(store: BlobStore) -> None:
    old, new = b"a" * (3 * MiB), b"b" * (3 * MiB)
    await store.put_bytes("state/o/w/s.tfstate", old)

    # A reader that started before the overwrite keeps reading the old object.
    stream = await store.get("state/o/w/s.tfstate", chunk_size=MiB)
    first = await anext(stream)

    async def slow_new() -> AsyncIterator[bytes]:
        for _ in range(3):
            await asyncio.sleep(0.01)
            yield b"b" * MiB

    writer = asyncio.create_task(store.put("state/o/w/s.tfstate", slow_new()))
    seen: set[bytes] = set()
    while not writer.done():
        seen.add(await store.read_bytes("state/o/w/s.tfstate"))
        await asyncio.sleep(0.002)
    await writer
    rest = b"".join([c async for c in stream])

    assert first + rest == old
    assert seen <= {old, new}
    assert await store.read_bytes("state/o/w/s.tfstate") == new


# -- listing and deleting ----------------------------------------------------------------

WORKSPACE_KEYS = [
    "state/o1/ws1/b.tfstate",
    "state/o1/ws1/a.tfstate",
    "state/o1/ws1/sub/c.tfstate",
    "state/o1/ws10/x.tfstate",
    "state/o1/ws1x",
    "state/o2/ws1/a.tfstate",
    "plans/o1/ws1/j/s.tfplan",
]


async def _put_all(s: BlobStore, keys_: list[str]) -> None:
    for key in keys_:
        await s.put_bytes(key, key.encode())


async def test_list_returns_exactly_the_keys_under_the_prefix_sorted(store: BlobStore) -> None:
    await _put_all(store, WORKSPACE_KEYS)
    infos = [i async for i in store.list("state/o1/ws1/")]
    assert [i.key for i in infos] == [
        "state/o1/ws1/a.tfstate",
        "state/o1/ws1/b.tfstate",
        "state/o1/ws1/sub/c.tfstate",
    ]
    assert [i.size for i in infos] == [len(i.key) for i in infos]
    # Without the trailing '/', a prefix is a plain string prefix, as on S3.
    assert await list_keys(store, "state/o1/ws1") == [
        "state/o1/ws1/a.tfstate",
        "state/o1/ws1/b.tfstate",
        "state/o1/ws1/sub/c.tfstate",
        "state/o1/ws10/x.tfstate",
        "state/o1/ws1x",
    ]
    assert await list_keys(store, "") == sorted(WORKSPACE_KEYS)
    assert await list_keys(store, "nothing/here/") == []


async def test_delete(store: BlobStore) -> None:
    await _put_all(store, WORKSPACE_KEYS)
    await store.delete("state/o1/ws1/a.tfstate")
    assert not await store.exists("state/o1/ws1/a.tfstate")
    with pytest.raises(BlobNotFound):
        await store.get("state/o1/ws1/a.tfstate")
    await store.delete("state/o1/ws1/a.tfstate")  # already gone: not an error
    await store.delete("never/existed")
    assert await list_keys(store, "") == sorted(set(WORKSPACE_KEYS) - {"state/o1/ws1/a.tfstate"})


async def test_delete_prefix_removes_only_the_prefix(store: BlobStore) -> None:
    await _put_all(store, WORKSPACE_KEYS)
    assert await store.delete_prefix("state/o1/ws1/") == 3
    assert await list_keys(store, "") == sorted(set(WORKSPACE_KEYS) - {
        "state/o1/ws1/a.tfstate", "state/o1/ws1/b.tfstate", "state/o1/ws1/sub/c.tfstate",
    })
    assert await store.delete_prefix("state/o1/ws1/") == 0
    # The store stays usable where the folders were pruned.
    await store.put_bytes("state/o1/ws1/a.tfstate", b"again")
    assert await store.read_bytes("state/o1/ws1/a.tfstate") == b"again"
    with pytest.raises(InvalidKey):
        await store.delete_prefix("")  # would wipe the whole store


async def test_workspace_prefixes_select_a_workspace_objects(store: BlobStore) -> None:
    await _put_all(store, WORKSPACE_KEYS)
    removed = 0
    for prefix in keys.workspace_prefixes("o1", "ws1"):
        removed += await store.delete_prefix(prefix)
    assert removed == 4
    assert await list_keys(store, "") == ["state/o1/ws10/x.tfstate", "state/o1/ws1x", "state/o2/ws1/a.tfstate"]


async def test_concurrent_writers_of_different_keys_all_land(store: BlobStore) -> None:
    async def slow(i: int) -> AsyncIterator[bytes]:
        for part in range(3):
            await asyncio.sleep(0)
            yield f"object {i} part {part}\n".encode()

    infos = await asyncio.gather(*(store.put(f"logs/o/j{i:02d}/s.log", slow(i)) for i in range(20)))
    assert [i.key for i in infos] == [f"logs/o/j{i:02d}/s.log" for i in range(20)]
    assert await list_keys(store, "logs/o/") == [f"logs/o/j{i:02d}/s.log" for i in range(20)]
    for i in range(20):
        expected = b"".join(f"object {i} part {p}\n".encode() for p in range(3))
        assert await store.read_bytes(f"logs/o/j{i:02d}/s.log") == expected


# -- errors ------------------------------------------------------------------------------


async def test_missing_key_raises_blob_not_found_naming_the_key(store: BlobStore) -> None:
    key = "state/o/w/missing.tfstate"
    with pytest.raises(BlobNotFound, match="state/o/w/missing.tfstate") as caught:
        await store.get(key)  # before any iteration: callers have sent nothing yet
    assert caught.value.key == key
    with pytest.raises(BlobNotFound, match=key):
        await store.read_bytes(key)
    with pytest.raises(BlobNotFound, match=key):
        await store.stat(key)
    assert not await store.exists(key)
    await store.put_bytes("state/o/w/x/y", b"1")
    with pytest.raises(BlobNotFound):
        await store.stat("state/o/w/x")  # a folder of keys is not an object


async def test_stat(store: BlobStore) -> None:
    data = b"x" * 12345
    await store.put_bytes("plans/o/w/j/s.tfplan", data)
    info = await store.stat("plans/o/w/j/s.tfplan")
    assert info.key == "plans/o/w/j/s.tfplan"
    assert info.size == 12345
    assert info.sha256 in (None, hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("bad", ["../x", "/abs", "a//b", "a/./b", "", "a/../b", "a/", "a b", "ü", "x" * 1025])
async def test_invalid_keys_are_refused_by_every_operation(store: BlobStore, bad: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(bad)
    for call in (
        lambda: store.put_bytes(bad, b"x"),
        lambda: store.put(bad, agen(b"x")),
        lambda: store.get(bad),
        lambda: store.read_bytes(bad),
        lambda: store.exists(bad),
        lambda: store.stat(bad),
        lambda: store.delete(bad),
    ):
        with pytest.raises(InvalidKey):
            await call()
    assert await list_keys(store, "") == []


@pytest.mark.parametrize("bad", ["../", "/abs/", "a//", "./"])
async def test_invalid_prefixes_are_refused(store: BlobStore, bad: str) -> None:
    with pytest.raises(InvalidKey):
        await list_keys(store, bad)
    with pytest.raises(InvalidKey):
        await store.delete_prefix(bad)


async def test_valid_key_alphabet() -> None:
    key = "registry/o/providers/aws/1.2.3+build@x/terraform-provider_aws=1.zip"
    assert validate_key(key) == key
    assert validate_key("x" * 1024) == "x" * 1024


async def test_failed_put_keeps_previous_object_and_leaves_no_temp_file(store: BlobStore) -> None:
    await store.put_bytes("state/o/w/s.tfstate", b"previous")

    async def broken() -> AsyncIterator[bytes]:
        for chunk in pattern_chunks(3):
            yield chunk
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="client went away"):
        await store.put("state/o/w/s.tfstate", broken())
    with pytest.raises(RuntimeError):
        await store.put("state/o/w/new.tfstate", broken())
    assert await store.read_bytes("state/o/w/s.tfstate") == b"previous"
    assert not await store.exists("state/o/w/new.tfstate")
    assert await list_keys(store, "") == ["state/o/w/s.tfstate"]
    assert leftover_temp_objects(store) == []


async def test_cancelled_put_keeps_previous_object_and_leaves_no_temp_file(store: BlobStore) -> None:
    await store.put_bytes("state/o/w/s.tfstate", b"previous")
    started = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        for chunk in pattern_chunks(2):
            yield chunk
        started.set()
        await asyncio.Event().wait()
        yield b"never"

    task = asyncio.create_task(store.put("state/o/w/s.tfstate", stalls()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.read_bytes("state/o/w/s.tfstate") == b"previous"
    assert leftover_temp_objects(store) == []


async def test_check_succeeds_and_leaves_nothing_behind(store: BlobStore) -> None:
    await store.check()
    assert await list_keys(store, "") == []
    assert leftover_temp_objects(store) == []


async def test_check_names_the_unusable_location(broken_store: tuple[BlobStore, str]) -> None:
    s, location = broken_store
    with pytest.raises(StorageError) as caught:
        await s.check()
    assert location in str(caught.value)
    with pytest.raises(StorageError):
        await s.put_bytes("a/b", b"x")  # writes fail the same way, as StorageError


async def test_local_store_is_a_blob_store_confined_to_its_root(tmp_path: Path) -> None:
    s = open_local_store(tmp_path / "root")
    assert isinstance(s, BlobStore)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(b"secret")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(StorageError, match="outside the storage root"):
        await s.read_bytes("link/secret")
    with pytest.raises(StorageError, match="outside the storage root"):
        await s.put_bytes("link/new", b"x")
    assert not (tmp_path / "outside" / "new").exists()
    with pytest.raises(InvalidKey):
        await s.put_bytes(".tmp/x", b"x")  # reserved for the store's own temp files
    (tmp_path / "root" / ".tmp").mkdir(exist_ok=True)
    (tmp_path / "root" / ".tmp" / "upload.part").write_bytes(b"in flight")
    assert await list_keys(s, ".tmp/") == []
    assert await list_keys(s, "") == []
    assert await s.delete_prefix(".tmp/") == 0
    assert (tmp_path / "root" / ".tmp" / "upload.part").exists()


# -- key layout --------------------------------------------------------------------------


async def test_key_layout_matches_design() -> None:
    sv, job = uuid.UUID(int=1), uuid.UUID(int=2)
    assert keys.state_key("acme", "net", sv) == f"state/acme/net/{sv}.tfstate"
    assert keys.plan_key("acme", "net", job, "3") == f"plans/acme/net/{job}/3.tfplan"
    assert keys.log_key("acme", job, "4") == f"logs/acme/{job}/4.log"
    assert keys.config_key("acme", "net", "cv1") == "config/acme/net/cv1.tar.gz"
    assert keys.module_archive_key("acme", "vpc", "aws", "1.0.0") == "registry/acme/modules/vpc/aws/1.0.0.tar.gz"
    assert (
        keys.provider_file_key("acme", "random", "3.6.0", "terraform-provider-random_3.6.0_linux_amd64.zip")
        == "registry/acme/providers/random/3.6.0/terraform-provider-random_3.6.0_linux_amd64.zip"
    )
    assert keys.workspace_prefixes("acme", "net") == ["state/acme/net/", "plans/acme/net/", "config/acme/net/"]
    with pytest.raises(InvalidKey):
        keys.state_key("acme", "net/../other", "1")
    with pytest.raises(InvalidKey):
        keys.config_key("acme", "bad name", "1")
