"""Every mutation, run by a caller without the permission it needs, answers
PermissionDeniedError and changes nothing; the grants that should work do work."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import GraphQLClient

ERR = "... on Error { __typename message }"

DUMP = """query($o: String!) {
  organization(name: $o) {
    id name description
    teams { id name role manageWorkspace manageTemplate planJob }
    templates { id name description tcl }
    workspaces(first: 100) { edges { node { id name description locked lockReason branch
      variables { id key value category sensitive hcl description } } } }
  }
}"""

TCL = "flow:\n  - type: terraformPlan\n    step: 100\n"


async def seed(gql: GraphQLClient, org: str) -> dict[str, Any]:
    """An organization with a READ team, another team, a workspace, a variable and a template."""
    await gql("mutation($o: String!) { createOrganization(input: {name: $o}) { __typename } }", o=org)
    await gql('mutation($o: String!) { createTeam(input: {organization: $o, name: "readers", role: READ}) { __typename } }', o=org)
    other = await gql('mutation($o: String!) { createTeam(input: {organization: $o, name: "others", role: PLAN}) { ... on Team { id } } }', o=org)
    ws = await gql('mutation($o: String!) { createWorkspace(input: {organization: $o, name: "ws"}) { ... on Workspace { id } } }', o=org)
    locked = await gql('mutation($o: String!) { createWorkspace(input: {organization: $o, name: "held"}) { ... on Workspace { id } } }', o=org)
    await gql('mutation($id: ID!) { lockWorkspace(input: {id: $id, reason: "hold"}) { __typename } }', id=locked["createWorkspace"]["id"])
    ws_id = ws["createWorkspace"]["id"]
    var = await gql('mutation($w: ID!) { createVariable(input: {workspaceId: $w, key: "k", value: "v", category: ENV}) { ... on Variable { id } } }', w=ws_id)
    tpl = await gql('mutation($o: String!, $t: String!) { createTemplate(input: {organization: $o, name: "tpl", tcl: $t}) { ... on Template { id } } }', o=org, t=TCL)
    org_id = (await gql("query($o: String!) { organization(name: $o) { id } }", o=org))["organization"]["id"]
    return {
        "org": org,
        "org_id": org_id,
        "team": other["createTeam"]["id"],
        "ws": ws_id,
        "locked_ws": locked["createWorkspace"]["id"],
        "var": var["createVariable"]["id"],
        "tpl": tpl["createTemplate"]["id"],
    }


# (mutation name, input built from the seeded ids)
MUTATIONS: list[tuple[str, Any]] = [
    ("createOrganization", lambda s: {"name": s["org"] + "-new"}),
    ("updateOrganization", lambda s: {"id": s["org_id"], "description": "hacked"}),
    ("deleteOrganization", lambda s: {"id": s["org_id"]}),
    ("createTeam", lambda s: {"organization": s["org"], "name": "readers-admin", "role": "ADMIN"}),
    ("updateTeam", lambda s: {"id": s["team"], "role": "ADMIN"}),
    ("deleteTeam", lambda s: {"id": s["team"]}),
    ("createWorkspace", lambda s: {"organization": s["org"], "name": "intruder"}),
    ("updateWorkspace", lambda s: {"id": s["ws"], "description": "hacked"}),
    ("deleteWorkspace", lambda s: {"id": s["ws"]}),
    ("lockWorkspace", lambda s: {"id": s["ws"], "reason": "mine"}),
    ("unlockWorkspace", lambda s: {"id": s["locked_ws"], "reason": "mine"}),
    ("createVariable", lambda s: {"workspaceId": s["ws"], "key": "x", "value": "y", "category": "ENV"}),
    ("updateVariable", lambda s: {"id": s["var"], "value": "hacked"}),
    ("deleteVariable", lambda s: {"id": s["var"]}),
    ("createTemplate", lambda s: {"organization": s["org"], "name": "evil", "tcl": TCL}),
    ("updateTemplate", lambda s: {"id": s["tpl"], "description": "hacked"}),
    ("deleteTemplate", lambda s: {"id": s["tpl"]}),
]

INPUT_TYPES = {
    "createOrganization": "CreateOrganizationInput", "updateOrganization": "UpdateOrganizationInput",
    "deleteOrganization": "IdInput", "createTeam": "CreateTeamInput", "updateTeam": "UpdateTeamInput",
    "deleteTeam": "IdInput", "createWorkspace": "CreateWorkspaceInput", "updateWorkspace": "UpdateWorkspaceInput",
    "deleteWorkspace": "IdInput", "lockWorkspace": "LockWorkspaceInput", "unlockWorkspace": "LockWorkspaceInput",
    "createVariable": "CreateVariableInput", "updateVariable": "UpdateVariableInput", "deleteVariable": "IdInput",
    "createTemplate": "CreateTemplateInput", "updateTemplate": "UpdateTemplateInput", "deleteTemplate": "IdInput",
    "revokeAccessToken": "IdInput",
}


async def run(client: GraphQLClient, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    data = await client(f"mutation($i: {INPUT_TYPES[name]}!) {{ {name}(input: $i) {{ __typename {ERR} }} }}", i=payload)
    return data[name]


@pytest.mark.parametrize("name,make_input", MUTATIONS, ids=[m[0] for m in MUTATIONS])
async def test_reader_is_denied_and_nothing_changes(
    gql: GraphQLClient, as_groups: Any, unique: str, name: str, make_input: Any
) -> None:
    seeded = await seed(gql, unique)
    reader = await as_groups("readers")
    before = await gql(DUMP, o=unique)
    orgs_before = await gql("{ organizations(first: 100) { edges { node { name } } } }")

    result = await run(reader, name, make_input(seeded))

    assert result["__typename"] == "PermissionDeniedError", result
    assert result["message"]
    assert await gql(DUMP, o=unique) == before
    assert await gql("{ organizations(first: 100) { edges { node { name } } } }") == orgs_before


async def test_revoking_someone_elses_token_is_denied(gql: GraphQLClient, as_groups: Any) -> None:
    alice = await as_groups("x", owner="alice")
    created = await alice('mutation { createAccessToken(input: {description: "ci", days: 1}) { ... on NewAccessToken { token accessToken { id } } } }')
    new = created["createAccessToken"]
    bob = await as_groups("x", owner="bob")
    result = await run(bob, "revokeAccessToken", {"id": new["accessToken"]["id"]})
    assert result["__typename"] == "PermissionDeniedError"
    alice_token = GraphQLClient(alice.client, new["token"])
    assert (await alice_token("{ me { name } }"))["me"]["name"] == "alice"


async def test_team_grants_apply_in_its_own_organization_only(gql: GraphQLClient, as_groups: Any, unique: str) -> None:
    await seed(gql, unique)
    other = f"{unique}-b"
    await gql("mutation($o: String!) { createOrganization(input: {name: $o}) { __typename } }", o=other)
    await gql('mutation($o: String!) { createTeam(input: {organization: $o, name: "b-admins", role: ADMIN}) { __typename } }', o=other)
    b_admin = await as_groups("b-admins")
    before = await gql(DUMP, o=unique)
    result = await run(b_admin, "createWorkspace", {"organization": unique, "name": "intruder"})
    assert result["__typename"] == "NotFoundError"  # invisible, so its existence does not leak
    assert (await b_admin("query($o: String!) { organization(name: $o) { id } }", o=unique))["organization"] is None
    assert await gql(DUMP, o=unique) == before
    own = await run(b_admin, "createWorkspace", {"organization": other, "name": "mine"})
    assert own["__typename"] == "Workspace"


async def test_custom_flags_grant_exactly_what_they_say(gql: GraphQLClient, as_groups: Any, unique: str) -> None:
    seeded = await seed(gql, unique)
    await gql('mutation($o: String!) { createTeam(input: {organization: $o, name: "tpl-only", role: CUSTOM, manageTemplate: true}) { __typename } }', o=unique)
    await gql('mutation($o: String!) { createTeam(input: {organization: $o, name: "writers", role: WRITE}) { __typename } }', o=unique)
    templater = await as_groups("tpl-only")
    assert (await run(templater, "updateTemplate", {"id": seeded["tpl"], "description": "ok"}))["__typename"] == "Template"
    assert (await run(templater, "updateWorkspace", {"id": seeded["ws"], "description": "no"}))["__typename"] == "PermissionDeniedError"
    writer = await as_groups("writers")
    assert (await run(writer, "updateVariable", {"id": seeded["var"], "value": "new"}))["__typename"] == "Variable"
    assert (await run(writer, "createTemplate", {"organization": unique, "name": "w", "tcl": TCL}))["__typename"] == "PermissionDeniedError"
    # Groups combine: a member of both teams has the union of their grants.
    both = await as_groups("tpl-only", "writers")
    assert (await run(both, "createTemplate", {"organization": unique, "name": "both", "tcl": TCL}))["__typename"] == "Template"
    assert (await run(both, "lockWorkspace", {"id": seeded["ws"], "reason": "r"}))["__typename"] == "Workspace"
