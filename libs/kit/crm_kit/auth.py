"""Who is calling: the bearer JWT every service verifies for itself (the gateway issues it).

A token carries `sub` (the user or client id), `roles` (agent, key_account_manager, marketer, retention,
analyst, supervisor, billing_ops, admin, partner, boss, channel), `scope` (space-separated permissions such as
`pii:read`) and, for a partner, `partner_id`. What a role may do is decided by the service that owns the data;
this module only proves the identity and says what the token grants.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request

from crm_kit.errors import Forbidden, Unauthenticated
from crm_kit.settings import AuthSettings

ROLES = frozenset(
    {
        "agent",
        "key_account_manager",
        "marketer",
        "retention",
        "analyst",
        "supervisor",
        "billing_ops",
        "admin",
        "partner",
        "boss",
        "channel",
    }
)
"""`retention` is the retention team (维系); `channel` a channel gateway (the SMS platform, the outbound call centre)
reporting what it delivered."""
PII_READ = "pii:read"


@dataclass(frozen=True)
class Principal:
    """The verified caller."""

    subject: str
    roles: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)
    name: str | None = None
    partner_id: str | None = None

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def may(self, scope: str) -> bool:
        return scope in self.scopes

    def require_role(self, *roles: str) -> None:
        if not self.has_role(*roles):
            raise Forbidden(f"This needs one of the roles {', '.join(sorted(roles))}")


def issue_token(
    settings: AuthSettings,
    subject: str,
    *,
    roles: list[str] | tuple[str, ...] = (),
    scopes: list[str] | tuple[str, ...] = (),
    name: str | None = None,
    partner_id: str | None = None,
    ttl: timedelta = timedelta(minutes=15),
    now: datetime | None = None,
) -> str:
    """A signed access token (used by the gateway's token endpoint, by `crm-dev token` and by tests)."""
    unknown = set(roles) - ROLES
    if unknown:
        raise ValueError(f"unknown role(s): {', '.join(sorted(unknown))}")
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": subject,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
        "roles": list(roles),
        "scope": " ".join(scopes),
    }
    if name:
        claims["name"] = name
    if partner_id:
        claims["partner_id"] = partner_id
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)


def verify_token(settings: AuthSettings, token: str) -> Principal:
    principal, expires = _verified(
        token, settings.jwt_secret, settings.jwt_algorithm, settings.audience, settings.issuer, settings.leeway_seconds
    )
    if time.time() > expires + settings.leeway_seconds:
        raise Unauthenticated("The access token has expired")
    return principal


@lru_cache(maxsize=8192)
def _verified(
    token: str, secret: str, algorithm: str, audience: str, issuer: str, leeway: int
) -> tuple[Principal, float]:
    """The token's principal and expiry, checked once per token: a console sends the same token with every call
    for its whole life, and checking the signature again costs more than a cached read (only good tokens are
    kept; the expiry is checked again on every use)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("The access token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(f"The access token is not valid: {exc}") from exc
    roles = claims.get("roles", [])
    scope = claims.get("scope", "")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles) or not isinstance(scope, str):
        raise Unauthenticated("The access token's roles or scope are malformed")
    principal = Principal(
        subject=str(claims["sub"]),
        roles=frozenset(roles) & ROLES,
        scopes=frozenset(scope.split()),
        name=claims.get("name"),
        partner_id=claims.get("partner_id"),
    )
    return principal, float(claims["exp"])


async def authenticate(request: Request) -> Principal:
    """The caller, from `Authorization: Bearer <jwt>`; 401 problem+json when absent or not valid."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Send an access token: Authorization: Bearer <token>")
    settings: AuthSettings = request.app.state.runtime.settings.auth
    return verify_token(settings, token.strip())


Caller = Annotated[Principal, Depends(authenticate)]
