"""The http state backend: the real terraform CLI against a real uvicorn server (SQLite and
PostgreSQL), and the backend's HTTP answers for the cases terraform cannot easily provoke."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from app import Services, create_app
from domain.services.access_tokens import issue_token
from registry.state_backend import state_routes
from tests.conftest import GraphQLClient, make_settings

LINEAGE = "0b6c1f0e-3d3a-4d1e-8f3c-2f64a4d5a9e1"

MAIN_TF = """\
terraform {
  backend "http" {}
}

variable "size" {
  type    = string
  default = "small"
}

resource "terraform_data" "box" {
  input = var.size
}

output "size" {
  value = terraform_data.box.output
}

output "secret" {
  value     = "s3cr3t-${var.size}"
  sensitive = true
}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on a real uvicorn, in a thread with its own event loop; yields its base URL."""
    app = create_app(make_settings(db_url, tmp_path_factory.mktemp("server")))
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=15)


def basic(token: str, user: str = "terraform") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


class Terraform:
    """The terraform CLI in one working directory, configured for one workspace's backend."""

    def __init__(self, workdir: Path, base_url: str, org: str, ws: str, token: str) -> None:
        self.workdir = workdir
        cli_config = workdir / "cli.tfrc"
        cli_config.write_text("")
        (workdir / "main.tf").write_text(MAIN_TF)
        address = f"{base_url}/tfstate/{org}/{ws}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TF_", "TERRAKUBE_"))},
            "CHECKPOINT_DISABLE": "1",
            "TF_CLI_CONFIG_FILE": str(cli_config),
            "TF_IN_AUTOMATION": "1",
            "TF_HTTP_ADDRESS": address,
            "TF_HTTP_LOCK_ADDRESS": f"{address}/lock",
            "TF_HTTP_UNLOCK_ADDRESS": f"{address}/lock",
            "TF_HTTP_LOCK_METHOD": "LOCK",
            "TF_HTTP_UNLOCK_METHOD": "UNLOCK",
            "TF_HTTP_USERNAME": "terraform",
            "TF_HTTP_PASSWORD": token,
        }

    async def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = await asyncio.to_thread(
            subprocess.run,
            ["terraform", *args, "-no-color"],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check:
            assert result.returncode == 0, f"terraform {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result


@pytest.fixture
async def api(server: str, admin_token: str) -> AsyncIterator[GraphQLClient]:
    """GraphQL over real HTTP to the uvicorn server, as an admin."""
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield GraphQLClient(client, admin_token)


WORKSPACE = """query($o: String!, $w: String!) { workspace(organization: $o, name: $w) {
  id
  currentStateVersion { id serial lineage outputs { name value sensitive } }
  stateVersions(first: 100) { edges { node { id serial createdBy downloadUrl } } }
  stateLock { id operation who }
  size: outputHistory(name: "size") { serial value sensitive }
  secret: outputHistory(name: "secret") { serial value sensitive }
} }"""


async def test_terraform_cli_uses_the_http_backend(
    server: str, api: GraphQLClient, services: Services, admin_token: str, unique: str, tmp_path: Path
) -> None:
    org, ws = unique, "network"
    await api("mutation($o: String!) { createOrganization(input: {name: $o}) { __typename } }", o=org)
    await api(
        "mutation($o: String!, $w: String!) { createWorkspace(input: {organization: $o, name: $w}) { __typename } }",
        o=org, w=ws,
    )
    await api(
        f'mutation($o: String!) {{ createTeam(input: {{organization: $o, name: "{unique}-read", role: READ}}) '
        "{ __typename } }",
        o=org,
    )
    tf = Terraform(tmp_path, server, org, ws, admin_token)

    async def workspace() -> dict[str, Any]:
        return (await api(WORKSPACE, o=org, w=ws))["workspace"]

    # -- two applies write two versions with growing serials and an output history ------------
    await tf.run("init", "-input=false")
    await tf.run("apply", "-auto-approve", "-input=false")
    first = (await workspace())["currentStateVersion"]
    await tf.run("apply", "-auto-approve", "-input=false", "-var", "size=large")
    state = await workspace()
    serials = [e["node"]["serial"] for e in state["stateVersions"]["edges"]]
    assert len(serials) >= 2 and serials == sorted(serials, reverse=True) and len(set(serials)) == len(serials)
    assert state["currentStateVersion"]["serial"] == serials[0] > first["serial"]
    assert state["currentStateVersion"]["lineage"] == first["lineage"]
    assert {o["name"]: o["value"] for o in state["currentStateVersion"]["outputs"]} == {
        "secret": None, "size": '"large"'}
    assert [h["value"] for h in state["size"]][:1] == ['"large"'] and '"small"' in [h["value"] for h in state["size"]]
    assert state["secret"] and all(h["value"] is None and h["sensitive"] for h in state["secret"])
    assert {e["node"]["createdBy"] for e in state["stateVersions"]["edges"]} == {"admin"}
    assert (await tf.run("output", "-raw", "size")).stdout == "large"
    assert state["stateLock"] is None  # terraform released its lock after each run

    # -- the download link serves the exact bytes that were recorded ----------------------------
    node = state["stateVersions"]["edges"][0]["node"]
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        download = await http.get(node["downloadUrl"], headers=basic(admin_token))
        assert download.status_code == 200
        assert json.loads(download.content)["serial"] == node["serial"]
        assert base64.b64decode(download.headers["content-md5"]) == hashlib.md5(download.content).digest()

        # -- a lock held elsewhere stops terraform, with the holder's lock info ----------------
        held = {"ID": f"{unique}-manual", "Operation": "OperationTypeInvalid", "Info": "maintenance",
                "Who": "ops@bastion", "Version": "1.11.4", "Created": "2025-06-01T10:00:00Z", "Path": ""}
        assert (await http.request("LOCK", f"/tfstate/{org}/{ws}/lock", json=held, headers=basic(admin_token))).status_code == 200
        other = await http.request("LOCK", f"/tfstate/{org}/{ws}/lock", json={**held, "ID": "x"}, headers=basic(admin_token))
        assert other.status_code == 423 and other.json()["ID"] == held["ID"]
    blocked = await tf.run("apply", "-auto-approve", "-input=false", "-lock-timeout=1s", "-var", "size=huge", check=False)
    assert blocked.returncode != 0
    # terraform names the holder's lock ID, read from the 423 body.
    assert "Error acquiring the state lock" in blocked.stderr, blocked.stderr
    assert f"HTTP remote state already locked: ID={held['ID']}" in blocked.stderr, blocked.stderr
    state = await workspace()
    assert state["stateLock"] == {"id": held["ID"], "operation": "OperationTypeInvalid", "who": "ops@bastion"}
    assert state["currentStateVersion"]["serial"] == serials[0]  # nothing was written

    unlocked = await api(
        "mutation($id: ID!) { forceUnlockWorkspaceState(input: {id: $id}) { ... on Workspace { stateLock { id } } } }",
        id=state["id"],
    )
    assert unlocked["forceUnlockWorkspaceState"] == {"stateLock": None}

    # -- a rollback is a new version, and terraform plans against the old content ---------------
    rolled = await api(
        "mutation($id: ID!) { rollbackState(input: {stateVersionId: $id}) { ... on StateVersion { serial lineage } } }",
        id=first["id"],
    )
    assert rolled["rollbackState"] == {"serial": serials[0] + 1, "lineage": first["lineage"]}
    assert (await tf.run("output", "-raw", "size")).stdout == "small"
    plan = await tf.run("plan", "-input=false", "-detailed-exitcode", "-var", "size=small", check=False)
    assert plan.returncode == 0, plan.stdout + plan.stderr  # 0: no changes against the rolled-back state
    await tf.run("apply", "-auto-approve", "-input=false", "-var", "size=medium")
    assert (await workspace())["currentStateVersion"]["serial"] == serials[0] + 2

    # -- terraform force-unlock releases a lock it does not hold (it sends no lock info) --------
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        await http.request("LOCK", f"/tfstate/{org}/{ws}/lock", json=held, headers=basic(admin_token))
    await tf.run("force-unlock", "-force", held["ID"])
    assert (await workspace())["stateLock"] is None

    # -- credentials: a READ team member is refused, a wrong token is unauthenticated -----------
    reader = (await issue_token(services.platform, owner=f"{unique}-reader", email=None, groups=[f"{unique}-read"],
                                description="reader", days=1, kind="personal")).secret
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        path = f"/tfstate/{org}/{ws}"
        assert (await http.get(path, headers=basic(reader))).status_code == 403
        assert (await http.post(path, content=b"{}", headers=basic(reader))).status_code == 403
        assert (await http.request("LOCK", f"{path}/lock", json=held, headers=basic(reader))).status_code == 403
        assert (await http.get(node["downloadUrl"], headers=basic(reader))).status_code == 403
        assert (await http.get(path, headers=basic("not-a-token"))).status_code == 401
        assert (await http.get(path)).status_code == 401
        assert (await http.get(path, headers={"Authorization": f"Bearer {admin_token}"})).status_code == 200
        assert (await http.get(f"/tfstate/{org}/nope", headers=basic(admin_token))).status_code == 404
    tf.env["TF_HTTP_PASSWORD"] = reader
    refused = await tf.run("plan", "-input=false", "-lock=false", check=False)
    # terraform's wording for a 403 answer.
    assert refused.returncode != 0 and "HTTP remote state endpoint invalid auth" in refused.stderr, refused.stderr


# -- HTTP answers, in process (the same routes, a small size limit) ----------------------------


@pytest.fixture
async def backend(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=state_routes(max_state_bytes=4096))
    app.state.services = services
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://backend") as client:
        yield client


def doc(serial: int, lineage: str = LINEAGE, pad: int = 0) -> bytes:
    return json.dumps({"version": 4, "serial": serial, "lineage": lineage, "outputs": {}, "resources": [],
                       "padding": "x" * pad}).encode()


async def test_backend_status_codes(
    backend: httpx.AsyncClient, gql: GraphQLClient, admin_token: str, unique: str
) -> None:
    await gql("mutation($o: String!) { createOrganization(input: {name: $o}) { __typename } }", o=unique)
    await gql('mutation($o: String!) { createWorkspace(input: {organization: $o, name: "ws"}) { __typename } }', o=unique)
    auth = basic(admin_token)
    path = f"/tfstate/{unique}/ws"

    assert (await backend.get(path, headers=auth)).status_code == 204
    assert (await backend.post(path, content=doc(1), headers=auth)).status_code == 200
    got = await backend.get(path, headers=auth)
    assert got.status_code == 200 and got.content == doc(1)
    assert (await backend.post(path, content=doc(1), headers=auth)).status_code == 200  # identical retry

    conflict = await backend.post(path, content=doc(1, pad=1), headers=auth)
    assert conflict.status_code == 409 and "serial 1" in conflict.json()["error"]
    lineage = await backend.post(path, content=doc(2, lineage="other"), headers=auth)
    assert lineage.status_code == 409 and "lineage" in lineage.json()["error"]
    assert (await backend.post(path, content=b"{oops", headers=auth)).status_code == 400
    too_big = await backend.post(path, content=doc(2, pad=5000), headers=auth)
    assert too_big.status_code == 413

    lock = {"ID": "L1", "Operation": "OperationTypeApply", "Who": "me@host", "Version": "1.11.4",
            "Created": "2025-06-01T10:00:00Z", "Path": "", "Info": ""}
    assert (await backend.request("LOCK", f"{path}/lock", json=lock, headers=auth)).status_code == 200
    locked = await backend.post(path, content=doc(2), headers=auth)
    assert locked.status_code == 423 and locked.json() == lock
    assert (await backend.post(f"{path}?ID=L2", content=doc(2), headers=auth)).status_code == 423
    assert (await backend.post(f"{path}?ID=L1", content=doc(2), headers=auth)).status_code == 200
    wrong = await backend.request("UNLOCK", f"{path}/lock", json={**lock, "ID": "L2"}, headers=auth)
    assert wrong.status_code == 423 and wrong.json()["ID"] == "L1"
    assert (await backend.request("UNLOCK", f"{path}/lock", json=lock, headers=auth)).status_code == 200
    assert (await backend.request("UNLOCK", f"{path}/lock", json=lock, headers=auth)).status_code == 200
    assert (await backend.request("LOCK", f"{path}/lock", content=b"[]", headers=auth)).status_code == 400
    assert (await backend.get(f"{path}/versions/not-an-id", headers=auth)).status_code == 404
