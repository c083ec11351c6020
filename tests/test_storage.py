"""Contract tests for every BlobStore backend, plus the key layout.

Backends are fixture params: the same test functions run on the local directory, S3 (moto),
Azure (Azurite) and GCS (gcp-storage-emulator); see tests/storage_servers.py for the servers.
A cloud backend whose server is missing skips locally and fails in CI.
"""

from __future__ import annotations

import asyncio
import hashlib
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from settings import ConfigurationError, Settings
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
from storage.azure import AzureBlobStore
from storage.factory import open_store
from storage.gcs import GcsBlobStore
from storage.s3 import MIN_PART_SIZE, S3BlobStore
from tests.procs import free_port
from tests.storage_servers import (  # noqa: F401  (fixtures)
    AZURITE_KEY,
    Emulator,
    azure_connection_string,
    azure_create_container,
    azure_keys,
    azurite_server,
    gcs_create_bucket,
    gcs_open_uploads,
    gcs_server,
    moto_server,
    s3_create_bucket,
    s3_open_uploads,
    unique_bucket,
)

MiB = 1 << 20
BACKENDS = ["local", "s3", "azure", "gcs"]
# Small parts and blocks, so that the tests below cross part boundaries with a few MiB.
S3_PART = MIN_PART_SIZE
AZURE_BLOCK = 2 * MiB

# Partial uploads a failed put may have left behind, per store (see leftover_temp_objects).
_PROBES: dict[int, Callable[[], list[str]]] = {}


def _make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if kind == "local":
        return open_local_store(tmp_path / "blobs")
    bucket = unique_bucket()
    if kind == "s3":
        em: Emulator = request.getfixturevalue("moto_server")
        s3_create_bucket(em.endpoint, bucket)
        s: BlobStore = S3BlobStore(bucket, endpoint_url=em.endpoint, path_style=True, access_key_id="test",
                                   secret_access_key="test", part_size=S3_PART)
        _PROBES[id(s)] = lambda: s3_open_uploads(em.endpoint, bucket)
        return s
    if kind == "azure":
        em = request.getfixturevalue("azurite_server")
        azure_create_container(em.endpoint, bucket)
        s = AzureBlobStore(bucket, connection_string=azure_connection_string(em.endpoint), block_size=AZURE_BLOCK)
        # Azure has no call that discards staged blocks (it drops them after a week), so there is
        # nothing a store could have cleaned up; test_azure_failed_put_commits_nothing checks they stay invisible.
        _PROBES[id(s)] = lambda: []
        return s
    if kind == "gcs":
        em = request.getfixturevalue("gcs_server")
        gcs_create_bucket(em.endpoint, bucket)
        s = GcsBlobStore(bucket, endpoint=em.endpoint)
        _PROBES[id(s)] = lambda: gcs_open_uploads(em, bucket)
        return s
    raise AssertionError(f"unknown backend {kind}")


@pytest.fixture(params=BACKENDS, ids=lambda kind: kind)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    s = _make_store(request.param, request, tmp_path)
    yield s
    _PROBES.pop(id(s), None)
    await s.close()


def _unreachable() -> str:
    return f"http://127.0.0.1:{free_port()}"  # a port nobody listens on


@pytest.fixture(
    params=["local", "s3-no-bucket", "s3-unreachable", "azure-no-container", "azure-bad-key", "azure-unreachable",
            "gcs-no-bucket", "gcs-unreachable", "gcs-no-credentials-file"],
    ids=lambda kind: kind,
)
async def broken_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[BlobStore, tuple[str, ...]]]:
    """A store that can never work, and what its error must name (the value and the setting)."""
    kind: str = request.param
    s: BlobStore
    if kind == "local":
        blocker = tmp_path / "not-a-dir"
        blocker.write_bytes(b"a regular file where a directory should be")
        root = blocker / "blobs"
        s, expected = LocalBlobStore(root), (str(root), "TERRAKUBE_STORAGE_LOCAL_PATH")
    elif kind == "s3-no-bucket":
        em = request.getfixturevalue("moto_server")
        s = S3BlobStore("tk-never-created", endpoint_url=em.endpoint, path_style=True, access_key_id="test",
                        secret_access_key="test")
        expected = ("tk-never-created", "TERRAKUBE_STORAGE_S3_BUCKET")
    elif kind == "s3-unreachable":
        url = _unreachable()
        s = S3BlobStore("tk-any", endpoint_url=url, path_style=True, access_key_id="test", secret_access_key="test")
        expected = (url, "TERRAKUBE_STORAGE_S3_ENDPOINT_URL")
    elif kind == "azure-no-container":
        em = request.getfixturevalue("azurite_server")
        s = AzureBlobStore("tk-never-created", connection_string=azure_connection_string(em.endpoint))
        expected = ("tk-never-created", "TERRAKUBE_STORAGE_AZURE_CONTAINER")
    elif kind == "azure-bad-key":
        em = request.getfixturevalue("azurite_server")
        azure_create_container(em.endpoint, bucket := unique_bucket())
        wrong = AZURITE_KEY[:10] + ("A" if AZURITE_KEY[10] != "A" else "B") + AZURITE_KEY[11:]
        s = AzureBlobStore(bucket, account_name="devstoreaccount1", account_key=wrong, endpoint=em.endpoint)
        expected = ("TERRAKUBE_STORAGE_AZURE_ACCOUNT_KEY",)
    elif kind == "azure-unreachable":
        url = _unreachable() + "/devstoreaccount1"
        s = AzureBlobStore("tk-any", account_name="devstoreaccount1", account_key=AZURITE_KEY, endpoint=url)
        expected = (url, "TERRAKUBE_STORAGE_AZURE_ENDPOINT")
    elif kind == "gcs-no-bucket":
        em = request.getfixturevalue("gcs_server")
        s = GcsBlobStore("tk-never-created", endpoint=em.endpoint)
        expected = ("tk-never-created", "TERRAKUBE_STORAGE_GCS_BUCKET")
    elif kind == "gcs-unreachable":
        url = _unreachable()
        s = GcsBlobStore("tk-any", endpoint=url)
        expected = (url, "TERRAKUBE_STORAGE_GCS_ENDPOINT")
    else:
        missing = tmp_path / "nowhere" / "key.json"
        s = GcsBlobStore("tk-any", credentials_file=str(missing))
        expected = (str(missing), "TERRAKUBE_STORAGE_GCS_CREDENTIALS_FILE")
    yield s, expected
    await s.close()


def leftover_temp_objects(s: BlobStore) -> list[str]:
    """Partial uploads a failed put may have left behind (temp files, open multiparts)."""
    if isinstance(s, LocalBlobStore):
        tmp = s.root / ".tmp"
        return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []
    if id(s) in _PROBES:
        return _PROBES[id(s)]()
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

    # A cloud client loads its service model and opens connections on first use of each call:
    # a one-time cost, not the per-object memory measured here. Warm up with a multipart write.
    await store.put("state/o/w/warm-up", agen(b"w" * (3 * MiB), b"w" * (3 * MiB), b"w"))
    assert await store.read_bytes("state/o/w/warm-up") == b"w" * (6 * MiB + 1)
    await store.delete("state/o/w/warm-up")
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
    # Neither direction holds the object: a few chunks (or two upload parts) in flight at most.
    budget = max(8 * MiB, 2 * getattr(store, "part_size", 0))
    assert peak < budget, f"peak traced memory {peak / MiB:.1f} MiB"
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
    try:
        rest = b"".join([c async for c in stream])
    except StorageError as exc:
        # Azure reads an object larger than one block in ranged GETs pinned to the first one's
        # ETag: an overwrite in between fails the read instead of mixing versions.
        assert isinstance(store, AzureBlobStore), exc
        assert "was replaced while it was being read" in str(exc)
    else:
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
        # More than one S3 part and several Azure blocks: the upload has started when it fails.
        for chunk in pattern_chunks(12):
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
        for chunk in pattern_chunks(7):
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


async def test_check_names_the_unusable_location(broken_store: tuple[BlobStore, tuple[str, ...]]) -> None:
    s, expected = broken_store
    with pytest.raises(StorageError) as caught:
        await s.check()
    for text in expected:
        assert text in str(caught.value)
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


# -- every backend, beyond the basics ----------------------------------------------------


async def test_every_backend_is_a_blob_store(store: BlobStore) -> None:
    assert isinstance(store, BlobStore)


@pytest.mark.parametrize("size", [S3_PART - 1, S3_PART, S3_PART + 1, 2 * S3_PART + 3])
async def test_objects_around_part_boundaries_round_trip(store: BlobStore, size: int) -> None:
    # Odd chunk sizes, so that parts and blocks end in the middle of a chunk.
    data = hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1)
    data = data[:size]
    step = 700 * 1024 + 13
    info = await store.put("plans/o/w/j/boundary.tfplan", agen(*(data[i : i + step] for i in range(0, size, step))))
    assert (info.size, info.sha256) == (size, hashlib.sha256(data).hexdigest())
    assert await read_all(store, "plans/o/w/j/boundary.tfplan") == data
    # One chunk larger than a part is fine too (the part is then that chunk).
    await store.put("plans/o/w/j/one.tfplan", agen(data))
    assert await store.read_bytes("plans/o/w/j/one.tfplan") == data


async def test_listing_and_delete_prefix_cross_result_pages(store: BlobStore) -> None:
    # Clouds list (and S3 deletes) in pages of 1000 or 5000 keys; a small page size crosses
    # page boundaries with a few keys.
    if hasattr(store, "page_size"):
        store.page_size = 7
    names = [f"logs/o/j/{i:05d}.log" for i in range(30)]
    gate = asyncio.Semaphore(32)

    async def one(key: str) -> None:
        async with gate:
            await store.put_bytes(key, b"x")

    await asyncio.gather(*(one(k) for k in names))
    await store.put_bytes("logs/other/keep.log", b"y")
    assert await list_keys(store, "logs/o/") == names
    assert await store.delete_prefix("logs/o/") == 30
    assert await list_keys(store, "logs/") == ["logs/other/keep.log"]


@pytest.mark.parametrize("kind", ["azure"])
async def test_azure_failed_put_commits_nothing(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> None:
    """Azure cannot discard staged blocks (it drops them after a week): a failed put must leave
    them uncommitted, so no reader or listing ever sees them, and the previous blob intact."""
    s = _make_store(kind, request, tmp_path)
    assert isinstance(s, AzureBlobStore)
    em: Emulator = request.getfixturevalue("azurite_server")
    try:
        await s.put_bytes("state/o/w/s.tfstate", b"previous")

        async def broken() -> AsyncIterator[bytes]:
            for chunk in pattern_chunks(6):
                yield chunk
            raise RuntimeError("client went away")

        for key in ("state/o/w/s.tfstate", "state/o/w/new.tfstate"):
            with pytest.raises(RuntimeError):
                await s.put(key, broken())
        # The blocks were staged (the upload had started) but never committed.
        assert "state/o/w/new.tfstate" in azure_keys(em.endpoint, s.container, uncommitted=True)
        assert azure_keys(em.endpoint, s.container) == ["state/o/w/s.tfstate"]
        assert await s.read_bytes("state/o/w/s.tfstate") == b"previous"
        assert not await s.exists("state/o/w/new.tfstate")
    finally:
        await s.close()


# -- configuration -----------------------------------------------------------------------


def _settings(tmp_path: Path, **storage: object) -> Settings:
    return Settings(data_dir=tmp_path, secret_key="k" * 40, **storage)  # type: ignore[arg-type]


async def test_the_factory_builds_the_configured_backend(tmp_path: Path) -> None:
    assert isinstance(open_store(_settings(tmp_path)), LocalBlobStore)
    s3 = open_store(_settings(tmp_path, storage_backend="s3", storage_s3_bucket="b1", storage_s3_part_size_mb=16,
                              storage_s3_endpoint_url="http://127.0.0.1:9", storage_s3_path_style=True))
    assert isinstance(s3, S3BlobStore) and s3.bucket == "b1" and s3.part_size == 16 * MiB
    az = open_store(_settings(tmp_path, storage_backend="azure", storage_azure_container="c1",
                              storage_azure_account_name="acct", storage_azure_account_key="a2V5"))
    assert isinstance(az, AzureBlobStore) and az.container == "c1"
    gcs = open_store(_settings(tmp_path, storage_backend="gcs", storage_gcs_bucket="g1",
                               storage_gcs_endpoint="http://127.0.0.1:9"))
    assert isinstance(gcs, GcsBlobStore) and gcs.bucket == "g1"


@pytest.mark.parametrize(
    ("storage", "named"),
    [
        ({"storage_backend": "s3"}, "TERRAKUBE_STORAGE_S3_BUCKET"),
        ({"storage_backend": "s3", "storage_s3_bucket": "b", "storage_s3_access_key_id": "k"},
         "TERRAKUBE_STORAGE_S3_SECRET_ACCESS_KEY"),
        ({"storage_backend": "azure", "storage_azure_container": "c"}, "TERRAKUBE_STORAGE_AZURE_CONNECTION_STRING"),
        ({"storage_backend": "azure", "storage_azure_connection_string": "x"}, "TERRAKUBE_STORAGE_AZURE_CONTAINER"),
        ({"storage_backend": "gcs"}, "TERRAKUBE_STORAGE_GCS_BUCKET"),
    ],
)
async def test_a_missing_setting_is_a_configuration_error_naming_it(
    tmp_path: Path, storage: dict[str, object], named: str
) -> None:
    import wiring

    with pytest.raises(ConfigurationError, match=named):
        wiring.open_store(_settings(tmp_path, **storage))


async def test_startup_check_failure_is_a_configuration_error(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    import wiring

    em: Emulator = request.getfixturevalue("moto_server")
    settings = _settings(tmp_path, storage_backend="s3", storage_s3_bucket="tk-missing-at-startup",
                         storage_s3_endpoint_url=em.endpoint, storage_s3_path_style=True,
                         storage_s3_access_key_id="test", storage_s3_secret_access_key="test")
    with pytest.raises(ConfigurationError, match="tk-missing-at-startup.*TERRAKUBE_STORAGE_S3_BUCKET"):
        await wiring.open_platform(settings)
