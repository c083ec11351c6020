"""Helpers for the registry tests: git repositories with version tags, a terraform provider written
with the PyPI package ``tf`` and packed like a real release, `terrakube up --self-signed` as a
real HTTPS process, and the terraform CLI pointed at it."""

from __future__ import annotations

import io
import os
import ssl
import subprocess
import sys
import textwrap
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.procs import STARTUP_TIMEOUT, Api, Server, git

MODULE_TF = """\
variable "name" {
  type = string
}

resource "terraform_data" "this" {
  input = var.name
}

output "version" {
  value = "%(version)s"
}

output "name" {
  value = terraform_data.this.output
}
"""




def module_repo(path: Path, versions: list[str], folder: str = "", prefix: str = "v",
                extra_tags: tuple[str, ...] = ("latest", "release-candidate")) -> Path:
    """A git repository with one commit per version, tagged ``{prefix}{version}``; ``folder``
    holds the module (empty: the root). Some tags that are not versions are added too."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    code = path / folder if folder else path
    code.mkdir(parents=True, exist_ok=True)
    for version in versions:
        (code / "main.tf").write_text(MODULE_TF % {"version": version})
        (code / "README.md").write_text(f"# vpc module {version}\n")
        git(path, "add", ".")
        git(path, "commit", "-q", "-m", f"release {version}")
        # Annotated and lightweight tags alike: the registry must peel annotated ones to their commit.
        if version.startswith("1."):
            git(path, "tag", "-a", "-m", version, f"{prefix}{version}")
        else:
            git(path, "tag", f"{prefix}{version}")
    for tag in extra_tags:
        git(path, "tag", tag)
    return path


# -- a provider written with `tf` --------------------------------------------------------------

PROVIDER_PY = textwrap.dedent(
    '''\
    """terraform-provider-%(name)s: a tiny provider for registry tests, written with PyPI `tf`."""
    from tf import provider, schema, types
    from tf.runner import run_provider


    class Greeting(provider.Resource):
        def __init__(self, prov):
            self.prov = prov

        @classmethod
        def get_name(cls):
            return "greeting"

        @classmethod
        def get_schema(cls):
            return schema.Schema(
                attributes=[
                    schema.Attribute("name", types.String(), required=True, requires_replace=True),
                    schema.Attribute("text", types.String(), computed=True),
                ]
            )

        def create(self, ctx, planned):
            return {**planned, "text": "hello " + planned["name"] + " from %(name)s %(version)s"}

        def read(self, ctx, current):
            return current

        def update(self, ctx, current, planned):
            return {**planned, "text": current["text"]}

        def delete(self, ctx, current):
            return None


    class TestProvider(provider.Provider):
        def __init__(self):
            pass

        def full_name(self):
            return "registry.test/acme/%(name)s"

        def get_model_prefix(self):
            return "%(name)s_"

        def get_provider_schema(self, diags):
            return schema.Schema(attributes=[])

        def validate_config(self, diags, config):
            pass

        def configure_provider(self, diags, config):
            pass

        def get_data_sources(self):
            return []

        def get_resources(self):
            return [Greeting]


    if __name__ == "__main__":
        run_provider(TestProvider())
    '''
)


def provider_zip(workdir: Path, name: str, version: str, os_name: str = "linux", arch: str = "amd64",
                 binary: str | None = None) -> Path:
    """``terraform-provider-NAME_VERSION_OS_ARCH.zip`` holding ``terraform-provider-NAME_vVERSION``,
    a ``#!/bin/sh`` wrapper that execs this venv's Python on the provider source."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"provider_{name}_{version.replace('.', '_').replace('-', '_')}.py"
    source.write_text(PROVIDER_PY % {"name": name, "version": version})
    wrapper = f'#!/bin/sh\nexec "{sys.executable}" "{source}" "$@"\n'
    out = workdir / f"terraform-provider-{name}_{version}_{os_name}_{arch}.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(binary or f"terraform-provider-{name}_v{version}")
        info.external_attr = (0o100755 << 16)
        archive.writestr(info, wrapper)
    return out


def zip_bytes(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for filename, text in files.items():
            archive.writestr(filename, text)
    return buf.getvalue()


# -- `terrakube up --self-signed` --------------------------------------------------------------


@dataclass
class HttpsServer(Server):
    """`terrakube up --self-signed`: HTTPS on 127.0.0.1 with the certificate kept in the data dir."""

    def __post_init__(self) -> None:
        if self.command == ["up"]:
            self.command = ["up", "--self-signed"]

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def bundle(self) -> Path:
        return self.data_dir / "tls" / "ca-bundle.pem"

    def trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.bundle))

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"terrakube up exited before it was healthy{self.output()}")
            if self.bundle.exists():
                try:
                    response = httpx.get(f"{self.base_url}/healthz", timeout=2.0, verify=self.trust())
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text}"
                except httpx.TransportError as exc:
                    last = repr(exc)
            time.sleep(0.2)
        raise AssertionError(f"/healthz not 200 within {STARTUP_TIMEOUT}s (last: {last}){self.output()}")

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, verify=self.trust(), headers=headers, timeout=60.0)


class HttpsApi(Api):
    """GraphQL over HTTPS, trusting the server's self-signed certificate."""

    server: HttpsServer

    def raw(self, query: str, **variables: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.post(f"{self.server.base_url}/graphql", json={"query": query, "variables": variables},
                          headers=headers, timeout=120.0, verify=self.server.trust())


# -- the terraform CLI ---------------------------------------------------------------------------


def cli_config(path: Path, host: str, token: str | None) -> Path:
    text = f'credentials "{host}" {{\n  token = "{token}"\n}}\n' if token else ""
    path.write_text(text)
    return path


def terraform(cwd: Path, *args: str, config: Path, bundle: Path, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "TERRAKUBE_"))}
    env.update(CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0", TF_CLI_CONFIG_FILE=str(config),
               SSL_CERT_FILE=str(bundle), TF_DATA_DIR=str(cwd / ".terraform"))
    return subprocess.run(["terraform", *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
