"""Live job logs and job events over graphql-transport-ws, on `terrakube up` (in-process) and on
`terrakube serve` + `terrakube worker` with Redis and PostgreSQL (across processes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from httpx_ws import WebSocketDisconnect

from tests.cluster import Cluster
from tests.gql_ws import GraphQLWebSocket, SubscriptionError, connect
from tests.procs import Api, Server, git, running_up

LINES = 2000
# Prints LINES numbered lines over ~2 s, so readers join while it runs.
CHATTY = f"""flow:
  - type: customScripts
    name: Count
    step: 100
    commands:
      - runtime: BASH
        priority: 1
        script: |
          for i in $(seq 1 {LINES}); do echo "line $i of {LINES}"; if [ $((i % 100)) -eq 0 ]; then sleep 0.1; fi; done
"""
LOGS = "subscription($j: ID!, $s: ID, $o: Int!) { jobLogs(jobId: $j, stepId: $s, fromOffset: $o) { stepId stepNumber offset text } }"
EVENTS = "subscription($w: ID!) { workspaceJobs(workspaceId: $w) { job { id status } step { id status } at } }"




@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("code")
    git(path, "init", "-q", "-b", "main")
    (path / "main.tf").write_text('resource "terraform_data" "x" {\n  input = "x"\n}\n')
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "c")
    return path


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_up(tmp_path_factory.mktemp("live-up")) as api:
        yield api


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def api(request: pytest.FixtureRequest) -> Api:
    if request.param == "embedded":
        return request.getfixturevalue("embedded")
    cluster: Cluster = request.getfixturevalue("cluster")
    return cluster.api


def setup(api: Api, org: str, code: Path) -> tuple[str, str]:
    api.mutate("createOrganization", "CreateOrganizationInput", "... on Organization { id }", name=org)
    ws = api.mutate("createWorkspace", "CreateWorkspaceInput", "... on Workspace { id }", organization=org,
                    name="live", source=f"file://{code}")["id"]
    api.mutate("createTemplate", "CreateTemplateInput", "... on Template { id }", organization=org, name="chatty",
               tcl=CHATTY)
    return org, ws


async def collect(sock: GraphQLWebSocket, job_id: str, step_id: str | None = None, offset: int = 0,
                  seen: asyncio.Event | None = None, after_line: int = 0) -> list[dict[str, Any]]:
    chunks = []
    async for data in sock.subscribe(LOGS, j=job_id, s=step_id, o=offset):
        chunks.append(data["jobLogs"])
        if seen is not None and f"line {after_line} of" in data["jobLogs"]["text"]:
            seen.set()
    return chunks


def joined(chunks: list[dict[str, Any]]) -> bytes:
    """Checks the chunks are contiguous (no gap, no overlap) and returns their bytes."""
    out = b""
    for chunk in chunks:
        assert chunk["offset"] == len(out), f"gap or duplicate at {chunk['offset']} (have {len(out)})"
        out += chunk["text"].encode()
    return out


def stored_log(api: Api, job_id: str) -> bytes:
    job = api("query($id: ID!) { job(id: $id) { status steps { log(limit: 1048576) { text size } } } }", id=job_id)["job"]
    return job["steps"][0]["log"]["text"].encode()


async def test_live_log_backlog_tail_and_resume(api: Api, code: Path, request: pytest.FixtureRequest) -> None:
    org, ws = setup(api, f"live-{request.node.callspec.id}", code)
    token = api.token
    async with connect(api.server.base_url, token) as first, connect(api.server.base_url, token) as events:
        event_stream = events.subscribe(EVENTS, w=ws)
        event_task = asyncio.create_task(_events_until_end(event_stream))
        await asyncio.sleep(0.3)  # the event subscription is in place before the job starts
        job_id = api.mutate("runJob", "RunJobInput", "... on Job { id }", workspaceId=ws, templateName="chatty")["id"]
        half = asyncio.Event()
        first_task = asyncio.create_task(collect(first, job_id, seen=half, after_line=LINES // 2))
        await asyncio.wait_for(half.wait(), timeout=90)
        async with connect(api.server.base_url, token) as second:
            second_chunks = await asyncio.wait_for(collect(second, job_id), timeout=90)
        first_chunks = await asyncio.wait_for(first_task, timeout=90)
        job_events = await asyncio.wait_for(event_task, timeout=90)

    whole = joined(first_chunks)
    lines = whole.decode().splitlines()
    numbered = [line for line in lines if line.startswith("line ")]
    assert numbered == [f"line {i} of {LINES}" for i in range(1, LINES + 1)]  # in order, once each
    assert joined(second_chunks) == whole  # joined half-way: backlog, then the live tail
    assert whole == stored_log(api, job_id)  # the stored log and the live stream agree byte for byte

    # A reconnect resumes exactly where it stopped.
    cut = next(c for c in first_chunks if "line 500 of" in c["text"])
    resume_at = cut["offset"] + len(cut["text"].encode())
    async with connect(api.server.base_url, token) as third:
        resumed = await asyncio.wait_for(collect(third, job_id, step_id=cut["stepId"], offset=resume_at), timeout=60)
    assert resumed[0]["offset"] == resume_at
    assert whole[:resume_at] + b"".join(c["text"].encode() for c in resumed) == whole

    mine = [e for e in job_events if e["job"]["id"] == job_id]
    job_statuses = [e["job"]["status"] for e in mine if e["step"] is None]
    step_statuses = [e["step"]["status"] for e in mine if e["step"] is not None]
    assert job_statuses[0] == "PENDING" and job_statuses[-1] == "COMPLETED" and "RUNNING" in job_statuses
    assert step_statuses[0] == "PENDING" and "RUNNING" in step_statuses and step_statuses[-1] == "COMPLETED"


async def _events_until_end(stream: Any) -> list[dict[str, Any]]:
    seen = []
    async for data in stream:
        event = data["workspaceJobs"]
        seen.append(event)
        if event["step"] is None and event["job"]["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return seen
    return seen


async def test_job_status_changed_completes_when_the_job_ends(api: Api, code: Path, request: pytest.FixtureRequest) -> None:
    org, ws = setup(api, f"status-{request.node.callspec.id}", code)
    job_id = api.mutate("runJob", "RunJobInput", "... on Job { id }", workspaceId=ws, templateName="chatty")["id"]
    async with connect(api.server.base_url, api.token) as sock:
        events = [d["jobStatusChanged"] async for d in sock.subscribe(
            "subscription($j: ID!) { jobStatusChanged(jobId: $j) { job { id status } step { status } } }", j=job_id)]
    assert events and events[-1]["job"]["status"] == "COMPLETED" and events[-1]["step"] is None


async def test_subscriptions_need_a_valid_token_and_access(api: Api, code: Path, request: pytest.FixtureRequest) -> None:
    org, ws = setup(api, f"auth-{request.node.callspec.id}", code)
    job_id = api.mutate("runJob", "RunJobInput", "... on Job { id }", workspaceId=ws, templateName="chatty")["id"]
    for token in (None, "not-a-token"):
        await expect_refused(api, token)
    created = api.mutate("createAccessToken", "CreateAccessTokenInput", "... on NewAccessToken { token accessToken { id } }",
                         description="to revoke", days=1)
    api.mutate("revokeAccessToken", "IdInput", "... on AccessToken { id }", id=created["accessToken"]["id"])
    await expect_refused(api, created["token"])
    # A member of another organization's team sees nothing of this one.
    other = f"{org}-other"
    api.mutate("createOrganization", "CreateOrganizationInput", "... on Organization { id }", name=other)
    api.mutate("createTeam", "CreateTeamInput", "... on Team { id }", organization=other, name="outsiders", role="ADMIN")
    outsider = _token_for_groups(api, ["outsiders"])
    async with connect(api.server.base_url, outsider) as sock:
        with pytest.raises(SubscriptionError) as refused:
            async for _ in sock.subscribe(LOGS, j=job_id, s=None, o=0):
                pass
        assert "not found" in str(refused.value)
        with pytest.raises(SubscriptionError):
            async for _ in sock.subscribe(EVENTS, w=ws):
                pass


async def expect_refused(api: Api, token: str | None) -> None:
    """The server closes the socket with 4403 at connection_init."""
    try:
        async with connect(api.server.base_url, token):
            pass
    except BaseException as exc:  # httpx-ws wraps the close in an exception group
        found = [exc]
        while found and not isinstance(found[0], WebSocketDisconnect):
            head = found.pop(0)
            found += list(getattr(head, "exceptions", ()))
        assert found, f"refused for another reason: {exc!r}"
        assert found[0].code == 4403
        return
    raise AssertionError("the connection was accepted")


def _token_for_groups(api: Api, groups: list[str]) -> str:
    """A personal token carrying ``groups`` (minted like a user of those groups would get one)."""
    from domain.services.access_tokens import issue_token
    from settings import Settings
    from wiring import open_platform

    async def mint() -> str:
        data = api.server.data_dir
        env = api.server.env
        if env.get("TERRAKUBE_DATABASE_URL"):
            settings = Settings(mode="production", database_url=env["TERRAKUBE_DATABASE_URL"],  # type: ignore[arg-type]
                                secret_key=env["TERRAKUBE_SECRET_KEY"], data_dir=data,
                                storage_local_path=Path(env["TERRAKUBE_STORAGE_LOCAL_PATH"]))
        else:
            settings = Settings(data_dir=data, secret_key=(data / "secret-key").read_text().strip())
        platform = await open_platform(settings)
        try:
            new = await issue_token(platform, owner=f"outsider-{time.time_ns()}", email=None, groups=groups,
                                    description="test", days=1, kind="personal")
            return new.secret
        finally:
            await platform.blobs.close()
            await platform.db.dispose()

    return _run_in_thread(mint)


def _run_in_thread(factory: Any) -> str:
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


PAUSING = """flow:
  - type: customScripts
    name: Pause
    step: 100
    commands:
      - runtime: BASH
        priority: 1
        script: |
          echo before-the-pause; sleep 3; echo after-the-pause
"""


async def test_silent_steps_and_queued_jobs_keep_their_subscription(
    api: Api, code: Path, request: pytest.FixtureRequest
) -> None:
    """A reader waits through a silent step and through a job queued behind another."""
    org, ws = setup(api, f"quiet-{request.node.callspec.id}", code)
    api.mutate("createTemplate", "CreateTemplateInput", "... on Template { id }", organization=org, name="pause",
               tcl=PAUSING)
    first = api.mutate("runJob", "RunJobInput", "... on Job { id }", workspaceId=ws, templateName="pause")["id"]
    second = api.mutate("runJob", "RunJobInput", "... on Job { id }", workspaceId=ws, templateName="pause")["id"]
    async with connect(api.server.base_url, api.token) as a, connect(api.server.base_url, api.token) as b:
        texts = await asyncio.wait_for(asyncio.gather(collect(a, first), collect(b, second)), timeout=120)
    for chunks in texts:
        log = joined(chunks).decode()
        assert "before-the-pause" in log and "after-the-pause" in log
        assert log.index("before-the-pause") < log.index("after-the-pause")


async def test_a_new_api_replica_serves_the_whole_backlog(cluster: Cluster, code: Path) -> None:
    """Across processes: the executor runs in `terrakube worker`; an API replica started while the
    job runs serves the full log from Redis, and organization events reach its subscribers."""
    api = cluster.api
    org, ws = setup(api, "live-replica", code)
    async with connect(api.server.base_url, api.token) as watcher:
        org_events = watcher.subscribe(
            "subscription($o: String!) { organizationJobs(organization: $o) { job { id status } step { id } } }",
            o=org)
        org_task = asyncio.create_task(_first_terminal(org_events))
        await asyncio.sleep(0.3)
        job_id = api.mutate("runJob", "RunJobInput", "... on Job { id }", workspaceId=ws, templateName="chatty")["id"]
        replica = Server(data_dir=cluster.base / "data", log_dir=cluster.base, name="serve-replica",
                         command=["serve"], env=cluster.env)
        replica.start()
        try:
            replica.wait_healthy()
            async with connect(replica.base_url, api.token) as late:
                chunks = await asyncio.wait_for(collect(late, job_id), timeout=90)
        finally:
            replica.stop()
        finished = await asyncio.wait_for(org_task, timeout=60)
    whole = joined(chunks)
    assert whole == stored_log(api, job_id)
    assert [ln for ln in whole.decode().splitlines() if ln.startswith("line ")] == [
        f"line {i} of {LINES}" for i in range(1, LINES + 1)
    ]
    assert finished == {"id": job_id, "status": "COMPLETED"}


async def _first_terminal(stream: Any) -> dict[str, Any]:
    async for data in stream:
        event = data["organizationJobs"]
        if event["step"] is None and event["job"]["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return event["job"]
    raise AssertionError("the organization's event stream ended")


async def test_a_slow_reader_slows_nobody_else(api: Api, code: Path, request: pytest.FixtureRequest) -> None:
    org, ws = setup(api, f"slow-{request.node.callspec.id}", code)
    job_id = api.mutate("runJob", "RunJobInput", "... on Job { id }", workspaceId=ws, templateName="chatty")["id"]

    released = asyncio.Event()

    async def slow_reader(sock: GraphQLWebSocket) -> list[dict[str, Any]]:
        chunks = []
        async for data in sock.subscribe(LOGS, j=job_id, s=None, o=0):
            chunks.append(data["jobLogs"])
            # Stalled after its first chunk until the job and the fast reader are done (the
            # slowest reader there is: a fixed delay per chunk raced the job on a loaded machine).
            await released.wait()
            await asyncio.sleep(0.01)
        return chunks

    async with connect(api.server.base_url, api.token) as a, connect(api.server.base_url, api.token) as b:
        slow = asyncio.create_task(slow_reader(a))
        fast = await asyncio.wait_for(collect(b, job_id), timeout=90)
        status = api("query($id: ID!) { job(id: $id) { status } }", id=job_id)["job"]["status"]
        assert not slow.done()
        assert status == "COMPLETED"  # the job and the fast reader finished while the slow one stalled
        released.set()
        slow_chunks = await asyncio.wait_for(slow, timeout=300)
    assert joined(slow_chunks) == joined(fast) == stored_log(api, job_id)
