"""Bearer tokens: what a service accepts and refuses, by the shared secret (laptops, tests) and by the gateway's
published keys (a JWKS over real HTTP), including a token it has already verified once."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from jwt.algorithms import RSAAlgorithm

from crm_kit.auth import RS256, Caller, SigningKey, issue_token, verifier
from crm_kit.broker import free_port
from crm_kit.errors import PROBLEM_JSON, ServiceUnavailable, Unauthenticated, install_error_handlers
from crm_kit.settings import AuthSettings
from crm_kit.testing import serve

SETTINGS = AuthSettings(leeway_seconds=0)


async def test_a_good_token_names_its_caller_and_what_it_grants() -> None:
    token = issue_token(SETTINGS, "agent-7", roles=("agent", "supervisor"), scopes=("pii:read",), partner_id="P1")
    checker = verifier(SETTINGS)
    principal = await checker.verify(token)
    assert principal.subject == "agent-7"
    assert principal.roles == {"agent", "supervisor"}
    assert principal.may("pii:read")
    assert principal.partner_id == "P1"
    assert await checker.verify(token) == principal


async def test_a_token_verified_once_is_refused_once_it_expires() -> None:
    checker = verifier(SETTINGS)
    token = issue_token(SETTINGS, "agent-7", roles=("agent",), ttl=timedelta(seconds=1))
    assert (await checker.verify(token)).subject == "agent-7"
    await asyncio.sleep(2.1)
    with pytest.raises(Unauthenticated, match="expired"):
        await checker.verify(token)


async def test_an_expired_token_is_refused() -> None:
    token = issue_token(SETTINGS, "agent-7", ttl=timedelta(minutes=5), now=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier(SETTINGS).verify(token)


async def test_a_token_signed_with_another_secret_is_refused_even_after_a_good_one() -> None:
    good = issue_token(SETTINGS, "agent-7")
    await verifier(SETTINGS).verify(good)
    other = AuthSettings(jwt_secret="another-secret-of-enough-length-0123456789")
    with pytest.raises(Unauthenticated, match="not valid"):
        await verifier(other).verify(good)


@pytest.mark.parametrize(
    ("claim", "value"), [("aud", "another-system"), ("iss", "someone-else")], ids=["audience", "issuer"]
)
async def test_a_token_for_another_audience_or_from_another_issuer_is_refused(claim: str, value: str) -> None:
    other = AuthSettings(**{"audience" if claim == "aud" else "issuer": value})
    token = issue_token(other, "agent-7", roles=("agent",))
    with pytest.raises(Unauthenticated, match="not valid"):
        await verifier(SETTINGS).verify(token)


async def test_a_token_with_malformed_roles_is_refused() -> None:
    claims = {"iss": SETTINGS.issuer, "aud": SETTINGS.audience, "sub": "x", "iat": int(time.time())}
    token = jwt.encode({**claims, "exp": int(time.time()) + 60, "roles": "admin"}, SETTINGS.jwt_secret)
    with pytest.raises(Unauthenticated, match="malformed"):
        await verifier(SETTINGS).verify(token)


async def test_shared_secret_tokens_are_refused_where_they_are_not_accepted() -> None:
    token = issue_token(SETTINGS, "agent-7", roles=("agent",))
    production = AuthSettings(accept_shared_secret=False, jwks_url="http://127.0.0.1:9/jwks.json")
    with pytest.raises(Unauthenticated, match="HS256 are not accepted"):
        await verifier(production).verify(token)


async def test_an_unsigned_token_is_refused() -> None:
    claims = {"iss": SETTINGS.issuer, "aud": SETTINGS.audience, "sub": "x", "iat": int(time.time())}
    token = jwt.encode({**claims, "exp": int(time.time()) + 60}, None, algorithm="none")
    with pytest.raises(Unauthenticated, match="not accepted"):
        await verifier(SETTINGS).verify(token)


# --- the gateway's keys, fetched from its JWKS -------------------------------------------------------------------


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def jwk(key: SigningKey) -> dict[str, Any]:
    return {**json.loads(RSAAlgorithm.to_jwk(key.private_key.public_key())), "kid": key.kid, "use": "sig", "alg": RS256}


@dataclass
class Jwks:
    """A stand-in gateway publishing a JWK Set over real HTTP, counting how often it is fetched."""

    url: str
    keys: list[SigningKey] = field(default_factory=list)
    fetches: int = 0


@pytest_asyncio.fixture
async def jwks() -> AsyncIterator[Jwks]:
    app = FastAPI()
    published = Jwks("")

    @app.get("/.well-known/jwks.json")
    async def document() -> dict[str, Any]:
        published.fetches += 1
        return {"keys": [jwk(k) for k in published.keys]}

    async with serve(app) as url:
        published.url = f"{url}/.well-known/jwks.json"
        yield published


def jwks_settings(url: str, **options: Any) -> AuthSettings:
    return AuthSettings(jwks_url=url, accept_shared_secret=False, leeway_seconds=0, **options)


async def test_a_gateway_token_is_verified_with_its_published_key(jwks: Jwks) -> None:
    key = rsa_key("k1")
    jwks.keys.append(key)
    settings = jwks_settings(jwks.url)
    checker = verifier(settings)
    token = issue_token(settings, "client-boss", roles=("boss",), scopes=("pii:read",), key=key)
    assert jwt.get_unverified_header(token)["kid"] == "k1"
    principal = await checker.verify(token)
    assert (principal.subject, principal.roles, principal.scopes) == ("client-boss", {"boss"}, {"pii:read"})
    assert await checker.verify(issue_token(settings, "agent-1", roles=("agent",), key=key))
    assert jwks.fetches == 1, "the key set is fetched once and kept"


async def test_a_token_signed_by_another_key_under_a_published_kid_is_refused(jwks: Jwks) -> None:
    jwks.keys.append(rsa_key("k1"))
    settings = jwks_settings(jwks.url)
    forged = issue_token(settings, "admin-1", roles=("admin",), key=rsa_key("k1"))
    with pytest.raises(Unauthenticated, match="not valid"):
        await verifier(settings).verify(forged)


async def test_an_expired_gateway_token_is_refused(jwks: Jwks) -> None:
    key = rsa_key("k1")
    jwks.keys.append(key)
    settings = jwks_settings(jwks.url)
    token = issue_token(settings, "agent-1", key=key, now=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier(settings).verify(token)


def _hs256_signed_with(claims: dict[str, Any], secret: bytes) -> str:
    """HS256 by hand: PyJWT itself refuses a PEM key as an HMAC secret."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = part(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(signature)}"


@pytest.mark.parametrize("shared_secret", [True, False], ids=["shared-secret-accepted", "rs256-only"])
async def test_an_hs256_token_signed_with_the_public_key_is_refused(jwks: Jwks, shared_secret: bool) -> None:
    """The algorithm confusion attack: the public key is public, so a verifier that let the header pick HS256
    and used the RSA key as its secret would accept anything."""
    key = rsa_key("k1")
    jwks.keys.append(key)
    settings = AuthSettings(jwks_url=jwks.url, accept_shared_secret=shared_secret)
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {"iss": settings.issuer, "aud": settings.audience, "sub": "x", "iat": now, "exp": now + 60}
    forged = _hs256_signed_with({**claims, "roles": ["admin"]}, public_pem)
    with pytest.raises(Unauthenticated):
        await verifier(settings).verify(forged)


async def test_a_rotated_key_is_fetched_when_a_token_names_it(jwks: Jwks) -> None:
    old, new = rsa_key("k1"), rsa_key("k2")
    jwks.keys.append(old)
    settings = jwks_settings(jwks.url, jwks_min_refetch_seconds=0)
    checker = verifier(settings)
    assert await checker.verify(issue_token(settings, "a", key=old))
    jwks.keys.append(new)
    assert (await checker.verify(issue_token(settings, "b", key=new))).subject == "b"
    assert (await checker.verify(issue_token(settings, "c", key=old))).subject == "c", "the old key still verifies"
    assert jwks.fetches == 2


async def test_forged_key_ids_do_not_make_a_service_hammer_the_gateway(jwks: Jwks) -> None:
    key = rsa_key("k1")
    jwks.keys.append(key)
    settings = jwks_settings(jwks.url, jwks_min_refetch_seconds=60)
    checker = verifier(settings)
    assert await checker.verify(issue_token(settings, "a", key=key))
    for n in range(20):
        with pytest.raises(Unauthenticated, match="unknown key"):
            await checker.verify(issue_token(settings, "x", key=rsa_key(f"forged-{n}")))
    assert jwks.fetches == 1, "unknown key ids fetch the set again at most once a minute here"


async def test_tokens_cannot_be_verified_while_the_jwks_cannot_be_fetched() -> None:
    settings = jwks_settings(f"http://127.0.0.1:{free_port()}/.well-known/jwks.json", jwks_timeout_seconds=1)
    with pytest.raises(ServiceUnavailable):
        await verifier(settings).verify(issue_token(settings, "a", key=rsa_key("k1")))


async def test_a_gateway_token_is_refused_where_no_jwks_is_configured() -> None:
    token = issue_token(SETTINGS, "a", key=rsa_key("k1"))
    with pytest.raises(Unauthenticated, match="does not know"):
        await verifier(SETTINGS).verify(token)


# --- the dependency, as a service's route meets it -----------------------------------------------------------------


def service(settings: AuthSettings) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.runtime = SimpleNamespace(settings=SimpleNamespace(auth=settings))

    @app.get("/whoami")
    async def whoami(caller: Caller) -> dict[str, Any]:
        return {"subject": caller.subject, "roles": sorted(caller.roles)}

    return app


async def test_a_service_answers_401_problem_json_for_bad_tokens_and_serves_good_ones(jwks: Jwks) -> None:
    key = rsa_key("k1")
    jwks.keys.append(key)
    settings = jwks_settings(jwks.url)
    async with serve(service(settings)) as url, httpx.AsyncClient(base_url=url) as http:
        good = issue_token(settings, "agent-1", roles=("agent",), key=key)
        r = await http.get("/whoami", headers={"Authorization": f"Bearer {good}"})
        assert r.status_code == 200, r.text
        assert r.json() == {"subject": "agent-1", "roles": ["agent"]}
        expired = issue_token(settings, "agent-1", key=key, now=datetime.now(UTC) - timedelta(hours=1))
        shared = issue_token(settings, "agent-1")
        for token in (expired, shared, "not-a-jwt"):
            r = await http.get("/whoami", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401, r.text
            assert r.headers["content-type"].startswith(PROBLEM_JSON)
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert (await http.get("/whoami")).status_code == 401
