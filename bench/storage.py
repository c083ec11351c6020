"""A ~100 MB terraform state through the http state backend, on each storage backend.

    .venv/bin/python bench/storage.py [--mb 100] [--backends local,s3,azure,gcs]

For each backend: `terrakube up` runs against it (local directory, S3 on moto, Azure on Azurite,
GCS on gcp-storage-emulator, each started on loopback like the tests do); the state is POSTed to
and then GET from `/tfstate/{org}/{ws}`, and the API process's VmRSS is sampled every 20 ms.
The same bytes are then moved directly with the backend's own client (boto3, azure-storage-blob,
gcloud-aio-storage, plain files) for the ratio. Prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if Path(sys.path[0] or ".").resolve() == ROOT / "bench":  # run as a script
    sys.path[0] = str(ROOT)  # bench/graphql.py would shadow graphql-core

from tests import storage_servers as ss  # noqa: E402
from tests.procs import Api, Server  # noqa: E402

MiB = 1 << 20
GOAL_MB = 64
HEAD = (b'{"version":4,"terraform_version":"1.11.0","serial":%d,"lineage":"bench-lineage","outputs":{},'
        b'"resources":[{"mode":"managed","type":"terraform_data","name":"big",'
        b'"provider":"provider[\\"terraform.io/builtin/terraform\\"]","instances":[{"schema_version":0,'
        b'"attributes":{"id":"bench","input":{"value":"')
TAIL = (b'","type":"string"},"output":null,"triggers_replace":null},"sensitive_attributes":[]}]}],'
        b'"check_results":null}\n')


def state(serial: int, size: int) -> tuple[int, Callable[[], Iterator[bytes]]]:
    """A valid state of exactly `size` bytes (one resource with one big attribute), made on the fly."""
    head = HEAD % serial
    filler = size - len(head) - len(TAIL)
    block = (b"0123456789abcdef" * (MiB // 16))

    def chunks() -> Iterator[bytes]:
        yield head
        left = filler
        while left > 0:
            yield block[: min(left, MiB)]
            left -= MiB
        yield TAIL

    return size, chunks


class GenReader:
    """A non-seekable file over a chunk iterator, for clients that upload from a file."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            nxt = next(self._chunks, None)
            if nxt is None:
                break
            self._buf += nxt
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


class Sink:
    """Counts what a download client writes."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


class RssSampler:
    """Peak VmRSS of a process, sampled every 20 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self.base = self.rss()
        self.peak = self.base
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / MiB


@dataclass
class Row:
    backend: str
    direction: str
    mb: float
    seconds: float
    direct_seconds: float
    rss_growth_mb: float

    @property
    def rate(self) -> float:
        return self.mb / self.seconds

    @property
    def direct_rate(self) -> float:
        return self.mb / self.direct_seconds


# -- direct transfers with each backend's own client -----------------------------------------


def direct(kind: str, target: dict[str, Any], size: int, chunks: Callable[[], Iterator[bytes]]) -> tuple[float, float]:
    """(upload seconds, download seconds) of the same bytes with the backend's client."""
    key = "direct/bench.tfstate"
    if kind == "local":
        path = Path(target["dir"]) / "direct.tfstate"
        t0 = time.perf_counter()
        with open(path, "wb") as f:
            for chunk in chunks():
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        t1 = time.perf_counter()
        with open(path, "rb") as f:
            while f.read(MiB):
                pass
        return t1 - t0, time.perf_counter() - t1
    if kind == "s3":
        client = ss.s3_client(target["endpoint"])
        t0 = time.perf_counter()
        client.upload_fileobj(GenReader(chunks()), target["bucket"], key)
        t1 = time.perf_counter()
        sink = Sink()
        client.download_fileobj(target["bucket"], key, sink)
        assert sink.size == size
        return t1 - t0, time.perf_counter() - t1
    if kind == "azure":
        blob = ss.azure_service(target["endpoint"]).get_blob_client(target["bucket"], key)
        t0 = time.perf_counter()
        blob.upload_blob(GenReader(chunks()), length=size, overwrite=True)
        t1 = time.perf_counter()
        sink = Sink()
        blob.download_blob().readinto(sink)
        assert sink.size == size
        return t1 - t0, time.perf_counter() - t1
    return asyncio.run(_direct_gcs(target, size, chunks, key))


async def _direct_gcs(target: dict[str, Any], size: int, chunks: Callable[[], Iterator[bytes]],
                      key: str) -> tuple[float, float]:
    from gcloud.aio.storage import Storage

    async with Storage(api_root=target["endpoint"]) as storage:
        t0 = time.perf_counter()
        # The library uploads from a seekable file only: spooling is part of its cost.
        with tempfile.TemporaryFile() as f:
            for chunk in chunks():
                f.write(chunk)
            f.seek(0)
            await storage.upload(target["bucket"], key, f, timeout=600, force_resumable_upload=True)
        t1 = time.perf_counter()
        stream = await storage.download_stream(target["bucket"], key, timeout=600)
        got = 0
        while block := await stream.read(MiB):
            got += len(block)
        assert got == size
        return t1 - t0, time.perf_counter() - t1


# -- one backend ---------------------------------------------------------------------------


def run_backend(kind: str, size: int, work: Path) -> list[Row]:
    emulator = None
    bucket = ss.unique_bucket()
    env: dict[str, str] = {}
    target: dict[str, Any] = {"bucket": bucket, "dir": str(work)}
    if kind == "s3":
        emulator = ss.start_moto(work)
        ss.s3_create_bucket(emulator.endpoint, bucket)
        env = ss.s3_env(emulator.endpoint, bucket)
    elif kind == "azure":
        emulator = ss.start_azurite(work)
        ss.azure_create_container(emulator.endpoint, bucket)
        env = ss.azure_env(emulator.endpoint, bucket)
    elif kind == "gcs":
        emulator = ss.start_gcs(work)
        ss.gcs_create_bucket(emulator.endpoint, bucket)
        env = ss.gcs_env(emulator.endpoint, bucket)
    if emulator is not None:
        target["endpoint"] = emulator.endpoint
    server = Server(data_dir=work / "data", log_dir=work, name=f"up-{kind}", env=env)
    server.start()
    try:
        server.wait_healthy()
        assert server.proc is not None
        api = Api(server, (work / "data" / "admin-token").read_text().strip())
        api.mutate("createOrganization", "CreateOrganizationInput", "... on Organization { id }", name="bench")
        api.mutate("createWorkspace", "CreateWorkspaceInput", "... on Workspace { id }", organization="bench",
                   name="big", source="file:///nowhere", branch="main", folder="/")
        url = f"{server.base_url}/tfstate/bench/big"
        auth = {"Authorization": f"Bearer {api.token}"}
        # Warm-up: a small state, so one-time costs (imports, first connections) are not counted.
        small_size, small = state(1, 4096)
        httpx.post(url, content=b"".join(small()), headers=auth, timeout=60).raise_for_status()
        httpx.get(url, headers=auth, timeout=60).raise_for_status()

        n, chunks = state(2, size)
        with RssSampler(server.proc.pid) as up_rss:
            t0 = time.perf_counter()
            answer = httpx.post(url, content=chunks(), headers={**auth, "Content-Length": str(n)}, timeout=600)
            up_s = time.perf_counter() - t0
        assert answer.status_code == 200, answer.text
        digest = hashlib.sha256()
        got = 0
        with RssSampler(server.proc.pid) as down_rss:
            t0 = time.perf_counter()
            with httpx.stream("GET", url, headers=auth, timeout=600) as response:
                assert response.status_code == 200, response.read()
                for block in response.iter_bytes(MiB):
                    digest.update(block)
                    got += len(block)
            down_s = time.perf_counter() - t0
        assert got == n
        expected = hashlib.sha256()
        for chunk in chunks():
            expected.update(chunk)
        assert digest.hexdigest() == expected.hexdigest(), "the state came back different"
    finally:
        server.stop()
    try:
        d_up, d_down = direct(kind, target, n, chunks)
    finally:
        if emulator is not None:
            emulator.stop()
    mb = n / MiB
    return [Row(kind, "upload", mb, up_s, d_up, up_rss.growth_mb),
            Row(kind, "download", mb, down_s, d_down, down_rss.growth_mb)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=int, default=100, help="state size in MiB (default 100)")
    p.add_argument("--backends", default="local,s3,azure,gcs")
    args = p.parse_args()
    rows: list[Row] = []
    for kind in args.backends.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"bench-storage-{kind}-"))
        try:
            rows += run_backend(kind.strip(), args.mb * MiB, work)
        except BaseException as exc:
            print(f"{kind}: failed: {exc!r} (logs in {work})", file=sys.stderr)
            raise
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"\n{args.mb} MiB terraform state through /tfstate (terrakube up) vs the backend's own client; "
          f"load {load:.2f}\n")
    print(f"{'backend':8} {'direction':9} {'API MB/s':>9} {'direct MB/s':>12} {'ratio':>6} "
          f"{'API RSS growth':>15} {'goal <64 MB':>12}")
    for r in rows:
        verdict = "PASS" if r.rss_growth_mb < GOAL_MB else "MISS"
        print(f"{r.backend:8} {r.direction:9} {r.rate:9.1f} {r.direct_rate:12.1f} {r.rate / r.direct_rate:6.2f} "
              f"{r.rss_growth_mb:12.1f} MB {verdict:>12}")


if __name__ == "__main__":
    main()
