"""The gateway's admin API (role admin) and the `crm-gateway` command on the same identity store."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from crm_kit.testing import assert_problem, bearer

from .conftest import FAST_PASSWORDS, Gateway, running_gateway

ADMIN = bearer("root", roles=("admin",))
PASSWORD = "correct horse battery staple"
USER = {"username": "sup-wang", "display_name": "王芳", "password": PASSWORD, "roles": ["supervisor"]}


async def login(gw: Gateway, username: str, password: str) -> int:
    r = await gw.token(grant_type="password", username=username, password=password)
    return r.status_code


async def test_only_an_admin_may_use_the_admin_api(auth_gw: Gateway):
    assert_problem(await auth_gw.http.get("/gateway/v1/users"), 401)
    for role in ("agent", "supervisor", "partner", "boss"):
        r = await auth_gw.http.get("/gateway/v1/users", headers=bearer("someone", roles=(role,)))
        assert_problem(r, 403, slug="forbidden")
    r = await auth_gw.http.post("/gateway/v1/users", json=USER, headers=bearer("someone", roles=("supervisor",)))
    assert_problem(r, 403)
    assert (await auth_gw.http.get("/gateway/v1/users", headers=ADMIN)).status_code == 200


async def test_users_are_created_listed_changed_and_never_shown_with_their_password(auth_gw: Gateway):
    r = await auth_gw.http.post("/gateway/v1/users", json=USER, headers=ADMIN)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["roles"] == ["supervisor"] and created["disabled"] is False
    assert not {"password", "password_hash"} & set(created)
    assert_problem(await auth_gw.http.post("/gateway/v1/users", json=USER, headers=ADMIN), 409, "username")
    r = await auth_gw.http.get("/gateway/v1/users", headers=ADMIN)
    assert r.headers["x-total-count"] == "1"
    assert [u["username"] for u in r.json()] == ["sup-wang"]
    r = await auth_gw.http.patch(
        "/gateway/v1/users/sup-wang", json={"roles": ["supervisor", "agent"], "scopes": ["pii:read"]}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    assert r.json()["roles"] == ["agent", "supervisor"] and r.json()["scopes"] == ["pii:read"]
    assert (await auth_gw.http.get("/gateway/v1/users/sup-wang", headers=ADMIN)).json()["roles"] == [
        "agent",
        "supervisor",
    ]
    assert_problem(await auth_gw.http.get("/gateway/v1/users/nobody", headers=ADMIN), 404)
    assert_problem(await auth_gw.http.patch("/gateway/v1/users/nobody", json={"disabled": True}, headers=ADMIN), 404)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"roles": ["agent", "superuser"]}, "roles[1]"),
        ({"password": "short"}, "password"),
        ({"username": "has space"}, "username"),
        ({"is_admin": True}, "is_admin"),
        ({"roles": []}, "roles"),
    ],
)
async def test_bad_user_input_is_422_naming_the_field(auth_gw: Gateway, change: dict, field: str):
    r = await auth_gw.http.post("/gateway/v1/users", json=USER | change, headers=ADMIN)
    assert_problem(r, 422, field, slug="invalid-input")


async def test_a_password_reset_and_a_disabled_user(auth_gw: Gateway):
    await auth_gw.http.post("/gateway/v1/users", json=USER, headers=ADMIN)
    assert await login(auth_gw, "sup-wang", PASSWORD) == 200
    new = "another long passphrase 2026"
    r = await auth_gw.http.put("/gateway/v1/users/sup-wang/password", json={"password": new}, headers=ADMIN)
    assert r.status_code == 204, r.text
    assert await login(auth_gw, "sup-wang", PASSWORD) == 400
    assert await login(auth_gw, "sup-wang", new) == 200
    await auth_gw.http.patch("/gateway/v1/users/sup-wang", json={"disabled": True}, headers=ADMIN)
    assert await login(auth_gw, "sup-wang", new) == 400
    await auth_gw.http.patch("/gateway/v1/users/sup-wang", json={"disabled": False}, headers=ADMIN)
    assert await login(auth_gw, "sup-wang", new) == 200


async def test_a_clients_secret_is_shown_once_and_rotating_it_stops_the_old_one(auth_gw: Gateway):
    body = {"client_id": "boss", "name": "BOSS", "roles": ["boss"]}
    r = await auth_gw.http.post("/gateway/v1/clients", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    old = r.json()["client_secret"]
    assert len(old) >= 40
    assert_problem(await auth_gw.http.post("/gateway/v1/clients", json=body, headers=ADMIN), 409)
    listed = (await auth_gw.http.get("/gateway/v1/clients", headers=ADMIN)).json()
    assert [c["client_id"] for c in listed] == ["boss"] and "client_secret" not in listed[0]
    assert "client_secret" not in (await auth_gw.http.get("/gateway/v1/clients/boss", headers=ADMIN)).json()
    r = await auth_gw.http.post("/gateway/v1/clients/boss/secret", headers=ADMIN)
    new = r.json()["client_secret"]
    assert new != old
    grant = {"grant_type": "client_credentials", "client_id": "boss"}
    assert (await auth_gw.token(**grant, client_secret=old)).status_code == 401
    assert (await auth_gw.token(**grant, client_secret=new)).status_code == 200
    assert_problem(await auth_gw.http.post("/gateway/v1/clients/nobody/secret", headers=ADMIN), 404)
    assert_problem(await auth_gw.http.post("/gateway/v1/clients/nobody/api-keys", headers=ADMIN), 404)


async def test_an_admin_client_may_manage_with_an_api_key(auth_gw: Gateway):
    await auth_gw.http.post(
        "/gateway/v1/clients", json={"client_id": "iam-sync", "name": "IAM", "roles": ["admin"]}, headers=ADMIN
    )
    key = (await auth_gw.http.post("/gateway/v1/clients/iam-sync/api-keys", headers=ADMIN)).json()
    r = await auth_gw.http.get(
        "/gateway/v1/api-keys", params={"client_id": "iam-sync"}, headers={"X-API-Key": key["api_key"]}
    )
    assert r.status_code == 200, r.text
    assert [k["key_id"] for k in r.json()] == [key["key_id"]]
    assert_problem(await auth_gw.http.delete("/gateway/v1/api-keys/ak_nothing", headers=ADMIN), 404)


async def test_signing_keys_are_listed_and_rotated(auth_gw: Gateway):
    before = (await auth_gw.http.get("/gateway/v1/signing-keys", headers=ADMIN)).json()
    assert len(before) == 1 and before[0]["retired_at"] is None
    assert "private_key_pem" not in before[0]
    r = await auth_gw.http.post("/gateway/v1/signing-keys/rotate", headers=ADMIN)
    assert r.status_code == 201
    after = (await auth_gw.http.get("/gateway/v1/signing-keys", headers=ADMIN)).json()
    assert [k["kid"] for k in after] == [r.json()["kid"], before[0]["kid"]]
    assert after[1]["retired_at"] is not None


def crm_gateway(database: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CRM_GATEWAY_DATABASE_URL": database,
        **{f"CRM_GATEWAY_{k.upper()}": str(v) for k, v in FAST_PASSWORDS.items()},
    }
    return subprocess.run(
        [sys.executable, "-m", "crm_gateway.cli", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_command_line_bootstraps_the_first_admin_and_manages_clients(gateway_database: str):
    """Before any token exists: the first admin from the command line, on the database directly."""
    made = crm_gateway(
        gateway_database, "user", "add", "ops-admin", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert made.returncode == 0, made.stderr
    again = crm_gateway(
        gateway_database, "user", "add", "ops-admin", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert again.returncode == 1 and "exists" in again.stderr
    client = crm_gateway(gateway_database, "client", "add", "dealer-app", "--role", "partner", "--partner-id", "P-1")
    assert client.returncode == 0, client.stderr
    secret = client.stdout.strip().splitlines()[-1]
    issued = crm_gateway(gateway_database, "api-key", "issue", "dealer-app")
    assert issued.returncode == 0, issued.stderr
    api_key = issued.stdout.strip()
    async with running_gateway() as gw:
        r = await gw.token(grant_type="password", username="ops-admin", password=PASSWORD)
        assert r.status_code == 200, r.text
        admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
        assert [u["username"] for u in (await gw.http.get("/gateway/v1/users", headers=admin)).json()] == ["ops-admin"]
        grant = {"grant_type": "client_credentials", "client_id": "dealer-app", "client_secret": secret}
        assert (await gw.token(**grant)).status_code == 200
        assert (await gw.http.get("/api/v1/customers", headers={"X-API-Key": api_key})).status_code == 200
    revoked = crm_gateway(gateway_database, "api-key", "revoke", api_key.partition(".")[0])
    assert revoked.returncode == 0, revoked.stderr
    disabled = crm_gateway(gateway_database, "user", "disable", "ops-admin")
    assert disabled.returncode == 0, disabled.stderr
    rotated = crm_gateway(gateway_database, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    listed = crm_gateway(gateway_database, "keys", "list")
    assert len(listed.stdout.strip().splitlines()) == 2
    async with running_gateway() as gw:
        assert (await gw.token(grant_type="password", username="ops-admin", password=PASSWORD)).status_code == 400
        assert (await gw.http.get("/api/v1/customers", headers={"X-API-Key": api_key})).status_code == 401
