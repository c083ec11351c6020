"""End to end: `terrakube up` as a real process, driven over real HTTP like a user would,
then restarted on the same data dir to prove that the data and the admin token survive."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx

from tests.procs import Api, Server

TCL = """\
flow:
  - type: terraformPlan
    name: Plan
    step: 100
  - type: terraformApply
    name: Apply
    step: 200
"""


def db_bytes(data_dir: Path) -> bytes:
    """The SQLite file as it is on disk, with its write-ahead log."""
    blob = b""
    for suffix in ("", "-wal"):
        path = data_dir / f"terrakube.db{suffix}"
        if path.exists():
            blob += path.read_bytes()
    return blob


def assert_unauthenticated(response: httpx.Response, context: str) -> None:
    assert response.status_code == 401, f"{context}: {response.status_code} {response.text}"
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", response.text


VARIABLES_QUERY = """
query($org: String!, $ws: String!) {
  organization(name: $org) {
    id name
    teams { name role }
    templates { name }
    workspaces(first: 10, filter: {nameContains: $ws}) {
      edges { node { id name variables { key value sensitive category } } }
    }
  }
  workspace(organization: $org, name: $ws) { id locked lockReason variables { key value sensitive } }
}
"""


def read_back(api: Api, org: str, ws: str) -> dict[str, Any]:
    return api(VARIABLES_QUERY, org=org, ws=ws)


def test_terrakube_up_end_to_end_and_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    logs = tmp_path / "logs"
    logs.mkdir()
    token_file = data_dir / "admin-token"

    org = "e2e-" + secrets.token_hex(4)
    ws_name = "network"
    team = "platform-engineers"
    plain_value = "plain-" + secrets.token_hex(8)
    secret_value = "sup3r-s3cret-" + secrets.token_hex(12)

    first = Server(data_dir, logs, "first")
    second: Server | None = None
    try:
        # -- first start -------------------------------------------------------------
        first.start()
        first.wait_healthy()
        health = httpx.get(f"{first.base_url}/healthz", timeout=5.0).json()
        assert health["status"] == "ok" and health["database"] == "ok", health

        assert token_file.exists(), f"no admin-token file{first.output()}"
        admin_token = token_file.read_text().strip()
        assert admin_token, "admin-token file is empty"
        stdout = first.stdout()
        assert f"{first.base_url}/graphql" in stdout, f"GraphQL URL not printed{first.output()}"
        assert admin_token in stdout.split(), f"printed token differs from {token_file}{first.output()}"
        assert (data_dir / "secret-key").exists(), f"no secret-key file{first.output()}"
        assert (data_dir / "terrakube.db").exists(), f"no SQLite database{first.output()}"

        ide = httpx.get(f"{first.base_url}/graphql", headers={"Accept": "text/html"}, timeout=10.0)
        assert ide.status_code == 200, f"GraphiQL page: {ide.status_code} {ide.text[:500]}{first.output()}"
        assert "text/html" in ide.headers["content-type"], ide.headers
        assert "graphiql" in ide.text.lower()

        anonymous = Api(first, None)
        assert_unauthenticated(anonymous.raw("{ me { name } }"), "POST without a token")
        assert_unauthenticated(Api(first, "not-a-jwt").raw("{ me { name } }"), "POST with garbage token")

        api = Api(first, admin_token)
        me = api("{ me { name isAdmin groups } }")["me"]
        assert me["isAdmin"] is True, me

        created_org = api.mutate(
            "createOrganization", "CreateOrganizationInput", "... on Organization { id name description }",
            name=org, description="end-to-end",
        )
        assert created_org == {"__typename": "Organization", "id": created_org["id"], "name": org, "description": "end-to-end"}

        created_team = api.mutate(
            "createTeam", "CreateTeamInput", "... on Team { id name role manageWorkspace }",
            organization=org, name=team, role="WRITE",
        )
        assert created_team["name"] == team and created_team["role"] == "WRITE", created_team

        workspace = api.mutate(
            "createWorkspace", "CreateWorkspaceInput", "... on Workspace { id name locked executionMode }",
            organization=org, name=ws_name, description="vpc", source="https://github.com/example/network.git",
            branch="main", folder="/", terraformVersion="1.9.8", executionMode="REMOTE",
        )
        assert workspace["name"] == ws_name and workspace["locked"] is False, workspace
        ws_id = workspace["id"]

        plain = api.mutate(
            "createVariable", "CreateVariableInput", "... on Variable { id key value sensitive }",
            workspaceId=ws_id, key="region", value=plain_value, category="TERRAFORM",
            sensitive=False, hcl=False, description="where",
        )
        assert plain["value"] == plain_value and plain["sensitive"] is False, plain
        sensitive = api.mutate(
            "createVariable", "CreateVariableInput", "... on Variable { id key value sensitive }",
            workspaceId=ws_id, key="AWS_SECRET_ACCESS_KEY", value=secret_value, category="ENV",
            sensitive=True, hcl=False, description="cloud credentials",
        )
        assert sensitive["value"] is None and sensitive["sensitive"] is True, sensitive

        template = api.mutate(
            "createTemplate", "CreateTemplateInput", "... on Template { id name tcl }",
            organization=org, name="plan-and-apply", description="the default flow", tcl=TCL,
        )
        assert template["name"] == "plan-and-apply" and template["tcl"] == TCL, template

        expected_variables = {
            ("AWS_SECRET_ACCESS_KEY", None, True, "ENV"),
            ("region", plain_value, False, "TERRAFORM"),
        }

        def check_data(api: Api, server: Server) -> None:
            data = read_back(api, org, ws_name)
            found = data["organization"]
            assert found is not None, f"organization {org} is gone{server.output()}"
            assert found["id"] == created_org["id"] and found["name"] == org
            assert {"name": team, "role": "WRITE"} in found["teams"], found["teams"]
            assert "plan-and-apply" in [t["name"] for t in found["templates"]], found["templates"]
            nodes = [e["node"] for e in found["workspaces"]["edges"]]
            assert [n["name"] for n in nodes] == [ws_name], nodes
            assert nodes[0]["id"] == ws_id
            got = {(v["key"], v["value"], v["sensitive"], v["category"]) for v in nodes[0]["variables"]}
            assert got == expected_variables, got
            direct = data["workspace"]
            assert direct is not None and direct["id"] == ws_id, direct
            assert {(v["key"], v["value"]) for v in direct["variables"]} == {
                ("AWS_SECRET_ACCESS_KEY", None),
                ("region", plain_value),
            }
            assert secret_value not in str(data), "a query response carried the sensitive value"

        check_data(api, first)

        # The sensitive value is encrypted at rest; the plain one shows the scan works.
        on_disk = db_bytes(data_dir)
        assert plain_value.encode() in on_disk, "sanity: the non-sensitive value should be in the database file"
        assert secret_value.encode() not in on_disk, "the sensitive value is stored in plaintext"

        # -- lock, unlock --------------------------------------------------------------
        locked = api.mutate(
            "lockWorkspace", "LockWorkspaceInput", "... on Workspace { id locked lockReason }",
            id=ws_id, reason="maintenance window",
        )
        assert locked["locked"] is True and locked["lockReason"] == "maintenance window", locked
        state = api("query($o: String!, $w: String!) { workspace(organization: $o, name: $w) { locked lockReason } }", o=org, w=ws_name)
        assert state["workspace"] == {"locked": True, "lockReason": "maintenance window"}, state
        unlocked = api.mutate(
            "unlockWorkspace", "LockWorkspaceInput", "... on Workspace { id locked lockReason }",
            id=ws_id, reason="done",
        )
        assert unlocked["locked"] is False, unlocked
        state = api("query($o: String!, $w: String!) { workspace(organization: $o, name: $w) { locked lockReason } }", o=org, w=ws_name)
        assert state["workspace"]["locked"] is False, state

        # -- a personal access token: create, use, revoke --------------------------------
        new = api.mutate(
            "createAccessToken", "CreateAccessTokenInput",
            "... on NewAccessToken { token accessToken { id description createdAt expiresAt } }",
            description="ci pipeline", days=7,
        )
        pat, pat_id = new["token"], new["accessToken"]["id"]
        assert pat and pat != admin_token
        assert new["accessToken"]["description"] == "ci pipeline"
        assert new["accessToken"]["expiresAt"] > new["accessToken"]["createdAt"], new
        assert pat_id in [t["id"] for t in api("{ accessTokens { id } }")["accessTokens"]]

        personal = Api(first, pat)
        assert personal("{ me { name isAdmin } }")["me"]["name"] == me["name"]
        seen = personal("query($n: String!) { organization(name: $n) { name } }", n=org)
        assert seen["organization"] == {"name": org}, seen

        revoked = api.mutate("revokeAccessToken", "IdInput", "... on AccessToken { id }", id=pat_id)
        assert revoked["id"] == pat_id, revoked
        assert_unauthenticated(personal.raw("{ me { name } }"), "revoked personal token")
        assert pat_id not in [t["id"] for t in api("{ accessTokens { id } }")["accessTokens"]]

        # -- stop, then start again on the same data dir ---------------------------------
        first.stop()
        on_disk = db_bytes(data_dir)
        assert secret_value.encode() not in on_disk, "the sensitive value is stored in plaintext (after stop)"

        second = Server(data_dir, logs, "second")
        second.start()
        second.wait_healthy()

        assert token_file.read_text().strip() == admin_token, f"admin-token changed on restart{second.output()}"
        assert admin_token in second.stdout().split(), f"restart did not print the same token{second.output()}"
        assert f"{second.base_url}/graphql" in second.stdout(), second.output()

        api2 = Api(second, admin_token)
        assert api2("{ me { isAdmin } }")["me"]["isAdmin"] is True
        check_data(api2, second)
        orgs = api2("{ organizations(first: 100) { edges { node { name } } } }")["organizations"]["edges"]
        assert org in [e["node"]["name"] for e in orgs], orgs
        assert_unauthenticated(Api(second, pat).raw("{ me { name } }"), "revoked token after restart")
        assert_unauthenticated(Api(second, None).raw("{ me { name } }"), "no token after restart")

        second.stop()
    finally:
        first.kill()
        if second is not None:
            second.kill()
