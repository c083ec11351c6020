"""The access cache: remembered authentications and team lookups are dropped the moment access
changes, in this process (the commit) and in every other one (Redis), and never outlive their
bounds (max age, the token's expiry, a lost subscription)."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from domain.access import Actor
from domain.access_cache import AccessCache, token_digest
from domain.models import Organization, Team
from domain.principal import OrganizationAccess, Principal, PrincipalKind
from tests.cluster import Cluster, cluster_platform, descendants
from tests.conftest import GraphQLClient
from tests.procs import Api, Server
from tests.services import REDIS_HOST, REDIS_PORT, REDIS_URL, require
from wiring import Services
from workers.broker import RedisBroker

ORG_ID = uuid.uuid4()
SEEN = OrganizationAccess(visible=True, permissions=frozenset())
ALICE = Principal(name="alice", groups=frozenset({"readers"}), kind=PrincipalKind.personal_token)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the cache alone ---------------------------------------------------------------------------


def test_an_answer_read_before_a_change_is_not_kept() -> None:
    cache = AccessCache(60)
    generation = cache.generation  # a load starts...
    cache.invalidate()  # ...a change commits meanwhile...
    cache.keep_access(ALICE.groups, ORG_ID, SEEN, generation)  # ...and the stale answer arrives
    cache.keep_principal(b"d", ALICE, expires_at=4e9, generation=generation)
    assert cache.access(ALICE.groups, ORG_ID) is None and cache.principal(b"d") is None
    cache.keep_access(ALICE.groups, ORG_ID, SEEN, cache.generation)
    assert cache.access(ALICE.groups, ORG_ID) == SEEN


def test_answers_live_at_most_max_age_and_never_past_the_token() -> None:
    clock, wall = Clock(), Clock()
    cache = AccessCache(60, clock=clock, wall_clock=wall)
    cache.keep_principal(b"long", ALICE, expires_at=wall.now + 3600, generation=0)
    cache.keep_principal(b"short", ALICE, expires_at=wall.now + 5, generation=0)
    cache.keep_principal(b"expired", ALICE, expires_at=wall.now - 1, generation=0)
    assert cache.principal(b"expired") is None
    clock.now += 5
    assert cache.principal(b"short") is None and cache.principal(b"long") == ALICE
    clock.now += 55
    assert cache.principal(b"long") is None


def test_nothing_is_answered_or_kept_while_changes_cannot_be_heard() -> None:
    cache = AccessCache(60, live=False)
    cache.keep_access(ALICE.groups, ORG_ID, SEEN, cache.generation)
    assert cache.access(ALICE.groups, ORG_ID) is None
    cache.set_live(True)
    cache.keep_access(ALICE.groups, ORG_ID, SEEN, cache.generation)
    assert cache.access(ALICE.groups, ORG_ID) == SEEN
    cache.set_live(False)  # the subscription broke: forget, and stop answering
    assert cache.access(ALICE.groups, ORG_ID) is None
    cache.set_live(True)
    assert cache.access(ALICE.groups, ORG_ID) is None
    assert AccessCache(0).enabled is False  # max age 0: always ask the database


def test_a_full_cache_drops_its_oldest_entry() -> None:
    cache = AccessCache(60, max_entries=2)
    for name in (b"a", b"b", b"c"):
        cache.keep_principal(name, ALICE, expires_at=4e9, generation=0)
    assert [cache.principal(n) is not None for n in (b"a", b"b", b"c")] == [False, True, True]


# -- one process: the commit itself clears the cache -----------------------------------------


async def test_a_revoked_token_is_refused_on_its_very_next_request(
    client: httpx.AsyncClient, services: Services, as_groups: Any
) -> None:
    user = await as_groups("team-x")
    created = await user('mutation { createAccessToken(input: {description: "c", days: 1}) '
                         "{ ... on NewAccessToken { token accessToken { id } } } }")
    new = created["createAccessToken"]
    ci = GraphQLClient(client, new["token"])
    for _ in range(3):
        assert (await ci("{ me { groups } }"))["me"]["groups"] == ["team-x"]
    cache = services.platform.access_cache
    assert cache is not None and cache.principal(token_digest(new["token"])) is not None  # really remembered
    await user("mutation($id: ID!) { revokeAccessToken(input: {id: $id}) { __typename } }", id=new["accessToken"]["id"])
    assert cache.principal(token_digest(new["token"])) is None
    assert (await ci.raw("{ me { name } }")).status_code == 401


async def test_team_changes_apply_on_the_next_request(gql: GraphQLClient, as_groups: Any, unique: str) -> None:
    await gql("mutation($o: String!) { createOrganization(input: {name: $o}) { __typename } }", o=unique)
    team = await gql('mutation($o: String!) { createTeam(input: {organization: $o, name: "devs", role: READ}) '
                     "{ ... on Team { id } } }", o=unique)
    team_id = team["createTeam"]["id"]
    dev = await as_groups("devs")
    create = 'mutation($o: String!, $n: String!) { createWorkspace(input: {organization: $o, name: $n}) { __typename } }'
    for _ in range(2):  # the READ answer is remembered...
        assert (await dev(create, o=unique, n="w1"))["createWorkspace"]["__typename"] == "PermissionDeniedError"
    await gql("mutation($id: ID!) { updateTeam(input: {id: $id, role: WRITE}) { __typename } }", id=team_id)
    assert (await dev(create, o=unique, n="w1"))["createWorkspace"]["__typename"] == "Workspace"  # ...until now
    await gql("mutation($id: ID!) { deleteTeam(input: {id: $id}) { __typename } }", id=team_id)
    assert (await dev("query($o: String!) { organization(name: $o) { id } }", o=unique))["organization"] is None


async def test_access_read_inside_a_rolled_back_transaction_is_not_shared(services: Services, unique: str) -> None:
    platform = services.platform
    cache = platform.access_cache
    assert cache is not None
    org = Organization(name=unique)
    async with platform.db.transaction() as session:
        session.add(org)
    actor = Actor(Principal(name="eve", groups=frozenset({"ghosts"}), kind=PrincipalKind.personal_token), cache)
    with pytest.raises(RuntimeError):
        async with platform.db.transaction() as session:
            session.add(Team(organization_id=org.id, name="ghosts", role="ADMIN"))
            await session.flush()
            assert (await actor.access(session, org.id)).visible  # its own uncommitted team
            raise RuntimeError("roll back")
    assert cache.access(frozenset({"ghosts"}), org.id) is None
    async with platform.db.session() as session:
        fresh = Actor(actor.principal, cache)
        assert not (await fresh.access(session, org.id)).visible


# -- across processes: Redis carries the change --------------------------------------------------


async def _client_id(redis: Redis, name: str) -> int:
    for line in (await redis.execute_command("CLIENT", "LIST")).decode().splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if fields.get("name") == name:
            return int(fields["id"])
    raise AssertionError(f"no Redis client named {name}")


async def test_the_broker_announces_changes_and_says_when_it_cannot_hear() -> None:
    require("Redis", REDIS_HOST, REDIS_PORT)
    prefix, name = f"tktest-{secrets.token_hex(6)}", f"tk-watch-{secrets.token_hex(4)}"
    listener = RedisBroker(Redis.from_url(REDIS_URL, client_name=name), prefix)
    announcer = RedisBroker.connect(REDIS_URL, prefix)
    admin = Redis.from_url(REDIS_URL)
    live: list[bool] = []
    changes: list[int] = []
    heard = asyncio.Event()

    def on_live(value: bool) -> None:
        live.append(value)
        heard.set()

    def on_change() -> None:
        changes.append(1)
        heard.set()

    task = asyncio.create_task(listener.watch_access(on_live, lambda: on_change()))
    try:
        await asyncio.wait_for(heard.wait(), 5)
        assert live == [True]
        heard.clear()
        await announcer.access_changed()
        await asyncio.wait_for(heard.wait(), 5)
        assert changes == [1]
        heard.clear()
        await admin.execute_command("CLIENT", "KILL", "ID", await _client_id(admin, name))
        await asyncio.wait_for(heard.wait(), 5)
        assert live[-1] is False  # the caller stops trusting its cache at once...
        heard.clear()
        await asyncio.wait_for(heard.wait(), 5)
        assert live[-1] is True  # ...and starts again (from nothing) once subscribed again
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for broker in (listener, announcer):
            await broker.close()
        await admin.aclose()


def test_a_change_made_through_one_api_process_reaches_another(cluster: Cluster, tmp_path: Path) -> None:
    other = Server(data_dir=cluster.base / "data", log_dir=tmp_path, name="serve-b", command=["serve"], env=cluster.env)
    other.start()
    try:
        other.wait_healthy()
        org = f"o{secrets.token_hex(4)}"
        cluster.api.mutate("createOrganization", "CreateOrganizationInput", "... on Organization { id }", name=org)
        team = cluster.api.mutate("createTeam", "CreateTeamInput", "... on Team { id }",
                                  organization=org, name="readers", role="READ")
        secret = asyncio.run(_member_token(cluster.env, cluster.base / "data", ["readers"]))
        on_a, on_b = Api(cluster.serve, secret), Api(other, secret)
        see = "query($o: String!) { organization(name: $o) { name } }"
        for _ in range(3):  # B remembers the token and the team's answer
            assert on_b(see, o=org)["organization"] == {"name": org}
        cluster.api.mutate("deleteTeam", "IdInput", "__typename", id=team["id"])
        assert on_b(see, o=org)["organization"] is None  # the team is gone, for B too

        token_id = on_a("{ accessTokens { id } }")["accessTokens"][0]["id"]
        assert on_b("{ me { name } }")["me"]["name"]
        on_a.mutate("revokeAccessToken", "IdInput", "__typename", id=token_id)
        assert on_b.raw("{ me { name } }").status_code == 401
    finally:
        other.stop()


async def _member_token(env: dict[str, str], data_dir: Path, groups: list[str]) -> str:
    from domain.services.access_tokens import issue_token

    async with cluster_platform(env, data_dir) as platform:
        new = await issue_token(platform, owner="reader", email=None, groups=groups, description="t", days=1,
                                kind="personal")
        return new.secret


def test_serve_workers_share_the_port_and_each_forgets_a_revoked_token(cluster: Cluster, tmp_path: Path) -> None:
    """`serve --workers 2`: two processes behind one port, each with its own cache."""
    served = Server(data_dir=cluster.base / "data", log_dir=tmp_path, name="serve-2",
                    command=["serve", "--workers", "2"], env=cluster.env)
    served.start()
    try:
        served.wait_healthy()
        assert served.proc is not None
        assert len(_spawned_children(served.proc.pid)) == 2, served.output()
        secret = asyncio.run(_member_token(cluster.env, cluster.base / "data", ["nobody"]))

        def me() -> int:  # a new connection each time, so both processes answer some
            return httpx.post(f"{served.base_url}/graphql", json={"query": "{ me { name } }"},
                              headers={"Authorization": f"Bearer {secret}", "Connection": "close"}).status_code

        assert [me() for _ in range(20)] == [200] * 20
        token_id = Api(cluster.serve, secret)("{ accessTokens { id } }")["accessTokens"][0]["id"]
        Api(cluster.serve, secret).mutate("revokeAccessToken", "IdInput", "__typename", id=token_id)
        assert [me() for _ in range(20)] == [401] * 20
        deadline = time.monotonic() + 10  # the access log is written every half second
        while '"POST /graphql" 401' not in served.stdout() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert '"POST /graphql" 401' in served.stdout(), served.output()
    finally:
        served.stop()


def _spawned_children(pid: int) -> list[int]:
    """uvicorn's worker processes (multiprocessing's spawn), not its resource tracker."""
    found = []
    for child in descendants(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue
    return found
