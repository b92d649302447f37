"""Who is calling: the bearer JWT every service verifies for itself (the gateway issues it).

A token carries `sub` (the user or client id), `roles` (agent, key_account_manager, marketer, retention,
analyst, supervisor, billing_ops, admin, partner, boss, channel), `scope` (space-separated permissions such as
`pii:read`) and, for a partner, `partner_id`. What a role may do is decided by the service that owns the data;
this module only proves the identity and says what the token grants.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from fastapi import Depends, Request
from jwt.algorithms import RSAAlgorithm

from crm_kit.errors import Forbidden, ServiceUnavailable, Unauthenticated
from crm_kit.settings import AuthSettings

log = logging.getLogger(__name__)

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
RS256 = "RS256"


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


@dataclass(frozen=True)
class SigningKey:
    """A private key the gateway signs access tokens with (RS256), named by its key id (`kid`)."""

    kid: str
    private_key: RSAPrivateKey


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
    key: SigningKey | None = None,
) -> str:
    """A signed access token: RS256 with `key` (the gateway), else with the shared secret (`crm-dev token`,
    tests)."""
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
    if key is not None:
        return jwt.encode(claims, key.private_key, algorithm=RS256, headers={"kid": key.kid})
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)


class PublicKeys(Protocol):
    """Where the public key of a key id is found: the gateway's JWKS (`JwksKeys`), or the gateway's own keys."""

    async def public_key(self, kid: str) -> RSAPublicKey | None: ...


def keys_of_jwks(document: Any) -> dict[str, RSAPublicKey]:
    """The RSA signing keys of a JWK Set (RFC 7517) by key id; keys of other types or uses are passed over."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set: no `keys` list")
    keys: dict[str, RSAPublicKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig":
            continue
        if not isinstance(jwk.get("kid"), str) or jwk.get("alg", RS256) != RS256:
            continue
        key = RSAAlgorithm.from_jwk(jwk)
        if isinstance(key, RSAPublicKey):
            keys[jwk["kid"]] = key
    return keys


class JwksKeys:
    """The gateway's public keys, fetched from its JWKS URL with httpx and kept for `max_age`.

    A token naming a key id not in the set fetches it again (the gateway has rotated), but at most once every
    `min_refetch` seconds however many such tokens arrive: forged key ids cost the gateway nothing. When the set
    cannot be fetched, the keys already held keep verifying."""

    def __init__(self, url: str, *, max_age: float, min_refetch: float, timeout: float) -> None:
        self.url = url
        self.max_age = max_age
        self.min_refetch = min_refetch
        self.timeout = timeout
        self._keys: dict[str, RSAPublicKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    async def public_key(self, kid: str) -> RSAPublicKey | None:
        now = time.monotonic()
        if self._fetched_at is None or now - self._fetched_at > self.max_age or kid not in self._keys:
            await self._refresh(now)
        if kid not in self._keys and self._fetched_at is None:
            raise ServiceUnavailable(
                "The gateway's signing keys cannot be fetched, so no token can be verified",
                retry_after_seconds=max(1, math.ceil(self.min_refetch)),
            )
        return self._keys.get(kid)

    async def _refresh(self, asked_at: float) -> None:
        async with self._lock:
            if self._attempted_at is not None and (
                self._attempted_at >= asked_at or time.monotonic() - self._attempted_at < self.min_refetch
            ):
                return  # fetched while this one waited, or too recently
            self._attempted_at = time.monotonic()
            try:
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    response = await client.get(self.url, headers={"Accept": "application/json"})
                    response.raise_for_status()
                    self._keys = keys_of_jwks(response.json())
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                log.warning("cannot fetch the signing keys from %s: %s", self.url, exc)
                return
            self._fetched_at = time.monotonic()


class TokenVerifier:
    """Proves a bearer token and says who it names.

    What a token may be signed with is decided here, never by its header alone: RS256 only with a key of
    `keys` (the gateway's, by `kid`), the shared-secret algorithm only when `accept_shared_secret` is set, and with
    the secret. An HS256 token signed with an RSA public key (the classic algorithm confusion) fails either way.
    A good token is remembered (a console sends the same token with every call for its whole life, and checking
    the signature again costs more than a cached read); its expiry is checked again on every use."""

    def __init__(self, settings: AuthSettings, keys: PublicKeys | None = None, *, cache_size: int = 8192) -> None:
        self.settings = settings
        self.keys = keys
        self.cache_size = cache_size
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is None:
            known = await self._check(token)
            self._verified[token] = known
            if len(self._verified) > self.cache_size:
                self._verified.popitem(last=False)
        else:
            self._verified.move_to_end(token)
        principal, expires = known
        if time.time() > expires + self.settings.leeway_seconds:
            self._verified.pop(token, None)
            raise Unauthenticated("The access token has expired")
        return principal

    async def _check(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"The access token is not valid: {exc}") from exc
        algorithm = header.get("alg")
        key: Any
        if algorithm == RS256:
            kid = header.get("kid")
            if self.keys is None:
                raise Unauthenticated("The access token is signed with a key this service does not know")
            if not isinstance(kid, str) or not kid:
                raise Unauthenticated("The access token names no signing key (kid)")
            key = await self.keys.public_key(kid)
            if key is None:
                raise Unauthenticated(f"The access token is signed with an unknown key ({kid[:64]})")
        elif algorithm == self.settings.jwt_algorithm and self.settings.accept_shared_secret:
            key = self.settings.jwt_secret
        else:
            raise Unauthenticated(f"Access tokens signed with {str(algorithm)[:16]} are not accepted")
        return _claims_principal(token, key, algorithm, self.settings)


def _claims_principal(token: str, key: Any, algorithm: str, settings: AuthSettings) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway_seconds,
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
    partner_id = claims.get("partner_id")
    principal = Principal(
        subject=str(claims["sub"]),
        roles=frozenset(roles) & ROLES,
        scopes=frozenset(scope.split()),
        name=claims.get("name"),
        partner_id=partner_id if isinstance(partner_id, str) else None,
    )
    return principal, float(claims["exp"])


def verifier(settings: AuthSettings) -> TokenVerifier:
    """The verifier `settings` describe: the gateway's JWKS when `jwks_url` is set, and the shared secret when
    accepted."""
    keys = None
    if settings.jwks_url:
        keys = JwksKeys(
            settings.jwks_url,
            max_age=settings.jwks_max_age_seconds,
            min_refetch=settings.jwks_min_refetch_seconds,
            timeout=settings.jwks_timeout_seconds,
        )
    return TokenVerifier(settings, keys)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; 401 when there is none."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Send an access token: Authorization: Bearer <token>")
    return token.strip()


async def authenticate(request: Request) -> Principal:
    """The caller, from `Authorization: Bearer <jwt>`; 401 problem+json when absent or not valid. Each app keeps
    one verifier (and with it its cache of verified tokens and fetched keys) for its life."""
    token = bearer_token(request.headers.get("authorization"))
    state = request.app.state
    checker: TokenVerifier | None = getattr(state, "token_verifier", None)
    if checker is None:
        checker = state.token_verifier = verifier(state.runtime.settings.auth)
    return await checker.verify(token)


Caller = Annotated[Principal, Depends(authenticate)]
