"""Organizations and teams through the GraphQL API (ASGI app, SQLite and PostgreSQL)."""

from __future__ import annotations

from tests.conftest import GraphQLClient

ORG_FIELDS = "... on Organization { id name description } ... on Error { __typename message } ... on ValidationError { field }"


async def create_org(gql: GraphQLClient, name: str, description: str = "") -> dict:
    data = await gql(
        f"mutation($n: String!, $d: String!) {{ createOrganization(input: {{name: $n, description: $d}}) {{ {ORG_FIELDS} }} }}",
        n=name,
        d=description,
    )
    return data["createOrganization"]


async def test_create_read_update_delete_organization(gql: GraphQLClient, unique: str) -> None:
    created = await create_org(gql, unique, "first")
    assert created["name"] == unique and created["description"] == "first"

    found = await gql("query($n: String!) { organization(name: $n) { id name description } }", n=unique)
    assert found["organization"] == {"id": created["id"], "name": unique, "description": "first"}

    renamed = f"{unique}-renamed"
    updated = await gql(
        f"mutation($id: ID!, $n: String) {{ updateOrganization(input: {{id: $id, name: $n}}) {{ {ORG_FIELDS} }} }}",
        id=created["id"],
        n=renamed,
    )
    assert updated["updateOrganization"]["name"] == renamed
    assert updated["updateOrganization"]["description"] == "first"
    assert (await gql("query($n: String!) { organization(name: $n) { id } }", n=unique))["organization"] is None

    deleted = await gql(
        "mutation($id: ID!) { deleteOrganization(input: {id: $id}) { ... on Deleted { id } ... on Error { message } } }",
        id=created["id"],
    )
    assert deleted["deleteOrganization"] == {"id": created["id"]}
    assert (await gql("query($n: String!) { organization(name: $n) { id } }", n=renamed))["organization"] is None


async def test_duplicate_organization_is_a_conflict(gql: GraphQLClient, unique: str) -> None:
    await create_org(gql, unique)
    again = await create_org(gql, unique, "other")
    assert again["__typename"] == "ConflictError"
    assert unique in again["message"]
    found = await gql("query($n: String!) { organization(name: $n) { description } }", n=unique)
    assert found["organization"]["description"] == ""


async def test_bad_organization_name_is_a_validation_error(gql: GraphQLClient, unique: str) -> None:
    for bad in ["has space", "", "x" * 91, "dots.not.allowed", "slash/no"]:
        result = await create_org(gql, bad)
        assert result["__typename"] == "ValidationError", bad
        assert result["field"] == "name"
    page = await gql("{ organizations(first: 100) { edges { node { name } } } }")
    assert not any(" " in e["node"]["name"] for e in page["organizations"]["edges"])


async def test_unknown_id_is_not_found(gql: GraphQLClient) -> None:
    result = await gql(
        f"mutation {{ updateOrganization(input: {{id: \"{'0' * 8}-0000-0000-0000-{'0' * 12}\", description: \"x\"}}) {{ {ORG_FIELDS} }} }}"
    )
    assert result["updateOrganization"]["__typename"] == "NotFoundError"
    bad_id = await gql('mutation { deleteOrganization(input: {id: "nope"}) { ... on ValidationError { field message } } }')
    assert bad_id["deleteOrganization"]["field"] == "id"


async def test_organizations_paginate_with_opaque_cursors(gql: GraphQLClient, unique: str) -> None:
    names = [f"{unique}-{i:02d}" for i in range(5)]
    for name in reversed(names):
        await create_org(gql, name)
    seen: list[str] = []
    after = None
    while True:
        page = await gql(
            "query($a: String) { organizations(first: 2, after: $a) { edges { cursor node { name } } pageInfo { hasNextPage endCursor } } }",
            a=after,
        )
        conn = page["organizations"]
        seen += [e["node"]["name"] for e in conn["edges"] if e["node"]["name"].startswith(unique)]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
        assert unique not in after  # cursors are opaque
    assert seen == names


async def test_page_size_is_bounded(gql: GraphQLClient) -> None:
    response = await gql.raw("{ organizations(first: 101) { edges { cursor } } }")
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "VALIDATION", "field": "first"}
    response = await gql.raw('{ organizations(first: 1, after: "garbage!") { edges { cursor } } }')
    assert response.json()["errors"][0]["extensions"]["field"] == "after"


TEAM_FIELDS = "... on Team { id name role manageWorkspace manageState planJob approveJob manageTemplate } ... on Error { __typename message } ... on ValidationError { field }"


async def test_teams_presets_and_custom_flags(gql: GraphQLClient, unique: str) -> None:
    await create_org(gql, unique)
    write = await gql(
        f'mutation($o: String!) {{ createTeam(input: {{organization: $o, name: "devs", role: WRITE}}) {{ {TEAM_FIELDS} }} }}',
        o=unique,
    )
    team = write["createTeam"]
    assert team["role"] == "WRITE"
    assert team["manageWorkspace"] and team["planJob"] and team["approveJob"] and not team["manageTemplate"]

    custom = await gql(
        f'mutation($o: String!) {{ createTeam(input: {{organization: $o, name: "ops", role: CUSTOM, manageTemplate: true}}) {{ {TEAM_FIELDS} }} }}',
        o=unique,
    )
    assert custom["createTeam"]["manageTemplate"] and not custom["createTeam"]["manageWorkspace"]

    flags_on_preset = await gql(
        f'mutation($o: String!) {{ createTeam(input: {{organization: $o, name: "x", role: READ, planJob: true}}) {{ {TEAM_FIELDS} }} }}',
        o=unique,
    )
    assert flags_on_preset["createTeam"]["__typename"] == "ValidationError"
    assert flags_on_preset["createTeam"]["field"] == "role"

    dup = await gql(
        f'mutation($o: String!) {{ createTeam(input: {{organization: $o, name: "devs", role: READ}}) {{ {TEAM_FIELDS} }} }}',
        o=unique,
    )
    assert dup["createTeam"]["__typename"] == "ConflictError"

    to_read = await gql(
        f"mutation($id: ID!) {{ updateTeam(input: {{id: $id, role: READ}}) {{ {TEAM_FIELDS} }} }}", id=team["id"]
    )
    assert to_read["updateTeam"]["role"] == "READ" and not to_read["updateTeam"]["manageWorkspace"]

    listed = await gql("query($n: String!) { organization(name: $n) { teams { name role } } }", n=unique)
    assert listed["organization"]["teams"] == [{"name": "devs", "role": "READ"}, {"name": "ops", "role": "CUSTOM"}]

    gone = await gql(
        "mutation($id: ID!) { deleteTeam(input: {id: $id}) { ... on Deleted { id } } }", id=team["id"]
    )
    assert gone["deleteTeam"]["id"] == team["id"]
    listed = await gql("query($n: String!) { organization(name: $n) { teams { name } } }", n=unique)
    assert listed["organization"]["teams"] == [{"name": "ops"}]


async def test_team_membership_scopes_visibility(gql: GraphQLClient, as_groups, unique: str) -> None:  # type: ignore[no-untyped-def]
    await create_org(gql, unique)
    await create_org(gql, f"{unique}-other")
    await gql(
        'mutation($o: String!) { createTeam(input: {organization: $o, name: "readers", role: READ}) { __typename } }',
        o=unique,
    )
    reader = await as_groups("readers")
    mine = await reader("{ organizations(first: 100) { edges { node { name } } } }")
    names = {e["node"]["name"] for e in mine["organizations"]["edges"]}
    assert unique in names and f"{unique}-other" not in names
    assert (await reader("query($n: String!) { organization(name: $n) { name } }", n=f"{unique}-other"))[
        "organization"
    ] is None
    me = await reader("{ me { groups isAdmin } }")
    assert me["me"] == {"groups": ["readers"], "isAdmin": False}
