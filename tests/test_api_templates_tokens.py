"""Templates, access tokens and `me` through the GraphQL API (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app import Services
from domain.models import AccessToken
from tests.conftest import GraphQLClient

TPL = "... on Template { id name description tcl } ... on Error { __typename message } ... on ValidationError { field }"
PLAN_APPLY = """flow:
  - type: "terraformPlan"
    name: "Plan"
    step: 100
  - type: "terraformApply"
    name: "Apply"
    step: 200
"""


async def create_tpl(gql: GraphQLClient, org: str, name: str, tcl: str) -> dict[str, Any]:
    data = await gql(
        f"mutation($o: String!, $n: String!, $t: String!) {{ createTemplate(input: {{organization: $o, name: $n, tcl: $t, description: \"d\"}}) {{ {TPL} }} }}",
        o=org, n=name, t=tcl,
    )
    return data["createTemplate"]


async def test_template_lifecycle(gql: GraphQLClient, unique: str) -> None:
    await gql("mutation($o: String!) { createOrganization(input: {name: $o}) { __typename } }", o=unique)
    defaults = await gql("query($o: String!) { organization(name: $o) { templates { name } } }", o=unique)
    assert [t["name"] for t in defaults["organization"]["templates"]] == [
        "Destroy", "Plan", "Plan and apply", "Terraform-Plan/Apply-Cli", "Terraform-Plan/Destroy-Cli",
    ]
    assert (await create_tpl(gql, unique, "Plan and apply", PLAN_APPLY))["__typename"] == "ConflictError"
    tpl = await create_tpl(gql, unique, "Mine", PLAN_APPLY)
    assert tpl["tcl"] == PLAN_APPLY and tpl["description"] == "d"

    changed = await gql(
        f'mutation($id: ID!) {{ updateTemplate(input: {{id: $id, name: "Renamed"}}) {{ {TPL} }} }}', id=tpl["id"]
    )
    assert changed["updateTemplate"]["name"] == "Renamed" and changed["updateTemplate"]["tcl"] == PLAN_APPLY
    listed = await gql("query($o: String!) { organization(name: $o) { templates { name } } }", o=unique)
    assert {"name": "Renamed"} in listed["organization"]["templates"]
    assert {"name": "Mine"} not in listed["organization"]["templates"]
    gone = await gql("mutation($id: ID!) { deleteTemplate(input: {id: $id}) { ... on Deleted { id } } }", id=tpl["id"])
    assert gone["deleteTemplate"]["id"] == tpl["id"]
    listed = await gql("query($o: String!) { organization(name: $o) { templates { name } } }", o=unique)
    assert {"name": "Renamed"} not in listed["organization"]["templates"]


async def test_invalid_tcl_is_refused_with_its_line(gql: GraphQLClient, unique: str) -> None:
    await gql("mutation($o: String!) { createOrganization(input: {name: $o}) { __typename } }", o=unique)
    cases = {
        "flow:\n  - type: terraformPlan\n    step: [100\n": "line",
        "flow: []\n": "non-empty",
        "just a string\n": "mapping",
        "name: x\n": "`flow` is missing",
        "flow:\n  - type: a\n  - just text\n": "flow[1]",
    }
    for tcl, expected in cases.items():
        result = await create_tpl(gql, unique, "bad", tcl)
        assert result["__typename"] == "ValidationError", tcl
        assert result["field"] == "tcl" and expected in result["message"], result
    broken_yaml = await create_tpl(gql, unique, "bad", "flow:\n  - a: 1\n   b: 2\n")
    assert "line 3" in broken_yaml["message"]
    wrong_item = await create_tpl(gql, unique, "bad", "flow:\n  - type: a\n  - just text\n")
    assert "line 3" in wrong_item["message"]
    listed = await gql("query($o: String!) { organization(name: $o) { templates { name } } }", o=unique)
    assert "bad" not in [t["name"] for t in listed["organization"]["templates"]]


async def test_access_token_lifecycle(client: httpx.AsyncClient, as_groups: Any) -> None:
    user = await as_groups("team-a", "team-b", owner="carol@example.com")
    created = await user(
        'mutation { createAccessToken(input: {description: "ci pipeline", days: 7}) { ... on NewAccessToken { token accessToken { id description createdAt expiresAt } } } }'
    )
    new = created["createAccessToken"]
    meta = new["accessToken"]
    lifetime = datetime.fromisoformat(meta["expiresAt"]) - datetime.fromisoformat(meta["createdAt"])
    assert lifetime == timedelta(days=7) and meta["description"] == "ci pipeline"

    ci = GraphQLClient(client, new["token"])
    me = await ci("{ me { name groups isAdmin } }")
    assert me["me"] == {"name": "carol@example.com", "groups": ["team-a", "team-b"], "isAdmin": False}
    listed = await user("{ accessTokens { id description } }")
    assert {"id": meta["id"], "description": "ci pipeline"} in listed["accessTokens"]
    # The secret is only ever returned by createAccessToken.
    assert new["token"] not in str(listed)

    revoked = await user("mutation($id: ID!) { revokeAccessToken(input: {id: $id}) { ... on AccessToken { id } } }", id=meta["id"])
    assert revoked["revokeAccessToken"]["id"] == meta["id"]
    response = await ci.raw("{ me { name } }")
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert meta["id"] not in str(await user("{ accessTokens { id } }"))
    again = await user("mutation($id: ID!) { revokeAccessToken(input: {id: $id}) { __typename } }", id=meta["id"])
    assert again["revokeAccessToken"]["__typename"] == "ConflictError"


async def test_token_days_are_bounded(as_groups: Any) -> None:
    user = await as_groups("g")
    before = await user("{ accessTokens { id } }")
    for days in (0, -1, 366):
        result = await user(
            f'mutation {{ createAccessToken(input: {{description: "x", days: {days}}}) {{ ... on ValidationError {{ field }} }} }}'
        )
        assert result["createAccessToken"] == {"field": "days"}
    assert await user("{ accessTokens { id } }") == before


async def test_expired_token_is_refused_at_once(client: httpx.AsyncClient, services: Services, as_groups: Any) -> None:
    user = await as_groups("g")
    created = await user('mutation { createAccessToken(input: {description: "short", days: 1}) { ... on NewAccessToken { token accessToken { id } } } }')
    new = created["createAccessToken"]
    import uuid

    async with services.platform.db.transaction() as session:
        row = await session.get(AccessToken, uuid.UUID(new["accessToken"]["id"]))
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        session.add(row)
    response = await GraphQLClient(client, new["token"]).raw("{ me { name } }")
    assert response.status_code == 401


async def test_missing_or_malformed_credentials(client: httpx.AsyncClient, admin_token: str) -> None:
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer not.a.jwt"}):
        response = await client.post("/graphql", json={"query": "{ me { name } }"}, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"].startswith("Bearer")
    tampered = admin_token[:-2] + ("AA" if not admin_token.endswith("AA") else "BB")
    response = await client.post("/graphql", json={"query": "{ me { name } }"}, headers={"Authorization": f"Bearer {tampered}"})
    assert response.status_code == 401


async def test_graphiql_page_and_request_ids(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    assert len(page.headers["x-request-id"]) == 32
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    assert echoed.json()["status"] == "ok"


async def test_a_subscription_over_plain_http_is_told_where_to_go(client: httpx.AsyncClient, admin_token: str) -> None:
    response = await client.post(
        "/graphql",
        json={"query": 'subscription { jobStatusChanged(jobId: "00000000-0000-0000-0000-000000000000") { at } }'},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_REQUEST" and "graphql-transport-ws" in error["message"]
