"""Workspaces and variables through the GraphQL API (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

from app import Services
from domain.models import Variable
from tests.conftest import GraphQLClient

WS = "... on Workspace { id name description source branch folder terraformVersion executionMode locked lockReason lockedBy } ... on Error { __typename message } ... on ValidationError { field }"
VAR = "... on Variable { id key value category sensitive hcl description } ... on Error { __typename message } ... on ValidationError { field }"


async def setup_org(gql: GraphQLClient, name: str) -> None:
    await gql('mutation($n: String!) { createOrganization(input: {name: $n}) { __typename } }', n=name)


async def create_ws(gql: GraphQLClient, org: str, name: str, **fields: Any) -> dict[str, Any]:
    data = await gql(
        f"mutation($i: CreateWorkspaceInput!) {{ createWorkspace(input: $i) {{ {WS} }} }}",
        i={"organization": org, "name": name, **fields},
    )
    return data["createWorkspace"]


async def create_var(gql: GraphQLClient, ws_id: str, **fields: Any) -> dict[str, Any]:
    data = await gql(
        f"mutation($i: CreateVariableInput!) {{ createVariable(input: $i) {{ {VAR} }} }}",
        i={"workspaceId": ws_id, **fields},
    )
    return data["createVariable"]


async def test_workspace_lifecycle(gql: GraphQLClient, unique: str) -> None:
    await setup_org(gql, unique)
    ws = await create_ws(
        gql, unique, "network-prod", description="vpc", source="https://github.com/acme/net.git",
        branch="release/1.x", folder="envs/prod", terraformVersion="1.11.4", executionMode="LOCAL",
    )
    assert ws["name"] == "network-prod" and ws["executionMode"] == "LOCAL" and ws["folder"] == "envs/prod"
    defaults = await create_ws(gql, unique, "defaults")
    assert (defaults["branch"], defaults["folder"], defaults["executionMode"], defaults["source"]) == (
        "main", "/", "REMOTE", None,
    )

    updated = await gql(
        f'mutation($id: ID!) {{ updateWorkspace(input: {{id: $id, description: "changed", source: ""}}) {{ {WS} }} }}',
        id=ws["id"],
    )
    assert updated["updateWorkspace"]["description"] == "changed"
    assert updated["updateWorkspace"]["source"] is None
    assert updated["updateWorkspace"]["branch"] == "release/1.x"

    found = await gql(
        "query($o: String!) { workspace(organization: $o, name: \"network-prod\") { id description } }", o=unique
    )
    assert found["workspace"] == {"id": ws["id"], "description": "changed"}

    deleted = await gql("mutation($id: ID!) { deleteWorkspace(input: {id: $id}) { ... on Deleted { id } } }", id=ws["id"])
    assert deleted["deleteWorkspace"]["id"] == ws["id"]
    gone = await gql("query($o: String!) { workspace(organization: $o, name: \"network-prod\") { id } }", o=unique)
    assert gone["workspace"] is None


async def test_workspace_validation_and_conflicts(gql: GraphQLClient, unique: str) -> None:
    await setup_org(gql, unique)
    assert (await create_ws(gql, unique, "ok_name-1"))["name"] == "ok_name-1"
    assert (await create_ws(gql, unique, "ok_name-1"))["__typename"] == "ConflictError"
    cases = [
        ({"name": "bad name"}, "name"),
        ({"name": "x" * 91}, "name"),
        ({"name": "a", "source": "not a url"}, "source"),
        ({"name": "b", "branch": "bad..ref"}, "branch"),
        ({"name": "c", "folder": "../escape"}, "folder"),
        ({"name": "d", "terraformVersion": "latest"}, "terraformVersion"),
    ]
    for fields, field in cases:
        name = fields.pop("name")
        result = await create_ws(gql, unique, name, **fields)
        assert result["__typename"] == "ValidationError", (name, fields)
        assert result["field"] == field
    missing = await create_ws(gql, f"{unique}-missing", "x")
    assert missing["__typename"] == "NotFoundError"
    listed = await gql(
        "query($o: String!) { organization(name: $o) { workspaces(first: 100) { edges { node { name } } } } }", o=unique
    )
    assert [e["node"]["name"] for e in listed["organization"]["workspaces"]["edges"]] == ["ok_name-1"]


async def test_rename_onto_existing_name_is_a_conflict(gql: GraphQLClient, unique: str) -> None:
    await setup_org(gql, unique)
    a = await create_ws(gql, unique, "a")
    await create_ws(gql, unique, "b")
    result = await gql(f'mutation($id: ID!) {{ updateWorkspace(input: {{id: $id, name: "b"}}) {{ {WS} }} }}', id=a["id"])
    assert result["updateWorkspace"]["__typename"] == "ConflictError"


async def test_lock_and_unlock(gql: GraphQLClient, unique: str) -> None:
    await setup_org(gql, unique)
    ws = await create_ws(gql, unique, "locked")
    locked = await gql(
        f'mutation($id: ID!) {{ lockWorkspace(input: {{id: $id, reason: "maintenance"}}) {{ {WS} }} }}', id=ws["id"]
    )
    assert locked["lockWorkspace"]["locked"] and locked["lockWorkspace"]["lockReason"] == "maintenance"
    assert locked["lockWorkspace"]["lockedBy"] == "admin"
    again = await gql(f'mutation($id: ID!) {{ lockWorkspace(input: {{id: $id, reason: "x"}}) {{ {WS} }} }}', id=ws["id"])
    assert again["lockWorkspace"]["__typename"] == "ConflictError"
    assert "maintenance" in again["lockWorkspace"]["message"]
    unlocked = await gql(f'mutation($id: ID!) {{ unlockWorkspace(input: {{id: $id, reason: "done"}}) {{ {WS} }} }}', id=ws["id"])
    assert unlocked["unlockWorkspace"]["locked"] is False and unlocked["unlockWorkspace"]["lockReason"] is None
    twice = await gql(f'mutation($id: ID!) {{ unlockWorkspace(input: {{id: $id}}) {{ {WS} }} }}', id=ws["id"])
    assert twice["unlockWorkspace"]["__typename"] == "ConflictError"


async def test_workspace_listing_filter_and_pages(gql: GraphQLClient, unique: str) -> None:
    await setup_org(gql, unique)
    for name in ["app-a", "app-b", "APP-c", "db-a", "under_score", "percent"]:
        await create_ws(gql, unique, name)
    q = "query($o: String!, $f: String, $a: String) { organization(name: $o) { workspaces(first: 2, after: $a, filter: {nameContains: $f}) { edges { node { name } } pageInfo { hasNextPage endCursor } } } }"

    async def all_names(filter_: str | None) -> list[str]:
        names: list[str] = []
        after = None
        for _ in range(10):
            conn = (await gql(q, o=unique, f=filter_, a=after))["organization"]["workspaces"]
            names += [e["node"]["name"] for e in conn["edges"]]
            if not conn["pageInfo"]["hasNextPage"]:
                return names
            after = conn["pageInfo"]["endCursor"]
        raise AssertionError("pagination did not end")

    assert await all_names("app") == ["APP-c", "app-a", "app-b"]
    assert await all_names("_") == ["under_score"]  # '_' is literal, not a LIKE wildcard
    assert await all_names("%") == []
    assert len(await all_names(None)) == 6


async def test_variables_and_secrets(gql: GraphQLClient, services: Services, unique: str) -> None:
    await setup_org(gql, unique)
    ws = await create_ws(gql, unique, "vars")
    region = await create_var(gql, ws["id"], key="region", value="eu-west-1", category="TERRAFORM", description="where")
    assert region["value"] == "eu-west-1" and region["category"] == "TERRAFORM"
    tags = await create_var(gql, ws["id"], key="tags", value='{ env = "prod" }', category="TERRAFORM", hcl=True)
    assert tags["hcl"] is True
    secret = await create_var(gql, ws["id"], key="AWS_SECRET_ACCESS_KEY", value="s3cr3t-value-123", category="ENV", sensitive=True)
    assert secret["sensitive"] is True and secret["value"] is None

    listed = await gql(
        "query($o: String!) { workspace(organization: $o, name: \"vars\") { variables { key value sensitive category } } }", o=unique
    )
    variables = {v["key"]: v for v in listed["workspace"]["variables"]}
    assert variables["AWS_SECRET_ACCESS_KEY"]["value"] is None
    assert variables["region"]["value"] == "eu-west-1"

    async with services.platform.db.session() as session:
        stored = (await session.get(Variable, uuid.UUID(secret["id"]))).value  # type: ignore[union-attr]
    assert "s3cr3t" not in stored and services.platform.box.decrypt(stored) == "s3cr3t-value-123"

    # Updating keeps a secret write-only; it can change value but never become readable.
    changed = await gql(f'mutation($id: ID!) {{ updateVariable(input: {{id: $id, value: "rotated"}}) {{ {VAR} }} }}', id=secret["id"])
    assert changed["updateVariable"]["value"] is None
    unhide = await gql(f"mutation($id: ID!) {{ updateVariable(input: {{id: $id, sensitive: false}}) {{ {VAR} }} }}", id=secret["id"])
    assert unhide["updateVariable"]["__typename"] == "ValidationError" and unhide["updateVariable"]["field"] == "sensitive"
    hide = await gql(f"mutation($id: ID!) {{ updateVariable(input: {{id: $id, sensitive: true}}) {{ {VAR} }} }}", id=region["id"])
    assert hide["updateVariable"]["value"] is None and hide["updateVariable"]["sensitive"] is True

    dup = await create_var(gql, ws["id"], key="region", value="x", category="TERRAFORM")
    assert dup["__typename"] == "ConflictError"
    same_key_env = await create_var(gql, ws["id"], key="region", value="x", category="ENV")
    assert same_key_env["key"] == "region"  # one namespace per category, like Terraform Cloud

    for fields, field in [
        ({"key": "1bad", "category": "TERRAFORM"}, "key"),
        ({"key": "has-dash", "category": "ENV"}, "key"),
        ({"key": "OK", "category": "ENV", "hcl": True}, "hcl"),
        ({"key": "big", "category": "ENV", "value": "x" * (256 * 1024 + 1)}, "value"),
    ]:
        bad = await create_var(gql, ws["id"], **fields)
        assert bad["__typename"] == "ValidationError" and bad["field"] == field, fields
    bad_ws = await create_var(gql, "not-an-id", key="a", category="ENV")
    assert bad_ws["field"] == "workspaceId"

    deleted = await gql("mutation($id: ID!) { deleteVariable(input: {id: $id}) { ... on Deleted { id } } }", id=tags["id"])
    assert deleted["deleteVariable"]["id"] == tags["id"]
    after = await gql(
        "query($o: String!) { workspace(organization: $o, name: \"vars\") { variables { key category } } }", o=unique
    )
    assert sorted((v["category"], v["key"]) for v in after["workspace"]["variables"]) == [
        ("ENV", "AWS_SECRET_ACCESS_KEY"), ("ENV", "region"), ("TERRAFORM", "region"),
    ]


async def test_deleting_a_workspace_removes_its_variables(gql: GraphQLClient, services: Services, unique: str) -> None:
    await setup_org(gql, unique)
    ws = await create_ws(gql, unique, "short-lived")
    var = await create_var(gql, ws["id"], key="a", value="1", category="ENV")
    await gql("mutation($id: ID!) { deleteWorkspace(input: {id: $id}) { __typename } }", id=ws["id"])
    result = await gql(f'mutation($id: ID!) {{ updateVariable(input: {{id: $id, value: "2"}}) {{ {VAR} }} }}', id=var["id"])
    assert result["updateVariable"]["__typename"] == "NotFoundError"
