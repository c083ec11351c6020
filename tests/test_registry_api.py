"""The private registry through its APIs (in-process ASGI, SQLite and PostgreSQL): GraphQL
management of modules, providers and signing keys; the registry protocol terraform speaks;
uploads; bad inputs refused with nothing half-written; and who may do what."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from app import Services
from domain import signing
from domain.models import Job, Module, Workspace
from domain.models.types import utcnow
from domain.services import modules as module_service
from tests.conftest import GraphQLClient
from tests.registry_fixtures import git, module_repo, provider_zip, zip_bytes

pytestmark = pytest.mark.skipif(not signing.gpg_available(), reason="gpg is not installed")

MODULE_FIELDS = (
    "... on Module { id name provider source folder tagPrefix downloadCount latestVersion "
    "versions { version tag commit readme createdAt } }"
)
CREATE_MODULE = (
    "mutation($input: CreateModuleInput!) { createModule(input: $input) { __typename "
    "... on Error { message } ... on ValidationError { field } " + MODULE_FIELDS + " } }"
)
MODULE_QUERY = (
    "query($o: String!, $n: String!, $p: String!) { module(organization: $o, name: $n, provider: $p) { "
    "id downloadCount latestVersion updatedAt versions { version tag readme } } }"
)


@pytest.fixture(autouse=True)
def no_registry_cache(services: Services) -> Any:
    """These tests look at every change at once; test_registry_cache_bounds_staleness has its own."""
    before = services.settings.registry_cache_seconds, services.settings.module_refresh_seconds
    services.settings.registry_cache_seconds = 0
    yield
    services.settings.registry_cache_seconds, services.settings.module_refresh_seconds = before


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def new_org(gql: GraphQLClient, name: str) -> str:
    data = await gql("mutation($n: String!) { createOrganization(input: {name: $n}) { ... on Organization { id } } }", n=name)
    return data["createOrganization"]["id"]


async def blobs(services: Services, prefix: str) -> list[str]:
    return [info.key async for info in services.store.list(prefix)]


async def mutate(gql: GraphQLClient, name: str, input_type: str, selection: str, /, **fields: Any) -> dict[str, Any]:
    data = await gql(
        f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ __typename ... on Error {{ message }} "
        f"... on ValidationError {{ field }} {selection} }} }}",
        input=fields,
    )
    return data[name]


# -- discovery and unknown names ------------------------------------------------------------


async def test_service_discovery_is_public_and_absolute(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/terraform.json")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "modules.v1": "http://testserver/terraform/modules/v1/",
        "providers.v1": "http://testserver/terraform/providers/v1/",
    }


async def test_unknown_names_are_404_with_terraforms_error_body(
    client: httpx.AsyncClient, admin_token: str, unique: str
) -> None:
    for path in (
        f"/terraform/modules/v1/{unique}/vpc/aws/versions",
        f"/terraform/modules/v1/{unique}/vpc/aws/1.0.0/download",
        f"/terraform/providers/v1/{unique}/cloud/versions",
        f"/terraform/providers/v1/{unique}/cloud/1.0.0/download/linux/amd64",
        "/terraform/no-such-protocol/v1/x",
    ):
        response = await client.get(path, headers=bearer(admin_token))
        assert response.status_code == 404, (path, response.text)
        body = response.json()
        assert isinstance(body["errors"], list) and body["errors"][0], body


# -- modules --------------------------------------------------------------------------------


async def test_module_versions_download_archive_and_count(
    client: httpx.AsyncClient, gql: GraphQLClient, services: Services, unique: str, tmp_path: Path
) -> None:
    await new_org(gql, unique)
    repo = module_repo(tmp_path / "repo", ["1.0.0", "1.1.0", "2.0.0", "2.1.0-rc.1"])
    created = (await gql(CREATE_MODULE, input={"organization": unique, "name": "vpc", "provider": "aws",
                                               "source": f"file://{repo}", "description": "network"}))["createModule"]
    assert created["__typename"] == "Module", created
    assert [v["version"] for v in created["versions"]] == ["2.1.0-rc.1", "2.0.0", "1.1.0", "1.0.0"]
    assert [v["tag"] for v in created["versions"]] == ["v2.1.0-rc.1", "v2.0.0", "v1.1.0", "v1.0.0"]
    assert created["latestVersion"] == "2.0.0"  # pre-releases are not "latest"
    v110 = next(v for v in created["versions"] if v["version"] == "1.1.0")
    # The annotated tag v1.1.0 is peeled to its commit.
    assert v110["commit"] == git(repo, "rev-parse", "v1.1.0^{commit}")
    assert v110["readme"] == "# vpc module 1.1.0\n"

    headers = bearer(gql.token)
    base = f"/terraform/modules/v1/{unique}/vpc/aws"
    versions = await client.get(f"{base}/versions", headers=headers)
    assert versions.status_code == 200, versions.text
    assert versions.json() == {"modules": [{"versions": [{"version": v} for v in
                                                         ("2.1.0-rc.1", "2.0.0", "1.1.0", "1.0.0")]}]}

    download = await client.get(f"{base}/1.1.0/download", headers=headers)
    assert download.status_code == 204, download.text
    url = download.headers["X-Terraform-Get"]
    assert url.startswith(f"http://testserver{base}/1.1.0/archive.tar.gz?") and "signature=" in url

    # The signed URL needs no token (terraform does not send one there) ...
    archive = await client.get(url)
    assert archive.status_code == 200, archive.text
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        main_tf = tar.extractfile("main.tf")
        assert main_tf is not None and b'value = "1.1.0"' in main_tf.read()
        assert sorted(tar.getnames()) == ["README.md", "main.tf"]
    # ... but a tampered or expired one is refused, and so is the bare path without a token.
    for bad in (url.replace("1.1.0", "1.0.0"), url.replace("signature=", "signature=x"),
                url.split("?")[0] + "?expires=1&signature=abc", url.split("?")[0]):
        refused = await client.get(bad)
        assert refused.status_code == 401, (bad, refused.text)
        assert refused.json()["errors"]
    with_token = await client.get(url.split("?")[0], headers=headers)
    assert with_token.status_code == 200 and with_token.content == archive.content

    missing = await client.get(f"{base}/9.9.9/download", headers=headers)
    assert missing.status_code == 404 and "9.9.9" in missing.json()["errors"][0]

    for _ in range(2):
        assert (await client.get(f"{base}/2.0.0/download", headers=headers)).status_code == 204
    deadline = time.monotonic() + 10
    while True:  # counts are written in batches (TERRAKUBE_REGISTRY_DOWNLOAD_FLUSH_SECONDS)
        found = (await gql(MODULE_QUERY, o=unique, n="vpc", p="aws"))["module"]
        if found["downloadCount"] == 3 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert found["downloadCount"] == 3

    listed = await gql("query($o: String!) { organization(name: $o) { modules(first: 10) { edges { node { name provider "
                       "latestVersion } } pageInfo { hasNextPage } } } }", o=unique)
    assert listed["organization"]["modules"]["edges"] == [
        {"node": {"name": "vpc", "provider": "aws", "latestVersion": "2.0.0"}}
    ]

    # Deleting the module removes its archives.
    assert len(await blobs(services, f"registry/{unique}/modules/vpc/aws/")) == 4
    deleted = await mutate(gql, "deleteModule", "IdInput", "... on Deleted { id }", id=created["id"])
    assert deleted["id"] == created["id"]
    assert await blobs(services, f"registry/{unique}/modules/") == []
    assert (await client.get(f"{base}/versions", headers=headers)).status_code == 404


async def test_refresh_finds_new_tags_by_hand_and_periodically(
    client: httpx.AsyncClient, gql: GraphQLClient, services: Services, unique: str, tmp_path: Path
) -> None:
    await new_org(gql, unique)
    repo = module_repo(tmp_path / "repo", ["1.0.0"], extra_tags=())
    created = (await gql(CREATE_MODULE, input={"organization": unique, "name": "app", "provider": "generic",
                                               "source": f"file://{repo}"}))["createModule"]
    assert [v["version"] for v in created["versions"]] == ["1.0.0"]

    (repo / "main.tf").write_text((repo / "main.tf").read_text().replace("1.0.0", "1.2.0"))
    git(repo, "commit", "-qam", "1.2.0")
    git(repo, "tag", "v1.2.0")
    git(repo, "tag", "nightly")
    refreshed = await mutate(gql, "refreshModule", "IdInput", MODULE_FIELDS, id=created["id"])
    assert [v["version"] for v in refreshed["versions"]] == ["1.2.0", "1.0.0"], refreshed
    again = await mutate(gql, "refreshModule", "IdInput", MODULE_FIELDS, id=created["id"])
    assert [v["version"] for v in again["versions"]] == ["1.2.0", "1.0.0"]
    assert len(await blobs(services, f"registry/{unique}/modules/app/generic/")) == 2

    # The worker's periodic refresh: the sweep claims modules not looked at for a while.
    git(repo, "tag", "v1.3.0")
    platform = services.platform
    services.settings.module_refresh_seconds = 0  # the app's own background sweep keeps out of this part
    async with platform.db.transaction() as session:
        row = await session.get(Module, uuid.UUID(created["id"]))
        assert row is not None
        row.updated_at = utcnow() - timedelta(hours=2)
        session.add(row)
    todo = await module_service.due_refreshes(platform, timedelta(hours=1))
    mine = [e for e in todo if e.args == (created["id"],)]
    assert len(mine) == 1 and mine[0].function == "refresh_module", todo
    assert not [e for e in await module_service.due_refreshes(platform, timedelta(hours=1))
                if e.args == (created["id"],)], "a claimed module is not claimed twice"
    assert await module_service.refresh_module_by_worker(platform, uuid.UUID(created["id"])) == 1
    found = (await gql(MODULE_QUERY, o=unique, n="app", p="generic"))["module"]
    assert [v["version"] for v in found["versions"]] == ["1.3.0", "1.2.0", "1.0.0"]

    # The same through the engine's sweep and queue (what `terrakube up` and `terrakube worker` run).
    from workers.engine import sweep

    git(repo, "tag", "v1.4.0")
    async with platform.db.transaction() as session:
        row = await session.get(Module, uuid.UUID(created["id"]))
        assert row is not None
        row.updated_at = utcnow() - timedelta(hours=2)
        session.add(row)
    services.settings.module_refresh_seconds = 3600
    await sweep({"runtime": services.runtime})
    deadline = time.monotonic() + 20
    while True:
        found = (await gql(MODULE_QUERY, o=unique, n="app", p="generic"))["module"]
        if found["versions"][0]["version"] == "1.4.0" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert [v["version"] for v in found["versions"]] == ["1.4.0", "1.3.0", "1.2.0", "1.0.0"]

    # A repository that went away: the refresh is refused and the versions stay.
    shutil.rmtree(repo)
    failed = await mutate(gql, "refreshModule", "IdInput", MODULE_FIELDS, id=created["id"])
    assert failed["__typename"] == "ValidationError" and failed["field"] == "source", failed
    assert "cannot be read" in failed["message"]
    found = (await gql(MODULE_QUERY, o=unique, n="app", p="generic"))["module"]
    assert len(found["versions"]) == 4
    assert await module_service.refresh_module_by_worker(platform, uuid.UUID(created["id"])) == 0


async def test_folder_and_tag_prefix_of_a_monorepo_and_update_rebuilds(
    client: httpx.AsyncClient, gql: GraphQLClient, services: Services, unique: str, tmp_path: Path
) -> None:
    await new_org(gql, unique)
    repo = module_repo(tmp_path / "mono", ["1.0.0", "1.4.0"], folder="modules/vpc", prefix="vpc-v", extra_tags=())
    git(repo, "tag", "v9.0.0")  # another module's tag: not ours with the prefix
    created = (await gql(CREATE_MODULE, input={
        "organization": unique, "name": "vpc", "provider": "aws", "source": f"file://{repo}",
        "folder": "modules/vpc", "tagPrefix": "vpc-",
    }))["createModule"]
    assert created["__typename"] == "Module", created
    assert [(v["version"], v["tag"]) for v in created["versions"]] == [("1.4.0", "vpc-v1.4.0"), ("1.0.0", "vpc-v1.0.0")]
    headers = bearer(gql.token)
    url = (await client.get(f"/terraform/modules/v1/{unique}/vpc/aws/1.4.0/download", headers=headers)).headers[
        "X-Terraform-Get"
    ]
    with tarfile.open(fileobj=io.BytesIO((await client.get(url)).content), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["README.md", "main.tf"], "the archive holds the folder's content"

    old_keys = await blobs(services, f"registry/{unique}/modules/vpc/aws/")
    updated = await mutate(gql, "updateModule", "UpdateModuleInput", MODULE_FIELDS, id=created["id"], tagPrefix="",
                           folder="/", description="whole repo")
    assert updated["__typename"] == "Module", updated
    assert [v["version"] for v in updated["versions"]] == ["9.0.0"]
    new_keys = await blobs(services, f"registry/{unique}/modules/vpc/aws/")
    assert len(new_keys) == 1 and not set(new_keys) & set(old_keys), "old archives go with their versions"

    wrong = await mutate(gql, "updateModule", "UpdateModuleInput", MODULE_FIELDS, id=created["id"], folder="nope")
    assert wrong["__typename"] == "ValidationError" and wrong["field"] == "folder", wrong
    assert await blobs(services, f"registry/{unique}/modules/vpc/aws/") == new_keys


async def test_bad_module_inputs_are_refused_and_nothing_is_written(
    gql: GraphQLClient, services: Services, unique: str, tmp_path: Path
) -> None:
    await new_org(gql, unique)
    repo = module_repo(tmp_path / "repo", ["1.0.0"])
    cases = [
        ({"source": f"file://{tmp_path}/missing"}, "source", "cannot be read"),
        ({"source": "not a url"}, "source", "git URL"),
        ({"folder": "does/not/exist"}, "folder", "does not exist"),
        ({"folder": "../outside"}, "folder", "inside the repository"),
        ({"name": "-bad-"}, "name", "module name"),
        ({"provider": "AWS"}, "provider", "lower-case"),
        ({"tagPrefix": "a b"}, "tagPrefix", "tagPrefix"),
    ]
    for change, field, message in cases:
        data = {"organization": unique, "name": "vpc", "provider": "aws", "source": f"file://{repo}", **change}
        result = (await gql(CREATE_MODULE, input=data))["createModule"]
        assert result["__typename"] == "ValidationError", (change, result)
        assert result["field"] == field and message in result["message"], (change, result)
    assert (await gql(MODULE_QUERY, o=unique, n="vpc", p="aws"))["module"] is None
    assert await blobs(services, f"registry/{unique}/") == []

    ok = (await gql(CREATE_MODULE, input={"organization": unique, "name": "vpc", "provider": "aws",
                                          "source": f"file://{repo}"}))["createModule"]
    assert ok["__typename"] == "Module"
    dup = (await gql(CREATE_MODULE, input={"organization": unique, "name": "vpc", "provider": "aws",
                                           "source": f"file://{repo}"}))["createModule"]
    assert dup["__typename"] == "ConflictError", dup
    assert len(await blobs(services, f"registry/{unique}/")) == 1


# -- providers ------------------------------------------------------------------------------


async def upload(client: httpx.AsyncClient, token: str | None, org: str, name: str, version: str,
                 os_name: str, arch: str, content: bytes, protocols: str | None = "6.0") -> httpx.Response:
    data = {"protocols": protocols} if protocols is not None else {}
    return await client.post(
        f"/api/providers/{org}/{name}/versions/{version}/{os_name}/{arch}",
        headers=bearer(token), files={"file": (f"p_{version}_{os_name}_{arch}.zip", content, "application/zip")},
        data=data,
    )


async def fetch_release(client: httpx.AsyncClient, token: str, org: str, name: str, version: str,
                        os_name: str = "linux", arch: str = "amd64") -> dict[str, Any]:
    response = await client.get(f"/terraform/providers/v1/{org}/{name}/{version}/download/{os_name}/{arch}",
                                headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    zip_file = await client.get(body["download_url"])
    sums = await client.get(body["shasums_url"])
    sig = await client.get(body["shasums_signature_url"])
    assert zip_file.status_code == sums.status_code == sig.status_code == 200
    body["_zip"], body["_sums"], body["_sig"] = zip_file.content, sums.content, sig.content
    return body


async def test_publish_a_provider_and_serve_it_signed(
    client: httpx.AsyncClient, gql: GraphQLClient, services: Services, unique: str, tmp_path: Path
) -> None:
    await new_org(gql, unique)
    created = await mutate(gql, "createProvider", "CreateProviderInput", "... on Provider { id name }",
                           organization=unique, name="cloud", description="our cloud")
    assert created["name"] == "cloud"
    first = provider_zip(tmp_path, "cloud", "1.0.0").read_bytes()

    no_key = await upload(client, gql.token, unique, "cloud", "1.0.0", "linux", "amd64", first)
    assert no_key.status_code == 409 and "generateSigningKey" in no_key.json()["errors"][0], no_key.text

    key = await mutate(gql, "generateSigningKey", "GenerateSigningKeyInput", "... on SigningKey { keyId asciiArmor }",
                       organization=unique)
    assert len(key["keyId"]) == 16 and "PUBLIC KEY" in key["asciiArmor"], key
    shown = await gql("query($o: String!) { organization(name: $o) { signingKey { keyId asciiArmor } } }", o=unique)
    assert shown["organization"]["signingKey"] == {"keyId": key["keyId"], "asciiArmor": key["asciiArmor"]}
    assert "PRIVATE" not in str(shown)

    published = await upload(client, gql.token, unique, "cloud", "1.0.0", "linux", "amd64", first)
    assert published.status_code == 201, published.text
    assert published.json()["shasum"] == hashlib.sha256(first).hexdigest()
    assert published.json()["filename"] == "terraform-provider-cloud_1.0.0_linux_amd64.zip"
    second = provider_zip(tmp_path / "darwin", "cloud", "1.0.0", "darwin", "arm64").read_bytes()
    assert (await upload(client, gql.token, unique, "cloud", "1.0.0", "darwin", "arm64", second)).status_code == 201

    versions = await client.get(f"/terraform/providers/v1/{unique}/cloud/versions", headers=bearer(gql.token))
    assert versions.json() == {"versions": [{"version": "1.0.0", "protocols": ["6.0"], "platforms": [
        {"os": "darwin", "arch": "arm64"}, {"os": "linux", "arch": "amd64"}]}]}

    release = await fetch_release(client, gql.token, unique, "cloud", "1.0.0")
    assert release["protocols"] == ["6.0"] and (release["os"], release["arch"]) == ("linux", "amd64")
    assert release["_zip"] == first and release["shasum"] == hashlib.sha256(first).hexdigest()
    assert release["_sums"].decode() == (
        f"{hashlib.sha256(second).hexdigest()}  terraform-provider-cloud_1.0.0_darwin_arm64.zip\n"
        f"{hashlib.sha256(first).hexdigest()}  terraform-provider-cloud_1.0.0_linux_amd64.zip\n"
    )
    (public,) = release["signing_keys"]["gpg_public_keys"]
    assert public["key_id"] == key["keyId"] and public["ascii_armor"] == key["asciiArmor"]
    assert not release["_sig"].startswith(b"-----"), "terraform wants a binary signature"
    assert await signing.verify_detached(public["ascii_armor"], release["_sums"], release["_sig"])
    # Release files also open with a token instead of a signature, and not without either.
    bare = release["download_url"].split("?")[0]
    assert (await client.get(bare, headers=bearer(gql.token))).content == first
    assert (await client.get(bare)).status_code == 401

    # Replacing the key re-signs what was published, so old releases keep verifying.
    other = await asyncio.to_thread(signing.generate_key_sync, "Imported", "imported@example.com")
    imported = await mutate(gql, "importSigningKey", "ImportSigningKeyInput", "... on SigningKey { keyId asciiArmor }",
                            organization=unique, asciiArmor=other.private_armor)
    assert imported["keyId"] == other.key_id, imported
    again = await fetch_release(client, gql.token, unique, "cloud", "1.0.0", "darwin", "arm64")
    assert again["signing_keys"]["gpg_public_keys"][0]["key_id"] == other.key_id
    assert await signing.verify_detached(other.public_armor, again["_sums"], again["_sig"])
    assert not await signing.verify_detached(key["asciiArmor"], again["_sums"], again["_sig"])

    listed = await gql("query($o: String!) { organization(name: $o) { providers { edges { node { name description "
                       "versions { version protocols platforms { os arch filename shasum } } } } } } }", o=unique)
    (node,) = [e["node"] for e in listed["organization"]["providers"]["edges"]]
    assert node["description"] == "our cloud"
    assert [(p["os"], p["arch"]) for p in node["versions"][0]["platforms"]] == [("darwin", "arm64"), ("linux", "amd64")]

    # Storage holds two zips, one SHA256SUMS and its one current signature: nothing stale.
    assert len(await blobs(services, f"registry/{unique}/providers/cloud/")) == 4
    deleted = await mutate(gql, "deleteProvider", "IdInput", "... on Deleted { id }", id=created["id"])
    assert deleted["id"] == created["id"]
    assert await blobs(services, f"registry/{unique}/providers/") == []
    gone = await client.get(f"/terraform/providers/v1/{unique}/cloud/versions", headers=bearer(gql.token))
    assert gone.status_code == 404


async def test_bad_uploads_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, gql: GraphQLClient, services: Services, unique: str, tmp_path: Path
) -> None:
    await new_org(gql, unique)
    await mutate(gql, "createProvider", "CreateProviderInput", "... on Provider { id }", organization=unique, name="cloud")
    await mutate(gql, "generateSigningKey", "GenerateSigningKeyInput", "... on SigningKey { keyId }", organization=unique)
    good = provider_zip(tmp_path, "cloud", "1.0.0").read_bytes()
    assert (await upload(client, gql.token, unique, "cloud", "1.0.0", "linux", "amd64", good)).status_code == 201
    before = await blobs(services, f"registry/{unique}/")
    sums_before = (await fetch_release(client, gql.token, unique, "cloud", "1.0.0"))["_sums"]

    wrong_binary = zip_bytes({"terraform-provider-other_v1.1.0": "#!/bin/sh\n"})
    cases = [
        (("1.1.0", "linux", "amd64", wrong_binary, "6.0"), 400, "terraform-provider-cloud_v1.1.0"),
        (("1.1.0", "linux", "amd64", b"not a zip", "6.0"), 400, "not a zip"),
        (("1.1.0", "plan9", "amd64", good, "6.0"), 400, "unknown os"),
        (("1.1.0", "linux", "sparc", good, "6.0"), 400, "unknown arch"),
        (("1.1", "linux", "amd64", good, "6.0"), 400, "semantic version"),
        (("latest", "linux", "amd64", good, "6.0"), 400, "semantic version"),
        (("1.0.0", "linux", "amd64", good, "6.0"), 409, "already has a linux_amd64 build"),
        (("1.0.0", "darwin", "amd64", provider_zip(tmp_path / "d", "cloud", "1.0.0", "darwin").read_bytes(), "5.0"),
         400, "same protocols"),
        (("1.1.0", "linux", "amd64", provider_zip(tmp_path / "n", "cloud", "1.1.0").read_bytes(), None),
         400, "protocols is required"),
    ]
    for (version, os_name, arch, content, protocols), status, message in cases:
        response = await upload(client, gql.token, unique, "cloud", version, os_name, arch, content, protocols)
        assert response.status_code == status, (version, os_name, arch, response.text)
        assert message in response.json()["errors"][0], (version, os_name, arch, response.text)

    empty = await client.post(f"/api/providers/{unique}/cloud/versions/1.2.0/linux/amd64", headers=bearer(gql.token))
    assert empty.status_code == 400 and empty.json()["errors"]
    unknown = await upload(client, gql.token, unique, "nope", "1.0.0", "linux", "amd64", good)
    assert unknown.status_code == 404 and "createProvider" in unknown.json()["errors"][0]

    assert await blobs(services, f"registry/{unique}/") == before
    after = await fetch_release(client, gql.token, unique, "cloud", "1.0.0")
    assert after["_sums"] == sums_before
    versions = (await client.get(f"/terraform/providers/v1/{unique}/cloud/versions", headers=bearer(gql.token))).json()
    assert [v["version"] for v in versions["versions"]] == ["1.0.0"]
    # A raw zip body with the protocols in the query string works too.
    raw = await client.post(
        f"/api/providers/{unique}/cloud/versions/1.1.0/linux/amd64?protocols=5.0,6.0", headers={
            **bearer(gql.token), "Content-Type": "application/zip"},
        content=provider_zip(tmp_path / "raw", "cloud", "1.1.0").read_bytes(),
    )
    assert raw.status_code == 201 and raw.json()["protocols"] == ["5.0", "6.0"], raw.text


async def test_signing_key_inputs(gql: GraphQLClient, unique: str, tmp_path: Path) -> None:
    await new_org(gql, unique)
    home = Path(tempfile.mkdtemp(prefix="tk-gpgt-"))
    try:
        env = {**os.environ, "GNUPGHOME": str(home)}
        gpg = ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "s3cret"]
        subprocess.run([*gpg, "--quick-gen-key", "Protected <p@example.com>", "ed25519", "sign", "never"],
                       env=env, check=True, capture_output=True)
        protected = subprocess.run([*gpg, "--armor", "--export-secret-keys"], env=env, check=True,
                                   capture_output=True, text=True).stdout
        public = subprocess.run(["gpg", "--batch", "--armor", "--export"], env=env, check=True, capture_output=True,
                                text=True).stdout
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    for armor, message in ((protected, "passphrase"), (public, "private key is required"), ("nonsense", "private key")):
        result = await mutate(gql, "importSigningKey", "ImportSigningKeyInput", "... on SigningKey { keyId }",
                              organization=unique, asciiArmor=armor)
        assert result["__typename"] == "ValidationError" and result["field"] == "asciiArmor", result
        assert message in result["message"], result
    shown = await gql("query($o: String!) { organization(name: $o) { signingKey { keyId } } }", o=unique)
    assert shown["organization"]["signingKey"] is None


# -- permissions ----------------------------------------------------------------------------


async def test_who_may_manage_and_who_may_read(
    client: httpx.AsyncClient, gql: GraphQLClient, as_groups: Any, services: Services, unique: str, tmp_path: Path
) -> None:
    org_id = await new_org(gql, unique)
    for team, role, flags in ((f"{unique}-modules", "CUSTOM", {"manageModule": True}),
                              (f"{unique}-providers", "CUSTOM", {"manageProvider": True}),
                              (f"{unique}-readers", "READ", {})):
        await mutate(gql, "createTeam", "CreateTeamInput", "... on Team { id }", organization=unique, name=team,
                     role=role, **flags)
    modules_team = await as_groups(f"{unique}-modules")
    providers_team = await as_groups(f"{unique}-providers")
    reader = await as_groups(f"{unique}-readers")
    outsider = await as_groups("some-other-team")
    repo = module_repo(tmp_path / "repo", ["1.0.0"])
    module_input = {"organization": unique, "name": "vpc", "provider": "aws", "source": f"file://{repo}"}

    for caller, expected in ((reader, "PermissionDeniedError"), (providers_team, "PermissionDeniedError"),
                             (outsider, "NotFoundError")):
        refused = (await caller(CREATE_MODULE, input=module_input))["createModule"]
        assert refused["__typename"] == expected, refused
        if expected == "PermissionDeniedError":
            assert "manageModule" in refused["message"]
    assert (await modules_team(CREATE_MODULE, input=module_input))["createModule"]["__typename"] == "Module"

    provider_input = {"organization": unique, "name": "cloud"}
    for caller, expected in ((modules_team, "PermissionDeniedError"), (reader, "PermissionDeniedError"),
                             (outsider, "NotFoundError")):
        refused = await mutate(caller, "createProvider", "CreateProviderInput", "... on Provider { id }", **provider_input)
        assert refused["__typename"] == expected, refused
        key = await mutate(caller, "generateSigningKey", "GenerateSigningKeyInput", "... on SigningKey { keyId }",
                           organization=unique)
        assert key["__typename"] == expected, key
    assert (await mutate(providers_team, "createProvider", "CreateProviderInput", "... on Provider { id }",
                         **provider_input))["__typename"] == "Provider"
    assert (await mutate(providers_team, "generateSigningKey", "GenerateSigningKeyInput",
                         "... on SigningKey { keyId }", organization=unique))["__typename"] == "SigningKey"
    zip_file = provider_zip(tmp_path, "cloud", "1.0.0").read_bytes()
    for caller, status in ((reader, 403), (modules_team, 403), (outsider, 404), (GraphQLClient(client, None), 401)):
        refused = await upload(client, caller.token, unique, "cloud", "1.0.0", "linux", "amd64", zip_file)
        assert refused.status_code == status, refused.text
        assert refused.json()["errors"], refused.text
    assert (await upload(client, providers_team.token, unique, "cloud", "1.0.0", "linux", "amd64", zip_file)).status_code == 201

    # Reading needs only to see the organization: any team of it, or a job token of it.
    paths = [f"/terraform/modules/v1/{unique}/vpc/aws/versions", f"/terraform/modules/v1/{unique}/vpc/aws/1.0.0/download",
             f"/terraform/providers/v1/{unique}/cloud/versions",
             f"/terraform/providers/v1/{unique}/cloud/1.0.0/download/linux/amd64"]
    own_job, other_job = await job_tokens(services, org_id, await new_org(gql, unique + "x"))
    for token in (reader.token, modules_team.token, gql.token, own_job):
        for path in paths:
            response = await client.get(path, headers=bearer(token))
            assert response.status_code in (200, 204), (path, response.text)
    for token, status in ((outsider.token, 404), (other_job, 404), (None, 401), ("garbage", 401)):
        for path in paths:
            response = await client.get(path, headers=bearer(token))
            assert response.status_code == status, (path, token, response.text)
            assert response.json()["errors"][0]
    # The registry also takes the token as HTTP basic auth's password (like the state backend).
    basic = await client.get(paths[0], auth=("terraform", reader.token or ""))
    assert basic.status_code == 200

    # Reading in GraphQL: members see modules and providers; others do not.
    query = "query($o: String!) { module(organization: $o, name: \"vpc\", provider: \"aws\") { name } " \
            "provider(organization: $o, name: \"cloud\") { name } }"
    assert await reader(query, o=unique) == {"module": {"name": "vpc"}, "provider": {"name": "cloud"}}
    assert await outsider(query, o=unique) == {"module": None, "provider": None}


async def job_tokens(services: Services, org_id: str, other_org_id: str) -> tuple[str, str]:
    """Tokens of a running job in the organization and of one in another organization."""
    platform = services.platform
    tokens = []
    for org in (org_id, other_org_id):
        async with platform.db.transaction() as session:
            ws = Workspace(organization_id=uuid.UUID(org), name="registry-reader", terraform_version="1.11.4")
            session.add(ws)
            await session.flush()
            job = Job(organization_id=ws.organization_id, workspace_id=ws.id, tcl="flow: []", status="running",
                      created_by="test")
            session.add(job)
        tokens.append(platform.signer.sign_job(job_id=job.id, workspace_id=ws.id, organization_id=ws.organization_id,
                                               expires_at=utcnow() + timedelta(hours=1)))
    return tokens[0], tokens[1]


async def test_registry_cache_bounds_staleness(
    client: httpx.AsyncClient, gql: GraphQLClient, as_groups: Any, services: Services, unique: str, tmp_path: Path
) -> None:
    """Answers are remembered for TERRAKUBE_REGISTRY_CACHE_SECONDS, never longer; a revoked caller is refused at once."""
    services.settings.registry_cache_seconds = 1.0
    await new_org(gql, unique)
    await mutate(gql, "createTeam", "CreateTeamInput", "... on Team { id }", organization=unique,
                 name=f"{unique}-r", role="READ")
    reader = await as_groups(f"{unique}-r")
    repo = module_repo(tmp_path / "repo", ["1.0.0"], extra_tags=())
    created = (await gql(CREATE_MODULE, input={"organization": unique, "name": "vpc", "provider": "aws",
                                               "source": f"file://{repo}"}))["createModule"]
    path = f"/terraform/modules/v1/{unique}/vpc/aws/versions"
    assert (await client.get(path, headers=bearer(reader.token))).json()["modules"][0]["versions"] == [
        {"version": "1.0.0"}]
    git(repo, "tag", "v1.1.0")
    await mutate(gql, "refreshModule", "IdInput", "... on Module { id }", id=created["id"])
    revoked = await reader("{ accessTokens { id } }")
    await reader("mutation($id: ID!) { revokeAccessToken(input: {id: $id}) { __typename } }",
                 id=revoked["accessTokens"][0]["id"])
    response = await client.get(path, headers=bearer(reader.token))
    assert response.status_code == 401, "a revoked token is refused at once"
    deadline = time.monotonic() + 5
    while True:  # the cached answer (1.0.0 only) lasts at most the cache's 1 s
        fresh = await client.get(path, headers=bearer(gql.token))
        versions = [v["version"] for v in fresh.json()["modules"][0]["versions"]]
        if versions != ["1.0.0"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert versions == ["1.1.0", "1.0.0"]


async def test_one_provider_answer_serves_its_versions_and_every_download(
    client: httpx.AsyncClient, gql: GraphQLClient, services: Services, unique: str, tmp_path: Path
) -> None:
    """Made-up versions and platforms are answered 404 from the provider's one remembered answer:
    they cost no query of their own (and no cache entry that could push the real ones out)."""
    services.settings.registry_cache_seconds = 60.0
    await new_org(gql, unique)
    await mutate(gql, "createProvider", "CreateProviderInput", "... on Provider { id }", organization=unique, name="cloud")
    await mutate(gql, "generateSigningKey", "GenerateSigningKeyInput", "... on SigningKey { keyId }", organization=unique)
    content = provider_zip(tmp_path, "cloud", "1.0.0").read_bytes()
    assert (await upload(client, gql.token, unique, "cloud", "1.0.0", "linux", "amd64", content)).status_code == 201

    lookups: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "provider_platform" in statement:
            lookups.append(statement)

    engine = services.platform.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        base = f"/terraform/providers/v1/{unique}/cloud"
        versions = await client.get(f"{base}/versions", headers=bearer(gql.token))
        assert versions.status_code == 200 and versions.json()["versions"][0]["version"] == "1.0.0"
        made_up = [(f"9.{i}.0", "linux", "amd64") for i in range(10)] + [("1.0.0", f"os{i}", "arch") for i in range(10)]
        for version, os_name, arch in made_up:
            response = await client.get(f"{base}/{version}/download/{os_name}/{arch}", headers=bearer(gql.token))
            assert response.status_code == 404 and f"no version {version!r}" in response.json()["errors"][0]
        release = await fetch_release(client, gql.token, unique, "cloud", "1.0.0")
        assert release["shasum"] == hashlib.sha256(content).hexdigest()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    registry_reads = [s for s in lookups if s.lstrip().upper().startswith("SELECT") and "provider_platform.blob_key" not in s]
    assert len(registry_reads) == 1, registry_reads
