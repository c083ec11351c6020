"""OIDC bearer tokens against a real local issuer (discovery + JWKS over HTTP), on SQLite and
PostgreSQL: which tokens are accepted, which are refused with 401, JWKS caching, groups as
teams, and personal access tokens created by an OIDC user."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

import jwks
from app import Services, create_app
from domain.services.access_tokens import issue_admin_token
from domain.tokens import PLATFORM_ISSUER
from tests.conftest import GraphQLClient, make_settings
from tests.oidc_issuer import (
    AUDIENCE,
    OMIT,
    OidcIssuer,
    b64url,
    new_ec_key,
    new_rsa_key,
)

ME = "{ me { name email groups isAdmin } }"


@dataclass
class OidcApp:
    client: httpx.AsyncClient
    services: Services
    issuer: OidcIssuer
    admin: GraphQLClient

    def as_token(self, token: str | None) -> GraphQLClient:
        return GraphQLClient(self.client, token)

    def user(self, overrides: dict[str, Any] | None = None, alg: str = "RS256") -> GraphQLClient:
        return self.as_token(self.issuer.token(overrides, alg=alg))


@asynccontextmanager
async def running_app(db_url: str, data_dir: Path, **settings: Any) -> AsyncIterator[OidcApp]:
    """An app trusting its own fresh issuer (so JWKS fetch counts belong to this app alone)."""
    with OidcIssuer() as issuer:
        app = create_app(
            make_settings(db_url, data_dir, oidc_issuer=issuer.url, oidc_audience=AUDIENCE, **settings)
        )
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                services: Services = app.state.services
                admin = (await issue_admin_token(services.platform)).secret
                yield OidcApp(client, services, issuer, GraphQLClient(client, admin))


@pytest.fixture(scope="module")
async def oidc(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OidcApp]:
    async with running_app(db_url, tmp_path_factory.mktemp("oidc-data")) as running:
        yield running


def assert_unauthenticated(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"errors"}, body
    [error] = body["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert isinstance(error["message"], str) and error["message"]
    assert response.headers["www-authenticate"].lower().startswith("bearer")


# -- accepted tokens -------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_valid_token_is_accepted(oidc: OidcApp, alg: str, unique: str) -> None:
    claims = {"name": f"Jane {unique}", "email": f"{unique}@example.test", "groups": ["b-team", "a-team"]}
    data = await oidc.user(claims, alg=alg)(ME)
    assert data["me"] == {
        "name": f"Jane {unique}",
        "email": f"{unique}@example.test",
        "groups": ["a-team", "b-team"],
        "isAdmin": False,
    }


async def test_principal_name_falls_back_to_username_then_email_then_sub(oidc: OidcApp, unique: str) -> None:
    by_username = await oidc.user({"name": OMIT, "preferred_username": unique})(ME)
    assert by_username["me"]["name"] == unique
    by_email = await oidc.user({"name": OMIT, "email": f"{unique}@example.test"})(ME)
    assert by_email["me"]["name"] == f"{unique}@example.test"
    by_sub = await oidc.user({"name": OMIT, "email": OMIT, "sub": unique, "groups": OMIT})(ME)
    assert by_sub["me"] == {"name": unique, "email": None, "groups": [], "isAdmin": False}


async def test_clock_skew_within_leeway_is_tolerated(oidc: OidcApp) -> None:
    now = int(time.time())
    just_expired = await oidc.user({"exp": now - 5, "iat": now - 300, "nbf": now - 300}).raw(ME)
    assert just_expired.status_code == 200, just_expired.text
    almost_valid = await oidc.user({"nbf": now + 5}).raw(ME)
    assert almost_valid.status_code == 200, almost_valid.text


# -- refused tokens --------------------------------------------------------------------


def refused_tokens(issuer: OidcIssuer) -> dict[str, str | None]:
    now = int(time.time())
    stranger = new_rsa_key(issuer.rsa.kid)  # same kid as the issuer's key, different key
    return {
        "alg none": issuer.unsigned_token(),
        "alg none without the signature segment": issuer.unsigned_token().rstrip("."),
        "HS256 signed with the RSA public key (key confusion)": issuer.hs256_with_public_key(),
        "signed by another RSA key with the same kid": issuer.token(key=stranger),
        "signed by another EC key with the same kid": issuer.token(alg="ES256", key=new_ec_key(issuer.ec.kid)),
        "RS256 header naming the EC key": issuer.token(kid=issuer.ec.kid),
        "wrong issuer": issuer.token({"iss": "https://evil.example.test"}),
        "issuer with a trailing slash": issuer.token({"iss": issuer.url + "/"}),
        "wrong audience": issuer.token({"aud": "someone-else"}),
        "expired beyond leeway": issuer.token({"exp": now - 120, "iat": now - 600, "nbf": now - 600}),
        "not valid before 2 minutes from now": issuer.token({"nbf": now + 120}),
        "no exp claim": issuer.token({"exp": OMIT}),
        "unknown kid": issuer.token(kid="no-such-kid"),
        "no kid": issuer.token(kid=OMIT, alg="ES256", key=new_ec_key("whatever")),
        "garbage bearer": "not-a-jwt",
        "three garbage segments": "abc.def.ghi",
        "missing Authorization header": None,
    }


async def test_refused_tokens_get_401(oidc: OidcApp) -> None:
    for case, token in refused_tokens(oidc.issuer).items():
        response = await oidc.as_token(token).raw(ME)
        try:
            assert_unauthenticated(response)
        except AssertionError as exc:
            raise AssertionError(f"{case}: {exc}") from None


async def test_forged_platform_tokens_get_401(oidc: OidcApp) -> None:
    """A real admin access token is accepted; the same claims under another algorithm or key,
    or with a changed payload, are not (the platform issuer has its own key and algorithm)."""
    admin = oidc.admin.token
    assert admin is not None
    assert (await oidc.admin(ME))["me"]["isAdmin"] is True
    header, payload, signature = admin.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["iss"] == PLATFORM_ISSUER
    tampered = b64url(json.dumps({**claims, "sub": "someone-else"}).encode())
    forgeries = {
        "alg none": oidc.issuer.unsigned_token(claims),
        "signed with the OIDC issuer's RSA key": oidc.issuer.token(claims),
        "signed with the OIDC issuer's EC key": oidc.issuer.token(claims, alg="ES256"),
        "payload changed, signature kept": f"{header}.{tampered}.{signature}",
        "signature dropped": f"{header}.{payload}.",
    }
    for case, token in forgeries.items():
        try:
            assert_unauthenticated(await oidc.as_token(token).raw(ME))
        except AssertionError as exc:
            raise AssertionError(f"{case}: {exc}") from None


async def test_non_bearer_schemes_get_401(oidc: OidcApp) -> None:
    good = oidc.issuer.token()
    for header in [f"Basic {good}", f"Token {good}", "Bearer", "Bearer    ", good]:
        response = await oidc.client.post("/graphql", json={"query": ME}, headers={"Authorization": header})
        assert_unauthenticated(response)


# -- the JWKS cache --------------------------------------------------------------------


async def test_jwks_is_fetched_once_and_cached(db_url: str, tmp_path: Path) -> None:
    async with running_app(db_url, tmp_path) as fresh:
        issuer = fresh.issuer
        assert issuer.jwks_fetches == 0  # nothing is fetched before the first OIDC token
        for i in range(20):
            data = await fresh.user({"name": f"user {i}"}, alg=("RS256", "ES256")[i % 2])(ME)
            assert data["me"]["name"] == f"user {i}"
        assert issuer.discovery_fetches == 1
        assert issuer.jwks_fetches == 1

        # Unknown kids may trigger a refetch (key rotation), but not one per request.
        for _ in range(20):
            assert_unauthenticated(await fresh.as_token(issuer.token(kid=secrets.token_hex(6))).raw(ME))
        assert issuer.jwks_fetches <= 2
        assert issuer.discovery_fetches == 1
        # A platform token never touches the issuer.
        await fresh.admin(ME)
        assert issuer.jwks_fetches <= 2


async def test_concurrent_first_requests_fetch_the_jwks_once(db_url: str, tmp_path: Path) -> None:
    async with running_app(db_url, tmp_path) as fresh:
        users = [fresh.user({"name": f"user {i}"}) for i in range(10)]
        results = await asyncio.gather(*(u(ME) for u in users))
        assert sorted(r["me"]["name"] for r in results) == sorted(f"user {i}" for i in range(10))
        assert fresh.issuer.jwks_fetches == 1


async def test_rotated_key_is_picked_up(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The refetch interval for unknown kids is 10 s; no test should wait that long.
    monkeypatch.setattr(jwks, "MIN_REFRESH_INTERVAL", 0.0)
    async with running_app(db_url, tmp_path) as fresh:
        await fresh.user()(ME)
        assert fresh.issuer.jwks_fetches == 1
        rotated = new_rsa_key("rotated-" + secrets.token_hex(3))
        fresh.issuer.publish(rotated)
        data = await fresh.as_token(fresh.issuer.token({"name": "after rotation"}, key=rotated))(ME)
        assert data["me"]["name"] == "after rotation"
        assert fresh.issuer.jwks_fetches == 2
        await fresh.user()(ME)  # the old key is still cached
        assert fresh.issuer.jwks_fetches == 2


# -- groups are teams ------------------------------------------------------------------

WORKSPACE = "mutation($o: String!, $n: String!) { createWorkspace(input: {organization: $o, name: $n}) { __typename ... on Workspace { name } ... on Error { message } } }"
ORGANIZATION = "query($n: String!) { organization(name: $n) { name } }"


async def test_groups_claim_drives_permissions(oidc: OidcApp, unique: str) -> None:
    created = await oidc.admin(
        "mutation($n: String!) { createOrganization(input: {name: $n}) { __typename ... on Organization { name } } }",
        n=unique,
    )
    assert created["createOrganization"] == {"__typename": "Organization", "name": unique}
    team = await oidc.admin(
        'mutation($o: String!) { createTeam(input: {organization: $o, name: "oidc-devs", role: WRITE}) { __typename ... on Team { name role } } }',
        o=unique,
    )
    assert team["createTeam"] == {"__typename": "Team", "name": "oidc-devs", "role": "WRITE"}

    dev = oidc.user({"email": f"dev-{unique}@example.test", "groups": ["oidc-devs"]}, alg="ES256")
    assert (await dev(ORGANIZATION, n=unique))["organization"] == {"name": unique}
    made = await dev(WORKSPACE, o=unique, n="by-dev")
    assert made["createWorkspace"] == {"__typename": "Workspace", "name": "by-dev"}
    orgs = await dev("{ organizations(first: 100) { edges { node { name } } } }")
    assert unique in [e["node"]["name"] for e in orgs["organizations"]["edges"]]

    outsider = oidc.user({"email": f"out-{unique}@example.test", "groups": ["someone-else"]})
    assert (await outsider(ORGANIZATION, n=unique))["organization"] is None
    refused = await outsider(WORKSPACE, o=unique, n="by-outsider")
    assert refused["createWorkspace"]["__typename"] == "NotFoundError"
    orgs = await outsider("{ organizations(first: 100) { edges { node { name } } } }")
    assert unique not in [e["node"]["name"] for e in orgs["organizations"]["edges"]]
    # Not created behind the error:
    ws = await oidc.admin("query($o: String!) { workspace(organization: $o, name: \"by-outsider\") { name } }", o=unique)
    assert ws["workspace"] is None

    # The groups claim is what counts, not the name: a team name in another claim grants nothing.
    renamed = oidc.user({"name": "oidc-devs", "roles": ["oidc-devs"], "groups": ["someone-else"]})
    assert (await renamed(ORGANIZATION, n=unique))["organization"] is None


async def test_admin_group_makes_a_superuser(oidc: OidcApp, unique: str) -> None:
    admin = oidc.user({"groups": ["developers", "TERRAKUBE_ADMIN"]})
    me = await admin(ME)
    assert me["me"]["isAdmin"] is True
    created = await admin(
        "mutation($n: String!) { createOrganization(input: {name: $n}) { __typename ... on Organization { name } } }",
        n=unique,
    )
    assert created["createOrganization"] == {"__typename": "Organization", "name": unique}

    not_admin = oidc.user({"groups": ["terrakube_admin"]})  # group names are case-sensitive
    assert (await not_admin(ME))["me"]["isAdmin"] is False
    denied = await not_admin(
        "mutation($n: String!) { createOrganization(input: {name: $n}) { __typename } }", n=unique + "x"
    )
    assert denied["createOrganization"]["__typename"] == "PermissionDeniedError"


# -- personal access tokens of an OIDC user --------------------------------------------


async def test_personal_access_token_of_an_oidc_user(oidc: OidcApp, unique: str) -> None:
    email = f"{unique}@example.test"
    user = oidc.user({"email": email, "groups": ["oidc-devs", "readers"]})
    created = await user(
        'mutation { createAccessToken(input: {description: "ci", days: 1}) { __typename ... on NewAccessToken { token accessToken { id description } } } }'
    )
    new = created["createAccessToken"]
    assert new["__typename"] == "NewAccessToken"
    token_id, secret = new["accessToken"]["id"], new["token"]

    pat = oidc.as_token(secret)
    me = (await pat(ME))["me"]
    assert me["groups"] == ["oidc-devs", "readers"]
    assert me["email"] == email and me["isAdmin"] is False
    assert token_id in [t["id"] for t in (await user("{ accessTokens { id } }"))["accessTokens"]]
    assert token_id in [t["id"] for t in (await pat("{ accessTokens { id } }"))["accessTokens"]]

    # Another OIDC user neither sees nor revokes it.
    other = oidc.user({"email": f"other-{unique}@example.test"})
    assert token_id not in [t["id"] for t in (await other("{ accessTokens { id } }"))["accessTokens"]]
    REVOKE = "mutation($id: ID!) { revokeAccessToken(input: {id: $id}) { __typename ... on AccessToken { id } } }"
    refused = (await other(REVOKE, id=token_id))["revokeAccessToken"]["__typename"]
    assert refused in {"NotFoundError", "PermissionDeniedError"}
    assert (await pat(ME))["me"]["email"] == email

    revoked = await user(REVOKE, id=token_id)
    assert revoked["revokeAccessToken"] == {"__typename": "AccessToken", "id": token_id}
    assert_unauthenticated(await pat.raw(ME))
    assert token_id not in [t["id"] for t in (await user("{ accessTokens { id } }"))["accessTokens"]]
    again = await user(REVOKE, id=token_id)
    assert again["revokeAccessToken"]["__typename"] == "ConflictError"


async def test_access_tokens_belong_to_the_oidc_subject_not_the_email(oidc: OidcApp, unique: str) -> None:
    email = f"{unique}@example.test"
    owner = oidc.user({"sub": f"a-{unique}", "email": email})
    created = await owner(
        'mutation { createAccessToken(input: {description: "mine", days: 1}) { ... on NewAccessToken { token accessToken { id } } } }'
    )
    token_id = created["createAccessToken"]["accessToken"]["id"]
    impostor = oidc.user({"sub": f"b-{unique}", "email": email})
    assert token_id not in [t["id"] for t in (await impostor("{ accessTokens { id } }"))["accessTokens"]]
    revoke = "mutation($id: ID!) { revokeAccessToken(input: {id: $id}) { __typename } }"
    refused = (await impostor(revoke, id=token_id))["revokeAccessToken"]["__typename"]
    assert refused in {"NotFoundError", "PermissionDeniedError"}
    assert token_id in [t["id"] for t in (await owner("{ accessTokens { id } }"))["accessTokens"]]
