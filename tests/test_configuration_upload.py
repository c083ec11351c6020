"""`PUT /api/workspaces/{id}/configuration`: uploading a workspace's code as a .tar.gz.

Through the ASGI app (SQLite and PostgreSQL): a good archive is stored (row + blob, matching sha256);
unsafe archives, empty bodies and non-archives are refused with 400 naming the fault and write nothing;
the size limit gives 413; authentication, permission and id errors give 401/403/404/400.
With `terrakube up` as a real process: a workspace without a git source plans and applies the latest
uploaded archive with the real terraform binary."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import tarfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlmodel import select

from app import create_app
from domain.models import ConfigurationVersion
from storage.keys import config_key
from tests.conftest import GraphQLClient, make_settings
from tests.procs import Api, running_up

MAIN_TF = 'resource "terraform_data" "x" {\n  input = "hello"\n}\n'


def tarball(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def regular(name: str, text: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    return info, text.encode()


def directory(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info, None


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info, None


def code(files: dict[str, str]) -> bytes:
    dirs = sorted({str(Path(name).parent) for name in files} - {"."})
    return tarball(*(directory(d) for d in dirs), *(regular(name, text) for name, text in files.items()))


GOOD = code({"main.tf": MAIN_TF, "modules/m/main.tf": "# a module\n"})

# (label, archive, the entry its 400 must name)
UNSAFE = [
    ("absolute path", tarball(regular("main.tf", MAIN_TF), regular("/tmp/evil.tf", "x")), "/tmp/evil.tf"),
    ("dot-dot", tarball(regular("main.tf", MAIN_TF), regular("../evil", "x")), "../evil"),
    ("nested dot-dot", tarball(regular("a/../../evil.tf", "x")), "a/../../evil.tf"),
    ("symlink to /etc/passwd", tarball(regular("main.tf", MAIN_TF), special("passwd", tarfile.SYMTYPE, "/etc/passwd")),
     "passwd"),
    ("relative symlink out", tarball(special("sub/up", tarfile.SYMTYPE, "../../etc")), "sub/up"),
    ("hardlink outside", tarball(regular("main.tf", MAIN_TF), special("hard", tarfile.LNKTYPE, "../outside")), "hard"),
    ("hardlink absolute", tarball(special("shadow", tarfile.LNKTYPE, "/etc/shadow")), "shadow"),
    ("write through a symlink", tarball(special("dir", tarfile.SYMTYPE, "."), regular("dir/main.tf", MAIN_TF)),
     "dir/main.tf"),
    ("fifo", tarball(regular("main.tf", MAIN_TF), special("pipe", tarfile.FIFOTYPE)), "pipe"),
    ("char device", tarball(special("null", tarfile.CHRTYPE)), "null"),
    ("block device", tarball(special("disk", tarfile.BLKTYPE)), "disk"),
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_workspace(gql: GraphQLClient, org: str) -> str:
    await gql("mutation($o: String!) { createOrganization(input: {name: $o}) { __typename } }", o=org)
    for team, role in (("readers", "READ"), ("planners", "PLAN"), ("writers", "WRITE")):
        await gql("mutation($o: String!, $t: String!, $r: Role!) { createTeam(input: {organization: $o, name: $t, "
                  "role: $r}) { __typename } }", o=org, t=team, r=role)
    data = await gql('mutation($o: String!) { createWorkspace(input: {organization: $o, name: "app"}) '
                     "{ ... on Workspace { id } } }", o=org)
    return data["createWorkspace"]["id"]


async def stored(services: Any, ws: str, org: str) -> tuple[list[ConfigurationVersion], list[str]]:
    """The workspace's configuration_version rows and the blobs under its config prefix."""
    async with services.platform.db.session() as session:
        rows = list((await session.exec(
            select(ConfigurationVersion).where(ConfigurationVersion.workspace_id == uuid.UUID(ws))
        )).all())
    blobs = [info.key async for info in services.platform.blobs.list(f"config/{org}/app/")]
    return rows, blobs


def url(ws: str) -> str:
    return f"/api/workspaces/{ws}/configuration"


async def test_a_good_archive_is_stored(client: httpx.AsyncClient, gql: GraphQLClient, services: Any,
                                        unique: str) -> None:
    ws = await new_workspace(gql, unique)
    response = await client.put(url(ws), content=GOOD, headers=bearer(gql.token or ""))
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "size", "sha256", "createdAt"}
    assert body["sha256"] == hashlib.sha256(GOOD).hexdigest() and body["size"] == len(GOOD)

    rows, blobs = await stored(services, ws, unique)
    [row] = rows
    key = config_key(unique, "app", body["id"])
    assert str(row.id) == body["id"] and row.blob_key == key == f"config/{unique}/app/{body['id']}.tar.gz"
    assert (row.size, row.sha256) == (len(GOOD), body["sha256"])
    assert blobs == [key] and await services.platform.blobs.exists(key)
    assert await services.platform.blobs.read_bytes(key) == GOOD

    # Basic auth with the token as password works as well; each upload is a new version.
    basic = base64.b64encode(f"x:{gql.token}".encode()).decode()
    second = await client.put(url(ws), content=GOOD, headers={"Authorization": f"Basic {basic}"})
    assert second.status_code == 201, second.text
    assert second.json()["id"] != body["id"] and second.json()["sha256"] == body["sha256"]
    rows, blobs = await stored(services, ws, unique)
    assert len(rows) == 2 and len(blobs) == 2


@pytest.mark.parametrize(("label", "archive", "entry"), UNSAFE, ids=[u[0] for u in UNSAFE])
async def test_unsafe_archives_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, gql: GraphQLClient, services: Any, unique: str, label: str, archive: bytes, entry: str
) -> None:
    ws = await new_workspace(gql, unique)
    response = await client.put(url(ws), content=archive, headers=bearer(gql.token or ""))
    assert response.status_code == 400, (label, response.text)
    message = response.json()["error"]
    assert repr(entry) in message, (label, message)
    assert await stored(services, ws, unique) == ([], [])


async def test_empty_and_unreadable_bodies_are_refused(client: httpx.AsyncClient, gql: GraphQLClient, services: Any,
                                                       unique: str) -> None:
    ws = await new_workspace(gql, unique)
    for body in (b"", b"this is not an archive", gzip.compress(b"not a tar either" * 10), GOOD[: len(GOOD) // 2]):
        response = await client.put(url(ws), content=body, headers=bearer(gql.token or ""))
        assert response.status_code == 400, (body[:20], response.text)
        assert response.json()["error"], response.text
    empty = await client.put(url(ws), content=b"", headers=bearer(gql.token or ""))
    assert "empty" in empty.json()["error"]
    assert await stored(services, ws, unique) == ([], [])


async def test_authentication_permissions_and_ids(client: httpx.AsyncClient, gql: GraphQLClient, as_groups: Any,
                                                  services: Any, unique: str) -> None:
    ws = await new_workspace(gql, unique)

    anonymous = await client.put(url(ws), content=GOOD)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.json()["error"]
    bad_token = await client.put(url(ws), content=GOOD, headers=bearer("not-a-token"))
    assert bad_token.status_code == 401, bad_token.text

    for team in ("readers", "planners"):  # neither READ nor PLAN includes manageWorkspace
        member = await as_groups(team)
        denied = await client.put(url(ws), content=GOOD, headers=bearer(member.token))
        assert denied.status_code == 403, (team, denied.text)
        assert denied.json()["error"]
    assert await stored(services, ws, unique) == ([], [])

    missing = await client.put(url(str(uuid.uuid4())), content=GOOD, headers=bearer(gql.token or ""))
    assert missing.status_code == 404, missing.text
    malformed = await client.put(url("not-a-uuid"), content=GOOD, headers=bearer(gql.token or ""))
    assert malformed.status_code == 400, malformed.text
    assert malformed.json()["error"]

    writer = await as_groups("writers")  # WRITE includes manageWorkspace
    allowed = await client.put(url(ws), content=GOOD, headers=bearer(writer.token))
    assert allowed.status_code == 201, allowed.text
    rows, _ = await stored(services, ws, unique)
    assert len(rows) == 1


@pytest.fixture
async def small_limit_client(db_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(db_url, tmp_path, max_configuration_bytes=1024))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as limited:
            limited.services = app.state.services  # type: ignore[attr-defined]
            yield limited


async def test_over_the_size_limit_is_413(small_limit_client: httpx.AsyncClient, gql: GraphQLClient, unique: str) -> None:
    services = small_limit_client.services  # type: ignore[attr-defined]
    ws = await new_workspace(gql, unique)
    big = tarball(regular("main.tf", MAIN_TF), regular("noise.txt", os.urandom(3000).hex()))
    assert len(big) > 1024

    declared = await small_limit_client.put(url(ws), content=big, headers=bearer(gql.token or ""))
    assert declared.status_code == 413, declared.text
    assert "1024" in declared.json()["error"]

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: the limit is enforced while reading
        for start in range(0, len(big), 256):
            yield big[start:start + 256]

    chunked = await small_limit_client.put(url(ws), content=streamed(), headers=bearer(gql.token or ""))
    assert chunked.status_code == 413, chunked.text

    # Small on the wire, huge unpacked (over 20 times the limit): refused as unsafe, naming the entry.
    bomb = tarball(regular("main.tf", MAIN_TF), regular("zeros.txt", "0" * 100_000))
    assert len(bomb) <= 1024
    unpacked = await small_limit_client.put(url(ws), content=bomb, headers=bearer(gql.token or ""))
    assert unpacked.status_code == 400, unpacked.text
    assert "'zeros.txt'" in unpacked.json()["error"] and "limit" in unpacked.json()["error"]
    assert await stored(services, ws, unique) == ([], [])

    small = tarball(regular("main.tf", MAIN_TF))
    assert len(small) <= 1024
    accepted = await small_limit_client.put(url(ws), content=small, headers=bearer(gql.token or ""))
    assert accepted.status_code == 201, accepted.text


# --- One real run: `terrakube up`, a workspace without a git source, the real terraform binary -----------------

def versioned_code(greeting: str) -> bytes:
    return code({
        "main.tf": (
            'module "greet" {\n  source   = "./modules/greet"\n  greeting = "' + greeting + '"\n}\n'
            'output "greeting" { value = module.greet.greeting }\n'
        ),
        "modules/greet/main.tf": (
            'variable "greeting" { type = string }\n'
            'resource "terraform_data" "hello" { input = var.greeting }\n'
            'output "greeting" { value = terraform_data.hello.output }\n'
        ),
    })


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_up(tmp_path_factory.mktemp("up-config"), env={"CHECKPOINT_DISABLE": "1"}) as api:
        yield api


def wait_job(api: Api, job_id: str, *statuses: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = api("query($id: ID!) { job(id: $id) { id status reason steps { name status reason log { text } } } }",
                  id=job_id)["job"]
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job stayed {job['status']} (wanted {statuses}): {json.dumps(job)[:4000]}"
                                 f"{api.server.output()}")
        time.sleep(0.3)


def test_a_workspace_without_source_runs_the_latest_upload(api: Api) -> None:
    api.mutate("createOrganization", "CreateOrganizationInput", "... on Organization { id }", name="uploaded")
    ws = api.mutate("createWorkspace", "CreateWorkspaceInput", "... on Workspace { id source }",
                    organization="uploaded", name="app")
    assert ws["source"] is None

    def upload(archive: bytes) -> dict[str, Any]:
        response = httpx.put(f"{api.server.base_url}/api/workspaces/{ws['id']}/configuration", content=archive,
                             headers=bearer(api.token or ""), timeout=30.0)
        assert response.status_code == 201, f"{response.status_code} {response.text}{api.server.output()}"
        return response.json()

    upload(versioned_code("from the first upload"))
    latest = versioned_code("from the latest upload")
    assert upload(latest)["sha256"] == hashlib.sha256(latest).hexdigest()

    job = api.mutate("runJob", "RunJobInput", "... on Job { id }", workspaceId=ws["id"], templateName="Plan and apply")
    done = wait_job(api, job["id"], "COMPLETED", "FAILED", "CANCELLED", "REJECTED")
    logs = "\n".join(step["log"]["text"] for step in done["steps"])
    assert done["status"] == "COMPLETED", f"{done['reason']}\n{logs}"
    assert "Extracting the configuration archive" in logs
    assert "Apply complete!" in logs

    state = api('query { workspace(organization: "uploaded", name: "app") '
                "{ currentStateVersion { jobId outputs { name value } } } }")["workspace"]["currentStateVersion"]
    assert state["jobId"] == job["id"]
    outputs = {o["name"]: o["value"] for o in state["outputs"]}
    assert json.loads(outputs["greeting"]) == "from the latest upload"
