"""Uploaded Terraform code (a .tar.gz) for workspaces without a git source."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterable
from pathlib import Path

from domain.access import Actor
from domain.archive import UnsafeArchive, extract_tarball
from domain.errors import NotFound, TooLarge, ValidationFailed
from domain.models import ConfigurationVersion, Organization, Workspace
from domain.principal import Permission
from domain.services import Platform, reading, unit_of_work
from storage.keys import config_key


class ConfigurationTooLarge(TooLarge):
    def __init__(self, limit: int) -> None:
        super().__init__("body", f"the configuration archive is larger than {limit} bytes")


async def upload_configuration(
    platform: Platform, actor: Actor, workspace_id: uuid.UUID, body: AsyncIterable[bytes], max_bytes: int
) -> ConfigurationVersion:
    """Spool, check every entry (nothing escapes, no links out, no devices), store, record."""
    async with reading(platform) as session:
        ws = await session.get(Workspace, workspace_id)
        if ws is None:
            raise NotFound("workspace not found")
        await actor.require_in_workspace(session, ws.organization_id, ws.id, Permission.manage_workspace, "workspace")
        org = await session.get(Organization, ws.organization_id)
        assert org is not None
    scratch = Path(tempfile.mkdtemp(prefix="tk-config-"))
    try:
        archive, size, digest = await _spool(body, scratch / "upload.tar.gz", max_bytes)
        try:
            # Off the event loop: checking a large archive must not stall every other request.
            await asyncio.to_thread(extract_tarball, archive, scratch / "check", max_bytes * 20)
        except UnsafeArchive as exc:
            raise ValidationFailed("body", f"the archive was refused: {exc}") from None
        version = ConfigurationVersion(workspace_id=ws.id, blob_key="", size=size, sha256=digest, created_by=actor.name)
        version.blob_key = config_key(org.name, ws.name, version.id)
        await platform.blobs.put(version.blob_key, _chunks(archive))
        try:
            async with unit_of_work(platform, "configuration version clash") as session:
                session.add(version)
        except BaseException:
            await platform.blobs.delete(version.blob_key)  # no blob without its row
            raise
        return version
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def _spool(body: AsyncIterable[bytes], dest: Path, max_bytes: int) -> tuple[Path, int, str]:
    digest, size = hashlib.sha256(), 0
    with dest.open("wb") as fh:
        async for chunk in body:
            size += len(chunk)
            if size > max_bytes:
                raise ConfigurationTooLarge(max_bytes)
            digest.update(chunk)
            fh.write(chunk)
    if size == 0:
        raise ValidationFailed("body", "the request body is empty; send a .tar.gz archive")
    return dest, size, digest.hexdigest()


async def _chunks(path: Path, size: int = 1 << 20):  # type: ignore[no-untyped-def]
    with path.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk
