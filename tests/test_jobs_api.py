"""Jobs through the GraphQL API with flows that need no terraform: approvals, rejection,
cancellation, FIFO per workspace, yamlError, permissions (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import GraphQLClient

APPROVE_THEN_DISABLE = """flow:
  - type: approval
    name: Sign-off
    step: 100
    team: ops
  - type: disableWorkspace
    name: Freeze
    step: 200
"""
FIELDS = "id status reason planChanges steps { name stepNumber type status reason }"
JOB = f"... on Job {{ {FIELDS} }} ... on Error {{ __typename message }} ... on ValidationError {{ field }}"


async def setup(gql: GraphQLClient, org: str, tcl: str = APPROVE_THEN_DISABLE) -> dict[str, str]:
    await gql("mutation($o: String!) { createOrganization(input: {name: $o}) { __typename } }", o=org)
    for team, role in (("ops", "READ"), ("devs", "PLAN"), ("readers", "READ"), ("leads", "WRITE")):
        await gql("mutation($o: String!, $t: String!, $r: Role!) { createTeam(input: {organization: $o, name: $t, role: $r}) { __typename } }",
                  o=org, t=team, r=role)
    ws = await gql('mutation($o: String!) { createWorkspace(input: {organization: $o, name: "app"}) { ... on Workspace { id } } }', o=org)
    tpl = await gql('mutation($o: String!, $t: String!) { createTemplate(input: {organization: $o, name: "gate", tcl: $t}) { ... on Template { id } } }', o=org, t=tcl)
    return {"ws": ws["createWorkspace"]["id"], "tpl": tpl["createTemplate"]["id"]}


async def run_job(client: GraphQLClient, ws: str, template: str = "gate") -> dict[str, Any]:
    data = await client(f"mutation($w: ID!, $t: String!) {{ runJob(input: {{workspaceId: $w, templateName: $t}}) {{ {JOB} }} }}", w=ws, t=template)
    return data["runJob"]


async def job(gql: GraphQLClient, job_id: str) -> dict[str, Any]:
    return (await gql(f"query($id: ID!) {{ job(id: $id) {{ {FIELDS} }} }}", id=job_id))["job"]


async def wait_status(gql: GraphQLClient, job_id: str, *statuses: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        current = await job(gql, job_id)
        if current["status"] in statuses:
            return current
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job stayed {current['status']}, wanted {statuses}: {current}")
        await asyncio.sleep(0.05)


async def decide(client: GraphQLClient, verb: str, job_id: str) -> dict[str, Any]:
    return (await client(f"mutation($id: ID!) {{ {verb}(input: {{id: $id}}) {{ {JOB} }} }}", id=job_id))[verb]


async def test_approval_by_the_team_then_the_flow_continues(gql: GraphQLClient, as_groups: Any, unique: str) -> None:
    ids = await setup(gql, unique)
    dev = await as_groups("devs")
    started = await run_job(dev, ids["ws"])
    assert started["status"] in ("PENDING", "WAITING_APPROVAL")
    assert [s["name"] for s in started["steps"]] == ["Sign-off", "Freeze"]
    waiting = await wait_status(gql, started["id"], "WAITING_APPROVAL")
    assert waiting["steps"][0]["status"] == "WAITING_APPROVAL"

    outsider = await as_groups("readers")
    denied = await decide(outsider, "approveJob", started["id"])
    assert denied["__typename"] == "PermissionDeniedError"
    assert (await job(gql, started["id"]))["status"] == "WAITING_APPROVAL"

    approver = await as_groups("ops")
    approved = await decide(approver, "approveJob", started["id"])
    assert approved["status"] == "APPROVED"
    done = await wait_status(gql, started["id"], "COMPLETED")
    assert [s["status"] for s in done["steps"]] == ["APPROVED", "COMPLETED"]
    ws = await gql("query($o: String!) { workspace(organization: $o, name: \"app\") { locked lockReason lastJobStatus } }", o=unique)
    assert ws["workspace"]["locked"] is True and "disabled by job" in ws["workspace"]["lockReason"]
    assert ws["workspace"]["lastJobStatus"] == "COMPLETED"
    again = await decide(approver, "approveJob", started["id"])
    assert again["__typename"] == "ConflictError"


async def test_reject_ends_the_job_and_skips_the_rest(gql: GraphQLClient, as_groups: Any, unique: str) -> None:
    ids = await setup(gql, unique)
    started = await run_job(gql, ids["ws"])
    await wait_status(gql, started["id"], "WAITING_APPROVAL")
    lead = await as_groups("leads")  # approveJob through the WRITE role
    rejected = await decide(lead, "rejectJob", started["id"])
    assert rejected["status"] == "REJECTED"
    assert [s["status"] for s in rejected["steps"]] == ["REJECTED", "NOT_EXECUTED"]
    ws = await gql("query($o: String!) { workspace(organization: $o, name: \"app\") { locked } }", o=unique)
    assert ws["workspace"]["locked"] is False


async def test_jobs_of_a_workspace_run_one_at_a_time_in_order(gql: GraphQLClient, unique: str) -> None:
    ids = await setup(gql, unique, APPROVE_THEN_DISABLE.replace("  - type: disableWorkspace\n    name: Freeze\n    step: 200\n", ""))
    first = await run_job(gql, ids["ws"])
    second = await run_job(gql, ids["ws"])
    third = await run_job(gql, ids["ws"])
    await wait_status(gql, first["id"], "WAITING_APPROVAL")
    await asyncio.sleep(0.3)
    assert (await job(gql, second["id"]))["status"] == "PENDING"
    assert (await job(gql, third["id"]))["status"] == "PENDING"

    cancelled = await decide(gql, "cancelJob", first["id"])
    assert cancelled["status"] == "CANCELLED" and cancelled["steps"][0]["status"] == "CANCELLED"
    await wait_status(gql, second["id"], "WAITING_APPROVAL")
    assert (await job(gql, third["id"]))["status"] == "PENDING"
    # Cancelling a pending job works too, and its steps never run.
    gone = await decide(gql, "cancelJob", third["id"])
    assert gone["status"] == "CANCELLED" and gone["steps"][0]["status"] == "NOT_EXECUTED"
    await decide(gql, "approveJob", second["id"])
    await wait_status(gql, second["id"], "COMPLETED")
    listed = await gql("query($o: String!) { workspace(organization: $o, name: \"app\") { jobs(first: 10) { edges { node { id status } } } } }", o=unique)
    assert [e["node"]["id"] for e in listed["workspace"]["jobs"]["edges"]] == [third["id"], second["id"], first["id"]]
    again = await decide(gql, "cancelJob", first["id"])
    assert again["__typename"] == "ConflictError"


async def test_a_locked_workspace_starts_nothing(gql: GraphQLClient, unique: str) -> None:
    ids = await setup(gql, unique)
    await gql('mutation($id: ID!) { lockWorkspace(input: {id: $id, reason: "freeze"}) { __typename } }', id=ids["ws"])
    started = await run_job(gql, ids["ws"])
    await asyncio.sleep(0.3)
    assert (await job(gql, started["id"]))["status"] == "PENDING"
    await gql('mutation($id: ID!) { unlockWorkspace(input: {id: $id}) { __typename } }', id=ids["ws"])
    await wait_status(gql, started["id"], "WAITING_APPROVAL")


async def test_broken_snapshot_fails_with_a_yaml_error_step(gql: GraphQLClient, services: Any, unique: str) -> None:
    ids = await setup(gql, unique)
    # Templates are validated when saved, so break the stored text behind the API's back.
    import uuid

    from domain.models import Template

    async with services.platform.db.transaction() as session:
        row = await session.get(Template, uuid.UUID(ids["tpl"]))
        row.tcl = "flow:\n  - type: terraformPlan\n    step: [oops\n"
        session.add(row)
    failed = await run_job(gql, ids["ws"])
    assert failed["status"] == "FAILED"
    assert [(s["name"], s["status"]) for s in failed["steps"]] == [("yamlError", "FAILED")]
    assert "line 4" in failed["steps"][0]["reason"] and "cannot be parsed" in failed["reason"]


async def test_starting_jobs_needs_plan_job(gql: GraphQLClient, as_groups: Any, unique: str) -> None:
    ids = await setup(gql, unique)
    reader = await as_groups("readers")
    denied = await run_job(reader, ids["ws"])
    assert denied["__typename"] == "PermissionDeniedError"
    missing = await run_job(gql, ids["ws"], "no-such-template")
    assert missing["__typename"] == "NotFoundError"
    both = await gql("mutation($w: ID!, $t: ID!) { runJob(input: {workspaceId: $w, templateId: $t, templateName: \"gate\"}) { ... on ValidationError { field } } }", w=ids["ws"], t=ids["tpl"])
    assert both["runJob"]["field"] == "templateId"
    listed = await gql("query($o: String!) { workspace(organization: $o, name: \"app\") { jobs { edges { node { id } } } lastJobStatus } }", o=unique)
    assert listed["workspace"] == {"jobs": {"edges": []}, "lastJobStatus": None}


async def test_schedule_templates_naming_a_missing_template_fails_the_job(gql: GraphQLClient, unique: str) -> None:
    tcl = "flow:\n  - type: scheduleTemplates\n    step: 100\n    templates:\n      - name: Nope\n        schedule: '*/5 * * * *'\n"
    ids = await setup(gql, unique, tcl)
    started = await run_job(gql, ids["ws"])
    failed = await wait_status(gql, started["id"], "FAILED")
    assert "Nope" in failed["reason"] and failed["steps"][0]["status"] == "FAILED"
    schedules = await gql("query($o: String!) { workspace(organization: $o, name: \"app\") { schedules { id } } }", o=unique)
    assert schedules["workspace"]["schedules"] == []
