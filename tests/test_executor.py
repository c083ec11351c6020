"""The executor with real parts: real git repositories, the real terraform CLI, real scripts,
and a real (tiny, in-test) HTTP state backend speaking terraform's http backend protocol."""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import os
import re
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from workers.executor import (
    Cancelled,
    CheckoutError,
    StepLog,
    StepSpec,
    TerraformVariable,
    TimedOut,
    UnsafeArchive,
    checkout_git,
    extract_tarball,
    run_process,
    run_step,
    write_variables,
)

pytestmark = pytest.mark.skipif(
    subprocess.run(["terraform", "version"], capture_output=True).returncode != 0, reason="terraform CLI missing"
)

MAIN_TF = """
variable "name" { type = string }
variable "tags" {
  type    = map(string)
  default = {}
}
variable "count_n" {
  type    = number
  default = 1
}
variable "secret" {
  type      = string
  sensitive = true
  default   = ""
}
variable "from_env" {
  type    = string
  default = ""
}
variable "from_script" {
  type    = string
  default = ""
}
resource "terraform_data" "named" { input = var.name }
resource "terraform_data" "tagged" { input = var.tags }
# nonsensitive() makes terraform print the secret in the plan: the log must still mask it.
resource "terraform_data" "leak" { input = nonsensitive(var.secret) }
output "name" { value = terraform_data.named.output }
output "tags" { value = var.tags }
output "count_n" { value = var.count_n }
output "from_env" { value = var.from_env }
output "from_script" { value = var.from_script }
output "secret" {
  value     = var.secret
  sensitive = true
}
output "version" { value = "VERSION" }
"""

SECRET = "hunter2-Sup3r-S3cret"
_counter = itertools.count()


# --- a real http state backend ---------------------------------------------------------------


class StateServer:
    def __init__(self) -> None:
        self.state: bytes | None = None
        self.lock: bytes | None = None
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, "user:password")
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _begin(self) -> bytes:
                header = self.headers.get("Authorization", "")
                creds = base64.b64decode(header.split()[1]).decode() if header.startswith("Basic ") else None
                server.requests.append((self.command, self.path, creds))
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, code: int, body: bytes = b"") -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._begin()
                self._reply(200, server.state) if server.state is not None else self._reply(404)

            def do_POST(self) -> None:
                server.state = self._begin()
                self._reply(200)

            def do_LOCK(self) -> None:
                body = self._begin()
                if server.lock is not None:
                    self._reply(423, server.lock)
                else:
                    server.lock = body
                    self._reply(200)

            def do_UNLOCK(self) -> None:
                self._begin()
                server.lock = None
                self._reply(200)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"http://127.0.0.1:{self.httpd.server_address[1]}/state"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def resources(self) -> set[str]:
        assert self.state is not None
        return {f"{r['type']}.{r['name']}" for r in json.loads(self.state)["resources"]}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def state() -> Iterator[StateServer]:
    server = StateServer()
    yield server
    server.close()


# --- a real git repository ------------------------------------------------------------------


@dataclass
class Repo:
    url: str
    tag_sha: str
    head_sha: str


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    path = tmp_path_factory.mktemp("repo")
    git(path, "init", "-q", "-b", "main")
    (path / "main.tf").write_text(MAIN_TF.replace("VERSION", "v1"))
    (path / "sub").mkdir()
    (path / "sub" / "main.tf").write_text('output "where" { value = "sub" }\n')
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "v1")
    git(path, "tag", "v1.0.0")
    tag_sha = git(path, "rev-parse", "HEAD").strip()
    (path / "main.tf").write_text(MAIN_TF.replace("VERSION", "v2"))
    git(path, "commit", "-q", "-am", "v2")
    return Repo(url=f"file://{path}", tag_sha=tag_sha, head_sha=git(path, "rev-parse", "HEAD").strip())


@dataclass
class Cmd:
    script: str
    priority: int = 0
    runtime: str = "BASH"
    before_init: bool = False
    before: bool = False
    after: bool = False
    verbose: bool = False


def make_spec(tmp_path: Path, repo: Repo, state: StateServer, **overrides: Any) -> StepSpec:
    work_root = tmp_path / f"step-{next(_counter)}"
    work_root.mkdir()
    values: dict[str, Any] = dict(
        step_type="terraformPlan", work_root=work_root, organization_id="org-1", organization="acme",
        workspace_id="ws-1", workspace="demo", job_id="job-1", step_id="step-1",
        source=repo.url, ref="main", folder="/", state_address=state.address,
        api_url="http://127.0.0.1:9/api", job_token="job-token-123",
        terraform_variables=[TerraformVariable("name", "demo")], timeout=180.0,
    )
    values.update(overrides)
    return StepSpec(**values)


def new_log(tmp_path: Path) -> StepLog:
    return StepLog(tmp_path / "logs" / f"{next(_counter)}.log")


def outputs(raw: str | None) -> dict[str, Any]:
    assert raw is not None
    return {name: item["value"] for name, item in json.loads(raw).items()}


# --- terraform runs ---------------------------------------------------------------------------


async def test_plan_then_apply_exactly_that_plan_then_no_changes(tmp_path: Path, repo: Repo, state: StateServer) -> None:
    log = new_log(tmp_path)
    plan = await run_step(make_spec(tmp_path, repo, state), log, asyncio.Event())
    assert (plan.status, plan.plan_changes, plan.commit_id) == ("completed", True, repo.head_sha)
    assert plan.plan_file is not None and plan.plan_file.is_file()
    assert "Plan: 3 to add, 0 to change, 0 to destroy." in log.text()
    assert state.state is None  # a plan writes no state
    assert ("LOCK", "/state/lock", "terrakube:job-token-123") in state.requests

    # The caller stores the plan and removes the plan step's directory; the apply step runs
    # elsewhere with a fresh token and must apply exactly the stored plan.
    saved = tmp_path / "saved.tfplan"
    saved.write_bytes(plan.plan_file.read_bytes())
    assert b"job-token-123" not in saved.read_bytes()  # no credential inside a stored plan
    apply_log = new_log(tmp_path)
    spec = make_spec(tmp_path, repo, state, step_type="terraformApply", plan_file=saved, job_token="job-token-apply",
                     terraform_variables=[TerraformVariable("name", "changed-after-plan")])
    applied = await run_step(spec, apply_log, asyncio.Event())
    assert applied.status == "completed", apply_log.text()
    assert "Apply complete! Resources: 3 added" in apply_log.text()
    assert state.resources() == {"terraform_data.named", "terraform_data.tagged", "terraform_data.leak"}
    assert [r[2] for r in state.requests if r[0] == "POST"] == ["terrakube:job-token-apply"]
    values = outputs(applied.terraform_output)
    assert values["name"] == "demo"  # the planned value, not the one given to the apply step
    assert values["version"] == "v2"

    again = await run_step(make_spec(tmp_path, repo, state), new_log(tmp_path), asyncio.Event())
    assert (again.status, again.plan_changes) == ("noChanges", False)


async def test_plan_destroy_and_destroy(tmp_path: Path, repo: Repo, state: StateServer) -> None:
    applied = await run_step(make_spec(tmp_path, repo, state, step_type="terraformApply"), new_log(tmp_path),
                             asyncio.Event())
    assert applied.status == "completed" and len(state.resources()) == 3
    log = new_log(tmp_path)
    planned = await run_step(make_spec(tmp_path, repo, state, step_type="terraformPlanDestroy"), log, asyncio.Event())
    assert (planned.status, planned.plan_changes) == ("completed", True)
    assert "Plan: 0 to add, 0 to change, 3 to destroy." in log.text()
    log = new_log(tmp_path)
    destroyed = await run_step(make_spec(tmp_path, repo, state, step_type="terraformDestroy"), log, asyncio.Event())
    assert destroyed.status == "completed", log.text()
    assert state.resources() == set() and outputs(destroyed.terraform_output) == {}


async def test_plan_of_a_tag_checks_out_the_tag(tmp_path: Path, repo: Repo, state: StateServer) -> None:
    log = new_log(tmp_path)
    outcome = await run_step(make_spec(tmp_path, repo, state, ref="v1.0.0"), log, asyncio.Event())
    assert (outcome.status, outcome.commit_id) == ("completed", repo.tag_sha)
    assert re.search(r'\+ version +=\s+"v1"', log.text())


async def test_variables_of_every_kind_reach_terraform(tmp_path: Path, repo: Repo, state: StateServer) -> None:
    tricky = 'a "quoted" ${not_interpolated} %{if x} back\\slash\nsecond line'
    spec = make_spec(
        tmp_path, repo, state, step_type="terraformApply",
        terraform_variables=[
            TerraformVariable("name", tricky),
            TerraformVariable("tags", '{ team = "core", env = "dev" }', hcl=True),
            TerraformVariable("count_n", "3", hcl=True),
        ],
        env={"TF_VAR_from_env": "from-env-var"},
    )
    log = new_log(tmp_path)
    outcome = await run_step(spec, log, asyncio.Event())
    assert outcome.status == "completed", log.text()
    values = outputs(outcome.terraform_output)
    assert values["name"] == tricky
    assert values["tags"] == {"team": "core", "env": "dev"}
    assert values["count_n"] == 3
    assert values["from_env"] == "from-env-var"


async def test_sensitive_values_never_reach_the_log(tmp_path: Path, repo: Repo, state: StateServer) -> None:
    spec = make_spec(
        tmp_path, repo, state, step_type="terraformApply",
        terraform_variables=[TerraformVariable("name", "demo"), TerraformVariable("secret", SECRET)],
        env={"MY_SECRET": SECRET}, sensitive_values=[SECRET],
        commands=[Cmd('echo "script says secret=$MY_SECRET token=$terrakubeToken"', before=True)],
    )
    log = new_log(tmp_path)
    outcome = await run_step(spec, log, asyncio.Event())
    assert outcome.status == "completed", log.text()
    text = log.text()
    assert SECRET not in text and "job-token-123" not in text
    assert "script says secret=*** token=***" in text
    assert re.search(r'input +=\s+"\*\*\*"', text)  # terraform printed it in the plan; the log masked it
    assert outputs(outcome.terraform_output)["secret"] == SECRET  # the outcome keeps it


async def test_scripts_run_by_phase_and_priority_with_the_env_contract(
    tmp_path: Path, repo: Repo, state: StateServer
) -> None:
    commands = [
        Cmd('echo "bash-before ws=$workspaceId job=$jobId step=$stepId org=$organizationId from_py=$FROM_PY"',
            priority=20, before=True),
        Cmd("import os\nprint('python-before', os.environ['workspaceId'])\n"
            "with open(os.environ['terrakubeEnv'], 'a') as f:\n"
            "    f.write('FROM_PY=hello\\nexport TF_VAR_from_script=\"script-value\"\\n')\n",
            priority=10, runtime="PYTHON", before=True),
        Cmd('echo "before-init api=$terrakubeApi token=${terrakubeToken:+set}"; test -f "$workingDirectory/main.tf"',
            priority=5, before_init=True, verbose=True),
        Cmd("import json, os\nout = json.loads(os.environ['terraformOutput'])\n"
            "print('after-output', out['from_script']['value'])\n", priority=1, runtime="PYTHON", after=True),
    ]
    spec = make_spec(tmp_path, repo, state, step_type="terraformApply", commands=commands)
    log = new_log(tmp_path)
    outcome = await run_step(spec, log, asyncio.Event())
    text = log.text()
    assert outcome.status == "completed", text
    marks = ["before-init api=http://127.0.0.1:9/api token=set", "$ terraform init", "python-before ws-1",
             "bash-before ws=ws-1 job=job-1 step=step-1 org=org-1 from_py=hello", "$ terraform apply",
             "after-output script-value"]
    positions = [text.index(mark) for mark in marks]
    assert positions == sorted(positions)
    assert "Command Priority 5" in text  # the verbose banner
    assert outputs(outcome.terraform_output)["from_script"] == "script-value"


async def test_custom_scripts_step_runs_every_command_and_no_terraform(
    tmp_path: Path, repo: Repo, state: StateServer
) -> None:
    commands = [Cmd("echo second", priority=2, after=True), Cmd("print('first')", priority=1, runtime="PYTHON"),
                Cmd("echo third", priority=3, before_init=True)]
    log = new_log(tmp_path)
    outcome = await run_step(make_spec(tmp_path, repo, state, step_type="customScripts", commands=commands),
                             log, asyncio.Event())
    text = log.text()
    assert outcome.status == "completed"
    assert text.index("first") < text.index("second") < text.index("third")
    assert "$ terraform" not in text and state.requests == []

    failing = [Cmd("exit 3", priority=1), Cmd("echo never", priority=2)]
    log = new_log(tmp_path)
    outcome = await run_step(make_spec(tmp_path, repo, state, step_type="customScripts", commands=failing),
                             log, asyncio.Event())
    assert outcome.status == "failed" and "never" not in log.text()


def tarball(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


async def test_invalid_hcl_fails_with_terraforms_error_unless_ignored(
    tmp_path: Path, repo: Repo, state: StateServer
) -> None:
    archive = tarball(tmp_path / "bad.tar.gz", {"main.tf": 'resource "terraform_data" "x" {\n  input = \n'})
    log = new_log(tmp_path)
    spec = make_spec(tmp_path, repo, state, source=None, config_tarball=archive)
    outcome = await run_step(spec, log, asyncio.Event())
    assert outcome.status == "failed" and outcome.reason and "terraform" in outcome.reason
    assert "Error:" in log.text()

    ignored = await run_step(make_spec(tmp_path, repo, state, source=None, config_tarball=archive, ignore_error=True),
                             new_log(tmp_path), asyncio.Event())
    assert ignored.status == "completed" and ignored.reason and ignored.reason.startswith("failure ignored")


async def test_a_step_from_a_tarball_in_a_folder(tmp_path: Path, repo: Repo, state: StateServer) -> None:
    archive = tarball(tmp_path / "ok.tar.gz", {"infra/main.tf": 'output "x" { value = "from-tarball" }\n'})
    spec = make_spec(tmp_path, repo, state, source=None, config_tarball=archive, folder="infra",
                     step_type="terraformApply", terraform_variables=[])
    outcome = await run_step(spec, new_log(tmp_path), asyncio.Event())
    assert outcome.status == "completed" and outcome.commit_id is None
    assert outputs(outcome.terraform_output) == {"x": "from-tarball"}


async def test_every_terraform_run_gets_our_env(
    tmp_path: Path, repo: Repo, state: StateServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(tmp_path / "missing.tfrc"))
    monkeypatch.setenv("TERRAKUBE_SECRET_KEY", "worker-secret")
    record = tmp_path / "env.txt"
    wrapper = tmp_path / "terraform-wrapper"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'echo "$1 CHECKPOINT_DISABLE=$CHECKPOINT_DISABLE TF_IN_AUTOMATION=$TF_IN_AUTOMATION '
        f'TF_CLI_CONFIG_FILE=$TF_CLI_CONFIG_FILE KEY=${{TERRAKUBE_SECRET_KEY-unset}}" >> {record}\n'
        'exec terraform "$@"\n'
    )
    wrapper.chmod(0o755)
    spec = make_spec(tmp_path, repo, state, terraform_bin=str(wrapper), registry_host="127.0.0.1:8443")
    log = new_log(tmp_path)
    outcome = await run_step(spec, log, asyncio.Event())
    assert outcome.status == "completed", log.text()
    cli_config = spec.work_root / "terraform.rc"
    lines = record.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["init", "plan"]
    for line in lines:
        assert f"CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_CLI_CONFIG_FILE={cli_config} KEY=unset" in line
    assert cli_config.read_text() == 'credentials "127.0.0.1:8443" {\n  token = "job-token-123"\n}\n'
    assert "Unable to open CLI configuration file" not in log.text()


async def test_cancel_during_a_before_script_stops_the_process_group(
    tmp_path: Path, repo: Repo, state: StateServer
) -> None:
    pid_file = tmp_path / "pgid"
    spec = make_spec(tmp_path, repo, state, env={"PGID_FILE": str(pid_file)},
                     commands=[Cmd('echo $$ > "$PGID_FILE.tmp" && mv "$PGID_FILE.tmp" "$PGID_FILE"; sleep 60',
                                   before=True)])
    cancel = asyncio.Event()
    log = new_log(tmp_path)
    task = asyncio.create_task(run_step(spec, log, cancel))
    for _ in range(600):
        if pid_file.exists() or task.done():
            break
        await asyncio.sleep(0.05)
    assert pid_file.exists(), log.text()
    pgid = int(pid_file.read_text())
    cancel.set()
    with pytest.raises(Cancelled):
        await asyncio.wait_for(task, 30)
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    assert "The step was cancelled" in log.text()


def live_group_members(pgid: int) -> list[int]:
    """Processes of the group that are not zombies, from /proc."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


async def test_run_process_streams_live_and_kills_what_ignores_sigint(tmp_path: Path) -> None:
    log = new_log(tmp_path)
    cancel = asyncio.Event()
    # Setting cancel on the first line proves lines arrive while the process still runs.
    log.add_listener(lambda offset, text: cancel.set() if text == "first" else None)
    with pytest.raises(Cancelled):
        await run_process(["bash", "-c", "echo first; sleep 60"], tmp_path, dict(os.environ), log, cancel, 120)
    assert log.text() == "first\n"

    # A group that ignores SIGINT is SIGKILLed after the grace period.
    stubborn = new_log(tmp_path)
    cancel = asyncio.Event()
    pgids: list[int] = []

    def on_line(offset: int, text: str) -> None:
        if text.isdigit():
            pgids.append(int(text))
            cancel.set()

    stubborn.add_listener(on_line)
    with pytest.raises(Cancelled):
        await run_process(["bash", "-c", 'trap "" INT; echo $$; sleep 60 & sleep 60'], tmp_path, dict(os.environ),
                          stubborn, cancel, timeout=120, grace=0.5)
    # The killed shell's children are orphans that init reaps, on its own schedule: what must
    # hold at once is that nothing of the group is still alive.
    assert live_group_members(pgids[0]) == []

    with pytest.raises(TimedOut):
        await run_process(["sleep", "60"], tmp_path, dict(os.environ), new_log(tmp_path), asyncio.Event(), 0.5)


def test_step_log_masks_longest_first_and_reports_offsets(tmp_path: Path) -> None:
    seen: list[tuple[int, str]] = []
    log = StepLog(tmp_path / "x.log", ["abc", "abcdef", ""], [lambda o, t: seen.append((o, t))])
    log.emit("xabcdefx abc")
    log.emit("é")
    assert seen == [(0, "x***x ***"), (10, "é")]
    assert log.size == (tmp_path / "x.log").stat().st_size == 13


# --- checkout and working directory -----------------------------------------------------------


async def test_checkout_of_a_commit_sha_and_a_folder(tmp_path: Path, repo: Repo) -> None:
    code_dir, commit = await checkout_git(repo.url, repo.tag_sha, tmp_path / "c1", "/sub/", allow_file=True)
    assert commit == repo.tag_sha and (code_dir / "main.tf").read_text().startswith('output "where"')


@pytest.mark.parametrize(
    ("source", "ref", "folder", "message"),
    [
        ("REPO", "no-such-branch", "", "no-such-branch"),
        ("REPO", "main", "../..", "outside the repository"),
        ("REPO", "main", "missing", "does not exist"),
        ("https://user:s3cretTok@127.0.0.1:1/x.git", "main", "", "git clone failed"),
        ("/srv/a/bare/path", "main", "", "source must be a git URL"),
        ("--upload-pack=touch /tmp/x", "main", "", "source must be a git URL"),
    ],
)
async def test_checkout_errors(tmp_path: Path, repo: Repo, source: str, ref: str, folder: str, message: str) -> None:
    with pytest.raises(CheckoutError) as caught:
        await checkout_git(repo.url if source == "REPO" else source, ref, tmp_path / "c", folder, allow_file=True)
    assert message in str(caught.value) and "s3cretTok" not in str(caught.value)


async def test_checkout_refuses_a_file_source_the_platform_does_not_allow(tmp_path: Path, repo: Repo) -> None:
    with pytest.raises(CheckoutError) as caught:
        await checkout_git(repo.url, "main", tmp_path / "c", "", allow_file=False)
    assert "TERRAKUBE_ALLOW_FILE_SOURCES" in str(caught.value)
    assert not (tmp_path / "c").exists()


def test_variables_file_refuses_a_key_that_would_inject_hcl(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_variables(tmp_path, [TerraformVariable('x = 1\ny', "v")])


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("ok.tf")
        tar.addfile(ok, io.BytesIO(b""))
        member.size = len(data) if member.isreg() else 0
        tar.addfile(member, io.BytesIO(data) if member.isreg() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    "member",
    [
        _member("/etc/evil"),
        _member("../x"),
        _member("a/../../x"),
        _member("passwd", tarfile.SYMTYPE, "/etc/passwd"),
        _member("up", tarfile.SYMTYPE, "../../outside"),
        _member("hard", tarfile.LNKTYPE, "../outside"),
        _member("pipe", tarfile.FIFOTYPE),
        _member("dev", tarfile.CHRTYPE),
    ],
    ids=["absolute", "dotdot", "nested-dotdot", "symlink-abs", "symlink-out", "hardlink-out", "fifo", "device"],
)
def test_unsafe_tarballs_are_refused(tmp_path: Path, member: tarfile.TarInfo) -> None:
    archive = _tar_with(tmp_path / "a.tar.gz", member)
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchive) as caught:
        extract_tarball(archive, dest, 1 << 20)
    assert repr(member.name) in str(caught.value)
    assert list(dest.iterdir()) == []  # refused whole, nothing written


def test_a_path_through_an_extracted_symlink_is_refused(tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "a.tar.gz", "w:gz") as tar:
        tar.addfile(_member("dir", tarfile.DIRTYPE))
        tar.addfile(_member("link", tarfile.SYMTYPE, "dir"))
        tar.addfile(_member("link/x.tf"), io.BytesIO(b""))
    with pytest.raises(UnsafeArchive, match="through the symlink"):
        extract_tarball(tmp_path / "a.tar.gz", tmp_path / "dest", 1 << 20)


def test_a_good_tarball_extracts_and_size_is_bounded(tmp_path: Path) -> None:
    archive = tmp_path / "good.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(_member("mod", tarfile.DIRTYPE))
        data = b'output "x" { value = 1 }\n'
        info = _member("mod/main.tf")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.addfile(_member("main.tf", tarfile.SYMTYPE, "mod/main.tf"))
    extract_tarball(archive, tmp_path / "dest", 1 << 20)
    assert (tmp_path / "dest" / "main.tf").read_bytes() == data
    with pytest.raises(UnsafeArchive, match="over the limit"):
        extract_tarball(archive, tmp_path / "dest2", 10)
