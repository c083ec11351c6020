"""State versions, output history and the state lock, through the domain services (SQLite and
PostgreSQL, real local blob storage)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlmodel import select

from app import Services
from domain.access import Actor
from domain.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from domain.models import StateVersion
from domain.pagination import PageRequest
from domain.principal import Principal, PrincipalKind
from domain.services import Platform, reading
from domain.services import state as svc
from storage import StorageError
from tests.conftest import GraphQLClient

LINEAGE = "8d1e4c5a-5f0e-4bd3-9a64-0c3f5e6b7a10"
ADMIN = Actor(Principal(name="admin", groups=frozenset({"TERRAKUBE_ADMIN"}), kind=PrincipalKind.user, is_admin=True))


def state_doc(serial: int, lineage: str = LINEAGE, **outputs: Any) -> bytes:
    """A state as terraform 1.11 writes it; ``outputs`` maps a name to (value, type, sensitive)."""
    return (
        json.dumps(
            {
                "version": 4,
                "terraform_version": "1.11.4",
                "serial": serial,
                "lineage": lineage,
                "outputs": {
                    name: {"value": value, "type": typ, **({"sensitive": True} if sensitive else {})}
                    for name, (value, typ, sensitive) in outputs.items()
                },
                "resources": [{"mode": "managed", "type": "terraform_data", "name": "x", "instances": []}],
                "check_results": None,
            },
            indent=2,
        )
        + "\n"
    ).encode()


async def chunks(data: bytes, size: int = 100) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def setup(gql: GraphQLClient, org: str, ws: str = "ws") -> str:
    await gql("mutation($o: String!) { createOrganization(input: {name: $o}) { __typename } }", o=org)
    created = await gql(
        "mutation($o: String!, $w: String!) { createWorkspace(input: {organization: $o, name: $w}) "
        "{ ... on Workspace { id } } }",
        o=org,
        w=ws,
    )
    return created["createWorkspace"]["id"]


async def blob_keys(services: Services, org: str, ws: str = "ws") -> list[str]:
    return [info.key async for info in services.store.list(f"state/{org}/{ws}/")]


async def versions(platform: Platform, workspace_id: str) -> list[StateVersion]:
    async with reading(platform) as session:
        rows = await session.exec(
            select(StateVersion).where(StateVersion.workspace_id == uuid.UUID(workspace_id)).order_by(StateVersion.serial)
        )
        return list(rows.all())


async def read_all(platform: Platform, org: str, ws: str = "ws") -> bytes:
    found = await svc.read_current_state(platform, ADMIN, org, ws)
    assert found is not None
    return b"".join([c async for c in found[1]])


async def write(platform: Platform, org: str, data: bytes, lock_id: str | None = None, actor: Actor = ADMIN) -> StateVersion:
    return await svc.write_state(platform, actor, org, "ws", chunks(data), lock_id)


async def test_write_read_and_outputs(services: Services, gql: GraphQLClient, unique: str) -> None:
    p = services.platform
    await setup(gql, unique)
    assert await svc.read_current_state(p, ADMIN, unique, "ws") is None

    data = state_doc(
        1,
        name=("web", "string", False),
        tags=({"env": "prod", "n": 2}, ["object", {"env": "string", "n": "number"}], False),
        password=("hunter2", "string", True),
    )
    version = await write(p, unique, data)
    assert (version.serial, version.lineage, version.size, version.created_by) == (1, LINEAGE, len(data), "admin")
    assert await read_all(p, unique) == data
    assert await blob_keys(services, unique) == [f"state/{unique}/ws/{version.id}.tfstate"]

    outputs = {o.name: o for o in (await svc.outputs_by_version(p, [version.id]))[version.id]}
    assert json.loads(outputs["name"].value) == "web" and outputs["name"].type == "string"
    assert json.loads(outputs["tags"].value) == {"env": "prod", "n": 2}
    assert outputs["tags"].type == ["object", {"env": "string", "n": "number"}]
    secret = outputs["password"]
    # Encrypted at rest, never shown by any API, still recoverable by the platform itself.
    assert secret.sensitive and "hunter2" not in secret.value
    assert svc.public_output_value(secret) is None
    assert svc.reveal_output_value(p, secret) == '"hunter2"'
    assert svc.public_output_value(outputs["name"]) == '"web"'


async def test_lineage_and_serial_rules(services: Services, gql: GraphQLClient, unique: str) -> None:
    p = services.platform
    ws_id = await setup(gql, unique)
    v1 = await write(p, unique, state_doc(1, out=("a", "string", False)))
    v2 = await write(p, unique, state_doc(2, out=("b", "string", False)))

    with pytest.raises(Conflict, match="lineage"):
        await write(p, unique, state_doc(3, lineage="other-lineage"))
    with pytest.raises(Conflict, match="older"):
        await write(p, unique, state_doc(1, out=("a", "string", False)))
    # The same serial with the same bytes is a retry: the existing version, nothing new stored.
    again = await write(p, unique, state_doc(2, out=("b", "string", False)))
    assert again.id == v2.id
    with pytest.raises(Conflict, match="different state with serial 2"):
        await write(p, unique, state_doc(2, out=("c", "string", False)))

    assert [v.serial for v in await versions(p, ws_id)] == [1, 2]
    # No refused write left a blob behind.
    assert sorted(await blob_keys(services, unique)) == sorted(
        f"state/{unique}/ws/{v.id}.tfstate" for v in (v1, v2)
    )
    history = await svc.output_history(p, uuid.UUID(ws_id), "out")
    assert [(v.serial, o.value) for v, o in history] == [(2, '"b"'), (1, '"a"')]


async def test_invalid_and_oversized_states_are_refused(services: Services, gql: GraphQLClient, unique: str) -> None:
    p = services.platform
    ws_id = await setup(gql, unique)
    for bad, field in [
        (b"{not json", "state"),
        (b"[1, 2]", "state"),
        (json.dumps({"version": 3, "serial": 1, "lineage": "x"}).encode(), "version"),
        (json.dumps({"version": 4, "serial": "1", "lineage": "x"}).encode(), "serial"),
        (json.dumps({"version": 4, "serial": 1}).encode(), "lineage"),
    ]:
        with pytest.raises(ValidationFailed) as err:
            await write(p, unique, bad)
        assert err.value.field == field
    with pytest.raises(svc.StateTooLarge):
        await svc.write_state(p, ADMIN, unique, "ws", chunks(state_doc(1)), None, max_bytes=100)
    with pytest.raises(svc.StateTooLarge):  # refused from the announced size, before reading
        await svc.write_state(p, ADMIN, unique, "ws", chunks(b""), None, size_hint=101, max_bytes=100)
    assert await versions(p, ws_id) == []
    assert await blob_keys(services, unique) == []


async def test_lock_rules(services: Services, gql: GraphQLClient, unique: str) -> None:
    p = services.platform
    ws_id = await setup(gql, unique)
    info = {"ID": "lock-a", "Operation": "OperationTypeApply", "Who": "alice@laptop", "Version": "1.11.4",
            "Created": "2025-01-02T03:04:05.123456Z", "Path": "", "Info": ""}
    lock = await svc.lock_state(p, ADMIN, unique, "ws", info)
    assert lock.lock_id == "lock-a"
    assert (await svc.lock_state(p, ADMIN, unique, "ws", info)).lock_id == "lock-a"  # a retried LOCK

    with pytest.raises(svc.StateLocked) as err:
        await svc.lock_state(p, ADMIN, unique, "ws", {**info, "ID": "lock-b", "Who": "bob@ci"})
    assert err.value.lock == info
    with pytest.raises(svc.StateLocked):
        await write(p, unique, state_doc(1))  # no lock id
    with pytest.raises(svc.StateLocked):
        await write(p, unique, state_doc(1), lock_id="lock-b")
    assert (await write(p, unique, state_doc(1), lock_id="lock-a")).serial == 1
    with pytest.raises(svc.StateLocked):
        await svc.unlock_state(p, ADMIN, unique, "ws", "lock-b")
    with pytest.raises(svc.StateLocked):
        await svc.rollback_state(p, ADMIN, (await versions(p, ws_id))[0].id)

    await svc.unlock_state(p, ADMIN, unique, "ws", "lock-a")
    await svc.unlock_state(p, ADMIN, unique, "ws", "lock-a")  # already unlocked: fine
    # A lock without terraform's fields still answers in terraform's format.
    bare = await svc.lock_state(p, ADMIN, unique, "ws", {"ID": "bare"})
    shown = svc.lock_info(bare)
    assert shown["Who"] == "admin" and shown["Created"].endswith("Z") and set(shown) == set(svc.LOCK_FIELDS)
    ws = await svc.force_unlock_state(p, ADMIN, uuid.UUID(ws_id))
    assert str(ws.id) == ws_id
    assert (await svc.locks_by_workspace(p, [ws.id]))[ws.id] is None
    assert (await write(p, unique, state_doc(2))).serial == 2


async def test_rollback_creates_a_new_version(services: Services, gql: GraphQLClient, unique: str) -> None:
    p = services.platform
    ws_id = await setup(gql, unique)
    v1 = await write(p, unique, state_doc(1, size=("small", "string", False), pw=("one", "string", True)))
    await write(p, unique, state_doc(2, size=("large", "string", False), pw=("two", "string", True)))
    await write(p, unique, state_doc(5, size=("huge", "string", False)))

    back = await svc.rollback_state(p, ADMIN, v1.id)
    assert (back.serial, back.lineage) == (6, LINEAGE)
    content = json.loads(await read_all(p, unique))
    assert content == {**json.loads(state_doc(1, size=("small", "string", False), pw=("one", "string", True))), "serial": 6}
    outputs = {o.name: o for o in (await svc.outputs_by_version(p, [back.id]))[back.id]}
    assert outputs["size"].value == '"small"'
    assert svc.reveal_output_value(p, outputs["pw"]) == '"one"'
    assert [v.serial for v in await versions(p, ws_id)] == [1, 2, 5, 6]
    # terraform can keep writing on top of the rollback.
    assert (await write(p, unique, state_doc(7))).serial == 7


def test_serial_is_found_without_parsing() -> None:
    doc = state_doc(12)
    start, end = svc._find_serial(doc)
    assert doc[start:end] == b"12"
    nested = b'{"a": {"serial": 1}, "s": "\\"serial\\": 2", "serial" : 33, "x": 1}'
    start, end = svc._find_serial(nested)
    assert nested[start:end] == b"33"
    assert svc._find_serial(b'{"version": 4, "ser') is None  # needs more bytes
    assert svc._find_serial(b'{"version": 4}') == (-1, -1)


async def test_rollback_of_a_state_without_a_leading_serial(services: Services, gql: GraphQLClient, unique: str) -> None:
    p = services.platform
    await setup(gql, unique)
    # Valid JSON whose serial is written with an escape: the streaming rewrite cannot see it.
    first = b'{"version": 4, "lineage": "%s", "outputs": {}, "ser\\u0069al": 1}' % LINEAGE.encode()
    v1 = await write(p, unique, first)
    await write(p, unique, state_doc(2))
    back = await svc.rollback_state(p, ADMIN, v1.id)
    assert back.serial == 3
    assert json.loads(await read_all(p, unique)) == {"version": 4, "lineage": LINEAGE, "outputs": {}, "serial": 3}


class FailingPuts:
    """A blob store whose writes fail after consuming part of the stream (a full disk, S3 down)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def put(self, key: str, chunks: Any) -> Any:
        async for _ in chunks:
            break
        raise StorageError("disk full")


class BrokenTransactions:
    """A database that reads fine but cannot commit a write."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        raise RuntimeError("connection lost")
        yield  # pragma: no cover


async def test_storage_failure_records_nothing(services: Services, gql: GraphQLClient, unique: str) -> None:
    ws_id = await setup(gql, unique)
    failing = dataclasses.replace(services.platform, store=FailingPuts(services.store))
    with pytest.raises(svc.StateStorageFailed, match="disk full"):
        await write(failing, unique, state_doc(1))
    assert await versions(services.platform, ws_id) == []
    assert await blob_keys(services, unique) == []


async def test_database_failure_leaves_no_orphan_blob(services: Services, gql: GraphQLClient, unique: str) -> None:
    ws_id = await setup(gql, unique)
    broken = dataclasses.replace(services.platform, db=BrokenTransactions(services.platform.db))
    with pytest.raises(RuntimeError, match="connection lost"):
        await write(broken, unique, state_doc(1))
    assert await versions(services.platform, ws_id) == []
    assert await blob_keys(services, unique) == []


async def test_a_corrupted_blob_is_not_served(services: Services, gql: GraphQLClient, unique: str) -> None:
    p = services.platform
    await setup(gql, unique)
    version = await write(p, unique, state_doc(1, out=("a", "string", False)))
    await services.store.put_bytes(version.blob_key, state_doc(1, out=("b", "string", False)))
    found = await svc.read_current_state(p, ADMIN, unique, "ws")
    assert found is not None
    received = bytearray()
    with pytest.raises(svc.StateCorrupted):
        async for chunk in found[1]:
            received += chunk
    assert received == b""  # nothing of a mismatching state reaches the reader
    await services.store.delete(version.blob_key)
    with pytest.raises(svc.StateCorrupted, match="missing"):
        await svc.read_current_state(p, ADMIN, unique, "ws")


async def test_who_may_touch_state(services: Services, gql: GraphQLClient, unique: str) -> None:
    p = services.platform
    ws_id = await setup(gql, unique)
    for name, role in (("readers", "READ"), ("writers", "WRITE")):
        await gql(
            f'mutation($o: String!) {{ createTeam(input: {{organization: $o, name: "{unique}-{name}", role: {role}}}) '
            "{ __typename } }",
            o=unique,
        )

    def member(group: str) -> Actor:
        return Actor(Principal(name=f"{group}-user", groups=frozenset({group}), kind=PrincipalKind.user))

    reader, writer, stranger = member(f"{unique}-readers"), member(f"{unique}-writers"), member("nobody")
    with pytest.raises(PermissionDenied, match="manageState"):
        await write(p, unique, state_doc(1), actor=reader)
    with pytest.raises(PermissionDenied):
        await svc.read_current_state(p, reader, unique, "ws")
    with pytest.raises(PermissionDenied):
        await svc.lock_state(p, reader, unique, "ws", {"ID": "x"})
    with pytest.raises(PermissionDenied):
        await svc.force_unlock_state(p, reader, uuid.UUID(ws_id))
    with pytest.raises(NotFound):
        await write(p, unique, state_doc(1), actor=stranger)
    with pytest.raises(NotFound):
        await write(p, unique + "x", state_doc(1))
    version = await write(p, unique, state_doc(1), actor=writer)
    assert version.created_by == f"{unique}-writers-user" and version.job_id is None
    assert await versions(p, ws_id) == [version]


HISTORY = """query($o: String!) { workspace(organization: $o, name: "ws") {
  id
  currentStateVersion { serial }
  stateLock { id operation who createdAt }
  stateVersions(first: 2) { edges { cursor node { id serial lineage size sha256 createdBy jobId downloadUrl
    outputs { name type value sensitive } } } pageInfo { hasNextPage endCursor } }
  outputHistory(name: "pw") { stateVersionId serial value sensitive }
} }"""

ROLLBACK = """mutation($id: ID!) { rollbackState(input: {stateVersionId: $id}) {
  __typename ... on StateVersion { serial } ... on Error { message } } }"""

UNLOCK = """mutation($id: ID!) { forceUnlockWorkspaceState(input: {id: $id}) {
  __typename ... on Workspace { stateLock { id } } ... on Error { message } } }"""


async def test_graphql_history_rollback_and_force_unlock(
    services: Services, gql: GraphQLClient, as_groups: Any, unique: str
) -> None:
    p = services.platform
    ws_id = await setup(gql, unique)
    empty = (await gql(HISTORY, o=unique))["workspace"]
    assert empty["currentStateVersion"] is None and empty["stateVersions"]["edges"] == []
    for serial in (1, 2, 3):
        await write(p, unique, state_doc(serial, pw=(f"secret-{serial}", "string", True), n=(serial, "number", False)))
    await svc.lock_state(p, ADMIN, unique, "ws", {"ID": "held", "Operation": "OperationTypePlan", "Who": "ci@runner"})

    ws = (await gql(HISTORY, o=unique))["workspace"]
    assert ws["currentStateVersion"] == {"serial": 3}
    assert {k: ws["stateLock"][k] for k in ("id", "operation", "who")} == {
        "id": "held", "operation": "OperationTypePlan", "who": "ci@runner"}
    page = ws["stateVersions"]
    nodes = [e["node"] for e in page["edges"]]
    assert [n["serial"] for n in nodes] == [3, 2] and page["pageInfo"]["hasNextPage"]
    assert nodes[0]["outputs"] == [
        {"name": "n", "type": '"number"', "value": "3", "sensitive": False},
        {"name": "pw", "type": '"string"', "value": None, "sensitive": True},
    ]
    assert nodes[0]["downloadUrl"] == f"/tfstate/{unique}/ws/versions/{nodes[0]['id']}"
    assert nodes[0]["createdBy"] == "admin" and nodes[0]["jobId"] is None
    assert [(h["serial"], h["value"], h["sensitive"]) for h in ws["outputHistory"]] == [
        (3, None, True), (2, None, True), (1, None, True)]
    rest = await gql(
        'query($o: String!, $a: String!) { workspace(organization: $o, name: "ws") '
        "{ stateVersions(first: 5, after: $a) { edges { node { serial } } pageInfo { hasNextPage } } } }",
        o=unique, a=page["pageInfo"]["endCursor"],
    )
    assert [e["node"]["serial"] for e in rest["workspace"]["stateVersions"]["edges"]] == [1]

    first_id = (await svc.list_state_versions(p, uuid.UUID(ws_id), PageRequest(1, page["pageInfo"]["endCursor"]))).items[0].id
    assert (await gql(ROLLBACK, id=str(first_id)))["rollbackState"]["__typename"] == "ConflictError"  # locked

    # A READ team sees the history but may neither unlock nor roll back.
    await gql(f'mutation($o: String!) {{ createTeam(input: {{organization: $o, name: "{unique}-r", role: READ}}) '
              "{ __typename } }", o=unique)
    reader = await as_groups(f"{unique}-r")
    assert (await reader(HISTORY, o=unique))["workspace"]["currentStateVersion"] == {"serial": 3}
    assert (await reader(UNLOCK, id=ws_id))["forceUnlockWorkspaceState"]["__typename"] == "PermissionDeniedError"
    assert (await reader(ROLLBACK, id=str(first_id)))["rollbackState"]["__typename"] == "PermissionDeniedError"

    assert (await gql(UNLOCK, id=ws_id))["forceUnlockWorkspaceState"] == {"__typename": "Workspace", "stateLock": None}
    assert (await gql(ROLLBACK, id=str(first_id)))["rollbackState"] == {"__typename": "StateVersion", "serial": 4}
    assert (await gql(ROLLBACK, id=str(uuid.uuid4())))["rollbackState"]["__typename"] == "NotFoundError"
    latest = (await gql(HISTORY, o=unique))["workspace"]["stateVersions"]["edges"][0]["node"]
    assert latest["serial"] == 4 and {"name": "n", "type": '"number"', "value": "1", "sensitive": False} in latest["outputs"]


async def test_a_job_token_writes_its_own_workspace_only(services: Services, gql: GraphQLClient, unique: str) -> None:
    from domain.models import Job
    from domain.principal import JobScope

    p = services.platform
    ws_id = await setup(gql, unique)
    other_id = await setup_workspace(gql, unique, "other")
    org_id = (await gql("query($o: String!) { organization(name: $o) { id } }", o=unique))["organization"]["id"]
    job = Job(organization_id=uuid.UUID(org_id), workspace_id=uuid.UUID(ws_id), tcl="flow: []", created_by="admin")
    async with p.db.transaction() as session:
        session.add(job)

    def job_actor(workspace_id: str) -> Actor:
        scope = JobScope(organization_id=org_id, workspace_id=workspace_id, job_id=str(job.id))
        return Actor(Principal(name=f"job {job.id}", groups=frozenset(), kind=PrincipalKind.job, job=scope))

    version = await write(p, unique, state_doc(1), actor=job_actor(ws_id))
    assert version.job_id == job.id and version.created_by == f"job {job.id}"
    with pytest.raises(PermissionDenied, match="own workspace"):
        await svc.write_state(p, job_actor(ws_id), unique, "other", chunks(state_doc(1)), None)
    assert await versions(p, other_id) == []


async def setup_workspace(gql: GraphQLClient, org: str, ws: str) -> str:
    created = await gql(
        "mutation($o: String!, $w: String!) { createWorkspace(input: {organization: $o, name: $w}) "
        "{ ... on Workspace { id } } }",
        o=org,
        w=ws,
    )
    return created["createWorkspace"]["id"]


async def test_a_large_state_is_parsed_as_it_streams(services: Services, gql: GraphQLClient, unique: str) -> None:
    """Over the inline limit the state is read back as a stream up to its outputs: header and
    outputs come out right, the resources are never parsed, and a broken header is refused."""
    p = services.platform
    await setup(gql, unique)
    doc = json.loads(state_doc(3, region=("eu-west-1", "string", False), token=("s3cr3t", "string", True)))
    blob = "x" * 1024
    doc["resources"] = [
        {"mode": "managed", "type": "terraform_data", "name": f"r{i}", "instances": [{"attributes": {"input": blob}}]}
        for i in range(svc.INLINE_PARSE_BYTES // 1024 + 500)
    ]
    data = json.dumps(doc).encode()
    assert len(data) > svc.INLINE_PARSE_BYTES
    version = await svc.write_state(p, ADMIN, unique, "ws", chunks(data, 1 << 20), None)
    assert (version.serial, version.lineage, version.size) == (3, LINEAGE, len(data))
    outputs = {o.name: o for o in (await svc.outputs_by_version(p, [version.id]))[version.id]}
    assert json.loads(outputs["region"].value) == "eu-west-1"
    assert outputs["token"].sensitive and "s3cr3t" not in outputs["token"].value
    assert await read_all(p, unique) == data

    broken = data.replace(b'"serial": 3', b'"serial": 4,,', 1)
    assert broken != data
    with pytest.raises(ValidationFailed):
        await svc.write_state(p, ADMIN, unique, "ws", chunks(broken, 1 << 20), None)
    assert [v.serial for v in await versions(p, version.workspace_id and str(version.workspace_id))] == [3]
