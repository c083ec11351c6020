"""Real platform processes for end-to-end tests: `terrakube up/serve/worker` as subprocesses,
and GraphQL over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
TERRAKUBE = Path(sys.executable).parent / "terrakube"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TERRAKUBE_")}
    env["CHECKPOINT_DISABLE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Server:
    """One `terrakube up` process; stdout and stderr go to files under the test's tmp dir."""

    data_dir: Path
    log_dir: Path
    name: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    # `up` by default; ["serve"] or ["worker"] with production settings in ``env``.
    command: list[str] = field(default_factory=lambda: ["up"])
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stdout_path(self) -> Path:
        return self.log_dir / f"{self.name}.stdout"

    @property
    def stderr_path(self) -> Path:
        return self.log_dir / f"{self.name}.stderr"

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def output(self) -> str:
        err = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        code = None if self.proc is None else self.proc.poll()
        return f"\n--- {self.name} (exit code {code}) stdout ---\n{self.stdout()}\n--- stderr ---\n{err[-20000:]}"

    def start(self) -> None:
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**clean_env(), **self.env},
                cwd=self.log_dir,
            )

    def argv(self) -> list[str]:
        argv = [str(TERRAKUBE), *self.command]
        if self.command[0] == "up":
            argv += ["--port", str(self.port), "--data-dir", str(self.data_dir)]
        elif self.command[0] == "serve":
            argv += ["--host", "127.0.0.1", "--port", str(self.port)]
        return argv

    def wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last: str = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"terrakube up exited before it was healthy{self.output()}")
            try:
                response = httpx.get(f"{self.base_url}/healthz", timeout=2.0)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text}"
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise AssertionError(f"/healthz not 200 within {STARTUP_TIMEOUT}s (last: {last}){self.output()}")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(f"terrakube up ignored SIGTERM for {STOP_TIMEOUT}s{self.output()}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


class Api:
    """GraphQL over real HTTP with one bearer token."""

    def __init__(self, server: Server, token: str | None) -> None:
        self.server = server
        self.token = token

    def raw(self, query: str, **variables: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.post(
            f"{self.server.base_url}/graphql",
            json={"query": query, "variables": variables},
            headers=headers,
            timeout=30.0,
        )

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.raw(query, **variables)
        assert response.status_code == 200, f"{response.status_code} {response.text}{self.server.output()}"
        body = response.json()
        assert not body.get("errors"), f"{body['errors']}{self.server.output()}"
        return body["data"]

    def mutate(self, name: str, input_type: str, selection: str, /, **fields: Any) -> dict[str, Any]:
        """Runs one mutation and insists it returned the object, not a typed error."""
        data = self(
            f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ __typename "
            f"... on Error {{ message }} ... on ValidationError {{ field }} {selection} }} }}",
            input=fields,
        )
        result = data[name]
        assert "message" not in result, f"{name} failed: {result}"
        return result



@contextmanager
def running_up(base: Path, name: str = "up", env: dict[str, str] | None = None) -> Iterator[Api]:
    """`terrakube up` in ``base`` (data in ``base/data``), healthy, as its admin; stopped after."""
    server = Server(data_dir=base / "data", log_dir=base, name=name, env=env or {})
    server.start()
    try:
        server.wait_healthy()
        yield Api(server, (base / "data" / "admin-token").read_text().strip())
    finally:
        server.stop()


GIT_IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}


def git(repo: Path, *args: str) -> str:
    """Runs git in ``repo`` with a fixed identity (tests make real repositories)."""
    done = subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_IDENTITY}, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip()


def committed_repo(path: Path, main_tf: str) -> Path:
    """A git repository in ``path`` whose branch `main` has one commit holding ``main.tf``."""
    git(path, "init", "-q", "-b", "main")
    (path / "main.tf").write_text(main_tf)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    return path


# A configuration with every kind of variable a workspace can pass (built-in resources only).
MAIN_TF = """
variable "region" { type = string }
variable "tags" { type = map(string) }
variable "secret" {
  type      = string
  sensitive = true
}
variable "greeting" { type = string }

resource "terraform_data" "app" {
  input = { region = var.region, env = var.tags["env"], greeting = var.greeting }
}

output "region" { value = var.region }
output "tag_env" { value = var.tags["env"] }
output "greeting" { value = var.greeting }
output "secret_out" {
  value     = var.secret
  sensitive = true
}
"""
