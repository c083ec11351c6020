"""Private providers: releases uploaded per platform, listed in a signed ``SHA256SUMS``.

A provider is ``HOST/{organization}/{name}``. Publishing a platform (one zip per version, os and
arch) stores the zip, rewrites the version's ``SHA256SUMS`` with every platform's checksum and
signs it with the organization's OpenPGP key, all recorded in one transaction: a refused or failed
upload leaves neither rows nor objects behind. Terraform checks the zip against ``SHA256SUMS`` and
``SHA256SUMS`` against the key we serve with each download.

Each organization has at most one signing key. The private half is kept encrypted (``platform.box``)
and never leaves the platform; replacing the key re-signs every ``SHA256SUMS`` of the organization
in the same transaction, so earlier releases keep verifying.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
import uuid
import zipfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import SQLModel, col, select

from domain import semver, signing
from domain.access import Actor
from domain.errors import Conflict, NotFound, TooLarge, ValidationFailed
from domain.models import Organization, Provider, ProviderPlatform, ProviderVersion, SigningKey
from domain.models.types import utcnow
from domain.pagination import Page, PageRequest, paginate_by_name
from domain.principal import Permission
from domain.services import Platform, reading, unit_of_work
from domain.services.lookups import children_by_parent, organization_named
from domain.services.orphans import delete_unrecorded
from domain.validation import check_text
from storage import BlobNotFound
from storage.keys import provider_file_key, provider_prefix

log = logging.getLogger("terrakube.providers")

PROVIDER_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
PROTOCOL_RE = re.compile(r"^([1-9][0-9]?)(?:\.(0|[1-9][0-9]?))?$")
# The platforms terraform itself is released for.
OPERATING_SYSTEMS = frozenset({"darwin", "freebsd", "linux", "openbsd", "solaris", "windows"})
ARCHITECTURES = frozenset({"386", "amd64", "arm", "arm64"})
MAX_UNCOMPRESSED_BYTES = 4 * 1024 * 1024 * 1024  # what terraform would unpack; a zip bomb stops here
SHA256SUMS = "SHA256SUMS"


class ProviderCreate(SQLModel):
    organization: str
    name: str
    description: str = ""


class ProviderUpdate(SQLModel):
    description: str | None = None


class ProviderTooLarge(TooLarge):
    def __init__(self, limit: int) -> None:
        super().__init__("file", f"the provider zip is larger than {limit} bytes")


# -- input rules -------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not PROVIDER_NAME_RE.fullmatch(name):
        raise ValidationFailed(
            "name", "a provider name is 1 to 64 lower-case letters, digits or '-', starting and ending with a letter or digit"
        )


def check_platform(os_name: str, arch: str) -> None:
    if os_name not in OPERATING_SYSTEMS:
        raise ValidationFailed("os", f"unknown os {os_name[:32]!r}; one of {', '.join(sorted(OPERATING_SYSTEMS))}")
    if arch not in ARCHITECTURES:
        raise ValidationFailed("arch", f"unknown arch {arch[:32]!r}; one of {', '.join(sorted(ARCHITECTURES))}")


def parse_protocols(values: Sequence[str]) -> list[str]:
    """``["6.0"]``, ``["5.0,6.0"]``, ``['["5.0", "6.0"]']`` or ``["5", "6"]`` → ``["5.0", "6.0"]``."""
    raw: list[str] = []
    for value in values:
        value = value.strip()
        if value.startswith("["):
            try:
                items = json.loads(value)
            except ValueError:
                raise ValidationFailed("protocols", "protocols is not a JSON list") from None
            if not isinstance(items, list):
                raise ValidationFailed("protocols", "protocols must be a list like 5.0,6.0")
            raw += [str(i) for i in items]
        else:
            raw += [p for p in re.split(r"[,\s]+", value) if p]
    if not raw:
        raise ValidationFailed("protocols", "protocols is required: the plugin protocol versions, like 6.0 or 5.0,6.0")
    protocols: list[str] = []
    for item in raw:
        m = PROTOCOL_RE.fullmatch(item.strip())
        if m is None:
            raise ValidationFailed("protocols", f"{item[:20]!r} is not a protocol version like 5.0 or 6.0")
        normal = f"{m.group(1)}.{m.group(2) or '0'}"
        if normal not in protocols:
            protocols.append(normal)
    return sorted(protocols, key=lambda p: tuple(int(x) for x in p.split(".")))


def release_filename(name: str, version: str, os_name: str, arch: str) -> str:
    return f"terraform-provider-{name}_{version}_{os_name}_{arch}.zip"


def sums_filename(name: str, version: str) -> str:
    return f"terraform-provider-{name}_{version}_{SHA256SUMS}"


def check_zip(path: Path, name: str, version: str, os_name: str) -> None:
    """The zip is readable and holds the provider binary at its top level."""
    binary = f"terraform-provider-{name}_v{version}"
    wanted = {binary, binary + ".exe"} if os_name == "windows" else {binary}
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if sum(info.file_size for info in infos) > MAX_UNCOMPRESSED_BYTES:
                raise ValidationFailed("file", f"the zip unpacks to more than {MAX_UNCOMPRESSED_BYTES} bytes")
            names = [info.filename for info in infos if not info.is_dir()]
            if not wanted & set(names):
                shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "") if names else "nothing"
                raise ValidationFailed(
                    "file", f"the zip must contain the provider binary {binary!r} at its top level (it holds {shown})"
                )
            bad = archive.testzip()
            if bad is not None:
                raise ValidationFailed("file", f"the zip is corrupt (entry {bad!r} fails its checksum)")
    except zipfile.BadZipFile:
        raise ValidationFailed("file", "the upload is not a zip file") from None
    except (OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise ValidationFailed("file", f"the zip cannot be read: {exc}") from None


# -- providers -------------------------------------------------------------------------------


async def _org_requiring(platform: Platform, actor: Actor, organization: str) -> Organization:
    async with reading(platform) as session:
        org = await organization_named(session, organization)
        if org is None:
            raise NotFound(f"organization {organization!r} not found")
        await actor.require(session, org.id, Permission.manage_provider, f"organization {organization!r}")
        return org


async def _named(session: Any, org_id: uuid.UUID, name: str) -> Provider | None:
    return (await session.exec(select(Provider).where(Provider.organization_id == org_id, Provider.name == name))).first()


async def create_provider(platform: Platform, actor: Actor, data: ProviderCreate) -> Provider:
    _check_name(data.name)
    check_text(data.description, "description", max_length=1024)
    conflict = f"a provider named {data.name!r} already exists in {data.organization!r}"
    org = await _org_requiring(platform, actor, data.organization)
    async with unit_of_work(platform, conflict) as session:
        if await _named(session, org.id, data.name) is not None:
            raise Conflict(conflict)
        provider = Provider(organization_id=org.id, name=data.name, description=data.description)
        session.add(provider)
    return provider


async def _editable(session: Any, actor: Actor, provider_id: uuid.UUID, lock: bool = False) -> Provider:
    provider = await session.get(Provider, provider_id, with_for_update=lock)
    if provider is None:
        raise NotFound("provider not found")
    await actor.require(session, provider.organization_id, Permission.manage_provider, "provider")
    return provider


async def update_provider(platform: Platform, actor: Actor, provider_id: uuid.UUID, data: ProviderUpdate) -> Provider:
    if data.description is not None:
        check_text(data.description, "description", max_length=1024)
    async with unit_of_work(platform, "the provider changed concurrently") as session:
        provider = await _editable(session, actor, provider_id, lock=True)
        if data.description is not None:
            provider.description = data.description
        provider.updated_at = utcnow()
        session.add(provider)
    return provider


async def delete_provider(platform: Platform, actor: Actor, provider_id: uuid.UUID) -> uuid.UUID:
    async with unit_of_work(platform, "the provider changed concurrently") as session:
        provider = await _editable(session, actor, provider_id, lock=True)
        versions = (await session.exec(select(ProviderVersion).where(ProviderVersion.provider_id == provider.id))).all()
        keys: list[str | None] = [k for v in versions for k in (v.shasums_key, v.signature_key)]
        if versions:
            keys += (
                await session.exec(
                    select(ProviderPlatform.blob_key).where(
                        col(ProviderPlatform.provider_version_id).in_([v.id for v in versions])
                    )
                )
            ).all()
        org = await session.get(Organization, provider.organization_id)
        prefixes = [provider_prefix(org.name, provider.name)] if org else []
        successor = (select(Provider.id).join(Organization, col(Organization.id) == col(Provider.organization_id))
                     .where(Organization.name == (org.name if org else ""), Provider.name == provider.name))
        await session.delete(provider)
    # Files go after their rows: a failure leaves an orphan (logged, removed by the orphan
    # sweep), never a row without its file. The prefix also takes what no row named, such as
    # a zip whose recording failed.
    await delete_unrecorded(platform, prefixes, keys, successor)
    return provider_id


async def get_provider(platform: Platform, actor: Actor, organization: str, name: str) -> Provider | None:
    async with reading(platform) as session:
        found = await _registry_provider(session, organization, name)
        if found is None or not (await actor.access(session, found.organization_id)).visible:
            return None
        return found


async def list_providers(platform: Platform, org_id: uuid.UUID, page: PageRequest) -> Page[Provider]:
    """For an organization the caller was already allowed to see; by name."""
    async with reading(platform) as session:
        return await paginate_by_name(
            session, select(Provider).where(Provider.organization_id == org_id), Provider.name, Provider.id, page
        )


async def versions_by_provider(
    platform: Platform, provider_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ProviderVersion]]:
    grouped = await children_by_parent(platform, ProviderVersion, ProviderVersion.provider_id, provider_ids)
    for rows in grouped.values():
        rows.sort(key=lambda v: semver.sort_key(v.version), reverse=True)
    return grouped


async def platforms_by_version(
    platform: Platform, version_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ProviderPlatform]]:
    return await children_by_parent(
        platform, ProviderPlatform, ProviderPlatform.provider_version_id, version_ids,
        ProviderPlatform.os, ProviderPlatform.arch,
    )


# -- signing keys ----------------------------------------------------------------------------


async def get_signing_key(platform: Platform, actor: Actor, org_id: uuid.UUID) -> SigningKey | None:
    async with reading(platform) as session:
        await actor.require_visible(session, org_id, "organization")
        return (await session.exec(select(SigningKey).where(SigningKey.organization_id == org_id))).first()


async def signing_keys_by_organization(
    platform: Platform, org_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, SigningKey | None]:
    grouped = await children_by_parent(platform, SigningKey, SigningKey.organization_id, org_ids)
    return {k: (rows[0] if rows else None) for k, rows in grouped.items()}


async def generate_signing_key(platform: Platform, actor: Actor, organization: str) -> SigningKey:
    """A new RSA-4096 key made inside the platform; replaces the organization's key if any."""
    org = await _org_requiring(platform, actor, organization)
    try:
        material = await signing.generate_key(f"Terrakube {org.name}", f"{org.name}@terrakube.invalid")
    except signing.SigningError as exc:
        raise ValidationFailed("organization", f"the key could not be generated: {exc}") from None
    return await _install_key(platform, org, material)


async def import_signing_key(platform: Platform, actor: Actor, organization: str, private_armor: str) -> SigningKey:
    """An existing ASCII-armored private key (not passphrase-protected); replaces any key."""
    check_text(private_armor, "asciiArmor", max_length=64 * 1024, required=True)
    org = await _org_requiring(platform, actor, organization)
    try:
        material = await signing.import_key(private_armor)
    except signing.SigningError as exc:
        raise ValidationFailed("asciiArmor", str(exc)) from None
    return await _install_key(platform, org, material)


async def _install_key(platform: Platform, org: Organization, material: signing.KeyMaterial) -> SigningKey:
    new_keys: list[str] = []
    old_keys: list[str | None] = []
    try:
        async with unit_of_work(platform, "the signing key was replaced concurrently") as session:
            current = (
                await session.exec(select(SigningKey).where(SigningKey.organization_id == org.id).with_for_update())
            ).first()
            # Under the key's lock no upload can sign with the old key meanwhile.
            versions = (
                await session.exec(
                    select(ProviderVersion)
                    .join(Provider, col(Provider.id) == col(ProviderVersion.provider_id))
                    .where(Provider.organization_id == org.id, col(ProviderVersion.shasums_key).is_not(None))
                )
            ).all()
            sums = [await platform.blobs.read_bytes(v.shasums_key) for v in versions if v.shasums_key]
            signatures = await _sign_many(material.private_armor, sums)
            rotation = secrets.token_hex(4)
            for version, signature in zip(versions, signatures, strict=True):
                key = await _put(platform, f"{version.shasums_key}.{rotation}.sig", signature)
                new_keys.append(key)
                old_keys.append(version.signature_key)
                version.signature_key = key
                session.add(version)
            row = current or SigningKey(organization_id=org.id, key_id="", ascii_armor="", private_key="")
            row.key_id = material.key_id
            row.ascii_armor = material.public_armor
            row.private_key = platform.box.encrypt(material.private_armor)
            row.created_at = utcnow()
            session.add(row)
    except BaseException:
        await _delete_blobs(platform, new_keys)
        raise
    await _delete_blobs(platform, old_keys)
    return row


async def _sign_many(private_armor: str, payloads: list[bytes]) -> list[bytes]:
    try:
        return await signing.sign_many(private_armor, payloads)
    except signing.SigningError as exc:
        raise ValidationFailed("signingKey", f"signing failed: {exc}") from None


# -- publishing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishTarget:
    organization: str
    name: str
    version: str
    os: str
    arch: str


def _check_target(target: PublishTarget) -> None:
    semver.check_version(target.version, "version")
    check_platform(target.os, target.arch)


async def check_publish(platform: Platform, actor: Actor, target: PublishTarget) -> None:
    """Everything that can be refused before the upload is read: version, platform, permission,
    provider, signing key and a duplicate platform."""
    _check_target(target)
    async with reading(platform) as session:
        provider = await _registry_provider(session, target.organization, target.name)
        if provider is None:
            org = await organization_named(session, target.organization)
            if org is None or not (await actor.access(session, org.id)).visible:
                raise NotFound(f"organization {target.organization!r} not found")
            await actor.require(session, org.id, Permission.manage_provider, f"organization {target.organization!r}")
            raise NotFound(
                f"provider {target.organization}/{target.name} not found; create it first (createProvider)"
            )
        await actor.require(session, provider.organization_id, Permission.manage_provider, "provider")
        key = (await session.exec(select(SigningKey.id).where(SigningKey.organization_id == provider.organization_id))).first()
        if key is None:
            raise Conflict(
                f"organization {target.organization!r} has no signing key; create one with generateSigningKey "
                "or importSigningKey before publishing"
            )
        if await _platform_row(session, provider.id, target) is not None:
            raise Conflict(_duplicate(target))


def _duplicate(target: PublishTarget) -> str:
    return (
        f"{target.organization}/{target.name} {target.version} already has a {target.os}_{target.arch} build; "
        "a published platform is immutable (publish a new version)"
    )


async def _platform_row(session: Any, provider_id: uuid.UUID, target: PublishTarget) -> ProviderPlatform | None:
    return (
        await session.exec(
            select(ProviderPlatform)
            .join(ProviderVersion, col(ProviderVersion.id) == col(ProviderPlatform.provider_version_id))
            .where(
                ProviderVersion.provider_id == provider_id,
                ProviderVersion.version == target.version,
                ProviderPlatform.os == target.os,
                ProviderPlatform.arch == target.arch,
            )
        )
    ).first()


async def publish_platform(
    platform: Platform, actor: Actor, target: PublishTarget, protocols: Sequence[str], upload: Path
) -> ProviderPlatform:
    """Record one platform's zip (already spooled to ``upload``) and re-sign the version."""
    _check_target(target)
    protocol_list = parse_protocols(protocols)
    await check_publish(platform, actor, target)
    await asyncio.to_thread(check_zip, upload, target.name, target.version, target.os)
    digest = await asyncio.to_thread(_sha256, upload)
    filename = release_filename(target.name, target.version, target.os, target.arch)
    build = secrets.token_hex(4)
    zip_key = provider_file_key(target.organization, target.name, target.version, f"{build}_{filename}")
    await platform.blobs.put(zip_key, _file_chunks(upload))
    written = [zip_key]
    replaced: list[str | None] = []
    try:
        async with unit_of_work(platform, _duplicate(target)) as session:
            provider = await _registry_provider(session, target.organization, target.name, lock=True)
            if provider is None:
                raise NotFound(f"provider {target.organization}/{target.name} not found")
            await actor.require(session, provider.organization_id, Permission.manage_provider, "provider")
            key = (
                await session.exec(
                    select(SigningKey).where(SigningKey.organization_id == provider.organization_id).with_for_update()
                )
            ).first()
            if key is None:
                raise Conflict(f"organization {target.organization!r} has no signing key")
            version = (
                await session.exec(
                    select(ProviderVersion).where(
                        ProviderVersion.provider_id == provider.id, ProviderVersion.version == target.version
                    )
                )
            ).first()
            if version is None:
                version = ProviderVersion(provider_id=provider.id, version=target.version, protocols=protocol_list)
                session.add(version)
                await session.flush()
            elif list(version.protocols) != protocol_list:
                raise ValidationFailed(
                    "protocols",
                    f"version {target.version} was published with protocols {', '.join(version.protocols)}; "
                    f"every platform of a version must name the same protocols (got {', '.join(protocol_list)})",
                )
            if await _platform_row(session, provider.id, target) is not None:
                raise Conflict(_duplicate(target))
            row = ProviderPlatform(
                provider_version_id=version.id, os=target.os, arch=target.arch, filename=filename, shasum=digest,
                blob_key=zip_key,
            )
            session.add(row)
            await session.flush()
            platforms = (
                await session.exec(select(ProviderPlatform).where(ProviderPlatform.provider_version_id == version.id))
            ).all()
            sums = "".join(f"{p.shasum}  {p.filename}\n" for p in sorted(platforms, key=lambda p: p.filename)).encode()
            (signature,) = await _sign_many(platform.box.decrypt(key.private_key), [sums])
            base = f"{build}_{sums_filename(target.name, target.version)}"
            sums_key = await _put(platform, provider_file_key(target.organization, target.name, target.version, base), sums)
            written.append(sums_key)
            sig_key = await _put(platform, sums_key + ".sig", signature)
            written.append(sig_key)
            replaced = [version.shasums_key, version.signature_key]
            version.shasums_key, version.signature_key = sums_key, sig_key
            session.add(version)
            provider.updated_at = utcnow()
            session.add(provider)
    except BaseException:
        await _delete_blobs(platform, written)
        raise
    await _delete_blobs(platform, replaced)
    return row


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def _file_chunks(path: Path, size: int = 1 << 20) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        while chunk := await asyncio.to_thread(fh.read, size):
            yield chunk


async def _put(platform: Platform, key: str, data: bytes) -> str:
    await platform.blobs.put_bytes(key, data)
    return key


async def _delete_blobs(platform: Platform, keys: Sequence[str | None]) -> None:
    for key in keys:
        if not key:
            continue
        try:
            await platform.blobs.delete(key)
        except Exception:
            log.warning("deleting the provider file %s failed", key, exc_info=True)


# -- the registry protocol -------------------------------------------------------------------


async def _registry_provider(session: Any, organization: str, name: str, lock: bool = False) -> Provider | None:
    query = (
        select(Provider)
        .join(Organization, col(Organization.id) == col(Provider.organization_id))
        .where(Organization.name == organization, Provider.name == name)
    )
    if lock:
        query = query.with_for_update(of=Provider)  # type: ignore[arg-type]
    return (await session.exec(query)).first()



@dataclass(frozen=True)
class ProviderDownload:
    organization_id: uuid.UUID
    found: bool  # False: the provider exists, this version/os/arch does not
    protocols: list[str]
    os: str
    arch: str
    filename: str
    shasum: str
    key_id: str
    ascii_armor: str


@dataclass(frozen=True)
class ProviderAnswer:
    """Everything the registry protocol says of one provider, from one query and no permission
    check yet: terraform's ``versions`` document, and each platform's release with the
    organization's public key. One answer serves ``versions`` and every ``download`` (whatever
    version, os and arch a caller makes up: they cost no query and no cache entry of their own)."""

    organization_id: uuid.UUID
    versions: list[dict[str, Any]]  # highest version first
    releases: dict[tuple[str, str, str], tuple[list[str], str, str]]  # (version, os, arch) → (protocols, file, sha)
    key_id: str
    ascii_armor: str

    def download(self, version: str, os_name: str, arch: str) -> ProviderDownload:
        release = self.releases.get((version, os_name, arch)) if self.key_id else None
        protocols, filename, shasum = release or ([], "", "")
        return ProviderDownload(
            organization_id=self.organization_id, found=release is not None, protocols=list(protocols), os=os_name,
            arch=arch, filename=filename, shasum=shasum, key_id=self.key_id, ascii_armor=self.ascii_armor,
        )


async def provider_answer(platform: Platform, organization: str, name: str) -> ProviderAnswer:
    query = (
        select(Provider.organization_id, ProviderVersion.version, ProviderVersion.protocols, ProviderPlatform.os,
               ProviderPlatform.arch, ProviderPlatform.filename, ProviderPlatform.shasum, SigningKey.key_id,
               SigningKey.ascii_armor)
        .select_from(Provider)
        .join(Organization, col(Organization.id) == col(Provider.organization_id))
        .outerjoin(ProviderVersion, col(ProviderVersion.provider_id) == col(Provider.id))
        .outerjoin(ProviderPlatform, col(ProviderPlatform.provider_version_id) == col(ProviderVersion.id))
        .outerjoin(SigningKey, col(SigningKey.organization_id) == col(Provider.organization_id))
        .where(Organization.name == organization, Provider.name == name)
    )
    async with reading(platform) as session:
        rows = (await session.exec(query)).all()
    if not rows:
        raise NotFound(f"provider {organization}/{name} not found")
    versions: dict[str, dict[str, Any]] = {}
    releases: dict[tuple[str, str, str], tuple[list[str], str, str]] = {}
    for _, version, protocols, os_name, arch, filename, shasum, _, _ in rows:
        if version is None or os_name is None:
            continue
        entry = versions.setdefault(version, {"version": version, "protocols": list(protocols), "platforms": []})
        entry["platforms"].append({"os": os_name, "arch": arch})
        releases[(version, os_name, arch)] = (list(protocols), filename, shasum)
    for entry in versions.values():
        entry["platforms"].sort(key=lambda p: (p["os"], p["arch"]))
    ordered = [versions[v] for v in sorted(versions, key=semver.sort_key, reverse=True)]
    first = rows[0]
    return ProviderAnswer(first[0], ordered, releases, first[7] or "", first[8] or "")


def require_found(found: ProviderDownload, organization: str, name: str, version: str) -> ProviderDownload:
    if not found.found:
        raise NotFound(
            f"provider {organization}/{name} has no version {version[:64]!r} for {found.os[:32]}_{found.arch[:32]}"
        )
    return found


async def open_release_file(
    platform: Platform, organization: str, name: str, version: str, filename: str
) -> tuple[str, AsyncIterator[bytes]]:
    """A release file by its public name (zip, SHA256SUMS, SHA256SUMS.sig), for a URL the caller
    was given already (signed): (media type, chunks)."""
    sums = sums_filename(name, version)
    async with reading(platform) as session:
        provider = await _registry_provider(session, organization, name)
        if provider is None:
            raise NotFound(f"provider {organization}/{name} not found")
        pv = (
            await session.exec(
                select(ProviderVersion).where(ProviderVersion.provider_id == provider.id, ProviderVersion.version == version)
            )
        ).first()
        if pv is None:
            raise NotFound(f"provider {organization}/{name} has no version {version[:64]!r}")
        if filename == sums:
            key, media = pv.shasums_key, "text/plain; charset=utf-8"
        elif filename == sums + ".sig":
            key, media = pv.signature_key, "application/octet-stream"
        else:
            key = (
                await session.exec(
                    select(ProviderPlatform.blob_key).where(
                        ProviderPlatform.provider_version_id == pv.id, ProviderPlatform.filename == filename
                    )
                )
            ).first()
            media = "application/zip"
    if not key:
        raise NotFound(f"no file {filename[:200]!r} in {organization}/{name} {version[:64]}")
    try:
        return media, await platform.blobs.get(key)
    except BlobNotFound:
        raise NotFound(f"the file {filename[:200]!r} is missing from storage") from None
