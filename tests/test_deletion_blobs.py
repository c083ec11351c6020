"""Deleting an organization, a module or a provider removes its objects from storage (local
directory and S3 on moto; SQLite and PostgreSQL), never another organization's, not even one
whose name extends the deleted one's or that once had its name; a storage failure leaves the
deletion done and the leftovers to the orphan sweep."""

from __future__ import annotations

import dataclasses
import io
import logging
import tarfile
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from app import Services
from domain import signing
from domain.models import Job, Organization, Step
from domain.models.types import new_id, utcnow
from domain.services import Platform, orphans, reading, unit_of_work
from domain.services import configuration as config_service
from domain.services import modules as module_service
from domain.services import organizations as org_service
from domain.services import providers as provider_service
from domain.services import state as state_service
from domain.services import workspaces as ws_service
from storage import BlobStore, StorageError, keys
from storage.base import one_chunk
from storage.local import LocalBlobStore
from tests.registry_fixtures import module_repo, provider_zip
from tests.storage_servers import moto_server, s3_store  # noqa: F401  (fixture)
from tests.test_state_service import ADMIN, state_doc

# -- the key layout --------------------------------------------------------------------------


def test_deletion_prefixes_end_with_a_slash_and_cover_the_layout() -> None:
    assert keys.organization_prefixes("acme") == [
        "state/acme/", "plans/acme/", "logs/acme/", "config/acme/", "registry/acme/",
    ]
    assert keys.module_prefix("acme", "vpc", "aws") == "registry/acme/modules/vpc/aws/"
    assert keys.provider_prefix("acme", "cloud") == "registry/acme/providers/cloud/"
    sv, job = uuid.uuid4(), uuid.uuid4()
    own = [
        keys.state_key("acme", "net", sv),
        keys.plan_key("acme", "net", job, "1"),
        keys.log_key("acme", job, "1"),
        keys.config_key("acme", "net", sv),
        keys.module_archive_key("acme", "vpc", "aws", "1.0.0.b1"),
        keys.provider_file_key("acme", "cloud", "1.0.0", "SHA256SUMS"),
    ]
    others = [key.replace("/acme/", "/acme-2/") for key in own]
    prefixes = keys.organization_prefixes("acme")
    assert all(any(key.startswith(p) for p in prefixes) for key in own)
    assert not any(key.startswith(p) for key in others for p in prefixes)
    assert not keys.module_archive_key("acme", "vpc", "aws-2", "1.0.0").startswith(keys.module_prefix("acme", "vpc", "aws"))
    assert not keys.provider_file_key("acme", "cloud-2", "1", "f").startswith(keys.provider_prefix("acme", "cloud"))


# -- a real organization's objects ------------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
async def platform(request: pytest.FixtureRequest, services: Services, tmp_path: Path) -> AsyncIterator[Platform]:
    """The test app's platform on a store of its own, so that sweeps see only this test's objects."""
    store: BlobStore
    if request.param == "local":
        store = LocalBlobStore(tmp_path / "blobs")
    else:
        store = s3_store(request)
    yield dataclasses.replace(services.platform, store=store)
    await store.close()


def _tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        data = b'resource "terraform_data" "x" {}\n'
        info = tarfile.TarInfo("main.tf")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


async def _org(platform: Platform, name: str) -> uuid.UUID:
    org = await org_service.create_organization(platform, ADMIN, org_service.OrganizationCreate(name=name))
    return org.id


async def _workspace_objects(platform: Platform, org: str, ws: str = "ws") -> None:
    """State, a configuration version, and a finished job step's log and plan (recorded as the
    engine records them; finished, so that no scheduler picks the job up)."""
    workspace = await ws_service.create_workspace(platform, ADMIN, ws_service.WorkspaceCreate(organization=org, name=ws))
    await state_service.write_state(platform, ADMIN, org, ws, one_chunk(state_doc(1)))
    await config_service.upload_configuration(platform, ADMIN, workspace.id, one_chunk(_tarball()), 1 << 20)
    job = Job(organization_id=workspace.organization_id, workspace_id=workspace.id, tcl="", created_by="test",
              status="completed")
    step = Step(job_id=job.id, step_number=100, type="terraformPlan", status="completed")
    step.log_key, step.plan_key = keys.log_key(org, job.id, step.id), keys.plan_key(org, ws, job.id, step.id)
    await platform.blobs.put_bytes(step.log_key, b"log\n")
    await platform.blobs.put_bytes(step.plan_key, b"plan")
    async with unit_of_work(platform, "clash") as session:
        session.add(job)
        await session.flush()
        session.add(step)


async def _registry_objects(platform: Platform, org: str, tmp_path: Path) -> None:
    """A module with built archives and a provider with one published, signed platform."""
    repo = module_repo(tmp_path / f"repo-{org}", ["1.0.0", "1.1.0"])
    await module_service.create_module(platform, ADMIN, module_service.ModuleCreate(
        organization=org, name="vpc", provider="aws", source=f"file://{repo}"))
    await provider_service.create_provider(platform, ADMIN, provider_service.ProviderCreate(organization=org, name="cloud"))
    await provider_service.generate_signing_key(platform, ADMIN, org)
    upload = provider_zip(tmp_path / f"zip-{org}", "cloud", "1.0.0")
    target = provider_service.PublishTarget(org, "cloud", "1.0.0", "linux", "amd64")
    await provider_service.publish_platform(platform, ADMIN, target, ["6.0"], upload)


async def _keys(platform: Platform, org: str) -> list[str]:
    return [info.key for prefix in keys.organization_prefixes(org) async for info in platform.blobs.list(prefix)]


def _kinds(found: list[str]) -> set[str]:
    return {"/".join(k.split("/")[:3]) if k.startswith("registry/") else k.split("/")[0] for k in found}


ALL_KINDS = {"state", "plans", "logs", "config"}


needs_gpg = pytest.mark.skipif(not signing.gpg_available(), reason="gpg is not installed")


@needs_gpg
async def test_deleting_an_organization_removes_all_its_objects_and_only_its(
    platform: Platform, unique: str, tmp_path: Path
) -> None:
    # The organization first had another name (an extension of its final one): what it wrote
    # then is keyed by that name and must go too.
    victim = await _org(platform, f"{unique}-was")
    await _workspace_objects(platform, f"{unique}-was", "early")
    await org_service.update_organization(platform, ADMIN, victim, org_service.OrganizationUpdate(name=unique))
    await _workspace_objects(platform, unique)
    await _registry_objects(platform, unique, tmp_path)
    # Left by a state write that died between its blob and its row.
    crashed = keys.state_key(unique, "ws", new_id())
    await platform.blobs.put_bytes(crashed, b"{}")

    neighbour = await _org(platform, f"{unique}-2")
    await _workspace_objects(platform, f"{unique}-2")
    await _registry_objects(platform, f"{unique}-2", tmp_path)

    early = await _keys(platform, f"{unique}-was")
    mine = await _keys(platform, unique)
    theirs = await _keys(platform, f"{unique}-2")
    assert _kinds(early) == ALL_KINDS and len(early) == 4
    expected = ALL_KINDS | {f"registry/{unique}/modules", f"registry/{unique}/providers"}
    assert _kinds(mine) == expected and crashed in mine
    assert _kinds(theirs) == {k.replace(unique, f"{unique}-2") for k in expected}

    assert await org_service.delete_organization(platform, ADMIN, victim) == victim

    assert await _keys(platform, unique) == []
    assert await _keys(platform, f"{unique}-was") == []
    assert await _keys(platform, f"{unique}-2") == theirs
    async with reading(platform) as session:
        assert await session.get(Organization, neighbour) is not None


async def test_an_organization_never_deletes_objects_another_one_still_names(
    platform: Platform, unique: str
) -> None:
    # `old` wrote under the name `unique`, then took another; a new `unique` is created and
    # deleted: `old`'s state is still named by its rows and must survive.
    old = await _org(platform, unique)
    await _workspace_objects(platform, unique)
    await org_service.update_organization(platform, ADMIN, old, org_service.OrganizationUpdate(name=f"{unique}-old"))
    kept = await _keys(platform, unique)
    assert _kinds(kept) == ALL_KINDS

    reused = await _org(platform, unique)
    stray = keys.state_key(unique, "ws", new_id())  # unrecorded: goes with the new organization
    await platform.blobs.put_bytes(stray, b"{}")
    await org_service.delete_organization(platform, ADMIN, reused)

    assert await _keys(platform, unique) == kept
    current = await state_service.read_current_state(platform, ADMIN, f"{unique}-old", "ws")
    assert current is not None
    assert b"".join([c async for c in current[1]]) == state_doc(1)


async def _workspace_keys(platform: Platform, org: str, ws: str) -> list[str]:
    prefixes = keys.workspace_prefixes(org, ws)
    found = [info.key for prefix in prefixes async for info in platform.blobs.list(prefix)]
    return found + [info.key async for info in platform.blobs.list(f"logs/{org}/")]


async def test_deleting_a_workspace_keeps_the_objects_of_the_one_renamed_away_from_its_name(
    platform: Platform, unique: str
) -> None:
    # `ws` wrote under its name, then was renamed to `ws-old`; a new `ws` writes and is deleted:
    # its own objects (and its leftovers) go, `ws-old`'s stay readable; objects `ws-old` wrote
    # before its rename go when `ws-old` itself is deleted.
    await _org(platform, unique)
    await _workspace_objects(platform, unique, "ws")
    renamed = await ws_service.get_workspace(platform, ADMIN, unique, "ws")
    assert renamed is not None
    await ws_service.update_workspace(platform, ADMIN, renamed.id, ws_service.WorkspaceUpdate(name="ws-old"))
    kept = await _workspace_keys(platform, unique, "ws")
    assert _kinds(kept) == ALL_KINDS

    await _workspace_objects(platform, unique, "ws")
    reused = await ws_service.get_workspace(platform, ADMIN, unique, "ws")
    assert reused is not None
    stray = keys.state_key(unique, "ws", new_id())  # unrecorded: goes with the new workspace
    await platform.blobs.put_bytes(stray, b"{}")
    assert len(await _workspace_keys(platform, unique, "ws")) == 2 * len(kept) + 1

    await ws_service.delete_workspace(platform, ADMIN, reused.id)

    assert sorted(await _workspace_keys(platform, unique, "ws")) == sorted(kept)
    current = await state_service.read_current_state(platform, ADMIN, unique, "ws-old")
    assert current is not None
    assert b"".join([c async for c in current[1]]) == state_doc(1)

    await ws_service.delete_workspace(platform, ADMIN, renamed.id)
    assert await _keys(platform, unique) == []


@needs_gpg
async def test_deleting_a_module_or_provider_removes_its_prefix_and_only_its(
    platform: Platform, unique: str, tmp_path: Path
) -> None:
    await _org(platform, unique)
    await _registry_objects(platform, unique, tmp_path)
    # Leftovers of failed recordings, named by no row, and a neighbour whose name extends ours.
    await platform.blobs.put_bytes(keys.module_archive_key(unique, "vpc", "aws", "9.9.9.dead"), b"x")
    await platform.blobs.put_bytes(keys.provider_file_key(unique, "cloud", "9.9.9", "dead.zip"), b"x")
    await platform.blobs.put_bytes(keys.module_archive_key(unique, "vpc", "aws-2", "1.0.0.b"), b"x")
    await platform.blobs.put_bytes(keys.provider_file_key(unique, "cloud-2", "1.0.0", "f.zip"), b"x")

    module = await module_service.get_module(platform, ADMIN, unique, "vpc", "aws")
    provider = await provider_service.get_provider(platform, ADMIN, unique, "cloud")
    assert module is not None and provider is not None
    await module_service.delete_module(platform, ADMIN, module.id)
    await provider_service.delete_provider(platform, ADMIN, provider.id)

    assert [info.key async for info in platform.blobs.list(f"registry/{unique}/")] == [
        keys.module_archive_key(unique, "vpc", "aws-2", "1.0.0.b"),
        keys.provider_file_key(unique, "cloud-2", "1.0.0", "f.zip"),
    ]


# -- a storage failure ------------------------------------------------------------------------


class FailingDeletes:
    """A store whose deletes fail (an outage, a missing permission); everything else works."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def delete(self, key: str) -> None:
        raise StorageError(f"delete {key!r}: access denied")

    async def delete_prefix(self, prefix: str) -> int:
        raise StorageError(f"delete_prefix {prefix!r}: access denied")


async def test_a_failed_blob_deletion_keeps_the_deletion_logs_it_and_the_sweep_repairs_it(
    platform: Platform, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    org_id = await _org(platform, unique)
    await _workspace_objects(platform, unique)
    left = await _keys(platform, unique)
    assert len(left) == 4

    failing = dataclasses.replace(platform, store=FailingDeletes(platform.blobs))  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="terrakube.orphans"):
        assert await org_service.delete_organization(failing, ADMIN, org_id) == org_id
    assert any("access denied" in str(r.exc_info[1]) for r in caplog.records if r.exc_info), caplog.text
    async with reading(platform) as session:
        assert await session.get(Organization, org_id) is None
        assert (await session.exec(select(Job).where(Job.organization_id == org_id))).first() is None
    assert await _keys(platform, unique) == left  # nothing removed, nothing raised

    # The orphan sweep removes them once seen as orphans for long enough.
    hour = timedelta(minutes=60)
    t0 = utcnow()
    assert await orphans.sweep_orphans(platform, hour, now=t0) == 0
    assert await orphans.sweep_orphans(platform, hour, now=t0 + hour) == 4
    assert await _keys(platform, unique) == []


async def test_a_successor_of_the_same_name_keeps_its_writes_in_progress(platform: Platform, unique: str) -> None:
    # The cleanup after a deletion meets unrecorded objects under the name's prefixes. While an
    # organization of that name exists again, they may be its writes in progress (object stored,
    # row not yet committed): they are left to the sweep's grace instead of being deleted.
    prefixes = keys.organization_prefixes(unique)
    successor = select(Organization.id).where(Organization.name == unique)
    in_flight = keys.state_key(unique, "ws", new_id())
    await platform.blobs.put_bytes(in_flight, b"{}")

    await orphans.delete_unrecorded(platform, prefixes, (), successor)  # no such organization: removed
    assert await _keys(platform, unique) == []

    await _org(platform, unique)
    await platform.blobs.put_bytes(in_flight, b"{}")
    await orphans.delete_unrecorded(platform, prefixes, (), successor)
    assert await _keys(platform, unique) == [in_flight]
