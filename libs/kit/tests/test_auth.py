"""Bearer tokens: what a service accepts and refuses, including a token it has already verified once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from crm_kit.auth import issue_token, verify_token
from crm_kit.errors import Unauthenticated
from crm_kit.settings import AuthSettings

SETTINGS = AuthSettings(leeway_seconds=0)


def test_a_good_token_names_its_caller_and_what_it_grants() -> None:
    token = issue_token(SETTINGS, "agent-7", roles=("agent", "supervisor"), scopes=("pii:read",))
    principal = verify_token(SETTINGS, token)
    assert principal.subject == "agent-7"
    assert principal.roles == {"agent", "supervisor"}
    assert principal.may("pii:read")
    assert verify_token(SETTINGS, token) == principal


def test_a_token_verified_once_is_refused_once_it_expires() -> None:
    token = issue_token(SETTINGS, "agent-7", roles=("agent",), ttl=timedelta(seconds=1))
    assert verify_token(SETTINGS, token).subject == "agent-7"
    time.sleep(2.1)
    with pytest.raises(Unauthenticated, match="expired"):
        verify_token(SETTINGS, token)


def test_an_expired_token_is_refused() -> None:
    token = issue_token(SETTINGS, "agent-7", ttl=timedelta(minutes=5), now=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(Unauthenticated, match="expired"):
        verify_token(SETTINGS, token)


def test_a_token_signed_with_another_secret_is_refused_even_after_a_good_one() -> None:
    good = issue_token(SETTINGS, "agent-7")
    verify_token(SETTINGS, good)
    other = AuthSettings(jwt_secret="another-secret-of-enough-length-0123456789")
    with pytest.raises(Unauthenticated, match="not valid"):
        verify_token(other, good)


def test_a_token_with_malformed_roles_is_refused() -> None:
    claims = {"iss": SETTINGS.issuer, "aud": SETTINGS.audience, "sub": "x", "iat": int(time.time())}
    token = jwt.encode({**claims, "exp": int(time.time()) + 60, "roles": "admin"}, SETTINGS.jwt_secret)
    with pytest.raises(Unauthenticated, match="malformed"):
        verify_token(SETTINGS, token)
