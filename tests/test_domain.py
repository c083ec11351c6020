"""Domain rules and services, called directly (no GraphQL in between)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import func, select

from app import Services
from domain.access import Actor, permission_label
from domain.crypto import SecretBox
from domain.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from domain.models import Organization, Team, Workspace
from domain.pagination import PageRequest, decode_cursor, encode_cursor
from domain.principal import ROLE_PRESETS, Permission, Principal, PrincipalKind, Role
from domain.services import organizations, teams, workspaces
from domain.tcl import check_tcl
from domain.tokens import InvalidPlatformToken, TokenSigner


def principal(*groups: str, admin: bool = False) -> Principal:
    return Principal(name="u", subject="u", groups=frozenset(groups), kind=PrincipalKind.user, is_admin=admin)


def test_role_presets() -> None:
    assert ROLE_PRESETS[Role.admin] == frozenset(Permission)
    assert ROLE_PRESETS[Role.read] == frozenset()
    assert ROLE_PRESETS[Role.plan] == {Permission.plan_job}
    assert Permission.manage_template not in ROLE_PRESETS[Role.write]
    assert permission_label(Permission.manage_workspace) == "manageWorkspace"


def test_secret_box_round_trip_and_key_separation() -> None:
    box = SecretBox("k" * 40)
    token = box.encrypt("hunter2")
    assert "hunter2" not in token and box.decrypt(token) == "hunter2"
    assert box.encrypt("hunter2") != token  # random IV: equal secrets do not look equal at rest
    with pytest.raises(ValueError):
        SecretBox("other" * 10).decrypt(token)


def test_token_signer_checks_signature_and_expiry() -> None:
    signer = TokenSigner("s" * 40)
    now = datetime.now(UTC)
    good = signer.sign(token_id=uuid.uuid4(), subject="a", kind="personal", issued_at=now, expires_at=now + timedelta(minutes=1))
    assert signer.verify(good)["sub"] == "a"
    with pytest.raises(InvalidPlatformToken):
        TokenSigner("t" * 40).verify(good)
    expired = signer.sign(token_id=uuid.uuid4(), subject="a", kind="personal", issued_at=now - timedelta(hours=2), expires_at=now - timedelta(hours=1))
    with pytest.raises(InvalidPlatformToken):
        signer.verify(expired)


def test_cursor_round_trip_and_garbage() -> None:
    row_id = uuid.uuid4()
    assert decode_cursor(encode_cursor("name", row_id)) == ("name", row_id)
    with pytest.raises(ValidationFailed) as exc:
        decode_cursor("%%%")
    assert exc.value.field == "after"
    with pytest.raises(ValidationFailed):
        PageRequest(first=101)


@pytest.mark.parametrize(
    "tcl,fragment",
    [
        ("flow:\n  - type: terraformPlan\n    step: 1\n", None),
        ("flow:\n- {type: terraformPlan, step: 1}\n- {type: terraformApply, step: 2}\n", None),
        ("flow:\n  - type: x\n    step: 1\n", "line 2"),
        ("flow: {}\n", "line 1: `flow` must be a non-empty list"),
        ("a: 1\nb:\n  - [\n", "line"),
        ("- 1\n- 2\n", "mapping"),
        ("", "mapping"),
    ],
)
def test_tcl_structure(tcl: str, fragment: str | None) -> None:
    if fragment is None:
        check_tcl(tcl)
        return
    with pytest.raises(ValidationFailed) as exc:
        check_tcl(tcl)
    assert exc.value.field == "tcl" and fragment in exc.value.message


async def count(services: Services, model: type) -> int:
    async with services.platform.db.session() as session:
        return (await session.exec(select(func.count()).select_from(model))).one()


async def test_services_authorize_and_write_nothing_on_failure(services: Services, unique: str) -> None:
    platform = services.platform
    admin = Actor(principal("TERRAKUBE_ADMIN", admin=True))
    org = await organizations.create_organization(platform, admin, organizations.OrganizationCreate(name=unique))
    await teams.create_team(platform, admin, teams.TeamCreate(organization=unique, name="planners", role=Role.plan))

    planner = Actor(principal("planners"))
    orgs_before, ws_before = await count(services, Organization), await count(services, Workspace)
    with pytest.raises(PermissionDenied):
        await workspaces.create_workspace(platform, planner, workspaces.WorkspaceCreate(organization=unique, name="w"))
    with pytest.raises(PermissionDenied):
        await organizations.create_organization(platform, planner, organizations.OrganizationCreate(name=unique + "x"))
    stranger = Actor(principal("nobody"))
    with pytest.raises(NotFound):
        await workspaces.create_workspace(platform, stranger, workspaces.WorkspaceCreate(organization=unique, name="w"))
    assert await organizations.get_organization(platform, stranger, unique) is None
    assert (await count(services, Organization), await count(services, Workspace)) == (orgs_before, ws_before)

    await workspaces.create_workspace(platform, admin, workspaces.WorkspaceCreate(organization=unique, name="w"))
    with pytest.raises(Conflict):
        await workspaces.create_workspace(platform, admin, workspaces.WorkspaceCreate(organization=unique, name="w"))
    assert await count(services, Workspace) == ws_before + 1

    # Deleting the organization cascades to its teams and workspaces (foreign keys on both databases).
    await organizations.delete_organization(platform, admin, org.id)
    async with platform.db.session() as session:
        left = (await session.exec(select(Team).where(Team.organization_id == org.id))).all()
        left_ws = (await session.exec(select(Workspace).where(Workspace.organization_id == org.id))).all()
    assert left == [] and left_ws == []


async def test_actor_caches_access_per_request(services: Services, unique: str) -> None:
    platform = services.platform
    admin = Actor(principal(admin=True))
    org = await organizations.create_organization(platform, admin, organizations.OrganizationCreate(name=unique))
    await teams.create_team(platform, admin, teams.TeamCreate(organization=unique, name="g1", role=Role.write))
    actor = Actor(principal("g1"))
    async with platform.db.session() as session:
        first = await actor.access(session, org.id)
        assert first.visible and first.allows(Permission.manage_workspace)
    # A second lookup in the same request needs no database at all.
    assert await actor.access(None, org.id) is first  # type: ignore[arg-type]
