"""Private modules: an organization publishes a git repository's semver tags as module versions.

A module is ``HOST/{organization}/{name}/{provider}``. Its versions are the repository's tags that
are semantic versions once ``tag_prefix`` and an optional ``v`` are stripped (pre-releases stay
pre-releases, other tags are ignored). Each version's ``folder`` at that tag is packed once into a
``.tar.gz`` kept in blob storage; terraform downloads that archive.

Versions are found when the module is created, on ``refresh_module`` and by the worker's periodic
refresh. A published version is immutable: a tag deleted or moved later does not change it.
Everything that can fail (reading the repository, packing, storing) happens before the database
transaction that records the result, and stored archives are removed again when that transaction
fails, so a refused module or refresh leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlmodel import SQLModel, col, select

from domain import semver
from domain.access import Actor
from domain.effects import Enqueue
from domain.errors import Conflict, NotFound, ValidationFailed
from domain.git import GitTimeout, check_git_source, redact, run_git
from domain.models import Module, ModuleVersion, Organization
from domain.models.types import utcnow
from domain.pagination import Page, PageRequest, paginate_by_name
from domain.principal import Permission
from domain.services import Platform, reading, unit_of_work
from domain.services.lookups import children_by_parent, organization_named, require_reader
from domain.services.orphans import delete_unrecorded
from domain.validation import check_text
from storage import BlobNotFound
from storage.keys import module_archive_key, module_prefix

log = logging.getLogger("terrakube.modules")

# Terraform's own rules for the parts of a module address (terraform-registry-address).
MODULE_NAME_RE = re.compile(r"^[0-9A-Za-z](?:[0-9A-Za-z_-]{0,62}[0-9A-Za-z])?$")
MODULE_PROVIDER_RE = re.compile(r"^[0-9a-z]{1,64}$")
TAG_PREFIX_RE = re.compile(r"^[0-9A-Za-z._/-]{0,64}$")
GIT_TIMEOUT = 300.0
MAX_README_BYTES = 256 * 1024
README_NAMES = ("README.md", "README", "README.markdown", "readme.md", "Readme.md", "README.txt")


class ModuleCreate(SQLModel):
    organization: str
    name: str
    provider: str
    description: str = ""
    source: str
    folder: str = "/"
    tag_prefix: str = ""


class ModuleUpdate(SQLModel):
    """``None`` leaves a field as it is. A new source, folder or tag prefix re-reads the repository
    and replaces every version (the old archives described other code)."""

    description: str | None = None
    source: str | None = None
    folder: str | None = None
    tag_prefix: str | None = None


# -- input rules -------------------------------------------------------------------------------


def _check_source(source: str, allow_file: bool) -> None:
    check_text(source, "source", max_length=2048, required=True)
    check_git_source(source, allow_file=allow_file)


def _check_folder(folder: str) -> None:
    check_text(folder, "folder", max_length=1024)
    parts = folder.strip("/").split("/")
    if ".." in parts or "\\" in folder or any(c in folder for c in "\n\r\t:"):
        raise ValidationFailed("folder", "folder must be a path inside the repository (no '..')")


def _check_tag_prefix(prefix: str) -> None:
    if not TAG_PREFIX_RE.fullmatch(prefix):
        raise ValidationFailed("tagPrefix", "tagPrefix may hold up to 64 letters, digits, '.', '_', '-' and '/'")


def _check_create(data: ModuleCreate, allow_file_sources: bool) -> None:
    if not MODULE_NAME_RE.fullmatch(data.name):
        raise ValidationFailed(
            "name", "a module name is 1 to 64 letters, digits, '-' or '_', starting and ending with a letter or digit"
        )
    if not MODULE_PROVIDER_RE.fullmatch(data.provider):
        raise ValidationFailed(
            "provider", "a module's provider is 1 to 64 lower-case letters or digits (like aws, azurerm, google)"
        )
    check_text(data.description, "description", max_length=1024)
    _check_source(data.source, allow_file_sources)
    _check_folder(data.folder)
    _check_tag_prefix(data.tag_prefix)


def _check_update(data: ModuleUpdate, allow_file_sources: bool) -> None:
    if data.description is not None:
        check_text(data.description, "description", max_length=1024)
    if data.source is not None:
        _check_source(data.source, allow_file_sources)
    if data.folder is not None:
        _check_folder(data.folder)
    if data.tag_prefix is not None:
        _check_tag_prefix(data.tag_prefix)


def normal_folder(folder: str) -> str:
    """Stored as given; used inside the repository without slashes at either end."""
    return folder.strip().strip("/")


# -- git -------------------------------------------------------------------------------------


class SourceUnreadable(ValidationFailed):
    def __init__(self, message: str) -> None:
        super().__init__("source", message)


async def _git(args: Sequence[str], cwd: Path | None, timeout: float) -> tuple[int, bytes, str]:
    try:
        return await run_git(args, cwd, timeout)
    except GitTimeout as exc:
        raise SourceUnreadable(str(exc)) from None


async def remote_tags(source: str, timeout: float = GIT_TIMEOUT) -> dict[str, str]:
    """Tag name → commit id of every tag of the repository (annotated tags peeled)."""
    code, out, err = await _git(["ls-remote", "--tags", "--", source], None, timeout)
    if code != 0:
        detail = redact(err.strip().splitlines()[-1] if err.strip() else f"exit code {code}", source)
        raise SourceUnreadable(f"the git repository cannot be read: {detail}")
    direct: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in out.decode("utf-8", "replace").splitlines():
        sha, _, ref = line.partition("\t")
        if not ref.startswith("refs/tags/"):
            continue
        name = ref[len("refs/tags/"):]
        if name.endswith("^{}"):
            peeled[name[:-3]] = sha
        else:
            direct[name] = sha
    return {name: peeled.get(name, sha) for name, sha in direct.items()}


@dataclass(frozen=True)
class Candidate:
    version: str
    tag: str
    commit: str


def version_candidates(tags: dict[str, str], prefix: str) -> list[Candidate]:
    """The tags that name versions, one per version (by semver precedence), highest first."""
    found: dict[semver.Version, Candidate] = {}
    for tag in sorted(tags):
        version = semver.version_from_tag(tag, prefix)
        if version is None or version in found:
            continue
        found[version] = Candidate(str(version), tag, tags[tag])
    return [found[v] for v in sorted(found, reverse=True)]


@dataclass
class Built:
    candidate: Candidate
    archive: Path
    readme: str | None
    key: str = ""


async def _build(
    source: str, folder: str, candidates: Sequence[Candidate], scratch: Path, timeout: float
) -> tuple[list[Built], list[str]]:
    """Clone once, then pack ``folder`` of each candidate's commit. Returns what was built and
    the tags that were skipped because the folder does not exist there."""
    repo = scratch / "repo.git"
    code, _, err = await _git(["clone", "--quiet", "--bare", "--", source, str(repo)], None, timeout)
    if code != 0:
        detail = redact(err.strip().splitlines()[-1] if err.strip() else f"exit code {code}", source)
        raise SourceUnreadable(f"the git repository cannot be cloned: {detail}")
    built: list[Built] = []
    skipped: list[str] = []
    for n, cand in enumerate(candidates):
        tree = f"{cand.commit}:{folder}"  # "sha:" is the commit's root tree
        code, kind, _ = await _git(["cat-file", "-t", tree], repo, timeout)
        if code != 0 or kind.strip() != b"tree":
            skipped.append(cand.tag)
            continue
        archive = scratch / f"{n}.tar.gz"
        code, _, err = await _git(["archive", "--format=tar.gz", "-o", str(archive), tree], repo, timeout)
        if code != 0:
            raise SourceUnreadable(f"packing tag {cand.tag} failed: {redact(err.strip(), source)[:500]}")
        built.append(Built(cand, archive, await _readme(repo, cand.commit, folder, timeout)))
    return built, skipped


async def _readme(repo: Path, commit: str, folder: str, timeout: float) -> str | None:
    for name in README_NAMES:
        path = f"{folder}/{name}" if folder else name
        code, out, _ = await _git(["cat-file", "blob", f"{commit}:{path}"], repo, timeout)
        if code == 0:
            return out[:MAX_README_BYTES].decode("utf-8", "replace")
    return None


async def _file_chunks(path: Path, size: int = 1 << 20) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        while chunk := await asyncio.to_thread(fh.read, size):
            yield chunk


async def _store(platform: Platform, org: str, module: Module | ModuleCreate, built: list[Built]) -> None:
    """Upload the archives under keys of their own (a concurrent build never overwrites ours)."""
    try:
        for item in built:
            build_id = secrets.token_hex(4)
            item.key = module_archive_key(org, module.name, module.provider, f"{item.candidate.version}.{build_id}")
            await platform.blobs.put(item.key, _file_chunks(item.archive))
    except BaseException:
        await _delete_blobs(platform, [b.key for b in built if b.key])
        raise


async def _delete_blobs(platform: Platform, keys: Sequence[str | None]) -> None:
    for key in keys:
        if not key:
            continue
        try:
            await platform.blobs.delete(key)
        except Exception:
            log.warning("deleting the module archive %s failed", key, exc_info=True)


async def _scan(
    platform: Platform,
    org: str,
    module: Module | ModuleCreate,
    known: set[str],
    *,
    source: str,
    folder: str,
    tag_prefix: str,
    strict_folder: bool,
    timeout: float,
) -> list[Built]:
    """Read the repository and store archives of the versions not in ``known``."""
    check_git_source(source, allow_file=platform.allow_file_sources)  # stored while file:// was allowed?
    tags = await remote_tags(source, timeout)
    candidates = [c for c in version_candidates(tags, tag_prefix) if c.version not in known]
    if not candidates:
        return []
    scratch = Path(tempfile.mkdtemp(prefix="tk-module-"))
    try:
        built, skipped = await _build(source, normal_folder(folder), candidates, scratch, timeout)
        if skipped:
            log.info("module %s/%s/%s: folder %r missing at tags %s", org, module.name, module.provider, folder, skipped)
        if strict_folder and not built:
            raise ValidationFailed("folder", f"the folder {folder!r} does not exist at any version tag of the repository")
        await _store(platform, org, module, built)
        return built
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _version_rows(module_id: uuid.UUID, built: Sequence[Built]) -> list[ModuleVersion]:
    return [
        ModuleVersion(
            module_id=module_id,
            version=b.candidate.version,
            tag=b.candidate.tag,
            commit=b.candidate.commit,
            readme=b.readme,
            archive_key=b.key,
        )
        for b in built
    ]


# -- management (GraphQL) --------------------------------------------------------------------


async def _org_for_management(platform: Platform, actor: Actor, organization: str) -> Organization:
    async with reading(platform) as session:
        org = await organization_named(session, organization)
        if org is None:
            raise NotFound(f"organization {organization!r} not found")
        await actor.require(session, org.id, Permission.manage_module, f"organization {organization!r}")
        return org


async def _find(session: Any, org_id: uuid.UUID, name: str, provider: str) -> Module | None:
    query = select(Module).where(Module.organization_id == org_id, Module.name == name, Module.provider == provider)
    return (await session.exec(query)).first()


async def create_module(platform: Platform, actor: Actor, data: ModuleCreate, *, timeout: float = GIT_TIMEOUT) -> Module:
    _check_create(data, platform.allow_file_sources)
    conflict = f"a module {data.name}/{data.provider} already exists in {data.organization!r}"
    org = await _org_for_management(platform, actor, data.organization)
    async with reading(platform) as session:
        if await _find(session, org.id, data.name, data.provider) is not None:
            raise Conflict(conflict)
    built = await _scan(
        platform, org.name, data, set(), source=data.source, folder=data.folder, tag_prefix=data.tag_prefix,
        strict_folder=True, timeout=timeout,
    )
    try:
        async with unit_of_work(platform, conflict) as session:
            if await _find(session, org.id, data.name, data.provider) is not None:
                raise Conflict(conflict)
            module = Module(
                organization_id=org.id, name=data.name, provider=data.provider, description=data.description,
                source=data.source, folder=data.folder or "/", tag_prefix=data.tag_prefix,
            )
            session.add(module)
            await session.flush()
            session.add_all(_version_rows(module.id, built))
    except BaseException:
        await _delete_blobs(platform, [b.key for b in built])
        raise
    return module


async def _editable(platform: Platform, actor: Actor, module_id: uuid.UUID) -> tuple[Module, Organization]:
    async with reading(platform) as session:
        module = await session.get(Module, module_id)
        if module is None:
            raise NotFound("module not found")
        await actor.require(session, module.organization_id, Permission.manage_module, "module")
        org = await session.get(Organization, module.organization_id)
        assert org is not None
        return module, org


async def update_module(
    platform: Platform, actor: Actor, module_id: uuid.UUID, data: ModuleUpdate, *, timeout: float = GIT_TIMEOUT
) -> Module:
    _check_update(data, platform.allow_file_sources)
    module, org = await _editable(platform, actor, module_id)
    rebuild = any(
        value is not None and value != getattr(module, field)
        for field, value in (("source", data.source), ("folder", data.folder), ("tag_prefix", data.tag_prefix))
    )
    source = data.source if data.source is not None else module.source
    folder = data.folder if data.folder is not None else module.folder
    prefix = data.tag_prefix if data.tag_prefix is not None else module.tag_prefix
    built: list[Built] = []
    if rebuild:
        built = await _scan(
            platform, org.name, module, set(), source=source, folder=folder, tag_prefix=prefix,
            strict_folder=True, timeout=timeout,
        )
    old_keys: list[str | None] = []
    try:
        async with unit_of_work(platform, "the module changed concurrently") as session:
            row = await session.get(Module, module_id, with_for_update=True)
            if row is None:
                raise NotFound("module not found")
            if rebuild:
                old = (await session.exec(select(ModuleVersion).where(ModuleVersion.module_id == row.id))).all()
                old_keys = [v.archive_key for v in old]
                for version in old:
                    await session.delete(version)
                await session.flush()
                session.add_all(_version_rows(row.id, built))
                row.source, row.folder, row.tag_prefix = source, folder or "/", prefix
            if data.description is not None:
                row.description = data.description
            row.updated_at = utcnow()
            session.add(row)
    except BaseException:
        await _delete_blobs(platform, [b.key for b in built])
        raise
    await _delete_blobs(platform, old_keys)
    return row


async def delete_module(platform: Platform, actor: Actor, module_id: uuid.UUID) -> uuid.UUID:
    _, org = await _editable(platform, actor, module_id)
    async with unit_of_work(platform, "the module changed concurrently") as session:
        row = await session.get(Module, module_id, with_for_update=True)
        if row is None:
            raise NotFound("module not found")
        keys = list((await session.exec(select(ModuleVersion.archive_key).where(ModuleVersion.module_id == row.id))).all())
        prefix = module_prefix(org.name, row.name, row.provider)
        await session.delete(row)
    # Archives go after their rows: a failure leaves an orphan (logged, removed by the orphan
    # sweep), never a row without its archive. The prefix also takes what no row named, such
    # as the archives of a build whose recording failed.
    successor = (select(Module.id).join(Organization, col(Organization.id) == col(Module.organization_id))
                 .where(Organization.name == org.name, Module.name == row.name, Module.provider == row.provider))
    await delete_unrecorded(platform, [prefix], keys, successor)
    return module_id


async def refresh_module(
    platform: Platform, actor: Actor, module_id: uuid.UUID, *, timeout: float = GIT_TIMEOUT
) -> Module:
    """Publishes the version tags added to the repository since the last look."""
    await _editable(platform, actor, module_id)
    return await _refresh(platform, module_id, timeout)


async def _refresh(platform: Platform, module_id: uuid.UUID, timeout: float) -> Module:
    async with reading(platform) as session:
        module = await session.get(Module, module_id)
        if module is None:
            raise NotFound("module not found")
        org = await session.get(Organization, module.organization_id)
        assert org is not None
        known = set((await session.exec(select(ModuleVersion.version).where(ModuleVersion.module_id == module.id))).all())
    built = await _scan(
        platform, org.name, module, known, source=module.source, folder=module.folder,
        tag_prefix=module.tag_prefix, strict_folder=False, timeout=timeout,
    )
    unused: list[str] = []
    try:
        async with unit_of_work(platform, "the module was refreshed concurrently") as session:
            row = await session.get(Module, module_id, with_for_update=True)
            if row is None:
                raise NotFound("module not found")
            # Under the row lock: versions a concurrent refresh recorded meanwhile are not added twice.
            present = set(
                (await session.exec(select(ModuleVersion.version).where(ModuleVersion.module_id == row.id))).all()
            )
            fresh = [b for b in built if b.candidate.version not in present]
            unused = [b.key for b in built if b.candidate.version in present]
            session.add_all(_version_rows(row.id, fresh))
            row.updated_at = utcnow()
            session.add(row)
    except BaseException:
        await _delete_blobs(platform, [b.key for b in built])
        raise
    await _delete_blobs(platform, unused)
    return row


# -- periodic refresh (worker) ----------------------------------------------------------------


def refresh_effect(module_id: uuid.UUID, claimed_at: str) -> Enqueue:
    return Enqueue("refresh_module", (str(module_id),), f"refresh-module:{module_id}:{claimed_at}")


async def due_refreshes(platform: Platform, every: timedelta, limit: int = 50) -> list[Enqueue]:
    """Claims modules not looked at for ``every`` and asks a worker to refresh each.

    ``updated_at`` is the time of the last change or look; claiming bumps it with an UPDATE
    guarded by its old value, so of two workers racing exactly one refreshes a module, and a
    repository that cannot be read is retried after ``every`` again, not at every sweep.
    """
    if every.total_seconds() <= 0:
        return []
    now = utcnow()
    async with reading(platform) as session:
        due = (
            await session.exec(
                select(Module.id, Module.updated_at)
                .where(col(Module.updated_at) <= now - every)
                .order_by(col(Module.updated_at))
                .limit(limit)
            )
        ).all()
    todo: list[Enqueue] = []
    for module_id, seen in due:
        async with platform.db.transaction() as session:
            claimed = await session.exec(  # type: ignore[call-overload]
                update(Module)
                .where(col(Module.id) == module_id, col(Module.updated_at) == seen)
                .values(updated_at=now)
            )
        if claimed.rowcount == 1:
            todo.append(refresh_effect(module_id, str(int(now.timestamp()))))
    return todo


async def refresh_module_by_worker(platform: Platform, module_id: uuid.UUID, timeout: float = GIT_TIMEOUT) -> int:
    """The periodic refresh of one module; returns how many versions it added."""
    async with reading(platform) as session:
        before = len((await session.exec(select(ModuleVersion.id).where(ModuleVersion.module_id == module_id))).all())
    try:
        await _refresh(platform, module_id, timeout)
    except NotFound:
        return 0  # deleted meanwhile
    except (ValidationFailed, Conflict) as exc:
        log.warning("refreshing module %s failed: %s", module_id, exc.message)
        return 0
    async with reading(platform) as session:
        after = len((await session.exec(select(ModuleVersion.id).where(ModuleVersion.module_id == module_id))).all())
    return after - before


# -- reading (GraphQL) -----------------------------------------------------------------------


async def get_module(platform: Platform, actor: Actor, organization: str, name: str, provider: str) -> Module | None:
    """``None`` both when it does not exist and when the caller may not see its organization."""
    async with reading(platform) as session:
        found = await _registry_module(session, organization, name, provider)
        if found is None or not (await actor.access(session, found.organization_id)).visible:
            return None
        return found


async def list_modules(platform: Platform, org_id: uuid.UUID, page: PageRequest) -> Page[Module]:
    """For an organization the caller was already allowed to see; by name (then provider)."""
    async with reading(platform) as session:
        return await paginate_by_name(
            session, select(Module).where(Module.organization_id == org_id), Module.name, Module.id, page
        )


async def versions_by_module(platform: Platform, module_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[ModuleVersion]]:
    """Batch load, newest version (by semver precedence) first."""
    grouped = await children_by_parent(platform, ModuleVersion, ModuleVersion.module_id, module_ids)
    for rows in grouped.values():
        rows.sort(key=lambda v: semver.sort_key(v.version), reverse=True)
    return grouped


def latest_version(versions: Sequence[ModuleVersion]) -> str | None:
    return semver.latest([v.version for v in versions])


# -- the registry protocol -------------------------------------------------------------------


async def _registry_module(session: Any, organization: str, name: str, provider: str) -> Module | None:
    query = (
        select(Module)
        .join(Organization, col(Organization.id) == col(Module.organization_id))
        .where(Organization.name == organization, Module.name == name, Module.provider == provider)
    )
    return (await session.exec(query)).first()


@dataclass(frozen=True)
class ModuleIndex:
    """What the registry protocol needs of a module: one query, no permission check yet."""

    module_id: uuid.UUID
    organization_id: uuid.UUID
    versions: tuple[str, ...]  # highest first


async def module_index(platform: Platform, organization: str, name: str, provider: str) -> ModuleIndex:
    query = (
        select(Module.id, Module.organization_id, ModuleVersion.version)
        .select_from(Module)
        .join(Organization, col(Organization.id) == col(Module.organization_id))
        .outerjoin(ModuleVersion, col(ModuleVersion.module_id) == col(Module.id))
        .where(Organization.name == organization, Module.name == name, Module.provider == provider)
    )
    async with reading(platform) as session:
        rows = (await session.exec(query)).all()
    if not rows:
        raise NotFound(f"module {organization}/{name}/{provider} not found")
    versions = sorted((r[2] for r in rows if r[2] is not None), key=semver.sort_key, reverse=True)
    return ModuleIndex(rows[0][0], rows[0][1], tuple(versions))


@dataclass(frozen=True)
class Download:
    module_id: uuid.UUID
    organization_id: uuid.UUID
    version: str
    archive_key: str


async def version_download(
    platform: Platform, organization: str, name: str, provider: str, version: str
) -> Download:
    """The archive of one version (no permission check yet): one query. ``version`` is empty
    when the module exists but that version does not."""
    query = (
        select(Module.id, Module.organization_id, ModuleVersion.version, ModuleVersion.archive_key)
        .select_from(Module)
        .join(Organization, col(Organization.id) == col(Module.organization_id))
        .outerjoin(
            ModuleVersion, (col(ModuleVersion.module_id) == col(Module.id)) & (col(ModuleVersion.version) == version)
        )
        .where(Organization.name == organization, Module.name == name, Module.provider == provider)
    )
    async with reading(platform) as session:
        row = (await session.exec(query)).first()
    if row is None:
        raise NotFound(f"module {organization}/{name}/{provider} not found")
    return Download(row[0], row[1], row[2] or "", row[3] or "")



async def registry_versions(platform: Platform, actor: Actor, organization: str, name: str, provider: str) -> list[str]:
    index = await module_index(platform, organization, name, provider)
    await require_reader(platform, actor, index.organization_id, f"module {organization}/{name}/{provider}")
    return list(index.versions)


async def registry_download(
    platform: Platform, actor: Actor | None, organization: str, name: str, provider: str, version: str
) -> Download:
    """``actor=None``: the caller holds a signed URL the platform issued, which is the permission."""
    found = await version_download(platform, organization, name, provider, version)
    if actor is not None:
        await require_reader(platform, actor, found.organization_id, f"module {organization}/{name}/{provider}")
    if not found.version or not found.archive_key:
        raise NotFound(f"module {organization}/{name}/{provider} has no version {version[:64]!r}")
    return found


async def open_archive(platform: Platform, key: str) -> AsyncIterator[bytes]:
    try:
        return await platform.blobs.get(key)
    except BlobNotFound:
        raise NotFound("the module archive is missing from storage") from None


class DownloadCounter:
    """Counts downloads in memory and adds them to ``module.download_count`` in batches.

    A download is the hot path of ``terraform init``; one UPDATE per download would serialize
    every download of a module on its row (and every download at all on SQLite). Each process
    adds its own deltas (``count = count + n``), so any number of API replicas count correctly.
    """

    def __init__(self) -> None:
        self.pending: dict[uuid.UUID, int] = {}

    def record(self, module_id: uuid.UUID) -> None:
        self.pending[module_id] = self.pending.get(module_id, 0) + 1

    async def flush(self, platform: Platform) -> int:
        batch, self.pending = self.pending, {}
        if not batch:
            return 0
        try:
            async with platform.db.transaction() as session:
                for module_id, n in sorted(batch.items()):
                    await session.exec(  # type: ignore[call-overload]
                        update(Module)
                        .where(col(Module.id) == module_id)
                        .values(download_count=col(Module.download_count) + n)
                    )
        except Exception:
            for module_id, n in batch.items():  # try again with the next flush
                self.pending[module_id] = self.pending.get(module_id, 0) + n
            raise
        return sum(batch.values())
