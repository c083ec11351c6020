"""End to end, as a user would: `terrakube up --self-signed` as a real HTTPS process, the real
terraform CLI installing a module (from a git repository made here) and a provider (written with
PyPI `tf`, uploaded and signed by the organization key) from the platform, a caller without
access refused, and a platform job whose workspace uses both."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain import signing
from tests.registry_fixtures import (
    HttpsApi,
    HttpsServer,
    cli_config,
    git,
    module_repo,
    provider_zip,
    terraform,
)

pytestmark = pytest.mark.skipif(not signing.gpg_available(), reason="gpg is not installed")

ORG = "acme"
PROVIDER_VERSIONS = ("1.0.0", "1.1.0", "2.0.0")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsServer]:
    base = tmp_path_factory.mktemp("registry-up")
    srv = HttpsServer(data_dir=base / "data", log_dir=base, name="up")
    srv.start()
    try:
        srv.wait_healthy()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def api(server: HttpsServer) -> HttpsApi:
    return HttpsApi(server, server.token)


@pytest.fixture(scope="module")
def published(server: HttpsServer, api: HttpsApi, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The organization with module acme/vpc/aws (tags v1.0.0, v1.1.0, v2.0.0) and provider
    acme/cloud (1.0.0, 1.1.0, 2.0.0 for linux_amd64), signed by a key generated in the platform."""
    work = tmp_path_factory.mktemp("registry-src")
    api.mutate("createOrganization", "CreateOrganizationInput", "... on Organization { id }", name=ORG)
    repo = module_repo(work / "vpc", ["1.0.0", "1.1.0", "2.0.0"])
    module = api.mutate("createModule", "CreateModuleInput", "... on Module { id versions { version } }",
                        organization=ORG, name="vpc", provider="aws", source=f"file://{repo}")
    assert [v["version"] for v in module["versions"]] == ["2.0.0", "1.1.0", "1.0.0"]
    api.mutate("createProvider", "CreateProviderInput", "... on Provider { id }", organization=ORG, name="cloud")
    key = api.mutate("generateSigningKey", "GenerateSigningKeyInput", "... on SigningKey { keyId }", organization=ORG)
    with server.client(server.token) as http:
        for version in PROVIDER_VERSIONS:
            package = provider_zip(work / "providers", "cloud", version)
            with package.open("rb") as fh:
                response = http.post(f"/api/providers/{ORG}/cloud/versions/{version}/linux/amd64",
                                     files={"file": (package.name, fh, "application/zip")}, data={"protocols": "6.0"})
            assert response.status_code == 201, response.text
    return {"key_id": key["keyId"], "module_id": module["id"], "repo": repo}


def code(server: HttpsServer, directory: Path, *, module: bool = True, provider: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    parts = []
    if provider:
        parts.append(f"""
terraform {{
  required_providers {{
    cloud = {{
      source  = "{server.host}/{ORG}/cloud"
      version = "~> 1.0"
    }}
  }}
}}

resource "cloud_greeting" "hello" {{
  name = "registry"
}}

output "greeting" {{
  value = cloud_greeting.hello.text
}}
""")
    if module:
        parts.append(f"""
module "vpc" {{
  source  = "{server.host}/{ORG}/vpc/aws"
  version = "~> 1.0"
  name    = "network"
}}

output "module_version" {{
  value = module.vpc.version
}}
""")
    (directory / "main.tf").write_text("\n".join(parts))
    return directory


def test_up_prints_what_terraform_needs(server: HttpsServer) -> None:
    out = server.stdout()
    assert f"GraphQL: https://127.0.0.1:{server.port}/graphql" in out, server.output()
    assert f"SSL_CERT_FILE={server.bundle}" in out.splitlines(), server.output()
    rc = server.data_dir / "terraform.rc"
    assert f"TF_CLI_CONFIG_FILE={rc}" in out.splitlines(), server.output()
    assert oct(rc.stat().st_mode & 0o777) == "0o600"
    assert f'credentials "{server.host}"' in rc.read_text() and server.token in rc.read_text()
    with server.client() as http:
        discovery = http.get("/.well-known/terraform.json").json()
    assert discovery == {"modules.v1": f"{server.base_url}/terraform/modules/v1/",
                         "providers.v1": f"{server.base_url}/terraform/providers/v1/"}


def test_terraform_installs_the_module_and_the_signed_provider(
    server: HttpsServer, published: dict[str, Any], tmp_path: Path
) -> None:
    work = code(server, tmp_path / "both")
    # The CLI config `terrakube up` printed (TF_CLI_CONFIG_FILE) holds the admin token.
    config = server.data_dir / "terraform.rc"
    init = terraform(work, "init", config=config, bundle=server.bundle)
    assert init.returncode == 0, init.stdout + init.stderr + server.output()
    assert f"Downloading {server.host}/{ORG}/vpc/aws 1.1.0 for vpc" in init.stdout, init.stdout
    assert (f"Installed {server.host}/{ORG}/cloud v1.1.0 (self-signed, key ID {published['key_id']})"
            in init.stdout), init.stdout
    assert "signed by" in init.stdout
    apply = terraform(work, "apply", "-auto-approve", config=config, bundle=server.bundle)
    assert apply.returncode == 0, apply.stdout + apply.stderr
    outputs = json.loads(terraform(work, "output", "-json", config=config, bundle=server.bundle).stdout)
    assert outputs["module_version"]["value"] == "1.1.0"
    assert outputs["greeting"]["value"] == "hello registry from cloud 1.1.0"
    lock = (work / ".terraform.lock.hcl").read_text()
    assert f'provider "{server.host}/{ORG}/cloud"' in lock and 'version     = "1.1.0"' in lock


def _token_for(server: HttpsServer, groups: list[str]) -> str:
    """A personal access token of a user in ``groups``, issued in the server's own database."""
    from domain.services.access_tokens import issue_token
    from settings import Settings
    from wiring import open_platform

    async def issue() -> str:
        settings = Settings(data_dir=server.data_dir, secret_key=(server.data_dir / "secret-key").read_text().strip())
        platform = await open_platform(settings)
        try:
            new = await issue_token(platform, owner="someone", email=None, groups=groups, description="test",
                                    days=1, kind="personal")
            return new.secret
        finally:
            await platform.blobs.close()
            await platform.db.dispose()

    return asyncio.run(issue())


def test_callers_without_access_fail_cleanly(
    server: HttpsServer, api: HttpsApi, published: dict[str, Any], tmp_path: Path
) -> None:
    no_token = cli_config(tmp_path / "none.rc", server.host, None)
    for kind in ("module", "provider"):
        work = code(server, tmp_path / f"anonymous-{kind}", module=kind == "module", provider=kind == "provider")
        init = terraform(work, "init", config=no_token, bundle=server.bundle)
        assert init.returncode != 0, init.stdout
        expected = "401 Unauthorized" if kind == "module" else "requires authentication credentials"
        assert expected in flat(init.stderr), init.stderr
        assert "Traceback" not in init.stderr + server.output()

    outsider = cli_config(tmp_path / "outsider.rc", server.host, _token_for(server, ["strangers"]))
    work = code(server, tmp_path / "outsider-module", provider=False)
    init = terraform(work, "init", config=outsider, bundle=server.bundle)
    assert init.returncode != 0
    assert f'Module "vpc" (from main.tf:2) cannot be found in the module registry at {server.host}' in flat(
        init.stderr
    ), init.stderr
    work = code(server, tmp_path / "outsider-provider", module=False)
    init = terraform(work, "init", config=outsider, bundle=server.bundle)
    assert init.returncode != 0
    assert f"{server.host}/{ORG}/cloud" in init.stderr and "does not have a provider" in flat(init.stderr), init.stderr

    # A member of any team of the organization (role READ) can install.
    api.mutate("createTeam", "CreateTeamInput", "... on Team { id }", organization=ORG, name="readers", role="READ")
    reader = cli_config(tmp_path / "reader.rc", server.host, _token_for(server, ["readers"]))
    work = code(server, tmp_path / "reader")
    init = terraform(work, "init", config=reader, bundle=server.bundle)
    assert init.returncode == 0, init.stdout + init.stderr


def flat(text: str) -> str:
    """Terraform wraps its messages at 80 columns."""
    return " ".join(text.split())


def wait_job(api: HttpsApi, job_id: str, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = api("query($id: ID!) { job(id: $id) { id status reason steps { name status log { text } } } }",
                  id=job_id)["job"]
        if job["status"] in ("COMPLETED", "FAILED", "CANCELLED", "REJECTED"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job stayed {job['status']}: {json.dumps(job)[:4000]}{api.server.output()}")
        time.sleep(0.3)


def test_a_platform_job_uses_the_private_module_and_provider(
    server: HttpsServer, api: HttpsApi, published: dict[str, Any], tmp_path: Path
) -> None:
    repo = code(server, tmp_path / "workspace-repo")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "use the private registry")
    ws = api.mutate("createWorkspace", "CreateWorkspaceInput", "... on Workspace { id }", organization=ORG,
                    name="uses-registry", source=f"file://{repo}", branch="main")["id"]
    job = api.mutate("runJob", "RunJobInput", "... on Job { id }", workspaceId=ws, templateName="Plan and apply")
    done = wait_job(api, job["id"])
    logs = "\n".join(step["log"]["text"] for step in done["steps"])
    assert done["status"] == "COMPLETED", logs + server.output()
    assert f"Installed {server.host}/{ORG}/cloud v1.1.0 (self-signed, key ID {published['key_id']})" in logs, logs
    assert f"Downloading {server.host}/{ORG}/vpc/aws 1.1.0" in logs, logs
    assert "Apply complete! Resources: 2 added" in logs, logs
    assert server.token not in logs
    state = api('query { workspace(organization: "acme", name: "uses-registry") { currentStateVersion { '
                "outputs { name value } } } }")["workspace"]["currentStateVersion"]
    outputs = {o["name"]: json.loads(o["value"]) for o in state["outputs"]}
    assert outputs == {"greeting": "hello registry from cloud 1.1.0", "module_version": "1.1.0"}
    module = api('query { module(organization: "acme", name: "vpc", provider: "aws") { downloadCount } }')["module"]
    assert module["downloadCount"] >= 1


def test_the_certificate_is_kept_across_restarts(server: HttpsServer, published: dict[str, Any], tmp_path: Path) -> None:
    cert = (server.data_dir / "tls" / "cert.pem").read_bytes()
    server.stop()
    again = HttpsServer(data_dir=server.data_dir, log_dir=server.log_dir, name="again")
    again.start()
    try:
        again.wait_healthy()
        assert (server.data_dir / "tls" / "cert.pem").read_bytes() == cert
        assert f"SSL_CERT_FILE={again.bundle}" in again.stdout()
        # The kept certificate serves the new port too; terraform still trusts it.
        work = code(again, tmp_path / "after-restart", provider=False)
        init = terraform(work, "init", config=again.data_dir / "terraform.rc", bundle=again.bundle)
        assert init.returncode == 0, init.stdout + init.stderr + again.output()
    finally:
        again.stop()


def test_up_serves_https_with_a_given_certificate(tmp_path: Path) -> None:
    """`--tls-cert/--tls-key`: the user's own certificate (here made by the test)."""
    from tls import create_certificate, write_bundle

    cert_pem, key_pem = create_certificate(["127.0.0.1"])
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(key_pem)
    srv = HttpsServer(data_dir=tmp_path / "data", log_dir=tmp_path, name="own-cert",
                      command=["up", "--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem")])
    srv.bundle.parent.mkdir(parents=True)
    write_bundle(cert_pem, srv.bundle)
    srv.start()
    try:
        srv.wait_healthy()
        assert not (srv.data_dir / "tls" / "cert.pem").exists(), "no self-signed certificate was made"
        with srv.client() as http:
            assert http.get("/.well-known/terraform.json").json()["modules.v1"].startswith(srv.base_url)
        assert f"GraphQL: https://127.0.0.1:{srv.port}/graphql" in srv.stdout()
    finally:
        srv.stop()
