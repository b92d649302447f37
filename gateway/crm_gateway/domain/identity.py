"""Who may call the CRM through the gateway: console users (password grant), OAuth2 clients (client-credentials
grant) and their API keys, and the check every proxied request passes at the edge. Plain functions on a session
(the caller commits), no HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_gateway.domain.routing import BOSS_FILES, BOSS_PUSHES
from crm_gateway.domain.tokens import KeyRing
from crm_gateway.models import ApiKey, Client, ConsoleUser
from crm_kit.auth import ROLES, Principal, TokenVerifier, bearer_token, issue_token
from crm_kit.db import Database, utcnow
from crm_kit.errors import Conflict, CrmError, InvalidInput, NotFound, Unauthenticated
from crm_kit.settings import AuthSettings

API_KEY_SEPARATOR = "."
KEY_ID_PREFIX = "ak_"
BOSS_SIGNED = frozenset({BOSS_PUSHES, BOSS_FILES})
"""Where the BOSS sends with its HMAC signature (`X-Boss-Signature`) instead of a token."""
MINTED_KEPT = 4096
"""Tokens kept for API keys at most (one per key in use); past it, all are minted again."""

# --- secrets and passwords ------------------------------------------------------------------------------------------


def new_secret() -> str:
    """A client secret or the secret part of an API key: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """SHA-256: enough for a secret of 256 random bits (nothing to guess), and cheap on every request."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)


class Passwords:
    """argon2id hashes of console users' passwords, computed off the event loop (tens of ms of CPU each)."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self.hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._decoy: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether `password` is the one `stored` hashes; with no user (None) a decoy hash is checked all the same,
        so an unknown username takes as long as a wrong password."""
        if stored is None:
            self._decoy = self._decoy or await self.hash(new_secret())
            stored = self._decoy
        try:
            return await asyncio.to_thread(self.hasher.verify, stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self.hasher.check_needs_rehash(stored)


def check_roles(roles: Iterable[str], field: str = "roles") -> list[str]:
    unknown = sorted(set(roles) - ROLES)
    if unknown:
        raise InvalidInput(f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(sorted(ROLES))}", field=field)
    return sorted(set(roles))


# --- console users --------------------------------------------------------------------------------------------------


async def create_user(
    session: AsyncSession,
    passwords: Passwords,
    *,
    username: str,
    display_name: str,
    password: str,
    roles: Iterable[str],
    scopes: Iterable[str] = (),
    partner_id: str | None = None,
    now: datetime | None = None,
) -> ConsoleUser:
    now = now or utcnow()
    if await session.get(ConsoleUser, username) is not None:
        raise Conflict(f"User {username} exists", field="username")
    user = ConsoleUser(
        username=username,
        display_name=display_name,
        password_hash=await passwords.hash(password),
        roles=check_roles(roles),
        scopes=sorted(set(scopes)),
        partner_id=partner_id,
        disabled=False,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    await session.flush()
    return user


async def get_user(session: AsyncSession, username: str) -> ConsoleUser:
    user = await session.get(ConsoleUser, username)
    if user is None:
        raise NotFound(f"No user {username}", field="username")
    return user


async def list_users(session: AsyncSession, *, offset: int = 0, limit: int = 100) -> tuple[list[ConsoleUser], int]:
    total = await session.scalar(select(func.count()).select_from(ConsoleUser)) or 0
    rows = await session.scalars(select(ConsoleUser).order_by(ConsoleUser.username).offset(offset).limit(limit))
    return list(rows.all()), total


async def update_user(session: AsyncSession, username: str, changes: dict[str, Any]) -> ConsoleUser:
    """`changes` holds what is to change: display_name, roles, scopes, partner_id, disabled."""
    user = await get_user(session, username)
    if "roles" in changes:
        changes["roles"] = check_roles(changes["roles"])
    if "scopes" in changes:
        changes["scopes"] = sorted(set(changes["scopes"]))
    for name, value in changes.items():
        setattr(user, name, value)
    user.updated_at = utcnow()
    await session.flush()
    return user


async def set_password(session: AsyncSession, passwords: Passwords, username: str, password: str) -> ConsoleUser:
    user = await get_user(session, username)
    user.password_hash = await passwords.hash(password)
    user.updated_at = utcnow()
    await session.flush()
    return user


# --- OAuth2 clients and API keys ------------------------------------------------------------------------------------


async def create_client(
    session: AsyncSession,
    *,
    client_id: str,
    name: str,
    roles: Iterable[str],
    scopes: Iterable[str] = (),
    partner_id: str | None = None,
    now: datetime | None = None,
) -> tuple[Client, str]:
    """The client and its secret, which is stored only as a digest: this is the one time it is seen."""
    now = now or utcnow()
    if await session.get(Client, client_id) is not None:
        raise Conflict(f"Client {client_id} exists", field="client_id")
    secret = new_secret()
    client = Client(
        client_id=client_id,
        name=name,
        secret_hash=digest(secret),
        roles=check_roles(roles),
        scopes=sorted(set(scopes)),
        partner_id=partner_id,
        disabled=False,
        created_at=now,
        updated_at=now,
    )
    session.add(client)
    await session.flush()
    return client, secret


async def get_client(session: AsyncSession, client_id: str) -> Client:
    client = await session.get(Client, client_id)
    if client is None:
        raise NotFound(f"No client {client_id}", field="client_id")
    return client


async def list_clients(session: AsyncSession, *, offset: int = 0, limit: int = 100) -> tuple[list[Client], int]:
    total = await session.scalar(select(func.count()).select_from(Client)) or 0
    rows = await session.scalars(select(Client).order_by(Client.client_id).offset(offset).limit(limit))
    return list(rows.all()), total


async def update_client(session: AsyncSession, client_id: str, changes: dict[str, Any]) -> Client:
    """`changes` holds what is to change: name, roles, scopes, partner_id, disabled."""
    client = await get_client(session, client_id)
    if "roles" in changes:
        changes["roles"] = check_roles(changes["roles"])
    if "scopes" in changes:
        changes["scopes"] = sorted(set(changes["scopes"]))
    for name, value in changes.items():
        setattr(client, name, value)
    client.updated_at = utcnow()
    await session.flush()
    return client


async def rotate_client_secret(session: AsyncSession, client_id: str) -> tuple[Client, str]:
    """A new secret; the old one stops working at once."""
    client = await get_client(session, client_id)
    secret = new_secret()
    client.secret_hash = digest(secret)
    client.updated_at = utcnow()
    await session.flush()
    return client, secret


async def issue_api_key(session: AsyncSession, client_id: str, now: datetime | None = None) -> tuple[ApiKey, str]:
    """A key for the client: `<key_id>.<secret>`, shown this once; the key id names it in lists and logs."""
    client = await get_client(session, client_id)
    if client.disabled:
        raise Conflict(f"Client {client_id} is disabled", field="client_id")
    secret = new_secret()
    key = ApiKey(
        key_id=KEY_ID_PREFIX + secrets.token_hex(8),
        secret_hash=digest(secret),
        client_id=client_id,
        created_at=now or utcnow(),
        last_used_at=None,
        revoked_at=None,
    )
    session.add(key)
    await session.flush()
    return key, f"{key.key_id}{API_KEY_SEPARATOR}{secret}"


async def list_api_keys(session: AsyncSession, client_id: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.key_id)
    if client_id is not None:
        query = query.where(ApiKey.client_id == client_id)
    return list((await session.scalars(query)).all())


async def revoke_api_key(session: AsyncSession, key_id: str, now: datetime | None = None) -> ApiKey:
    """Refused from now on; kept, with when it was revoked, for the record."""
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"No API key {key_id}", field="key_id")
    if key.revoked_at is None:
        key.revoked_at = now or utcnow()
        await session.flush()
    return key


# --- grants (RFC 6749) ----------------------------------------------------------------------------------------------


class OAuthError(CrmError):
    """A token request refused, with its RFC 6749 `error` code beside the problem details."""

    def __init__(self, error: str, detail: str, *, status: int = 400, field: str | None = None) -> None:
        super().__init__(detail, field=field, error=error)
        self.status = status  # type: ignore[misc]
        self.slug = error.replace("_", "-")  # type: ignore[misc]
        self.title = f"The token request is refused: {error}"  # type: ignore[misc]
        headers = {"Cache-Control": "no-store"}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="telecom-crm"'
        self.headers = headers  # type: ignore[misc]


@dataclass(frozen=True)
class Grant:
    """What an access token is to say."""

    subject: str
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    name: str | None
    partner_id: str | None


def granted_scopes(requested: str | None, allowed: Iterable[str]) -> tuple[str, ...]:
    """All the scopes the identity holds, or those asked for (each of which it must hold)."""
    allowed = sorted(set(allowed))
    if requested is None:
        return tuple(allowed)
    asked = sorted(set(requested.split()))
    beyond = [s for s in asked if s not in allowed]
    if beyond:
        raise OAuthError("invalid_scope", f"Scope not granted to this identity: {' '.join(beyond)}", field="scope")
    return tuple(asked)


async def authenticate_client(session: AsyncSession, client_id: str, secret: str) -> Client:
    client = await session.get(Client, client_id)
    if client is None or not secret_matches(secret, client.secret_hash) or client.disabled:
        raise OAuthError("invalid_client", "Client authentication failed", status=401)
    return client


async def client_credentials_grant(session: AsyncSession, client_id: str, secret: str, scope: str | None) -> Grant:
    client = await authenticate_client(session, client_id, secret)
    return Grant(
        client.client_id, tuple(client.roles), granted_scopes(scope, client.scopes), client.name, client.partner_id
    )


async def password_grant(
    session: AsyncSession, passwords: Passwords, username: str, password: str, scope: str | None
) -> Grant:
    """A console user's login. A hash made with other argon2 parameters than today's is made again."""
    user = await session.get(ConsoleUser, username)
    if not await passwords.verify(user.password_hash if user else None, password) or user is None:
        raise OAuthError("invalid_grant", "The username or password is wrong")
    if user.disabled:
        raise OAuthError("invalid_grant", "This user is disabled")
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = await passwords.hash(password)
        await session.flush()
    return Grant(
        user.username, tuple(user.roles), granted_scopes(scope, user.scopes), user.display_name, user.partner_id
    )


# --- the edge -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    """A request let through: who it is, and the Authorization header the upstream is to see (None: as sent)."""

    principal: Principal | None
    authorization: str | None = None


class Edge:
    """The gateway's check of a request's credentials: a bearer token it verifies as a service would (its own
    keys, and the shared secret when accepted), or an API key, which it exchanges for a short-lived token of the
    key's client, so the services only ever see bearer tokens."""

    def __init__(
        self,
        db: Database,
        keys: KeyRing,
        auth: AuthSettings,
        *,
        access_ttl: timedelta,
        api_key_ttl: timedelta,
        touch_every: timedelta,
        key_cache_seconds: float = 0.0,
    ) -> None:
        self.db = db
        self.keys = keys
        self.auth = auth
        self.access_ttl = access_ttl
        self.api_key_ttl = api_key_ttl
        self.touch_every = touch_every
        self.verifier = TokenVerifier(auth, keys)
        self._minted: dict[tuple[str, Grant], tuple[str, float]] = {}
        self.key_cache_seconds = key_cache_seconds
        self._keys_checked: dict[str, tuple[str, Grant, float]] = {}
        """An API key's digest → its id and grant, until when. A busy machine client would otherwise cost a
        database read a request (1.5–2.5 ms of the gateway's CPU); a revoked key or disabled client is refused by
        this replica at once (`forget_api_keys`) and by the others within `key_cache_seconds`."""

    async def issue(self, grant: Grant, ttl: timedelta | None = None) -> str:
        """An RS256 access token for `grant`, signed by the active key."""
        return issue_token(
            self.auth,
            grant.subject,
            roles=grant.roles,
            scopes=grant.scopes,
            name=grant.name,
            partner_id=grant.partner_id,
            ttl=ttl or self.access_ttl,
            key=await self.keys.signing_key(),
        )

    async def admit(
        self,
        *,
        authorization: str | None,
        api_key: str | None,
        path: str | None = None,
        boss_signature: str | None = None,
    ) -> Admission:
        """The request's caller; Unauthenticated when it carries no valid credentials. A BOSS push or file signed
        by the BOSS passes without a caller: the billing adapter checks its HMAC signature itself."""
        if path in BOSS_SIGNED and boss_signature:
            return Admission(None)
        if api_key is not None:
            return await self._admit_api_key(api_key)
        principal = await self.verifier.verify(bearer_token(authorization))
        return Admission(principal)

    def forget_api_keys(self) -> None:
        """Check every API key against the database again: one was revoked, or a client changed."""
        self._keys_checked.clear()

    async def _admit_api_key(self, presented: str) -> Admission:
        checked = self._keys_checked.get(presented_digest := digest(presented))
        if checked is not None and time.monotonic() < checked[2]:
            key_id, grant = checked[0], checked[1]
        else:
            key_id, grant = await self._check_api_key(presented)
            if self.key_cache_seconds > 0:
                if len(self._keys_checked) >= MINTED_KEPT:
                    self._keys_checked.clear()
                self._keys_checked[presented_digest] = (key_id, grant, time.monotonic() + self.key_cache_seconds)
        token = await self._token_for_key(key_id, grant)
        principal = Principal(
            subject=grant.subject,
            roles=frozenset(grant.roles),
            scopes=frozenset(grant.scopes),
            name=grant.name,
            partner_id=grant.partner_id,
        )
        return Admission(principal, f"Bearer {token}")

    async def _check_api_key(self, presented: str) -> tuple[str, Grant]:
        """The key's id and its client's grant, read from the database; Unauthenticated when it is not valid."""
        key_id, _, secret = presented.strip().partition(API_KEY_SEPARATOR)
        async with self.db.sessions.begin() as session:
            key = await session.get(ApiKey, key_id) if key_id and secret else None
            client = await session.get(Client, key.client_id) if key is not None else None
            if key is None or client is None or not secret_matches(secret, key.secret_hash):
                raise Unauthenticated("The API key is not valid")
            if key.revoked_at is not None:
                raise Unauthenticated("The API key has been revoked")
            if client.disabled:
                raise Unauthenticated("The API key's client is disabled")
            now = utcnow()
            if key.last_used_at is None or now - key.last_used_at >= self.touch_every:
                key.last_used_at = now
        return key_id, Grant(
            client.client_id, tuple(client.roles), tuple(client.scopes), client.name, client.partner_id
        )

    async def _token_for_key(self, key_id: str, grant: Grant) -> str:
        """The key's token, minted again once half its life is gone: the services' caches of verified tokens keep
        working for a busy machine client, and the gateway signs once per key every few minutes."""
        minted = self._minted.get((key_id, grant))
        if minted is not None and time.monotonic() < minted[1]:
            return minted[0]
        token = await self.issue(grant, self.api_key_ttl)
        if len(self._minted) >= MINTED_KEPT:
            self._minted.clear()
        self._minted[(key_id, grant)] = (token, time.monotonic() + self.api_key_ttl.total_seconds() / 2)
        return token
