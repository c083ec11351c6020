"""Jobs with the real terraform binary, real git and `terrakube up` as a real process:
plan → approval → apply, output history, masking, no-change runs, destroy, failures,
cancel during a script, and onReject."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.procs import MAIN_TF, Api, git, running_up

SECRET = "hunter2-top-secret-value"




@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("repo")
    git(path, "init", "-q", "-b", "main")
    (path / "main.tf").write_text(MAIN_TF)
    (path / "broken").mkdir()
    (path / "broken" / "main.tf").write_text('resource "terraform_data" "x" {\n  input = \n}\n')
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    return path


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_up(tmp_path_factory.mktemp("up")) as api:
        yield api


def wait_job(api: Api, job_id: str, *statuses: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = api("query($id: ID!) { job(id: $id) { id status reason planChanges commitId "
                  "steps { id name type status reason log { text size } } } }", id=job_id)["job"]
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job stayed {job['status']} (wanted {statuses}): {json.dumps(job)[:4000]}{api.server.output()}")
        time.sleep(0.2)


def run(api: Api, ws: str, template: str) -> str:
    job = api.mutate("runJob", "RunJobInput", "... on Job { id }", workspaceId=ws, templateName=template)
    return job["id"]


def setup_workspace(api: Api, org: str, repo: Path, folder: str = "/") -> str:
    api.mutate("createOrganization", "CreateOrganizationInput", "... on Organization { id }", name=org)
    ws = api.mutate("createWorkspace", "CreateWorkspaceInput", "... on Workspace { id }", organization=org,
                    name="app", source=f"file://{repo}", branch="main", folder=folder)["id"]
    for key, value, category, hcl, sensitive in [
        ("region", "eu-west-1", "TERRAFORM", False, False),
        ("tags", '{ env = "prod" }', "TERRAFORM", True, False),
        ("secret", SECRET, "TERRAFORM", False, True),
        ("TF_VAR_greeting", "hello from env", "ENV", False, False),
    ]:
        api.mutate("createVariable", "CreateVariableInput", "... on Variable { id }", workspaceId=ws, key=key,
                   value=value, category=category, hcl=hcl, sensitive=sensitive)
    return ws


def logs(job: dict[str, Any]) -> str:
    return "\n".join(step["log"]["text"] for step in job["steps"])


def test_plan_approve_apply_then_no_changes(api: Api, repo: Path) -> None:
    ws = setup_workspace(api, "jobs-happy", repo)
    job_id = run(api, ws, "Terraform-Plan/Apply-Cli")
    waiting = wait_job(api, job_id, "WAITING_APPROVAL", "FAILED")
    assert waiting["status"] == "WAITING_APPROVAL", logs(waiting)
    plan_step = waiting["steps"][0]
    assert plan_step["status"] == "COMPLETED" and "terraform_data.app will be created" in plan_step["log"]["text"]
    assert waiting["planChanges"] is True and waiting["commitId"] == git(repo, "rev-parse", "HEAD")

    api.mutate("approveJob", "IdInput", "... on Job { id }", id=job_id)
    done = wait_job(api, job_id, "COMPLETED", "FAILED")
    assert done["status"] == "COMPLETED", logs(done)
    assert [s["status"] for s in done["steps"]] == ["COMPLETED", "APPROVED", "COMPLETED"]
    assert "Apply complete!" in done["steps"][2]["log"]["text"]
    assert SECRET not in logs(done)

    state = api('query { workspace(organization: "jobs-happy", name: "app") { currentStateVersion { serial jobId job { id status } '
                'outputs { name value sensitive } } outputHistory(name: "region") { value } } }')["workspace"]
    outputs = {o["name"]: o for o in state["currentStateVersion"]["outputs"]}
    assert json.loads(outputs["region"]["value"]) == "eu-west-1"
    assert json.loads(outputs["tag_env"]["value"]) == "prod"
    assert json.loads(outputs["greeting"]["value"]) == "hello from env"
    assert outputs["secret_out"]["value"] is None and outputs["secret_out"]["sensitive"] is True
    assert state["currentStateVersion"]["jobId"] == job_id
    assert state["currentStateVersion"]["job"] == {"id": job_id, "status": "COMPLETED"}
    assert [json.loads(h["value"]) for h in state["outputHistory"]] == ["eu-west-1"]

    again = run(api, ws, "Plan and apply")
    second = wait_job(api, again, "COMPLETED", "FAILED")
    assert second["status"] == "COMPLETED" and second["planChanges"] is False, logs(second)
    assert [s["status"] for s in second["steps"]] == ["NO_CHANGES", "NOT_EXECUTED"]

    destroyed = wait_job(api, run(api, ws, "Destroy"), "COMPLETED", "FAILED")
    assert destroyed["status"] == "COMPLETED", logs(destroyed)
    assert "Destroy complete!" in logs(destroyed)

    # Deleting the workspace removes its rows, then its objects (states, plans, logs).
    storage = api.server.data_dir / "storage"
    assert list((storage / "state" / "jobs-happy").rglob("*.tfstate"))
    assert list((storage / "logs" / "jobs-happy").rglob("*.log"))
    api.mutate("deleteWorkspace", "IdInput", "... on Deleted { id }", id=ws)
    assert not list((storage / "state" / "jobs-happy").rglob("*.tfstate"))
    assert not list((storage / "plans" / "jobs-happy").rglob("*.tfplan"))
    assert not list((storage / "logs" / "jobs-happy").rglob("*.log"))


def test_failing_plan_ends_failed_with_terraforms_error(api: Api, repo: Path) -> None:
    ws = setup_workspace(api, "jobs-broken", repo, folder="broken")
    failed = wait_job(api, run(api, ws, "Plan"), "COMPLETED", "FAILED")
    assert failed["status"] == "FAILED"
    assert failed["steps"][0]["status"] == "FAILED"
    assert "Error" in failed["steps"][0]["log"]["text"]


def test_cancel_during_a_long_before_script(api: Api, repo: Path) -> None:
    ws = setup_workspace(api, "jobs-cancel", repo)
    tcl = ("flow:\n  - type: terraformPlan\n    step: 100\n    commands:\n      - runtime: BASH\n"
           "        priority: 1\n        before: true\n        script: |\n          echo sleeping; sleep 120\n")
    api.mutate("createTemplate", "CreateTemplateInput", "... on Template { id }", organization="jobs-cancel",
               name="slow", tcl=tcl)
    job_id = run(api, ws, "slow")
    deadline = time.monotonic() + 60
    while wait_job(api, job_id, "RUNNING", "FAILED", "COMPLETED")["steps"][0]["status"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(2)  # let init finish and the script start
    api.mutate("cancelJob", "IdInput", "... on Job { id }", id=job_id)
    started = time.monotonic()
    deadline = started + 15
    while True:
        job = wait_job(api, job_id, "CANCELLED")
        if job["steps"][0]["status"] == "CANCELLED":
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert time.monotonic() - started < 15
    assert "sleeping" in job["steps"][0]["log"]["text"]


def test_reject_runs_on_reject(api: Api, repo: Path) -> None:
    ws = setup_workspace(api, "jobs-reject", repo)
    tcl = ("flow:\n  - type: terraformPlan\n    step: 100\n  - type: approval\n    step: 150\n    team: reviewers\n"
           "    onReject:\n      - runtime: BASH\n        script: echo \"rejected hook for $workspaceId\"\n"
           "  - type: terraformApply\n    step: 200\n")
    api.mutate("createTemplate", "CreateTemplateInput", "... on Template { id }", organization="jobs-reject",
               name="gated", tcl=tcl)
    job_id = run(api, ws, "gated")
    wait_job(api, job_id, "WAITING_APPROVAL")
    api.mutate("rejectJob", "IdInput", "... on Job { id }", id=job_id)
    deadline = time.monotonic() + 60
    while True:
        job = wait_job(api, job_id, "REJECTED")
        if f"rejected hook for {ws}" in job["steps"][1]["log"]["text"]:
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
    assert [s["status"] for s in job["steps"]] == ["COMPLETED", "REJECTED", "NOT_EXECUTED"]


def test_import_commands_come_from_another_repository(api: Api, repo: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared-commands"
    shared.mkdir()
    git(shared, "init", "-q", "-b", "main")
    (shared / "ci").mkdir()
    (shared / "ci" / "commands.yaml").write_text(
        "commands:\n  - runtime: BASH\n    priority: 1\n    before: true\n"
        "    script: echo \"imported command ran in $workspaceId\"\n"
    )
    git(shared, "add", ".")
    git(shared, "commit", "-q", "-m", "commands")
    ws = setup_workspace(api, "jobs-import", repo)
    tcl = (f"flow:\n  - type: terraformPlan\n    step: 100\n    importCommands:\n"
           f"      repository: file://{shared}\n      folder: ci\n      branch: main\n")
    api.mutate("createTemplate", "CreateTemplateInput", "... on Template { id }", organization="jobs-import",
               name="imported", tcl=tcl)
    done = wait_job(api, run(api, ws, "imported"), "COMPLETED", "FAILED")
    assert done["status"] == "COMPLETED", logs(done)
    assert f"imported command ran in {ws}" in logs(done)


def test_apply_uses_the_commit_the_plan_used(api: Api, tmp_path: Path) -> None:
    """A branch that moves while the job waits for approval does not change what is applied."""
    own = tmp_path / "moving"
    own.mkdir()
    git(own, "init", "-q", "-b", "main")
    (own / "main.tf").write_text(MAIN_TF)
    git(own, "add", ".")
    git(own, "commit", "-q", "-m", "good")
    planned = git(own, "rev-parse", "HEAD")
    ws = setup_workspace(api, "jobs-moving", own)
    job_id = run(api, ws, "Terraform-Plan/Apply-Cli")
    wait_job(api, job_id, "WAITING_APPROVAL")
    (own / "main.tf").write_text("this is not terraform {\n")
    git(own, "commit", "-q", "-am", "broken")
    api.mutate("approveJob", "IdInput", "... on Job { id }", id=job_id)
    done = wait_job(api, job_id, "COMPLETED", "FAILED")
    assert done["status"] == "COMPLETED", logs(done)
    assert done["commitId"] == planned
