"""Jobs in production shape: `terrakube migrate`, `terrakube serve` and `terrakube worker` as
separate processes on PostgreSQL, Redis (arq) and one shared local blob store, with the real
terraform binary and real git: plan → approval → apply, a worker killed (SIGKILL) in the middle
of an apply, and two jobs of one workspace that must never run at the same time."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import HEARTBEAT_TTL, SWEEP_SECONDS, Cluster, alive
from tests.procs import MAIN_TF, Api, git

SECRET = "hunter2-distributed-secret-value"


# terraform is genuinely mid-apply (holding the state lock) while its provisioner sleeps.
SLOW_TF = """
variable "sleep" { type = string }

resource "terraform_data" "base" {
  input = "always here"
}

resource "terraform_data" "slow" {
  input            = var.sleep
  triggers_replace = var.sleep
  provisioner "local-exec" {
    command = "sleep ${var.sleep}"
  }
}

output "sleep" { value = var.sleep }
"""

# Every plan has changes (timestamp() is only known at apply), every apply sleeps 3 s.
BUSY_TF = """
resource "terraform_data" "busy" {
  triggers_replace = timestamp()
  provisioner "local-exec" {
    command = "sleep 3"
  }
}
"""




@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("repo")
    git(path, "init", "-q", "-b", "main")
    (path / "main.tf").write_text(MAIN_TF)
    for folder, text in (("slow", SLOW_TF), ("busy", BUSY_TF)):
        (path / folder).mkdir()
        (path / folder / "main.tf").write_text(text)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    return path


JOB_QUERY = (
    "query($id: ID!) { job(id: $id) { id status reason planChanges commitId createdAt startedAt finishedAt "
    "steps { id name stepNumber type status reason startedAt finishedAt log { text size } } } }"
)



def get_job(api: Api, job_id: str) -> dict[str, Any]:
    return api(JOB_QUERY, id=job_id)["job"]


def wait_job(cluster: Cluster, job_id: str, *statuses: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = get_job(cluster.api, job_id)
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(
                f"job stayed {job['status']} (wanted {statuses}): {json.dumps(job)[:4000]}{cluster.output()}"
            )
        time.sleep(0.3)


def wait_for(cluster: Cluster, what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s{cluster.output()}")
        time.sleep(0.3)


def run(api: Api, ws: str, template: str) -> str:
    return api.mutate("runJob", "RunJobInput", "... on Job { id }", workspaceId=ws, templateName=template)["id"]


def create_workspace(api: Api, org: str, name: str, repo: Path, folder: str) -> str:
    return api.mutate("createWorkspace", "CreateWorkspaceInput", "... on Workspace { id }", organization=org,
                      name=name, source=f"file://{repo}", branch="main", folder=folder)["id"]


def create_org(api: Api, name: str) -> None:
    api.mutate("createOrganization", "CreateOrganizationInput", "... on Organization { id }", name=name)


def add_variable(api: Api, ws: str, key: str, value: str, category: str = "TERRAFORM", *, hcl: bool = False,
                 sensitive: bool = False) -> str:
    return api.mutate("createVariable", "CreateVariableInput", "... on Variable { id }", workspaceId=ws, key=key,
                      value=value, category=category, hcl=hcl, sensitive=sensitive)["id"]


def logs(job: dict[str, Any]) -> str:
    return "\n".join(step["log"]["text"] for step in job["steps"])


def workspace_state(api: Api, org: str, name: str) -> dict[str, Any]:
    return api(
        "query($org: String!, $name: String!) { workspace(organization: $org, name: $name) { "
        "stateLock { id who } currentStateVersion { serial } "
        "stateVersions(first: 100) { edges { node { id serial } } } } }",
        org=org, name=name,
    )["workspace"]


def at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


# -- the tests ----------------------------------------------------------------------------


def test_plan_approve_apply_through_serve_and_worker(cluster: Cluster, repo: Path) -> None:
    api, org = cluster.api, "dist-happy"
    create_org(api, org)
    ws = create_workspace(api, org, "app", repo, "/")
    add_variable(api, ws, "region", "eu-west-1")
    add_variable(api, ws, "tags", '{ env = "prod" }', hcl=True)
    add_variable(api, ws, "secret", SECRET, sensitive=True)
    add_variable(api, ws, "TF_VAR_greeting", "hello from env", "ENV")

    job_id = run(api, ws, "Terraform-Plan/Apply-Cli")
    waiting = wait_job(cluster, job_id, "WAITING_APPROVAL", "FAILED")
    assert waiting["status"] == "WAITING_APPROVAL", logs(waiting) + cluster.output()
    assert waiting["steps"][0]["status"] == "COMPLETED"
    assert "terraform_data.app will be created" in waiting["steps"][0]["log"]["text"]
    assert waiting["planChanges"] is True and waiting["commitId"] == git(repo, "rev-parse", "HEAD")

    api.mutate("approveJob", "IdInput", "... on Job { id }", id=job_id)
    done = wait_job(cluster, job_id, "COMPLETED", "FAILED")
    assert done["status"] == "COMPLETED", logs(done) + cluster.output()
    assert [s["status"] for s in done["steps"]] == ["COMPLETED", "APPROVED", "COMPLETED"]
    assert "Apply complete!" in done["steps"][2]["log"]["text"]
    assert SECRET not in logs(done)

    state = api('query { workspace(organization: "dist-happy", name: "app") { stateLock { id } '
                'currentStateVersion { jobId outputs { name value sensitive } } } }')["workspace"]
    outputs = {o["name"]: o for o in state["currentStateVersion"]["outputs"]}
    assert json.loads(outputs["region"]["value"]) == "eu-west-1"
    assert json.loads(outputs["tag_env"]["value"]) == "prod"
    assert json.loads(outputs["greeting"]["value"]) == "hello from env"
    assert outputs["secret_out"]["value"] is None and outputs["secret_out"]["sensitive"] is True
    assert state["currentStateVersion"]["jobId"] == job_id
    assert state["stateLock"] is None

    again = wait_job(cluster, run(api, ws, "Plan and apply"), "COMPLETED", "FAILED")
    assert again["status"] == "COMPLETED" and again["planChanges"] is False, logs(again) + cluster.output()
    assert [s["status"] for s in again["steps"]] == ["NO_CHANGES", "NOT_EXECUTED"]
    assert SECRET not in logs(again)


def test_two_jobs_of_one_workspace_never_overlap(cluster: Cluster, repo: Path) -> None:
    """Two workers (each may run 4 steps at once) and two applying jobs queued back to back:
    the second job's first step starts only after the first job's last step finished."""
    api, org = cluster.api, "dist-fifo"
    create_org(api, org)
    ws = create_workspace(api, org, "busy", repo, "busy")
    extra = cluster.start_worker("worker-fifo")
    try:
        first, second = run(api, ws, "Plan and apply"), run(api, ws, "Plan and apply")
        jobs = [wait_job(cluster, job_id, "COMPLETED", "FAILED") for job_id in (first, second)]
    finally:
        extra.stop()
    for job in jobs:
        assert job["status"] == "COMPLETED", logs(job) + cluster.output()
        assert [s["status"] for s in job["steps"]] == ["COMPLETED", "COMPLETED"], job
        assert "Apply complete!" in job["steps"][1]["log"]["text"]
    one, two = jobs
    first_ends = max(at(s["finishedAt"]) for s in one["steps"])
    assert at(two["createdAt"]) < first_ends  # the second job waited: it existed while the first ran
    second_starts = min(at(s["startedAt"]) for s in two["steps"])
    assert second_starts >= first_ends, (
        f"job 2 started {second_starts} before job 1 finished {first_ends}: {json.dumps(jobs)[:3000]}"
    )


def test_worker_killed_during_apply_fails_the_job_and_is_never_retried(cluster: Cluster, repo: Path) -> None:
    api, org = cluster.api, "dist-crash"
    create_org(api, org)
    ws = create_workspace(api, org, "slow", repo, "slow")
    sleep_var = add_variable(api, ws, "sleep", "0")
    first = wait_job(cluster, run(api, ws, "Plan and apply"), "COMPLETED", "FAILED")
    assert first["status"] == "COMPLETED", logs(first) + cluster.output()
    before = workspace_state(api, org, "slow")
    versions_before = {e["node"]["id"] for e in before["stateVersions"]["edges"]}
    assert versions_before and before["stateLock"] is None

    api.mutate("updateVariable", "UpdateVariableInput", "... on Variable { id }", id=sleep_var, value="30")
    job_id = run(api, ws, "Plan and apply")
    running = wait_for(cluster, "the apply step runs", lambda: (
        job if (job := get_job(api, job_id))["steps"][1]["status"] == "RUNNING" or job["status"] in ("FAILED", "COMPLETED")
        else None), 120)
    assert running["steps"][0]["status"] == "COMPLETED" and running["steps"][1]["status"] == "RUNNING", running
    lock = wait_for(cluster, "terraform takes the state lock", lambda: workspace_state(api, org, "slow")["stateLock"], 60)
    assert lock["who"], lock
    time.sleep(3)  # terraform is now applying: the provisioner sleeps for 30 s
    assert get_job(api, job_id)["steps"][1]["status"] == "RUNNING"

    victim = cluster.worker
    children = cluster.sigkill_worker(victim)
    killed_at = time.monotonic()
    assert children, "terraform was not a child of the worker"
    time.sleep(0.5)
    assert not [pid for pid in children if alive(pid)], "terraform survived"

    # The sweep (every 2 s) of the remaining worker fails the step once its heartbeat is
    # older than the TTL (6 s). The only worker is gone, so start the next one now: it is the
    # one whose sweep notices, and it must not run the lost apply again.
    successor = cluster.start_worker("worker-2")
    failed = wait_job(cluster, job_id, "FAILED", "COMPLETED", timeout=60)
    took = time.monotonic() - killed_at
    assert failed["status"] == "FAILED", failed
    assert "heartbeat" in failed["reason"] and "worker" in failed["reason"], failed["reason"]
    plan, apply = failed["steps"]
    assert plan["status"] == "COMPLETED"
    assert apply["status"] == "FAILED" and "heartbeat" in apply["reason"], apply
    assert "never retried" in apply["reason"], apply

    after = workspace_state(api, org, "slow")
    assert after["stateLock"] is None, after
    versions_after = {e["node"]["id"] for e in after["stateVersions"]["edges"]}
    assert versions_before <= versions_after, (versions_before, versions_after)

    # The new worker runs the next job of the workspace; the lost apply stays lost.
    plan_job = wait_job(cluster, run(api, ws, "Plan"), "COMPLETED", "FAILED")
    assert plan_job["status"] == "COMPLETED", logs(plan_job) + cluster.output()
    assert successor.proc is not None and successor.proc.poll() is None
    time.sleep(HEARTBEAT_TTL + 2 * SWEEP_SECONDS)  # a few more sweeps of the new worker
    later = get_job(api, job_id)
    assert later["status"] == "FAILED" and later["reason"] == failed["reason"]
    assert [s["status"] for s in later["steps"]] == ["COMPLETED", "FAILED"]
    assert later["steps"][1]["startedAt"] == apply["startedAt"]
    assert later["steps"][1]["finishedAt"] == apply["finishedAt"]
    final = workspace_state(api, org, "slow")
    assert final["stateLock"] is None
    assert versions_before <= {e["node"]["id"] for e in final["stateVersions"]["edges"]}
    print(f"lost apply failed {took:.1f}s after the SIGKILL")
