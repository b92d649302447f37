"""The gateway's front door: the OAuth2 token endpoint, its JWKS and key rotation, and the credentials every
proxied request must carry (a bearer token or an API key), with a real database and real HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from sqlalchemy import text, update

from crm_gateway.domain import identity
from crm_gateway.models import SigningKey
from crm_kit.auth import verifier
from crm_kit.db import Database, utcnow
from crm_kit.settings import AuthSettings
from crm_kit.testing import assert_problem, bearer

from .conftest import Gateway, running_gateway

CUSTOMERS = "/tmf-api/customerManagement/v4/customer"
BOSS_EVENTS = "/boss/v1/events"
ADMIN = bearer("root", roles=("admin",))
PASSWORD = "correct horse battery staple"


async def add_user(gw: Gateway, username: str = "agent-li", **fields: object) -> dict:
    body = {"username": username, "display_name": "李娜", "password": PASSWORD, "roles": ["agent"]} | fields
    r = await gw.http.post("/gateway/v1/users", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()


async def add_client(gw: Gateway, client_id: str = "dealer-app", **fields: object) -> dict:
    body = {"client_id": client_id, "name": "Dealer portal", "roles": ["partner"], "partner_id": "P-88"} | fields
    r = await gw.http.post("/gateway/v1/clients", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()


def oauth_error(r: httpx.Response, status: int, error: str) -> dict:
    body = assert_problem(r, status, slug=error.replace("_", "-"))
    assert body["error"] == error
    assert r.headers["cache-control"] == "no-store"
    return body


async def test_a_client_gets_an_rs256_token_the_services_verify_with_the_jwks(auth_gw: Gateway):
    client = await add_client(auth_gw, scopes=["pii:read", "orders:write"])
    r = await auth_gw.http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    answer = r.json()
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == 15 * 60
    assert answer["scope"] == "orders:write pii:read"
    header = jwt.get_unverified_header(answer["access_token"])
    assert header["alg"] == "RS256"
    jwks = (await auth_gw.http.get("/.well-known/jwks.json")).json()
    assert [k["kid"] for k in jwks["keys"]] == [header["kid"]]
    assert all("d" not in k for k in jwks["keys"]), "only public keys are published"
    # a service configured for production: the gateway's JWKS, no shared secret
    service = AuthSettings(jwks_url=f"{auth_gw.url}/.well-known/jwks.json", accept_shared_secret=False)
    principal = await verifier(service).verify(answer["access_token"])
    assert principal.subject == "dealer-app"
    assert principal.roles == {"partner"}
    assert principal.scopes == {"pii:read", "orders:write"}
    assert principal.partner_id == "P-88"
    assert principal.name == "Dealer portal"


async def test_client_credentials_in_the_form_and_a_narrower_scope(auth_gw: Gateway):
    client = await add_client(auth_gw, scopes=["pii:read", "orders:write"])
    r = await auth_gw.token(
        grant_type="client_credentials",
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        scope="pii:read",
    )
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "pii:read"
    r = await auth_gw.token(
        grant_type="client_credentials",
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        scope="admin:everything",
    )
    oauth_error(r, 400, "invalid_scope")


async def test_a_wrong_unknown_or_disabled_client_is_invalid_client(auth_gw: Gateway):
    client = await add_client(auth_gw)
    wrong = await auth_gw.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client["client_id"], "guessed")
    )
    oauth_error(wrong, 401, "invalid_client")
    assert wrong.headers["www-authenticate"].startswith("Basic")
    unknown = await auth_gw.token(grant_type="client_credentials", client_id="nobody", client_secret="x")
    oauth_error(unknown, 401, "invalid_client")
    none = await auth_gw.token(grant_type="client_credentials")
    oauth_error(none, 401, "invalid_client")
    r = await auth_gw.http.patch("/gateway/v1/clients/dealer-app", json={"disabled": True}, headers=ADMIN)
    assert r.status_code == 200, r.text
    disabled = await auth_gw.token(
        grant_type="client_credentials", client_id=client["client_id"], client_secret=client["client_secret"]
    )
    oauth_error(disabled, 401, "invalid_client")


async def test_a_console_user_logs_in_with_the_password_grant(auth_gw: Gateway):
    await add_user(auth_gw, roles=["agent", "supervisor"], scopes=["pii:read"])
    r = await auth_gw.token(grant_type="password", username="agent-li", password=PASSWORD)
    assert r.status_code == 200, r.text
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "agent-li"
    assert sorted(claims["roles"]) == ["agent", "supervisor"]
    assert claims["scope"] == "pii:read"
    assert claims["name"] == "李娜"
    assert claims["iss"] == claims["aud"] == "telecom-crm"
    assert claims["exp"] - claims["iat"] == 15 * 60
    through = await auth_gw.http.get(CUSTOMERS, headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert through.status_code == 200, through.text


async def test_a_wrong_password_an_unknown_user_and_a_disabled_user_are_invalid_grant(auth_gw: Gateway):
    await add_user(auth_gw)
    oauth_error(await auth_gw.token(grant_type="password", username="agent-li", password="wrong"), 400, "invalid_grant")
    oauth_error(await auth_gw.token(grant_type="password", username="nobody", password=PASSWORD), 400, "invalid_grant")
    r = await auth_gw.http.patch("/gateway/v1/users/agent-li", json={"disabled": True}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["disabled"] is True
    body = oauth_error(
        await auth_gw.token(grant_type="password", username="agent-li", password=PASSWORD), 400, "invalid_grant"
    )
    assert "disabled" in body["detail"]


@pytest.mark.parametrize(
    ("form", "error", "field"),
    [
        ({"scope": "pii:read"}, "invalid_request", "grant_type"),
        ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type", "grant_type"),
        ({"grant_type": "password", "username": "agent-li"}, "invalid_request", "password"),
    ],
)
async def test_malformed_token_requests_are_400(auth_gw: Gateway, form: dict, error: str, field: str):
    body = oauth_error(await auth_gw.token(**form), 400, error)
    assert body["field"] == field


async def test_a_token_request_must_be_form_encoded_with_each_parameter_once(auth_gw: Gateway):
    r = await auth_gw.http.post("/oauth2/token", json={"grant_type": "password"})
    oauth_error(r, 400, "invalid_request")
    r = await auth_gw.http.post(
        "/oauth2/token",
        content=b"grant_type=password&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert oauth_error(r, 400, "invalid_request")["field"] == "grant_type"


async def test_passwords_are_stored_as_argon2id_hashes(auth_gw: Gateway, gateway_database: str):
    await add_user(auth_gw)
    db = Database(gateway_database)
    try:
        async with db.sessions() as session:
            stored = await session.scalar(text("SELECT password_hash FROM console_user WHERE username = 'agent-li'"))
    finally:
        await db.dispose()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_a_hash_made_with_older_parameters_is_made_again_at_login(gateway_database: str):
    async with running_gateway(password_time_cost=1) as gw:
        await add_user(gw)
    db = Database(gateway_database)
    try:
        async with db.sessions() as session:
            before = await session.scalar(text("SELECT password_hash FROM console_user"))
        async with running_gateway(password_time_cost=2) as gw:
            assert (await gw.token(grant_type="password", username="agent-li", password=PASSWORD)).status_code == 200
        async with db.sessions() as session:
            after = await session.scalar(text("SELECT password_hash FROM console_user"))
    finally:
        await db.dispose()
    assert ",t=1," in before
    assert ",t=2," in after


# --- the edge ------------------------------------------------------------------------------------------------------


async def test_a_proxied_route_without_valid_credentials_is_401_and_reaches_no_service(auth_gw: Gateway):
    expired = bearer(ttl=timedelta(minutes=5), now=datetime.now(UTC) - timedelta(hours=1))
    other_secret = jwt.encode(
        {"iss": "telecom-crm", "aud": "telecom-crm", "sub": "x", "iat": 0, "exp": 2**31},
        "not-the-secret-at-all-0123456789abcdef",
    )
    for headers in ({}, {"Authorization": "Bearer nonsense"}, expired, {"Authorization": f"Bearer {other_secret}"}):
        r = await auth_gw.http.get(CUSTOMERS, headers=headers)
        assert_problem(r, 401, slug="unauthenticated")
        assert r.headers["www-authenticate"].startswith("Bearer")
    r = await auth_gw.http.get("/nowhere", headers={})
    assert_problem(r, 401), "an anonymous caller learns nothing of the routes"


async def test_shared_secret_tokens_pass_only_where_accepted():
    async with running_gateway() as gw:
        assert (await gw.http.get(CUSTOMERS, headers=bearer())).status_code == 200
    async with running_gateway(auth=AuthSettings(accept_shared_secret=False)) as gw:
        assert_problem(await gw.http.get(CUSTOMERS, headers=bearer()), 401)


async def test_public_routes_need_no_credentials(auth_gw: Gateway):
    for path in ("/health/live", "/metrics", "/openapi.json", "/docs", "/.well-known/jwks.json"):
        assert (await auth_gw.http.get(path)).status_code == 200, path


async def test_boss_pushes_and_files_pass_on_the_boss_signature_alone(auth_gw: Gateway):
    signed = {"X-Boss-Signature": "sha256=checked-by-the-adapter", "X-Boss-Timestamp": "1"}
    for path in ("/boss/v1/events", "/boss/v1/imports"):
        assert (await auth_gw.http.post(path, content=b"{}", headers=signed)).status_code == 200, path
        assert_problem(await auth_gw.http.post(path, content=b"{}"), 401)
    assert_problem(await auth_gw.http.get("/boss/v1/quarantine", headers=signed), 401)


async def test_an_api_key_is_exchanged_for_a_token_of_its_client(auth_gw: Gateway):
    await add_client(auth_gw, client_id="sms-platform", roles=["channel"], partner_id=None, scopes=["receipts"])
    r = await auth_gw.http.post("/gateway/v1/clients/sms-platform/api-keys", headers=ADMIN)
    assert r.status_code == 201, r.text
    key = r.json()["api_key"]
    seen = (await auth_gw.http.post("/campaign/v1/deliveries", json={}, headers={"X-API-Key": key})).json()
    assert seen["api_key"] is None, "the key stays at the edge"
    token = seen["authorization"].removeprefix("Bearer ")
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    service = AuthSettings(jwks_url=f"{auth_gw.url}/.well-known/jwks.json", accept_shared_secret=False)
    principal = await verifier(service).verify(token)
    assert (principal.subject, principal.roles, principal.scopes) == ("sms-platform", {"channel"}, {"receipts"})
    assert jwt.decode(token, options={"verify_signature": False})["exp"] - int(utcnow().timestamp()) <= 5 * 60
    listed = (await auth_gw.http.get("/gateway/v1/api-keys", headers=ADMIN)).json()
    assert listed[0]["last_used_at"] is not None
    assert "api_key" not in listed[0]


async def test_a_revoked_or_wrong_api_key_and_one_of_a_disabled_client_are_refused(auth_gw: Gateway):
    await add_client(auth_gw, client_id="boss", roles=["boss"], partner_id=None)
    first = (await auth_gw.http.post("/gateway/v1/clients/boss/api-keys", headers=ADMIN)).json()
    second = (await auth_gw.http.post("/gateway/v1/clients/boss/api-keys", headers=ADMIN)).json()
    key_id, _, _ = first["api_key"].partition(".")
    assert key_id == first["key_id"]
    assert_problem(await auth_gw.http.post(BOSS_EVENTS, headers={"X-API-Key": f"{key_id}.guessed"}), 401)
    assert (await auth_gw.http.post(BOSS_EVENTS, headers={"X-API-Key": first["api_key"]})).status_code == 200
    r = await auth_gw.http.delete(f"/gateway/v1/api-keys/{key_id}", headers=ADMIN)
    assert r.status_code == 200 and r.json()["revoked_at"]
    body = assert_problem(await auth_gw.http.post(BOSS_EVENTS, headers={"X-API-Key": first["api_key"]}), 401)
    assert "revoked" in body["detail"]
    assert (await auth_gw.http.post(BOSS_EVENTS, headers={"X-API-Key": second["api_key"]})).status_code == 200
    await auth_gw.http.patch("/gateway/v1/clients/boss", json={"disabled": True}, headers=ADMIN)
    assert_problem(await auth_gw.http.post(BOSS_EVENTS, headers={"X-API-Key": second["api_key"]}), 401)


async def test_a_key_revoked_at_one_replica_is_refused_by_another_once_its_check_is_older_than_the_cache_time():
    """Each replica trusts a key it checked for `api_key_cache_seconds`; the one that revoked it stops at once."""
    async with running_gateway(api_key_cache_seconds=3) as a, running_gateway(api_key_cache_seconds=3) as b:
        await add_client(a, client_id="boss", roles=["boss"], partner_id=None)
        issued = (await a.http.post("/gateway/v1/clients/boss/api-keys", headers=ADMIN)).json()
        key = {"X-API-Key": issued["api_key"]}
        for replica in (a, b):
            assert (await replica.http.post(BOSS_EVENTS, headers=key)).status_code == 200
        assert (await a.http.delete(f"/gateway/v1/api-keys/{issued['key_id']}", headers=ADMIN)).status_code == 200
        assert_problem(await a.http.post(BOSS_EVENTS, headers=key), 401)
        assert (await b.http.post(BOSS_EVENTS, headers=key)).status_code == 200  # b checked it less than 3 s ago
        await asyncio.sleep(3.2)
        body = assert_problem(await b.http.post(BOSS_EVENTS, headers=key), 401)
        assert "revoked" in body["detail"]


# --- signing keys ----------------------------------------------------------------------------------------------------


async def test_the_first_start_makes_a_signing_key_and_the_next_keeps_it():
    async with running_gateway() as gw:
        first = (await gw.http.get("/.well-known/jwks.json")).json()["keys"]
    async with running_gateway() as gw:
        again = (await gw.http.get("/.well-known/jwks.json")).json()["keys"]
    assert len(first) == 1
    assert again == first


async def test_a_retired_key_verifies_until_its_tokens_have_expired(auth_gw: Gateway, gateway_database: str):
    await add_user(auth_gw, roles=["agent"])
    old = (await auth_gw.token(grant_type="password", username="agent-li", password=PASSWORD)).json()["access_token"]
    r = await auth_gw.http.post("/gateway/v1/signing-keys/rotate", headers=ADMIN)
    assert r.status_code == 201, r.text
    new_kid = r.json()["kid"]
    new = (await auth_gw.token(grant_type="password", username="agent-li", password=PASSWORD)).json()["access_token"]
    old_kid = jwt.get_unverified_header(old)["kid"]
    assert jwt.get_unverified_header(new)["kid"] == new_kid != old_kid
    published = {k["kid"] for k in (await auth_gw.http.get("/.well-known/jwks.json")).json()["keys"]}
    assert published == {old_kid, new_kid}
    service = AuthSettings(jwks_url=f"{auth_gw.url}/.well-known/jwks.json", accept_shared_secret=False)
    for token in (old, new):
        assert (await verifier(service).verify(token)).subject == "agent-li"
        assert (await auth_gw.http.get(CUSTOMERS, headers={"Authorization": f"Bearer {token}"})).status_code == 200
    listed = (await auth_gw.http.get("/gateway/v1/signing-keys", headers=ADMIN)).json()
    assert [(k["kid"], k["retired_at"] is None) for k in listed] == [(new_kid, True), (old_kid, False)]

    # as if the old key had been retired longer ago than a token lives: it is no longer published or accepted
    db = Database(gateway_database)
    try:
        async with db.sessions.begin() as session:
            long_ago = utcnow() - timedelta(hours=1)
            await session.execute(update(SigningKey).where(SigningKey.kid == old_kid).values(retired_at=long_ago))
    finally:
        await db.dispose()
    await auth_gw.app.state.edge.keys.reload()
    published = {k["kid"] for k in (await auth_gw.http.get("/.well-known/jwks.json")).json()["keys"]}
    assert published == {new_kid}
    fresh_service = AuthSettings(jwks_url=f"{auth_gw.url}/.well-known/jwks.json", accept_shared_secret=False)
    with pytest.raises(identity.Unauthenticated, match="unknown key"):
        await verifier(fresh_service).verify(old)
    assert (await verifier(fresh_service).verify(new)).subject == "agent-li"
