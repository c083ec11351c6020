"""Storage servers for tests: S3 on moto, Azure on Azurite, GCS on gcp-storage-emulator.

Each runs as a child process on a free loopback port, once per test session: out of process so
that its memory and its GIL do not show up in the memory and event-loop measurements of the
store under test, and so that a test can stop it to see a backend fail. A missing server skips
its tests on a laptop and fails them in CI (`CI=true`), like PostgreSQL and Redis.

The helpers here talk to each server with its own client (not our stores), so a test can check
what really landed in the bucket.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.procs import free_port
from tests.services import in_ci, reachable

ROOT = Path(__file__).resolve().parent.parent
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's documented development key (public, the same for every Azurite).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_TIMEOUT = 30.0

_MOTO = (
    "import sys\n"
    "from moto.server import ThreadedMotoServer\n"
    "server = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)\n"
    "server.start()\n"
    "print(server.get_host_and_port()[1], flush=True)\n"
    "sys.stdin.read()  # until the test session closes our stdin (or dies)\n"
    "server.stop()\n"
)


def missing(message: str) -> None:
    if in_ci():
        pytest.fail(message + " (CI needs it: .ci/run installs it)")
    pytest.skip(message)


def unique_bucket() -> str:
    # Valid as an S3 bucket, an Azure container and a GCS bucket name alike.
    return f"tk-{uuid.uuid4().hex[:16]}"


@dataclass
class Emulator:
    name: str
    endpoint: str
    proc: subprocess.Popen[bytes]
    log: Path
    data_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _wait_port(em: Emulator, host: str, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not reachable(host, port):
        if em.proc.poll() is not None or time.monotonic() > deadline:
            em.stop()
            missing(f"{em.name} did not start on {host}:{port}: {em.log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


# -- S3 (moto) -----------------------------------------------------------------------------


def start_moto(log_dir: Path) -> Emulator:
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        missing(f"moto[server] is not installed ({exc})")
    log = log_dir / "moto.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", _MOTO], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line.isdigit():
        proc.kill()
        missing(f"moto did not start: {line} {log.read_text(errors='replace')[-2000:]}")
    em = Emulator("moto", f"http://127.0.0.1:{line}", proc, log)
    _wait_port(em, "127.0.0.1", int(line))
    return em


def s3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
        aws_secret_access_key="test", config=Config(s3={"addressing_style": "path"}),
    )


def s3_create_bucket(endpoint: str, bucket: str) -> None:
    s3_client(endpoint).create_bucket(Bucket=bucket)


def s3_store(request: pytest.FixtureRequest) -> Any:
    """Our S3BlobStore on a new bucket of the session's moto server (the caller closes it)."""
    from storage.s3 import S3BlobStore

    em: Emulator = request.getfixturevalue("moto_server")
    bucket = unique_bucket()
    s3_create_bucket(em.endpoint, bucket)
    return S3BlobStore(bucket, endpoint_url=em.endpoint, path_style=True, access_key_id="test", secret_access_key="test")


def s3_keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def s3_open_uploads(endpoint: str, bucket: str) -> list[str]:
    answer = s3_client(endpoint).list_multipart_uploads(Bucket=bucket)
    return sorted(f"{u['Key']} {u['UploadId']}" for u in answer.get("Uploads", []))


def s3_env(endpoint: str, bucket: str) -> dict[str, str]:
    return {
        "TERRAKUBE_STORAGE_BACKEND": "s3", "TERRAKUBE_STORAGE_S3_BUCKET": bucket,
        "TERRAKUBE_STORAGE_S3_ENDPOINT_URL": endpoint, "TERRAKUBE_STORAGE_S3_PATH_STYLE": "true",
        "TERRAKUBE_STORAGE_S3_REGION": "us-east-1", "TERRAKUBE_STORAGE_S3_ACCESS_KEY_ID": "test",
        "TERRAKUBE_STORAGE_S3_SECRET_ACCESS_KEY": "test",
    }


# -- Azure (Azurite) -----------------------------------------------------------------------


def azurite_binary() -> str | None:
    candidates = [os.environ.get("TERRAKUBE_TEST_AZURITE", ""), str(ROOT / ".ci/node/node_modules/.bin/azurite-blob"),
                  shutil.which("azurite-blob") or ""]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def start_azurite(log_dir: Path) -> Emulator:
    binary = azurite_binary()
    if binary is None:
        missing("azurite is not installed (npm install --prefix .ci/node azurite@3)")
    port = free_port()
    work = log_dir / "azurite"
    work.mkdir(exist_ok=True)
    log = log_dir / "azurite.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "--silent", "--inMemoryPersistence", "--blobHost", "127.0.0.1", "--blobPort", str(port),
             "--skipApiVersionCheck", "--disableTelemetry", "--loose"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=work,
        )
    em = Emulator("azurite", f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}", proc, log)
    _wait_port(em, "127.0.0.1", port)
    return em


def azure_connection_string(endpoint: str, key: str = AZURITE_KEY) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
            f"BlobEndpoint={endpoint};")


def azure_service(endpoint: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(azure_connection_string(endpoint))


def azure_create_container(endpoint: str, container: str) -> None:
    azure_service(endpoint).create_container(container)


def azure_keys(endpoint: str, container: str, prefix: str = "", uncommitted: bool = False) -> list[str]:
    client = azure_service(endpoint).get_container_client(container)
    include = ["uncommittedblobs"] if uncommitted else None
    return [b.name for b in client.list_blobs(name_starts_with=prefix or None, include=include)]


def azure_env(endpoint: str, container: str) -> dict[str, str]:
    return {
        "TERRAKUBE_STORAGE_BACKEND": "azure", "TERRAKUBE_STORAGE_AZURE_CONTAINER": container,
        "TERRAKUBE_STORAGE_AZURE_CONNECTION_STRING": azure_connection_string(endpoint),
    }


# -- GCS (gcp-storage-emulator) ------------------------------------------------------------


def start_gcs(log_dir: Path) -> Emulator:
    try:
        import gcp_storage_emulator  # noqa: F401
    except ImportError as exc:
        missing(f"gcp-storage-emulator is not installed ({exc})")
    port = free_port()
    # On disk (not --in-memory) so that tests can see upload sessions the emulator still holds.
    data = log_dir / "gcs-data"
    log = log_dir / "gcs.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gcp_storage_emulator", "--data-dir", str(data), "start", "--host", "127.0.0.1",
             "--port", str(port), "--quiet"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )
    em = Emulator("gcp-storage-emulator", f"http://127.0.0.1:{port}", proc, log, data_dir=data)
    _wait_port(em, "127.0.0.1", port)
    return em


def gcs_create_bucket(endpoint: str, bucket: str) -> None:
    answer = httpx.post(f"{endpoint}/storage/v1/b", params={"project": "test"}, json={"name": bucket}, timeout=10)
    answer.raise_for_status()


def gcs_keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    params = {"prefix": prefix} if prefix else {}
    answer = httpx.get(f"{endpoint}/storage/v1/b/{bucket}/o", params=params, timeout=10)
    answer.raise_for_status()
    return [item["name"] for item in answer.json().get("items") or []]


def gcs_open_uploads(em: Emulator, bucket: str) -> list[str]:
    """Resumable upload sessions the emulator still holds for `bucket` (it keeps them in .meta)."""
    assert em.data_dir is not None
    meta = next(em.data_dir.rglob(".meta"), None)
    if meta is None:
        return []
    sessions = json.loads(meta.read_text()).get("resumable") or {}
    return sorted(k for k in sessions if k.startswith(f"{bucket}:"))


def gcs_env(endpoint: str, bucket: str) -> dict[str, str]:
    return {"TERRAKUBE_STORAGE_BACKEND": "gcs", "TERRAKUBE_STORAGE_GCS_BUCKET": bucket,
            "TERRAKUBE_STORAGE_GCS_ENDPOINT": endpoint}


# -- fixtures ------------------------------------------------------------------------------


def _serve(start: Any, tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Emulator]:
    em = start(tmp_path_factory.mktemp(name))
    try:
        yield em
    finally:
        em.stop()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    yield from _serve(start_moto, tmp_path_factory, "moto")


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    yield from _serve(start_azurite, tmp_path_factory, "azurite")


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    yield from _serve(start_gcs, tmp_path_factory, "gcs")
