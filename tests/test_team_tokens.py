"""Team access tokens: they act as their team, in the team's organization only; they are kept by
the team's members and admins; revoking them, renaming or deleting the team applies at once."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import GraphQLClient

TOKEN_FIELDS = "... on NewAccessToken { token accessToken { id kind description } }"
CREATE_TEAM_TOKEN = (
    "mutation($input: CreateTeamTokenInput!) { createTeamToken(input: $input) { __typename "
    "... on Error { message } " + TOKEN_FIELDS + " } }"
)
SEE = "query($o: String!) { organization(name: $o) { name } }"
CREATE_WORKSPACE = (
    "mutation($o: String!, $n: String!) { createWorkspace(input: {organization: $o, name: $n}) "
    "{ __typename ... on Error { message } } }"
)


async def org_with_team(gql: GraphQLClient, org: str, team: str, role: str) -> str:
    await gql("mutation($o: String!) { createOrganization(input: {name: $o}) { __typename } }", o=org)
    made = await gql(
        "mutation($o: String!, $t: String!, $r: Role!) { createTeam(input: {organization: $o, name: $t, role: $r}) "
        "{ ... on Team { id } } }", o=org, t=team, r=role,
    )
    return str(made["createTeam"]["id"])


async def team_token(caller: GraphQLClient, team_id: str, days: int = 7) -> dict[str, Any]:
    data = await caller(CREATE_TEAM_TOKEN, input={"teamId": team_id, "description": "ci", "days": days})
    return dict(data["createTeamToken"])


async def test_a_team_token_acts_as_its_team_in_its_own_organization_only(
    client: httpx.AsyncClient, gql: GraphQLClient, as_groups: Any, unique: str
) -> None:
    team_id = await org_with_team(gql, unique, "ci", "WRITE")
    elsewhere = f"{unique}-other"
    await org_with_team(gql, elsewhere, "ci", "ADMIN")  # the same team name, in another organization
    member = await as_groups("ci", "ops")
    made = await team_token(member, team_id)
    assert made["__typename"] == "NewAccessToken" and made["accessToken"]["kind"] == "team"
    ci = GraphQLClient(client, made["token"])
    me = (await ci("{ me { name groups isAdmin } }"))["me"]
    assert me == {"name": "team ci", "groups": ["ci"], "isAdmin": False}
    assert (await ci(CREATE_WORKSPACE, o=unique, n="app"))["createWorkspace"]["__typename"] == "Workspace"
    assert (await ci(SEE, o=elsewhere))["organization"] is None
    assert (await ci(CREATE_WORKSPACE, o=elsewhere, n="app"))["createWorkspace"]["__typename"] == "NotFoundError"
    # The registry takes it like any other token (terraform sends it as a bearer token).
    await gql('mutation($o: String!) { createProvider(input: {organization: $o, name: "cloud"}) { __typename } }',
              o=unique)
    await gql('mutation($o: String!) { createProvider(input: {organization: $o, name: "cloud"}) { __typename } }',
              o=elsewhere)
    auth = {"Authorization": f"Bearer {made['token']}"}
    own = await client.get(f"/terraform/providers/v1/{unique}/cloud/versions", headers=auth)
    assert own.status_code == 200 and own.json() == {"versions": []}
    other = await client.get(f"/terraform/providers/v1/{elsewhere}/cloud/versions", headers=auth)
    assert other.status_code == 404, other.text


async def test_who_may_make_list_and_revoke_team_tokens(
    client: httpx.AsyncClient, gql: GraphQLClient, as_groups: Any, unique: str
) -> None:
    team_id = await org_with_team(gql, unique, "deployers", "WRITE")
    await gql('mutation($o: String!) { createTeam(input: {organization: $o, name: "viewers", role: READ}) '
              "{ __typename } }", o=unique)
    viewer, stranger = await as_groups("viewers"), await as_groups("nobody")
    assert (await team_token(viewer, team_id))["__typename"] == "PermissionDeniedError"
    assert (await team_token(stranger, team_id))["__typename"] == "NotFoundError"  # the team is invisible
    assert (await team_token(gql, team_id, days=0))["__typename"] == "ValidationError"
    by_admin = await team_token(gql, team_id)
    assert by_admin["__typename"] == "NewAccessToken"

    member = await as_groups("deployers")
    mine = await team_token(member, team_id)
    ci = GraphQLClient(client, mine["token"])
    # A token cannot mint tokens: not for itself, not for its team.
    assert (await team_token(ci, team_id))["__typename"] == "PermissionDeniedError"
    personal = await ci('mutation { createAccessToken(input: {description: "x", days: 1}) '
                        "{ __typename } }")
    assert personal["createAccessToken"]["__typename"] == "PermissionDeniedError"

    listed = "query($o: String!) { organization(name: $o) { teams { name tokens { id kind } } } }"
    body = (await member.raw(listed, o=unique)).json()
    teams = {t["name"]: t["tokens"] for t in body["data"]["organization"]["teams"]}
    assert {t["id"] for t in teams["deployers"]} == {by_admin["accessToken"]["id"], mine["accessToken"]["id"]}
    assert teams["viewers"] is None  # not theirs to see...
    assert [e["extensions"]["code"] for e in body["errors"]] == ["PERMISSION_DENIED"]  # ...and told why
    assert mine["token"] not in str(body)  # secrets are never listed

    revoke = "mutation($id: ID!) { revokeAccessToken(input: {id: $id}) { __typename } }"
    assert (await viewer(revoke, id=mine["accessToken"]["id"]))["revokeAccessToken"]["__typename"] == (
        "PermissionDeniedError")
    assert (await ci("{ me { name } }"))["me"]["name"] == "team deployers"
    assert (await member(revoke, id=mine["accessToken"]["id"]))["revokeAccessToken"]["__typename"] == "AccessToken"
    assert (await ci.raw("{ me { name } }")).status_code == 401


async def test_renaming_or_deleting_the_team_applies_to_its_tokens_at_once(
    client: httpx.AsyncClient, gql: GraphQLClient, unique: str
) -> None:
    team_id = await org_with_team(gql, unique, "TERRAKUBE_ADMIN", "READ")  # a name is not a superpower
    ci = GraphQLClient(client, (await team_token(gql, team_id))["token"])
    assert (await ci("{ me { isAdmin groups } }"))["me"] == {"isAdmin": False, "groups": ["TERRAKUBE_ADMIN"]}
    assert (await ci(CREATE_WORKSPACE, o=unique, n="w"))["createWorkspace"]["__typename"] == "PermissionDeniedError"
    await gql('mutation($id: ID!) { updateTeam(input: {id: $id, name: "builders", role: WRITE}) { __typename } }',
              id=team_id)
    assert (await ci("{ me { groups } }"))["me"]["groups"] == ["builders"]
    assert (await ci(CREATE_WORKSPACE, o=unique, n="w"))["createWorkspace"]["__typename"] == "Workspace"
    await gql("mutation($id: ID!) { deleteTeam(input: {id: $id}) { __typename } }", id=team_id)
    assert (await ci.raw("{ me { name } }")).status_code == 401
