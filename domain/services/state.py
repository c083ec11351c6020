"""Terraform state: immutable versions (blob in storage, row in the database), the output
history extracted from each version, and the http backend's lock.

Rules (DESIGN.md §3 State): the lineage of a workspace never changes; the serial grows (an equal
serial is accepted only with identical content, and then nothing new is recorded); a rollback is
a new version. A state's bytes are streamed to storage first and recorded second, so a row always
names a complete blob; a blob whose row could not be written is deleted again.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ijson
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.access import Actor
from domain.errors import Conflict, DomainError, NotFound, TooLarge, ValidationFailed
from domain.models import Organization, StateLock, StateOutput, StateVersion, Workspace
from domain.models.types import new_id, utcnow
from domain.pagination import MAX_PAGE, Page, PageRequest, decode_cursor, encode_cursor
from domain.principal import Permission
from domain.services import Platform, reading, unit_of_work
from domain.services.lookups import children_by_parent
from storage import BlobNotFound
from storage.keys import state_key

log = logging.getLogger("terrakube.state")

MAX_STATE_BYTES = 512 * 1024 * 1024
# A state up to this size is parsed from the copy kept while streaming it to storage; a larger
# one is read back from storage, so it is never held whole in memory twice.
INLINE_PARSE_BYTES = 8 * 1024 * 1024
# Where a rollback looks for the top-level "serial" to rewrite it without parsing the state.
SERIAL_SCAN_BYTES = 1024 * 1024
STATE_FORMAT_VERSION = 4
LOCK_FIELDS = ("ID", "Operation", "Info", "Who", "Version", "Created", "Path")
MAX_LOCK_FIELD = 1024


# -- errors ----------------------------------------------------------------------------------


class StateLocked(Conflict):
    """Someone else holds the state lock; ``lock`` is its info in Terraform's format."""

    def __init__(self, lock: dict[str, Any], message: str | None = None) -> None:
        who = lock.get("Who") or "someone"
        super().__init__(message or f"the state is locked by {who} (lock ID {lock.get('ID')!r})")
        self.lock = lock


class StateTooLarge(TooLarge):
    def __init__(self, limit: int) -> None:
        super().__init__("state", f"the state is larger than the limit of {limit} bytes")
        self.limit = limit


class StateStorageFailed(Exception):
    """Blob storage failed (not the caller's fault); nothing was recorded."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StateCorrupted(Exception):
    """A stored state does not match the size or checksum recorded for it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- writing ---------------------------------------------------------------------------------


@dataclass
class _Stored:
    key: str
    size: int
    sha256: str
    md5: str
    inline: bytearray | None  # the bytes, when small enough to keep while streaming


@dataclass(frozen=True)
class _Output:
    name: str
    type: Any
    value: str  # JSON text, ciphertext when sensitive
    sensitive: bool


async def write_state(
    platform: Platform,
    actor: Actor,
    org_name: str,
    workspace_name: str,
    body: AsyncIterable[bytes],
    lock_id: str | None = None,
    *,
    size_hint: int | None = None,
    max_bytes: int = MAX_STATE_BYTES,
) -> StateVersion:
    """Store a state terraform wrote and record it as the workspace's new version.

    ``lock_id`` is the lock terraform holds (the http backend's ``ID`` query parameter);
    ``size_hint`` (a Content-Length) lets an oversized state be refused before it is read.
    Returns the new version, or the current one when the same serial arrives with the same bytes.
    """
    async with reading(platform) as session:
        org, ws = await _state_workspace(session, actor, org_name, workspace_name)
        _check_lock(await session.get(StateLock, ws.id), lock_id)
    if size_hint is not None and size_hint > max_bytes:
        raise StateTooLarge(max_bytes)
    version_id = new_id()
    stored = await _store(platform, state_key(org.name, ws.name, version_id), body, max_bytes, INLINE_PARSE_BYTES)
    try:
        document = await _parse(platform, stored)
        serial, lineage = _header(document)
        outputs = _extract_outputs(platform, document)
        del document
        version, created = await _record(
            platform, actor, ws.id, version_id, stored, serial, lineage, outputs, lock_id
        )
    except BaseException:
        await _discard_unrecorded(platform, version_id, stored.key)
        raise
    if not created:
        await _delete_blob(platform, stored.key)
    return version


async def _store(
    platform: Platform, key: str, body: AsyncIterable[bytes], max_bytes: int, inline_limit: int
) -> _Stored:
    """Stream ``body`` to ``key``, hashing and counting it; refuse more than ``max_bytes``."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    state: dict[str, Any] = {"size": 0, "inline": bytearray(), "source_error": None}

    async def counted() -> AsyncIterator[bytes]:
        try:
            async for chunk in body:
                if not chunk:
                    continue
                state["size"] += len(chunk)
                if state["size"] > max_bytes:
                    raise StateTooLarge(max_bytes)
                sha.update(chunk)
                md5.update(chunk)
                if state["inline"] is not None:
                    if state["size"] <= inline_limit:
                        state["inline"] += chunk
                    else:
                        state["inline"] = None
                yield bytes(chunk)
        except DomainError:
            raise
        except Exception as exc:  # the sender failed (e.g. the client went away), not storage
            state["source_error"] = exc
            raise

    try:
        info = await platform.blobs.put(key, counted())
    except DomainError:
        await _delete_blob(platform, key)
        raise
    except Exception as exc:
        await _delete_blob(platform, key)
        if state["source_error"] is not None:
            raise state["source_error"] from None
        log.warning("storing state %s failed: %s", key, exc)
        raise StateStorageFailed(f"the state could not be stored: {exc}") from exc
    stored = _Stored(key, state["size"], sha.hexdigest(), md5.hexdigest(), state["inline"])
    if info.size != stored.size or (info.sha256 is not None and info.sha256 != stored.sha256):
        await _delete_blob(platform, key)
        raise StateStorageFailed("the storage backend recorded other bytes than were sent")
    return stored


async def _parse(platform: Platform, stored: _Stored) -> Any:
    if stored.inline is None:
        return await _parse_streaming(platform, stored.key)
    raw: bytes | bytearray = stored.inline
    stored.inline = None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ValidationFailed("state", f"the state is not valid JSON: {str(exc)[:200]}") from None


# Of a large state only these top-level members are kept while it streams by: memory stays
# bounded by the outputs, not by the resources (which can be hundreds of MB).
_KEPT = frozenset({"version", "serial", "lineage"})


async def _parse_streaming(platform: Platform, key: str) -> dict[str, Any]:
    try:
        chunks = await platform.blobs.get(key)
    except Exception as exc:
        raise StateStorageFailed(f"the stored state could not be read back: {exc}") from exc
    picker = _Picker()
    # ijson's push parser: we read the chunks ourselves (any storage backend's stream) and
    # hand them over, so the parser never sees the I/O.
    events = ijson.sendable_list()
    parser = ijson.parse_coro(events, use_float=True)
    try:
        try:
            async for chunk in chunks:
                parser.send(bytes(chunk))
                picker.take(events)
                if picker.complete:
                    # Terraform writes the header and the outputs before the resources: once we
                    # have them, the (possibly huge) rest is stored as sent, never parsed.
                    await _close(chunks)
                    return picker.document
            parser.close()
        except ijson.JSONError as exc:
            raise ValidationFailed("state", f"the state is not valid JSON: {str(exc)[:200]}") from None
        picker.take(events)
    except (StateStorageFailed, ValidationFailed):
        raise
    except Exception as exc:
        raise StateStorageFailed(f"the stored state could not be read back: {exc}") from exc
    return picker.document


async def _close(chunks: Any) -> None:
    closer = getattr(chunks, "aclose", None)
    if closer is not None:
        await closer()


class _Picker:
    """Keeps the header and the outputs of a state's parse events, drops everything else."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {}
        self._outputs: ijson.ObjectBuilder | None = None
        self._after_outputs = False

    @property
    def complete(self) -> bool:
        """Header and outputs seen, and the parser has moved on to the next top-level member."""
        return self._after_outputs and _KEPT <= self.document.keys()

    def take(self, events: list[tuple[str, str, Any]]) -> None:
        for prefix, event, value in events:
            if self._outputs is not None:
                self._outputs.event(event, value)
                if prefix == "outputs" and event in ("end_map", "end_array"):
                    self.document["outputs"], self._outputs = self._outputs.value, None
            elif prefix == "outputs" and event in ("start_map", "start_array"):
                self._outputs = ijson.ObjectBuilder()
                self._outputs.event(event, value)
            elif prefix in _KEPT and event not in ("start_map", "start_array", "map_key"):
                self.document[prefix] = value
            elif prefix == "" and event not in ("start_map", "end_map", "map_key"):
                raise ValidationFailed("state", "the state must be a JSON object")
            elif prefix == "" and event == "map_key" and "outputs" in self.document:
                self._after_outputs = True
                break
        del events[:]


def _header(document: Any) -> tuple[int, str]:
    if not isinstance(document, dict):
        raise ValidationFailed("state", "the state must be a JSON object")
    version = document.get("version")
    if version != STATE_FORMAT_VERSION or isinstance(version, bool):
        raise ValidationFailed(
            "version", f"only state format version {STATE_FORMAT_VERSION} is accepted (got {version!r})"
        )
    serial = document.get("serial")
    if not isinstance(serial, int) or isinstance(serial, bool) or not 0 <= serial < 2**63:
        raise ValidationFailed("serial", "the state's serial must be a non-negative integer")
    lineage = document.get("lineage")
    if not isinstance(lineage, str) or not 0 < len(lineage) <= 64:
        raise ValidationFailed("lineage", "the state's lineage must be a string of 1 to 64 characters")
    return serial, lineage


def _extract_outputs(platform: Platform, document: dict[str, Any]) -> list[_Output]:
    outputs = document.get("outputs") or {}
    if not isinstance(outputs, dict):
        raise ValidationFailed("outputs", "the state's outputs must be a JSON object")
    found = []
    for name, output in outputs.items():
        if not isinstance(output, dict) or "value" not in output:
            raise ValidationFailed("outputs", f"output {name[:100]!r} has no value")
        if len(name) > 255:
            raise ValidationFailed("outputs", f"output name {name[:100]!r}... is longer than 255 characters")
        sensitive = output.get("sensitive") is True
        text = json.dumps(output["value"], separators=(",", ":"), ensure_ascii=False)
        found.append(
            _Output(
                name=name,
                type=output.get("type"),
                value=platform.box.encrypt(text) if sensitive else text,
                sensitive=sensitive,
            )
        )
    return found


async def _record(
    platform: Platform,
    actor: Actor,
    workspace_id: uuid.UUID,
    version_id: uuid.UUID,
    stored: _Stored,
    serial: int,
    lineage: str,
    outputs: Sequence[_Output],
    lock_id: str | None,
    *,
    rollback_of: int | None = None,
) -> tuple[StateVersion, bool]:
    """Check the rules against the current version and insert; (version, created)."""
    async with unit_of_work(platform, f"a state with serial {serial} was written concurrently") as session:
        ws = await session.get(Workspace, workspace_id, with_for_update=True)
        if ws is None:
            raise NotFound("workspace not found")
        await actor.require_in_workspace(session, ws.organization_id, ws.id, Permission.manage_state, "workspace")
        _check_lock(await session.get(StateLock, ws.id), lock_id)
        current = await _current(session, ws.id)
        if current is not None:
            if rollback_of is not None and current.serial != rollback_of:
                raise Conflict("the state changed while it was being rolled back; try again")
            if lineage != current.lineage:
                raise Conflict(
                    f"the state's lineage {lineage!r} differs from the workspace's lineage {current.lineage!r}"
                )
            if serial < current.serial:
                raise Conflict(f"the state's serial {serial} is older than the current serial {current.serial}")
            if serial == current.serial:
                if stored.sha256 == current.sha256:
                    return current, False
                raise Conflict(
                    f"a different state with serial {serial} already exists; a changed state needs a higher serial"
                )
        job = actor.principal.job
        version = StateVersion(
            id=version_id,
            workspace_id=ws.id,
            serial=serial,
            lineage=lineage,
            sha256=stored.sha256,
            md5=stored.md5,
            size=stored.size,
            blob_key=stored.key,
            job_id=uuid.UUID(job.job_id) if job is not None else None,
            created_by=actor.name[:255],
        )
        session.add(version)
        await session.flush()
        session.add_all(
            StateOutput(state_version_id=version.id, name=o.name, type=o.type, value=o.value, sensitive=o.sensitive)
            for o in outputs
        )
    return version, True


async def _discard_unrecorded(platform: Platform, version_id: uuid.UUID, key: str) -> None:
    """After a failed write: delete the blob unless a row names it (a commit may have raced a
    cancellation). When that cannot be told, the blob is kept: an orphan beats a dangling row."""

    async def discard() -> None:
        try:
            async with reading(platform) as session:
                if await session.get(StateVersion, version_id) is not None:
                    return
        except Exception as exc:
            log.warning("cannot tell whether state %s was recorded; keeping its blob: %s", key, exc)
            return
        await _delete_blob(platform, key)

    # Shielded: it must also run when the request is being cancelled.
    with suppress(Exception):
        await asyncio.shield(discard())


async def _delete_blob(platform: Platform, key: str) -> None:
    try:
        await asyncio.shield(platform.blobs.delete(key))
    except Exception as exc:
        log.warning("could not delete state blob %s: %s", key, exc)


# -- reading ---------------------------------------------------------------------------------


async def read_current_state(
    platform: Platform, actor: Actor, org_name: str, workspace_name: str
) -> tuple[StateVersion, AsyncIterator[bytes]] | None:
    """The current state, streamed and verified against its checksum; None when there is none."""
    async with reading(platform) as session:
        _, ws = await _state_workspace(session, actor, org_name, workspace_name)
        current = await _current(session, ws.id)
    if current is None:
        return None
    return current, await open_state(platform, current)


async def read_state_version(
    platform: Platform, actor: Actor, org_name: str, workspace_name: str, state_version_id: uuid.UUID
) -> tuple[StateVersion, AsyncIterator[bytes]]:
    """One version of the workspace's state (its download), streamed and verified."""
    async with reading(platform) as session:
        _, ws = await _state_workspace(session, actor, org_name, workspace_name)
        version = await session.get(StateVersion, state_version_id)
    if version is None or version.workspace_id != ws.id:
        raise NotFound("state version not found")
    return version, await open_state(platform, version)


async def open_state(platform: Platform, version: StateVersion) -> AsyncIterator[bytes]:
    """The version's bytes; raises ``StateCorrupted`` at the end when they are not the recorded ones
    (the last chunk is held back until then, so a reader never gets a complete corrupt state)."""
    try:
        chunks = await platform.blobs.get(version.blob_key)
    except BlobNotFound:
        raise StateCorrupted(f"the stored state of version {version.id} (serial {version.serial}) is missing") from None
    except Exception as exc:
        raise StateStorageFailed(f"the state could not be read: {exc}") from exc
    return _verified(chunks, version)


async def _verified(chunks: AsyncIterator[bytes], version: StateVersion) -> AsyncIterator[bytes]:
    sha = hashlib.sha256()
    size = 0
    held: bytes | None = None
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > version.size:
                raise StateCorrupted(f"the stored state of version {version.id} is larger than recorded")
            sha.update(chunk)
            if held is not None:
                yield held
            held = chunk
        if size != version.size or sha.hexdigest() != version.sha256:
            raise StateCorrupted(f"the stored state of version {version.id} does not match its checksum")
        if held is not None:
            yield held
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            with suppress(Exception):
                await close()


def content_md5(version: StateVersion) -> str:
    """The ``Content-MD5`` header value (base64 of the digest) terraform checks downloads with."""
    return base64.b64encode(bytes.fromhex(version.md5)).decode()


# -- locking ---------------------------------------------------------------------------------


def lock_info(lock: StateLock) -> dict[str, Any]:
    """The lock in Terraform's ``LockInfo`` JSON format."""
    info = {k: str(lock.info.get(k) or "") for k in LOCK_FIELDS}
    info["ID"] = lock.lock_id
    info["Who"] = info["Who"] or lock.holder
    info["Created"] = info["Created"] or _rfc3339(lock.created_at)
    return info


async def lock_state(
    platform: Platform, actor: Actor, org_name: str, workspace_name: str, info: dict[str, Any]
) -> StateLock:
    """Take the state lock; ``StateLocked`` (with the holder's info) when someone has it.
    Locking again with the id already held succeeds, so a retried request is harmless."""
    lock_id = info.get("ID") if isinstance(info, dict) else None
    if not isinstance(lock_id, str) or not lock_id.strip() or len(lock_id) > 255:
        raise ValidationFailed("ID", "the lock info needs an ID of 1 to 255 characters")
    now = utcnow()
    clean = {k: str(info.get(k) or "")[:MAX_LOCK_FIELD] for k in LOCK_FIELDS}
    clean["Who"] = clean["Who"] or actor.name
    clean["Created"] = clean["Created"] or _rfc3339(now)
    workspace_id: uuid.UUID | None = None
    try:
        async with unit_of_work(platform, "the state was locked concurrently") as session:
            _, ws = await _state_workspace(session, actor, org_name, workspace_name, for_update=True)
            workspace_id = ws.id
            held = await session.get(StateLock, ws.id)
            if held is not None:
                if held.lock_id == lock_id:
                    return held
                raise StateLocked(lock_info(held))
            lock = StateLock(workspace_id=ws.id, lock_id=lock_id, info=clean, holder=actor.name[:255], created_at=now)
            session.add(lock)
    except StateLocked:
        raise
    except Conflict:
        # Lost a race for the lock row: report the winner.
        winner = await _lock_of(platform, workspace_id) if workspace_id else None
        if winner is None or winner.lock_id == lock_id:
            raise
        raise StateLocked(lock_info(winner)) from None
    return lock


async def unlock_state(
    platform: Platform, actor: Actor, org_name: str, workspace_name: str, lock_id: str | None
) -> None:
    """Release the lock ``lock_id``; no lock is fine (terraform expects that). ``lock_id=None``
    releases any lock: terraform's ``force-unlock`` sends no lock info over the http backend."""
    async with unit_of_work(platform, "the state lock changed concurrently") as session:
        _, ws = await _state_workspace(session, actor, org_name, workspace_name, for_update=True)
        held = await session.get(StateLock, ws.id)
        if held is None:
            return
        if lock_id is not None and held.lock_id != lock_id:
            info = lock_info(held)
            raise StateLocked(info, f"the state is locked with another lock ID ({held.lock_id!r}) by {info['Who']}")
        await session.delete(held)


async def force_unlock_state(platform: Platform, actor: Actor, workspace_id: uuid.UUID) -> Workspace:
    """Release the state lock whoever holds it (workspace managers: manageState)."""
    async with unit_of_work(platform, "the state lock changed concurrently") as session:
        ws = await session.get(Workspace, workspace_id, with_for_update=True)
        if ws is None:
            raise NotFound("workspace not found")
        await actor.require_in_workspace(session, ws.organization_id, ws.id, Permission.manage_state, "workspace")
        held = await session.get(StateLock, ws.id)
        if held is not None:
            log.info("state lock %s of workspace %s force-released by %s", held.lock_id, ws.id, actor.name)
            await session.delete(held)
    return ws


async def _lock_of(platform: Platform, workspace_id: uuid.UUID) -> StateLock | None:
    async with reading(platform) as session:
        return await session.get(StateLock, workspace_id)


def _check_lock(lock: StateLock | None, lock_id: str | None) -> None:
    if lock is not None and lock.lock_id != lock_id:
        raise StateLocked(lock_info(lock))


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# -- rollback --------------------------------------------------------------------------------


async def rollback_state(platform: Platform, actor: Actor, state_version_id: uuid.UUID) -> StateVersion:
    """A new current version with the content of ``state_version_id`` and the next serial."""
    async with reading(platform) as session:
        target = await session.get(StateVersion, state_version_id)
        if target is None:
            raise NotFound("state version not found")
        ws = await session.get(Workspace, target.workspace_id)
        org = await session.get(Organization, ws.organization_id) if ws else None
        if ws is None or org is None:
            raise NotFound("state version not found")
        await actor.require_in_workspace(session, ws.organization_id, ws.id, Permission.manage_state, "state version")
        _check_lock(await session.get(StateLock, ws.id), None)
        current = await _current(session, ws.id)
        outputs = (
            await session.exec(select(StateOutput).where(StateOutput.state_version_id == target.id))
        ).all()
    assert current is not None  # the target itself is a version of this workspace
    if target.lineage != current.lineage:
        raise Conflict("the state version belongs to another lineage than the workspace's current state")
    serial = current.serial + 1
    version_id = new_id()
    body = await _with_serial(platform, target, serial)
    stored = await _store(platform, state_key(org.name, ws.name, version_id), body, 2**63, 0)
    try:
        copied = [_Output(o.name, o.type, o.value, o.sensitive) for o in outputs]
        version, _ = await _record(
            platform, actor, ws.id, version_id, stored, serial, current.lineage, copied, None,
            rollback_of=current.serial,
        )
    except BaseException:
        await _discard_unrecorded(platform, version_id, stored.key)
        raise
    log.info("workspace %s rolled back to serial %s as serial %s by %s", ws.id, target.serial, serial, actor.name)
    return version


async def _with_serial(platform: Platform, version: StateVersion, serial: int) -> AsyncIterator[bytes]:
    """The version's bytes with the top-level ``serial`` replaced, streamed. Terraform writes
    the serial near the top, so only a small prefix is inspected; otherwise the state is parsed."""
    chunks = await open_state(platform, version)
    prefix = bytearray()
    span = None
    async for chunk in chunks:
        prefix += chunk
        span = _find_serial(prefix)
        if span is not None or len(prefix) >= SERIAL_SCAN_BYTES:
            break
    if span is not None and span != (-1, -1):
        start, end = span
        head = bytes(prefix[:start]) + str(serial).encode() + bytes(prefix[end:])
        del prefix

        async def rewritten() -> AsyncIterator[bytes]:
            yield head
            async for rest in chunks:
                yield rest

        return rewritten()
    with suppress(Exception):
        await chunks.aclose()  # type: ignore[attr-defined]
    del prefix
    return _reencoded(platform, version, serial)


async def _reencoded(platform: Platform, version: StateVersion, serial: int) -> AsyncIterator[bytes]:
    try:
        raw = await platform.blobs.read_bytes(version.blob_key)
    except Exception as exc:
        raise StateStorageFailed(f"the state could not be read: {exc}") from exc
    if len(raw) != version.size or hashlib.sha256(raw).hexdigest() != version.sha256:
        raise StateCorrupted(f"the stored state of version {version.id} does not match its checksum")
    document = json.loads(raw)
    del raw
    document["serial"] = serial
    buffer: list[str] = []
    pending = 0
    for piece in json.JSONEncoder(indent=2, ensure_ascii=False).iterencode(document):
        buffer.append(piece)
        pending += len(piece)
        if pending >= 1 << 16:
            yield "".join(buffer).encode()
            buffer, pending = [], 0
    yield ("".join(buffer) + "\n").encode()


_WS = b" \t\r\n"


def _find_serial(buf: bytes | bytearray) -> tuple[int, int] | None:
    """(start, end) of the number of the top-level "serial" key; None when more bytes are
    needed; (-1, -1) when the top-level object has no plain "serial" key."""
    n = len(buf)
    i = 0
    while i < n and buf[i] in _WS:
        i += 1
    if i >= n:
        return None
    if buf[i] != ord("{"):
        return (-1, -1)
    depth = 0
    expect_key = False
    while i < n:
        c = buf[i]
        if c == ord('"'):
            j = i + 1
            while j < n and buf[j] != ord('"'):
                j += 2 if buf[j] == ord("\\") else 1
            if j >= n:
                return None
            if depth == 1 and expect_key:
                expect_key = False
                if buf[i + 1 : j] == b"serial":
                    k = j + 1
                    while k < n and buf[k] in _WS:
                        k += 1
                    if k >= n:
                        return None
                    if buf[k] != ord(":"):
                        return (-1, -1)
                    k += 1
                    while k < n and buf[k] in _WS:
                        k += 1
                    start = k
                    while k < n and chr(buf[k]).isdigit():
                        k += 1
                    if k >= n:
                        return None
                    return (start, k) if k > start else (-1, -1)
            i = j + 1
            continue
        if c in (ord("{"), ord("[")):
            depth += 1
            expect_key = depth == 1
        elif c in (ord("}"), ord("]")):
            depth -= 1
            if depth == 0:
                return (-1, -1)
        elif c == ord(",") and depth == 1:
            expect_key = True
        i += 1
    return None


# -- queries for already-authorized parents --------------------------------------------------


async def current_state_version(platform: Platform, workspace_id: uuid.UUID) -> StateVersion | None:
    async with reading(platform) as session:
        return await _current(session, workspace_id)


async def current_versions_by_workspace(
    platform: Platform, workspace_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, StateVersion | None]:
    """The current version of each workspace, in one statement."""
    latest = (
        select(StateVersion.workspace_id, func.max(StateVersion.serial).label("serial"))
        .where(col(StateVersion.workspace_id).in_(list(workspace_ids)))
        .group_by(StateVersion.workspace_id)
        .subquery()
    )
    query = select(StateVersion).join(
        latest,
        (StateVersion.workspace_id == latest.c.workspace_id) & (StateVersion.serial == latest.c.serial),
    )
    found: dict[uuid.UUID, StateVersion | None] = dict.fromkeys(workspace_ids)
    async with reading(platform) as session:
        for row in (await session.exec(query)).all():
            found[row.workspace_id] = row
    return found


async def locks_by_workspace(
    platform: Platform, workspace_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, StateLock | None]:
    found: dict[uuid.UUID, StateLock | None] = dict.fromkeys(workspace_ids)
    async with reading(platform) as session:
        rows = (await session.exec(select(StateLock).where(col(StateLock.workspace_id).in_(list(workspace_ids))))).all()
    for row in rows:
        found[row.workspace_id] = row
    return found


async def list_state_versions(platform: Platform, workspace_id: uuid.UUID, page: PageRequest) -> Page[StateVersion]:
    """Newest (highest serial) first."""
    query = select(StateVersion).where(StateVersion.workspace_id == workspace_id)
    if page.after is not None:
        serial, _ = decode_cursor(page.after)
        if not isinstance(serial, int) or isinstance(serial, bool):
            raise ValidationFailed("after", "after is not a cursor this API returned")
        query = query.where(StateVersion.serial < serial)
    query = query.order_by(col(StateVersion.serial).desc()).limit(page.first + 1)
    async with reading(platform) as session:
        rows = list((await session.exec(query)).all())
    has_next = len(rows) > page.first
    rows = rows[: page.first]
    cursors = [encode_cursor(r.serial, r.id) for r in rows]
    return Page(rows, cursors, has_next_page=has_next, has_previous_page=page.after is not None)


async def outputs_by_version(
    platform: Platform, version_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[StateOutput]]:
    return await children_by_parent(
        platform, StateOutput, StateOutput.state_version_id, version_ids, StateOutput.name
    )


async def output_history(
    platform: Platform, workspace_id: uuid.UUID, name: str, limit: int = MAX_PAGE
) -> list[tuple[StateVersion, StateOutput]]:
    """The output ``name`` in each version that has it, newest first (at most ``limit``)."""
    if not 0 <= limit <= MAX_PAGE:
        raise ValidationFailed("first", f"first must be between 0 and {MAX_PAGE}")
    query = (
        select(StateVersion, StateOutput)
        .join(StateOutput, StateOutput.state_version_id == StateVersion.id)  # type: ignore[arg-type]
        .where(StateVersion.workspace_id == workspace_id, StateOutput.name == name)
        .order_by(col(StateVersion.serial).desc())
        .limit(limit)
    )
    async with reading(platform) as session:
        return [(v, o) for v, o in (await session.exec(query)).all()]


async def workspace_paths(
    platform: Platform, workspace_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str] | None]:
    """(organization name, workspace name) of each workspace, in one statement."""
    query = (
        select(Workspace.id, Organization.name, Workspace.name)
        .join(Organization, Organization.id == Workspace.organization_id)  # type: ignore[arg-type]
        .where(col(Workspace.id).in_(list(workspace_ids)))
    )
    found: dict[uuid.UUID, tuple[str, str] | None] = dict.fromkeys(workspace_ids)
    async with reading(platform) as session:
        for ws_id, org_name, ws_name in (await session.exec(query)).all():
            found[ws_id] = (org_name, ws_name)
    return found


def public_output_value(output: StateOutput) -> str | None:
    """What any API may show: the JSON-encoded value, nothing at all for a sensitive output."""
    return None if output.sensitive else output.value


def reveal_output_value(platform: Platform, output: StateOutput) -> str:
    """The plain JSON-encoded value, for the platform's own use (never for an API response)."""
    return platform.box.decrypt(output.value) if output.sensitive else output.value


# -- helpers ---------------------------------------------------------------------------------


async def _state_workspace(
    session: AsyncSession, actor: Actor, org_name: str, workspace_name: str, *, for_update: bool = False
) -> tuple[Organization, Workspace]:
    """The workspace by its names, if the actor may manage its state (else NotFound/PermissionDenied)."""
    query = (
        select(Organization, Workspace)
        .join(Workspace, Workspace.organization_id == Organization.id)  # type: ignore[arg-type]
        .where(Organization.name == org_name, Workspace.name == workspace_name)
    )
    if for_update:
        query = query.with_for_update(of=Workspace)  # type: ignore[arg-type]
    row = (await session.exec(query)).first()
    if row is None:
        raise NotFound("workspace not found")
    org, ws = row
    await actor.require_in_workspace(session, org.id, ws.id, Permission.manage_state, "workspace")
    return org, ws


async def _current(session: AsyncSession, workspace_id: uuid.UUID) -> StateVersion | None:
    query = (
        select(StateVersion)
        .where(StateVersion.workspace_id == workspace_id)
        .order_by(col(StateVersion.serial).desc())
        .limit(1)
    )
    return (await session.exec(query)).first()
