"""Schedules (SQLite and PostgreSQL): CRUD through GraphQL with Quartz and 5-field cron, validation and
permissions; due schedules start exactly one job even with two runners racing, and skip locked
workspaces; the TCL `scheduleTemplates` step creates (and then updates) the workspace's schedules."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import select

from domain.effects import Enqueue
from domain.models import Job, Schedule
from domain.models.types import utcnow
from domain.services.schedules import run_due_schedules
from tests.conftest import GraphQLClient

QUARTZ = "0 0/5 * ? * * *"
FIVE_FIELD = "*/5 * * * *"
GATE = """flow:
  - type: approval
    name: Sign-off
    step: 100
    team: ops
"""
FIELDS = "id cron templateId description enabled nextRunAt lastRunAt"
SCHEDULE = f"__typename ... on Schedule {{ {FIELDS} }} ... on Error {{ message }} ... on ValidationError {{ field }}"


async def setup(gql: GraphQLClient, org: str, tcl: str = GATE) -> dict[str, str]:
    await gql("mutation($o: String!) { createOrganization(input: {name: $o}) { __typename } }", o=org)
    for team, role in (("ops", "READ"), ("readers", "READ"), ("leads", "WRITE")):
        await gql("mutation($o: String!, $t: String!, $r: Role!) { createTeam(input: {organization: $o, name: $t, role: $r}) "
                  "{ __typename } }", o=org, t=team, r=role)
    ws = await gql('mutation($o: String!) { createWorkspace(input: {organization: $o, name: "app"}) '
                   "{ ... on Workspace { id } } }", o=org)
    tpl = await gql('mutation($o: String!, $t: String!) { createTemplate(input: {organization: $o, name: "gate", tcl: $t}) '
                    "{ ... on Template { id } } }", o=org, t=tcl)
    return {"ws": ws["createWorkspace"]["id"], "tpl": tpl["createTemplate"]["id"]}


async def create(client: GraphQLClient, ws: str, tpl: str, cron: str, **extra: Any) -> dict[str, Any]:
    data = await client(f"mutation($input: CreateScheduleInput!) {{ createSchedule(input: $input) {{ {SCHEDULE} }} }}",
                        input={"workspaceId": ws, "templateId": tpl, "cron": cron, **extra})
    return data["createSchedule"]


def plain(schedule: dict[str, Any]) -> dict[str, Any]:
    """A mutation's Schedule as `Workspace.schedules` lists it."""
    return {key: value for key, value in schedule.items() if key != "__typename"}


async def update(client: GraphQLClient, schedule_id: str, **fields: Any) -> dict[str, Any]:
    data = await client(f"mutation($input: UpdateScheduleInput!) {{ updateSchedule(input: $input) {{ {SCHEDULE} }} }}",
                        input={"id": schedule_id, **fields})
    return data["updateSchedule"]


async def delete(client: GraphQLClient, schedule_id: str) -> dict[str, Any]:
    data = await client("mutation($id: ID!) { deleteSchedule(input: {id: $id}) { __typename ... on Deleted { id } "
                        "... on Error { message } } }", id=schedule_id)
    return data["deleteSchedule"]


async def listed(gql: GraphQLClient, org: str) -> list[dict[str, Any]]:
    data = await gql(f'query($o: String!) {{ workspace(organization: $o, name: "app") {{ schedules {{ {FIELDS} }} }} }}', o=org)
    return data["workspace"]["schedules"]


async def workspace_jobs(gql: GraphQLClient, org: str) -> list[dict[str, Any]]:
    data = await gql('query($o: String!) { workspace(organization: $o, name: "app") { jobs(first: 50) '
                     "{ edges { node { id status via createdBy } } } } }", o=org)
    return [edge["node"] for edge in data["workspace"]["jobs"]["edges"]]


def on_five_minute_boundary_in_future(value: str | None, before: datetime) -> datetime:
    assert value is not None
    at = datetime.fromisoformat(value)
    assert at.tzinfo is not None and at.utcoffset() == timedelta(0), value
    assert before < at <= before + timedelta(minutes=5, seconds=1), (value, before)
    assert at.minute % 5 == 0 and at.second == 0 and at.microsecond == 0, value
    return at


async def set_next_run(services: Any, schedule_id: str, when: datetime) -> None:
    async with services.platform.db.transaction() as session:
        row = await session.get(Schedule, uuid.UUID(schedule_id))
        assert row is not None
        row.next_run_at = when
        session.add(row)


async def schedule_row(services: Any, schedule_id: str) -> Schedule:
    async with services.platform.db.session() as session:
        row = await session.get(Schedule, uuid.UUID(schedule_id))
        assert row is not None
        return row


async def jobs_in_db(services: Any, ws: str) -> list[Job]:
    async with services.platform.db.session() as session:
        return list((await session.exec(select(Job).where(Job.workspace_id == uuid.UUID(ws)))).all())


def enqueued_for(results: list[list[Enqueue]], job_ids: set[str]) -> list[Enqueue]:
    """run_due_schedules handles every due schedule of the database; keep the effects about our jobs."""
    return [e for batch in results for e in batch if e.args and e.args[0] in job_ids]


async def wait_job(gql: GraphQLClient, job_id: str, *statuses: str, timeout: float = 20.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        job = (await gql("query($id: ID!) { job(id: $id) { id status via reason steps { type status reason } } }",
                         id=job_id))["job"]
        if job["status"] in statuses:
            return job
        if loop.time() > deadline:
            raise AssertionError(f"job stayed {job['status']}, wanted {statuses}: {job}")
        await asyncio.sleep(0.05)


async def test_create_with_quartz_and_five_field_cron(gql: GraphQLClient, unique: str) -> None:
    ids = await setup(gql, unique)
    before = utcnow()
    quartz = await create(gql, ids["ws"], ids["tpl"], QUARTZ, description="every five minutes (Quartz)")
    assert quartz["__typename"] == "Schedule", quartz
    assert quartz["cron"] == QUARTZ and quartz["templateId"] == ids["tpl"] and quartz["enabled"] is True
    assert quartz["description"] == "every five minutes (Quartz)" and quartz["lastRunAt"] is None
    on_five_minute_boundary_in_future(quartz["nextRunAt"], before)

    five = await create(gql, ids["ws"], ids["tpl"], FIVE_FIELD)
    assert five["__typename"] == "Schedule", five
    assert five["cron"] == FIVE_FIELD and five["description"] == ""
    on_five_minute_boundary_in_future(five["nextRunAt"], before)
    # Both expressions mean the same thing, so they fire at the same moment.
    assert datetime.fromisoformat(five["nextRunAt"]) == datetime.fromisoformat(quartz["nextRunAt"])

    disabled = await create(gql, ids["ws"], ids["tpl"], FIVE_FIELD, enabled=False)
    assert disabled["enabled"] is False and disabled["nextRunAt"] is None

    rows = await listed(gql, unique)
    assert sorted(r["id"] for r in rows) == sorted([quartz["id"], five["id"], disabled["id"]])
    for row in rows:
        assert await delete(gql, row["id"]) == {"__typename": "Deleted", "id": row["id"]}


async def test_invalid_cron_and_foreign_template_write_nothing(gql: GraphQLClient, unique: str) -> None:
    ids = await setup(gql, unique)
    for cron in ("every tuesday", "61 * * * *", "30 0/5 * ? * * *", "0 0/5 * ? * * 2030", "* * * *", ""):
        refused = await create(gql, ids["ws"], ids["tpl"], cron)
        assert refused["__typename"] == "ValidationError" and refused["field"] == "cron", (cron, refused)

    other = await setup(gql, unique + "x")
    foreign = await create(gql, ids["ws"], other["tpl"], FIVE_FIELD)
    assert foreign["__typename"] == "NotFoundError", foreign
    missing = await create(gql, ids["ws"], str(uuid.uuid4()), FIVE_FIELD)
    assert missing["__typename"] == "NotFoundError", missing
    no_workspace = await create(gql, str(uuid.uuid4()), ids["tpl"], FIVE_FIELD)
    assert no_workspace["__typename"] == "NotFoundError", no_workspace
    assert await listed(gql, unique) == []

    # Updates validate the same way and leave the schedule as it was.
    good = await create(gql, ids["ws"], ids["tpl"], FIVE_FIELD)
    bad_cron = await update(gql, good["id"], cron="not a cron")
    assert bad_cron["__typename"] == "ValidationError" and bad_cron["field"] == "cron"
    bad_tpl = await update(gql, good["id"], templateId=other["tpl"])
    assert bad_tpl["__typename"] == "NotFoundError"
    assert await listed(gql, unique) == [plain(good)]
    await delete(gql, good["id"])


async def test_read_team_may_not_touch_schedules(gql: GraphQLClient, as_groups: Any, unique: str) -> None:
    ids = await setup(gql, unique)
    reader = await as_groups("readers")
    denied = await create(reader, ids["ws"], ids["tpl"], FIVE_FIELD)
    assert denied["__typename"] == "PermissionDeniedError", denied
    assert await listed(gql, unique) == []

    existing = await create(gql, ids["ws"], ids["tpl"], FIVE_FIELD)
    no_update = await update(reader, existing["id"], enabled=False, cron=QUARTZ)
    assert no_update["__typename"] == "PermissionDeniedError", no_update
    no_delete = await delete(reader, existing["id"])
    assert no_delete["__typename"] == "PermissionDeniedError", no_delete
    assert await listed(gql, unique) == [plain(existing)]

    lead = await as_groups("leads")  # WRITE includes manageWorkspace
    assert (await update(lead, existing["id"], description="by a lead"))["description"] == "by a lead"
    assert (await delete(lead, existing["id"]))["__typename"] == "Deleted"


async def test_update_disables_and_reenables_then_delete(gql: GraphQLClient, unique: str) -> None:
    ids = await setup(gql, unique)
    other_tpl = await gql('mutation($o: String!, $t: String!) { createTemplate(input: {organization: $o, name: "other", '
                          "tcl: $t}) { ... on Template { id } } }", o=unique, t=GATE)
    created = await create(gql, ids["ws"], ids["tpl"], FIVE_FIELD, description="first")

    off = await update(gql, created["id"], enabled=False)
    assert off["__typename"] == "Schedule" and off["enabled"] is False and off["nextRunAt"] is None
    assert off["cron"] == FIVE_FIELD and off["description"] == "first"

    before = utcnow()
    on = await update(gql, created["id"], enabled=True, cron=QUARTZ, description="second",
                      templateId=other_tpl["createTemplate"]["id"])
    assert on["enabled"] is True and on["cron"] == QUARTZ and on["description"] == "second"
    assert on["templateId"] == other_tpl["createTemplate"]["id"]
    on_five_minute_boundary_in_future(on["nextRunAt"], before)

    hourly = await update(gql, created["id"], cron="0 0 * ? * * *")
    at = datetime.fromisoformat(hourly["nextRunAt"])
    assert at > utcnow() and at.minute == 0 and at.second == 0
    assert await listed(gql, unique) == [plain(hourly)]

    gone = await delete(gql, created["id"])
    assert gone == {"__typename": "Deleted", "id": created["id"]}
    assert await listed(gql, unique) == []
    assert (await delete(gql, created["id"]))["__typename"] == "NotFoundError"
    assert (await update(gql, created["id"], enabled=True))["__typename"] == "NotFoundError"


async def test_a_due_schedule_starts_exactly_one_job(gql: GraphQLClient, services: Any, unique: str) -> None:
    ids = await setup(gql, unique)
    created = await create(gql, ids["ws"], ids["tpl"], FIVE_FIELD)
    overdue = utcnow() - timedelta(minutes=3)
    await set_next_run(services, created["id"], overdue)

    before = utcnow()
    results = await asyncio.gather(run_due_schedules(services.platform), run_due_schedules(services.platform))
    jobs = await jobs_in_db(services, ids["ws"])
    assert len(jobs) == 1, jobs
    job = jobs[0]
    assert job.via == "SCHEDULE" and job.created_by == "schedule" and job.template_id == uuid.UUID(ids["tpl"])
    # Two racing runners: one claimed the due time and created the job. (The app's own periodic sweep is
    # a third runner on this database; should it win the race, neither of ours may create anything.)
    mine = enqueued_for(list(results), {str(job.id)})
    assert len(mine) <= 1, results
    await services.platform.dispatch(mine)

    row = await schedule_row(services, created["id"])
    assert row.next_run_at is not None and row.last_run_at is not None
    on_five_minute_boundary_in_future(row.next_run_at.isoformat(), before)
    assert row.last_run_at > overdue

    waiting = await wait_job(gql, str(job.id), "WAITING_APPROVAL")
    assert waiting["via"] == "SCHEDULE"
    listed_jobs = await workspace_jobs(gql, unique)
    assert listed_jobs == [{"id": str(job.id), "status": "WAITING_APPROVAL", "via": "SCHEDULE", "createdBy": "schedule"}]

    # Nothing is due any more: running again starts nothing and leaves the schedule as it is.
    again = await asyncio.gather(run_due_schedules(services.platform), run_due_schedules(services.platform))
    assert enqueued_for(list(again), {str(job.id)}) == []
    assert [j.id for j in await jobs_in_db(services, ids["ws"])] == [job.id]
    after = await schedule_row(services, created["id"])
    assert (after.next_run_at, after.last_run_at) == (row.next_run_at, row.last_run_at)

    # A disabled schedule never runs, however overdue.
    await update(gql, created["id"], enabled=False)
    await set_next_run(services, created["id"], utcnow() - timedelta(minutes=3))
    await run_due_schedules(services.platform)
    assert len(await jobs_in_db(services, ids["ws"])) == 1

    await delete(gql, created["id"])
    await gql("mutation($id: ID!) { cancelJob(input: {id: $id}) { __typename } }", id=str(job.id))


async def test_a_locked_workspace_skips_the_due_time(gql: GraphQLClient, services: Any, unique: str) -> None:
    ids = await setup(gql, unique)
    created = await create(gql, ids["ws"], ids["tpl"], QUARTZ)
    await gql('mutation($id: ID!) { lockWorkspace(input: {id: $id, reason: "freeze"}) { __typename } }', id=ids["ws"])
    await set_next_run(services, created["id"], utcnow() - timedelta(minutes=1))

    before = utcnow()
    await asyncio.gather(run_due_schedules(services.platform), run_due_schedules(services.platform))
    assert await jobs_in_db(services, ids["ws"]) == []
    row = await schedule_row(services, created["id"])
    assert row.next_run_at is not None
    on_five_minute_boundary_in_future(row.next_run_at.isoformat(), before)  # moved on to the next due time
    assert row.enabled is True

    # Once unlocked, the next due time starts a job as usual.
    await gql('mutation($id: ID!) { unlockWorkspace(input: {id: $id}) { __typename } }', id=ids["ws"])
    await set_next_run(services, created["id"], utcnow() - timedelta(minutes=1))
    results = await run_due_schedules(services.platform)
    jobs = await jobs_in_db(services, ids["ws"])
    assert len(jobs) == 1 and jobs[0].via == "SCHEDULE"
    await services.platform.dispatch(enqueued_for([results], {str(jobs[0].id)}))
    await wait_job(gql, str(jobs[0].id), "WAITING_APPROVAL")

    await delete(gql, created["id"])
    await gql("mutation($id: ID!) { cancelJob(input: {id: $id}) { __typename } }", id=str(jobs[0].id))


async def test_schedule_templates_step_creates_then_updates_schedules(gql: GraphQLClient, unique: str) -> None:
    tcl = ("flow:\n  - type: scheduleTemplates\n    step: 100\n    templates:\n"
           f'      - name: "Plan"\n        schedule: "{QUARTZ}"\n')
    ids = await setup(gql, unique, tcl)
    templates = await gql("query($o: String!) { organization(name: $o) { templates { id name } } }", o=unique)
    plan_id = next(t["id"] for t in templates["organization"]["templates"] if t["name"] == "Plan")

    before = utcnow()
    started = await gql("mutation($w: ID!) { runJob(input: {workspaceId: $w, templateName: \"gate\"}) "
                        "{ __typename ... on Job { id } ... on Error { message } } }", w=ids["ws"])
    assert started["runJob"]["__typename"] == "Job", started
    done = await wait_job(gql, started["runJob"]["id"], "COMPLETED", "FAILED")
    assert done["status"] == "COMPLETED", done
    assert [(s["type"], s["status"]) for s in done["steps"]] == [("scheduleTemplates", "COMPLETED")]

    [schedule] = await listed(gql, unique)
    assert schedule["templateId"] == plan_id and schedule["cron"] == QUARTZ and schedule["enabled"] is True
    assert started["runJob"]["id"] in schedule["description"]
    on_five_minute_boundary_in_future(schedule["nextRunAt"], before)

    # Running the step again updates the schedule instead of adding a second one.
    await update(gql, schedule["id"], enabled=False)
    again = await gql("mutation($w: ID!) { runJob(input: {workspaceId: $w, templateName: \"gate\"}) "
                      "{ ... on Job { id } } }", w=ids["ws"])
    assert (await wait_job(gql, again["runJob"]["id"], "COMPLETED", "FAILED"))["status"] == "COMPLETED"
    [updated] = await listed(gql, unique)
    assert updated["id"] == schedule["id"] and updated["enabled"] is True and updated["cron"] == QUARTZ
    assert again["runJob"]["id"] in updated["description"]

    await delete(gql, schedule["id"])  # so the app's sweep does not start "Plan" runs later
