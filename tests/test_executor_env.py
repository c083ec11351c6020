"""What of the worker's environment reaches terraform and users' scripts: a short allow-list plus
what the operator names in TERRAKUBE_EXECUTOR_PASS_ENV, never the platform's own secrets.
Real scripts, the real terraform CLI and `terrakube up` as a real process."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from settings import ConfigurationError, load_settings
from tests.procs import TERRAKUBE, Api, clean_env, committed_repo, running_up
from tests.test_executor import Cmd
from workers.executor import StepLog, StepSpec, run_step
from workers.executor.terraform import inherited_environment

# Secret-looking variables a worker may hold for the platform itself; none may reach a user's run.
SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "leak-me-123",
    "AWS_ACCESS_KEY_ID": "leak-me-akid",
    "AZURE_STORAGE_CONNECTION_STRING": "leak-me-azure",
    "GOOGLE_APPLICATION_CREDENTIALS": "/leak-me/gcp.json",
    "DATABASE_URL": "postgresql://u:leak-me-db@h/d",
    "PGPASSWORD": "leak-me-pg",
    "REDIS_URL": "redis://:leak-me-redis@h/0",
    "SSH_AUTH_SOCK": "/leak-me/agent.sock",
    "TF_LOG": "leak-me-tf-log",
    "TF_DATA_DIR": "/leak-me/tf-data",
}
MACHINE = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/worker",
    "USER": "worker",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "TMPDIR": "/tmp",
    "HTTPS_PROXY": "http://proxy:3128",
    "no_proxy": "localhost",
    "SSL_CERT_FILE": "/etc/ssl/certs/ca.pem",
}


# --- the allow-list ------------------------------------------------------------------------


def test_only_the_machine_variables_are_inherited() -> None:
    source = {**MACHINE, **SECRETS, "TERRAKUBE_SECRET_KEY": "k", "terrakube_database_url": "u"}
    assert inherited_environment(source) == MACHINE


def test_the_pass_list_adds_exact_names_and_prefixes() -> None:
    source = {"PATH": "/bin", "PASSED": "1", "PASSED_TOO": "2", "CORP_REGION": "eu", "CORP_": "3",
              "corp_lower": "4", "OTHER": "5"}
    env = inherited_environment(source, ["PASSED", "CORP_*"])
    # Exact names are exact (PASSED does not bring PASSED_TOO); names are case-sensitive, as on POSIX.
    assert env == {"PATH": "/bin", "PASSED": "1", "CORP_REGION": "eu", "CORP_": "3"}


def test_an_operator_can_pass_platform_credentials_on_purpose() -> None:
    env = inherited_environment({**SECRETS}, ["AWS_*", "TF_LOG"])
    assert env == {"AWS_SECRET_ACCESS_KEY": "leak-me-123", "AWS_ACCESS_KEY_ID": "leak-me-akid",
                   "TF_LOG": "leak-me-tf-log"}


def test_terrakube_settings_never_pass_even_if_a_pattern_matches() -> None:
    # Settings refuse such patterns at startup; the executor drops the names anyway.
    source = {"TERRAKUBE_SECRET_KEY": "k", "terrakube_secret_key": "k", "Terrakube_Redis_Url": "r", "TZ": "UTC"}
    assert inherited_environment(source, ["*", "T*", "TERRAKUBE_SECRET_KEY", "terrakube_*"]) == {"TZ": "UTC"}


# --- the setting ---------------------------------------------------------------------------


def test_the_setting_is_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERRAKUBE_EXECUTOR_PASS_ENV", " AWS_* , CORP_REGION,,")
    assert load_settings().executor_pass_env == ["AWS_*", "CORP_REGION"]
    monkeypatch.setenv("TERRAKUBE_EXECUTOR_PASS_ENV", "")
    assert load_settings().executor_pass_env == []
    monkeypatch.delenv("TERRAKUBE_EXECUTOR_PASS_ENV")
    assert load_settings().executor_pass_env == []


@pytest.mark.parametrize("value", ["TERRAKUBE_SECRET_KEY", "terrakube_database_url", "TERRAKUBE_*", "TERRA*",
                                   "T*", "*", "AWS_*,TERRAKUBE_REDIS_URL"])
def test_terrakube_settings_can_never_be_passed(value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(executor_pass_env=value)
    assert "TERRAKUBE_EXECUTOR_PASS_ENV" in str(caught.value) and "TERRAKUBE_ settings" in str(caught.value)


@pytest.mark.parametrize("value", ["AWS*KEY", "A-B", "X=1", "**"])
def test_malformed_entries_are_refused(value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(executor_pass_env=value)
    assert "TERRAKUBE_EXECUTOR_PASS_ENV" in str(caught.value) and repr(value) in str(caught.value)


def test_terrakube_up_refuses_to_start_with_a_terrakube_name_in_the_pass_list(tmp_path: Path) -> None:
    env = {**clean_env(), "TERRAKUBE_EXECUTOR_PASS_ENV": "AWS_*,TERRAKUBE_SECRET_KEY"}
    done = subprocess.run([str(TERRAKUBE), "up", "--port", "9", "--data-dir", str(tmp_path / "data")], env=env,
                          cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "TERRAKUBE_EXECUTOR_PASS_ENV" in done.stderr and "'TERRAKUBE_SECRET_KEY'" in done.stderr


# --- one step, real scripts ----------------------------------------------------------------


def _tarball(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        data = b'resource "terraform_data" "x" {\n  input = "x"\n}\n'
        info = tarfile.TarInfo("main.tf")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


async def test_scripts_see_neither_secrets_nor_terrakube_settings(tmp_path: Path) -> None:
    worker_env = {**clean_env(), **SECRETS, "TERRAKUBE_SECRET_KEY": "leak-me-key", "PASSED": "passed-on-purpose",
                  "CORP_REGION": "corp-region-value"}
    spec = StepSpec(
        step_type="customScripts", work_root=tmp_path / "step", organization_id="o", organization="acme",
        workspace_id="w", workspace="demo", job_id="j", step_id="s", state_address="http://127.0.0.1:9/tfstate",
        api_url="http://127.0.0.1:9", job_token="job-token-123", config_tarball=_tarball(tmp_path / "code.tar.gz"),
        env={"USER_ENV_VAR": "the-users-own"}, commands=[Cmd("env"), Cmd("import os\nprint(sorted(os.environ))",
                                                                         priority=1, runtime="PYTHON")],
        base_env=worker_env, pass_env=["PASSED", "CORP_*"], timeout=120.0,
    )
    spec.work_root.mkdir()
    log = StepLog(tmp_path / "step.log")
    outcome = await run_step(spec, log, asyncio.Event())
    text = log.text()
    assert outcome.status == "completed", text
    assert "leak-me" not in text and "TERRAKUBE_SECRET_KEY" not in text
    for name in SECRETS:
        assert f"{name}=" not in text and f"'{name}'" not in text
    assert "PASSED=passed-on-purpose" in text and "CORP_REGION=corp-region-value" in text
    assert "USER_ENV_VAR=the-users-own" in text and "TF_IN_AUTOMATION=1" in text
    assert "'PASSED'" in text  # the PYTHON script sees the same environment


# --- a whole job on `terrakube up` -----------------------------------------------------------

# Every place a user's code runs: a customScripts step, a beforeInit script of a terraform step,
# and a provisioner inside terraform itself (local-exec is built in: no provider download).
MAIN_TF = """
resource "terraform_data" "env" {
  provisioner "local-exec" {
    command = "env | sed 's/^/provisioner: /'"
  }
}
"""
TCL = """flow:
  - type: customScripts
    name: Print env
    step: 100
    commands:
      - runtime: BASH
        priority: 1
        script: |
          env | sed 's/^/custom: /'
  - type: terraformApply
    name: Apply
    step: 200
    commands:
      - runtime: BASH
        priority: 1
        beforeInit: true
        script: |
          env | sed 's/^/before-init: /'
"""
WORKER_ENV = {
    **SECRETS,
    "TERRAKUBE_EXECUTOR_PASS_ENV": "PASSED_ON_PURPOSE,CORP_*",
    "PASSED_ON_PURPOSE": "visible-1",
    "CORP_REGION": "visible-2",
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return committed_repo(tmp_path_factory.mktemp("env-repo"), MAIN_TF)


def _wait_job(api: Api, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = api("query($id: ID!) { job(id: $id) { status reason steps { name status log(limit: 1048576) { text } } } }",
                  id=job_id)["job"]
        if job["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job stayed {job['status']}: {json.dumps(job)[:4000]}{api.server.output()}")
        time.sleep(0.2)


def test_a_jobs_scripts_and_terraform_never_see_the_workers_secrets(tmp_path: Path, repo: Path) -> None:
    with running_up(tmp_path, env=WORKER_ENV) as api:
        api.mutate("createOrganization", "CreateOrganizationInput", "... on Organization { id }", name="env-org")
        ws = api.mutate("createWorkspace", "CreateWorkspaceInput", "... on Workspace { id }", organization="env-org",
                        name="app", source=f"file://{repo}", branch="main")["id"]
        api.mutate("createVariable", "CreateVariableInput", "... on Variable { id }", workspaceId=ws,
                   key="USER_ENV_VAR", value="the-users-own", category="ENV", hcl=False, sensitive=False)
        api.mutate("createTemplate", "CreateTemplateInput", "... on Template { id }", organization="env-org",
                   name="env", tcl=TCL)
        job_id = api.mutate("runJob", "RunJobInput", "... on Job { id }", workspaceId=ws, templateName="env")["id"]
        job = _wait_job(api, job_id)
    text = "\n".join(step["log"]["text"] for step in job["steps"])
    assert job["status"] == "COMPLETED", text
    for where in ("custom", "before-init", "provisioner"):
        for name, value in [("PASSED_ON_PURPOSE", "visible-1"), ("CORP_REGION", "visible-2"),
                            ("USER_ENV_VAR", "the-users-own"), ("TF_IN_AUTOMATION", "1")]:
            assert printed(text, where, name, value), f"{where} did not print {name}={value}:\n{text}"
    assert "leak-me" not in text
    for name in [*SECRETS, "TERRAKUBE_EXECUTOR_PASS_ENV"]:
        assert f"{name}=" not in text, f"{name} reached the job:\n{text}"


def printed(text: str, where: str, name: str, value: str) -> bool:
    """Whether a line of ``where``'s `env` (terraform prefixes a provisioner's lines) shows it."""
    return any(line.endswith(f"{where}: {name}={value}") for line in text.splitlines())
