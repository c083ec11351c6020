"""`terrakube up` on each cloud storage backend (S3 on moto, Azure on Azurite, GCS on its
emulator): a real terraform job end to end, its objects really in the bucket, deleting the
workspace removes them, a failed blob write is a 5xx that records nothing, and a wrong storage
setting stops startup with a message naming it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.procs import Api, Server, committed_repo, free_port, running_up
from tests.storage_servers import (  # noqa: F401  (fixtures)
    Emulator,
    azure_create_container,
    azure_env,
    azure_keys,
    azure_service,
    azurite_server,
    gcs_create_bucket,
    gcs_env,
    gcs_keys,
    gcs_server,
    moto_server,
    s3_client,
    s3_create_bucket,
    s3_env,
    s3_keys,
    s3_store,
    unique_bucket,
)

MAIN_TF = """
variable "name" {
  type    = string
  default = "cloud"
}
resource "terraform_data" "app" {
  input = { name = var.name }
}
output "name" { value = terraform_data.app.output.name }
"""




@dataclass
class Cloud:
    """One backend's server, the bucket `terrakube up` uses, and how to look inside it."""

    kind: str
    emulator: Emulator
    bucket: str
    env: dict[str, str]
    keys: Callable[[str], list[str]]
    drop_bucket: Callable[[], None]


def _cloud(kind: str, request: pytest.FixtureRequest, bucket: str) -> Cloud:
    if kind == "s3":
        em: Emulator = request.getfixturevalue("moto_server")
        s3_create_bucket(em.endpoint, bucket)

        def drop_s3() -> None:
            client = s3_client(em.endpoint)
            for key in s3_keys(em.endpoint, bucket):
                client.delete_object(Bucket=bucket, Key=key)
            client.delete_bucket(Bucket=bucket)

        return Cloud(kind, em, bucket, s3_env(em.endpoint, bucket), lambda p: s3_keys(em.endpoint, bucket, p), drop_s3)
    if kind == "azure":
        em = request.getfixturevalue("azurite_server")
        azure_create_container(em.endpoint, bucket)
        return Cloud(kind, em, bucket, azure_env(em.endpoint, bucket), lambda p: azure_keys(em.endpoint, bucket, p),
                     lambda: azure_service(em.endpoint).delete_container(bucket))
    em = request.getfixturevalue("gcs_server")
    gcs_create_bucket(em.endpoint, bucket)

    def drop_gcs() -> None:
        for key in gcs_keys(em.endpoint, bucket):
            httpx.delete(f"{em.endpoint}/storage/v1/b/{bucket}/o/{quote(key, safe='')}", timeout=10)
        httpx.delete(f"{em.endpoint}/storage/v1/b/{bucket}", timeout=10).raise_for_status()

    return Cloud(kind, em, bucket, gcs_env(em.endpoint, bucket), lambda p: gcs_keys(em.endpoint, bucket, p), drop_gcs)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return committed_repo(tmp_path_factory.mktemp("repo"), MAIN_TF)


@pytest.fixture(scope="module", params=["s3", "azure", "gcs"])
def cloud(request: pytest.FixtureRequest) -> Cloud:
    return _cloud(request.param, request, unique_bucket())


@pytest.fixture(scope="module")
def api(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_up(tmp_path_factory.mktemp(f"up-{cloud.kind}"), f"up-{cloud.kind}", cloud.env) as api:
        yield api


def wait_job(api: Api, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = api("query($id: ID!) { job(id: $id) { id status steps { name status log { text } } } }", id=job_id)["job"]
        if job["status"] in ("COMPLETED", "FAILED", "CANCELLED", "REJECTED"):
            return job
        assert time.monotonic() < deadline, f"job stayed {job['status']}: {json.dumps(job)[:3000]}{api.server.output()}"
        time.sleep(0.3)


def workspace(api: Api, org: str, source: str) -> str:
    api.mutate("createOrganization", "CreateOrganizationInput", "... on Organization { id }", name=org)
    return api.mutate("createWorkspace", "CreateWorkspaceInput", "... on Workspace { id }", organization=org,
                      name="app", source=source, branch="main", folder="/")["id"]


def state_serials(api: Api, org: str) -> list[int]:
    data = api(f'query {{ workspace(organization: "{org}", name: "app") {{ '
               "stateVersions(first: 20) { edges { node { serial sha256 size } } } } }")
    return [edge["node"]["serial"] for edge in data["workspace"]["stateVersions"]["edges"]]


def test_a_job_runs_end_to_end_on_cloud_storage(api: Api, cloud: Cloud, repo: Path) -> None:
    org = f"jobs-{cloud.kind}"
    ws = workspace(api, org, f"file://{repo}")
    job_id = api.mutate("runJob", "RunJobInput", "... on Job { id }", workspaceId=ws, templateName="Plan and apply")["id"]
    job = wait_job(api, job_id)
    logs = "\n".join(step["log"]["text"] for step in job["steps"])
    assert job["status"] == "COMPLETED", logs + api.server.output()
    assert [s["status"] for s in job["steps"]] == ["COMPLETED", "COMPLETED"]
    assert "terraform_data.app will be created" in job["steps"][0]["log"]["text"]
    assert "Apply complete!" in job["steps"][1]["log"]["text"]
    assert state_serials(api, org), "no state version was recorded"

    # The objects are really in the bucket, under the one key layout.
    assert cloud.keys(f"state/{org}/app/"), cloud.keys("")
    assert len(cloud.keys(f"logs/{org}/{job_id}/")) == 2
    assert cloud.keys(f"plans/{org}/app/{job_id}/")
    # And terraform's http backend reads the state back from there, checksum verified.
    token = api.token
    answer = httpx.get(f"{api.server.base_url}/tfstate/{org}/app", headers={"Authorization": f"Bearer {token}"},
                       timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"]["name"]["value"] == "cloud"

    # Deleting the workspace removes its objects (after its rows) from the cloud too.
    api.mutate("deleteWorkspace", "IdInput", "... on Deleted { id }", id=ws)
    assert cloud.keys(f"state/{org}/") == []
    assert cloud.keys(f"plans/{org}/") == []
    assert cloud.keys(f"logs/{org}/") == []


def _state(serial: int) -> bytes:
    return json.dumps({"version": 4, "terraform_version": "1.11.0", "serial": serial, "lineage": "cloud-lineage",
                       "outputs": {"n": {"value": serial, "type": "number"}}, "resources": []}).encode()


def test_a_failed_blob_write_is_a_5xx_and_records_no_state_version(api: Api, cloud: Cloud) -> None:
    # Runs last for its backend: it removes the bucket from under the running server.
    org = f"broken-{cloud.kind}"
    workspace(api, org, "file:///nowhere")
    url = f"{api.server.base_url}/tfstate/{org}/app"
    headers = {"Authorization": f"Bearer {api.token}"}
    assert httpx.post(url, content=_state(1), headers=headers, timeout=30).status_code == 200
    assert state_serials(api, org) == [1]

    cloud.drop_bucket()
    answer = httpx.post(url, content=_state(2), headers=headers, timeout=60)
    assert 500 <= answer.status_code < 600, answer.text
    assert "could not be stored" in answer.json()["error"], answer.text
    assert cloud.bucket in answer.json()["error"]
    # No row names a blob that is not there: the current state is still serial 1.
    assert state_serials(api, org) == [1]


@pytest.mark.parametrize("kind", ["s3", "azure", "gcs"])
def test_a_wrong_storage_setting_stops_startup_naming_it(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    env, named = {
        "s3": (lambda em: {**s3_env(em.endpoint, "tk-no-such-bucket")}, "TERRAKUBE_STORAGE_S3_BUCKET"),
        "azure": (lambda em: {**azure_env(em.endpoint, "tk-no-such-container")}, "TERRAKUBE_STORAGE_AZURE_CONTAINER"),
        "gcs": (lambda em: {**gcs_env(unreachable, "tk-any")}, "TERRAKUBE_STORAGE_GCS_ENDPOINT"),
    }[kind]
    em = request.getfixturevalue({"s3": "moto_server", "azure": "azurite_server", "gcs": "gcs_server"}[kind])
    server = Server(data_dir=tmp_path / "data", log_dir=tmp_path, name=f"bad-{kind}", env=env(em))
    server.start()
    assert server.proc is not None
    try:
        code = server.proc.wait(timeout=60)
    finally:
        server.kill()
    err = server.stderr_path.read_text()
    assert code == 2, server.output()
    assert "terrakube: configuration error: " in err and named in err, err
    assert "Traceback" not in err


# -- orphaned state blobs (SQLite and PostgreSQL; local storage and S3) --------------------


@pytest.fixture(params=["local", "s3"])
async def orphan_platform(request: pytest.FixtureRequest, services: Any) -> Any:
    import dataclasses

    if request.param == "local":
        yield services.platform
        return
    store = s3_store(request)
    yield dataclasses.replace(services.platform, store=store)
    await store.close()


async def test_the_sweep_removes_only_old_orphaned_state_blobs(orphan_platform: Any, gql: Any, unique: str) -> None:
    from datetime import timedelta

    from domain.models.types import new_id, utcnow
    from domain.services import orphans
    from domain.services import state as svc
    from storage.keys import state_key
    from tests.test_state_service import ADMIN, chunks, setup, state_doc

    platform = orphan_platform
    await setup(gql, unique)
    version = await svc.write_state(platform, ADMIN, unique, "ws", chunks(state_doc(1)))
    crashed = state_key(unique, "ws", new_id())  # a write that died between blob and row
    await platform.blobs.put_bytes(crashed, state_doc(2))
    hour = timedelta(minutes=60)
    t0 = utcnow()

    # Just seen: could still be a write in progress.
    assert crashed not in await orphans.find_orphans(platform, hour, now=t0)
    found = await orphans.find_orphans(platform, hour, now=t0 + hour)
    assert crashed in found and version.blob_key not in found
    assert await orphans.sweep_orphans(platform, hour, now=t0 + hour) >= 1
    assert not await platform.blobs.exists(crashed)
    assert await platform.blobs.exists(version.blob_key)
    current = await svc.read_current_state(platform, ADMIN, unique, "ws")
    assert current is not None and current[0].id == version.id
    assert b"".join([c async for c in current[1]]) == state_doc(1)

    # Throttled: a sweep right after does nothing, even with a new orphan.
    await platform.blobs.put_bytes(crashed, state_doc(2))
    assert await orphans.sweep_orphans(platform, hour, now=t0 + hour + timedelta(minutes=1)) == 0
    assert await platform.blobs.exists(crashed)
