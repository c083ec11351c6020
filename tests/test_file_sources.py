"""`file://` git sources read repositories on the platform's own machines: allowed in embedded
mode, refused in production unless TERRAKUBE_ALLOW_FILE_SOURCES=true; refused at input (workspaces,
modules) and again at use (a module refresh, a job's checkout) for sources stored while allowed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from app import Services
from domain.errors import ValidationFailed
from domain.services import modules as module_service
from domain.services import organizations as org_service
from domain.services import workspaces as ws_service
from settings import Settings
from tests.conftest import GraphQLClient
from tests.procs import git
from tests.registry_fixtures import module_repo
from tests.test_state_service import ADMIN


@pytest.mark.parametrize(
    ("mode", "setting", "allowed"),
    [("embedded", None, True), ("production", None, False), ("production", True, True), ("embedded", False, False)],
)
def test_file_sources_default_by_mode(mode: str, setting: bool | None, allowed: bool, tmp_path: Path) -> None:
    settings = Settings(
        mode=mode, database_url="sqlite+aiosqlite:///x.db", secret_key="k" * 64, data_dir=tmp_path,  # type: ignore[arg-type]
        allow_file_sources=setting,
    )
    assert settings.file_sources_allowed is allowed


async def test_inputs_with_a_file_source_are_refused_when_off(services: Services, unique: str, tmp_path: Path) -> None:
    closed = dataclasses.replace(services.platform, allow_file_sources=False)
    await org_service.create_organization(closed, ADMIN, org_service.OrganizationCreate(name=unique))
    repo = module_repo(tmp_path / "repo", ["1.0.0"])

    with pytest.raises(ValidationFailed) as caught:
        await ws_service.create_workspace(closed, ADMIN, ws_service.WorkspaceCreate(
            organization=unique, name="local", source=f"file://{repo}"))
    assert caught.value.field == "source" and "TERRAKUBE_ALLOW_FILE_SOURCES" in caught.value.message
    assert await ws_service.get_workspace(closed, ADMIN, unique, "local") is None

    remote = await ws_service.create_workspace(closed, ADMIN, ws_service.WorkspaceCreate(
        organization=unique, name="remote", source="https://git.example.com/acme/net.git"))
    with pytest.raises(ValidationFailed, match="TERRAKUBE_ALLOW_FILE_SOURCES"):
        await ws_service.update_workspace(closed, ADMIN, remote.id, ws_service.WorkspaceUpdate(source=f"file://{repo}"))
    kept = await ws_service.get_workspace(closed, ADMIN, unique, "remote")
    assert kept is not None and kept.source == "https://git.example.com/acme/net.git"

    with pytest.raises(ValidationFailed, match="TERRAKUBE_ALLOW_FILE_SOURCES"):
        await module_service.create_module(closed, ADMIN, module_service.ModuleCreate(
            organization=unique, name="vpc", provider="aws", source=f"file://{repo}"))
    assert await module_service.get_module(closed, ADMIN, unique, "vpc", "aws") is None


async def test_a_module_stored_while_allowed_is_not_read_once_off(services: Services, unique: str, tmp_path: Path) -> None:
    await org_service.create_organization(services.platform, ADMIN, org_service.OrganizationCreate(name=unique))
    repo = module_repo(tmp_path / "repo", ["1.0.0"])
    module = await module_service.create_module(services.platform, ADMIN, module_service.ModuleCreate(
        organization=unique, name="vpc", provider="aws", source=f"file://{repo}"))
    git(repo, "tag", "v1.1.0")  # a new version the refresh would find

    closed = dataclasses.replace(services.platform, allow_file_sources=False)
    with pytest.raises(ValidationFailed, match="TERRAKUBE_ALLOW_FILE_SOURCES"):
        await module_service.refresh_module(closed, ADMIN, module.id)
    versions = await module_service.versions_by_module(closed, [module.id])
    assert [v.version for v in versions[module.id]] == ["1.0.0"]
    await module_service.refresh_module(services.platform, ADMIN, module.id)  # allowed again: found
    versions = await module_service.versions_by_module(closed, [module.id])
    assert sorted(v.version for v in versions[module.id]) == ["1.0.0", "1.1.0"]


async def test_graphql_answers_a_validation_error(gql: GraphQLClient, services: Services, unique: str) -> None:
    services.platform.allow_file_sources = False
    try:
        await gql('mutation($n: String!) { createOrganization(input: {name: $n}) { __typename } }', n=unique)
        data = await gql(
            "mutation($i: CreateWorkspaceInput!) { createWorkspace(input: $i) {"
            " __typename ... on ValidationError { field message } } }",
            i={"organization": unique, "name": "w", "source": "file:///srv/repos/other-team.git"},
        )
    finally:
        services.platform.allow_file_sources = True
    error = data["createWorkspace"]
    assert error["__typename"] == "ValidationError" and error["field"] == "source"
    assert "TERRAKUBE_ALLOW_FILE_SOURCES" in error["message"]
