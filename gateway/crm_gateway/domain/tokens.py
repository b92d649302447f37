"""The keys the gateway signs access tokens with (RS256): generated on first start, rotated on demand, published
as a JWK Set while a token they signed may still be alive."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_gateway.models import SigningKey
from crm_kit import auth
from crm_kit.db import Database, utcnow

KEY_BITS = 2048
UNKNOWN_KID_RELOAD_SECONDS = 2.0
"""The least time between two reads of the keys for a token naming a key this gateway does not hold (a rotation by
another replica): forged key ids cannot turn into a read of the database each."""


def new_signing_key(now: datetime) -> SigningKey:
    """A fresh RSA key pair, active from `now`."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    kid = f"{now:%Y%m%d}-{secrets.token_hex(6)}"
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return SigningKey(
        kid=kid,
        private_key_pem=pem,
        public_jwk={**jwk, "kid": kid, "use": "sig", "alg": auth.RS256},
        created_at=now,
        activated_at=now,
        retired_at=None,
    )


async def ensure_signing_key(session: AsyncSession, now: datetime) -> SigningKey | None:
    """A first key when none is active (the first start); the new key, or None when one was there."""
    active = await session.scalar(select(SigningKey.kid).where(SigningKey.retired_at.is_(None)).limit(1))
    if active is not None:
        return None
    key = await asyncio.to_thread(new_signing_key, now)
    session.add(key)
    await session.flush()
    return key


async def rotate(session: AsyncSession, now: datetime) -> SigningKey:
    """A new active key; the ones before are retired now and keep verifying until their tokens have expired."""
    key = await asyncio.to_thread(new_signing_key, now)
    await session.execute(update(SigningKey).where(SigningKey.retired_at.is_(None)).values(retired_at=now))
    session.add(key)
    await session.flush()
    return key


async def list_keys(session: AsyncSession) -> list[SigningKey]:
    return list((await session.scalars(select(SigningKey).order_by(SigningKey.activated_at.desc()))).all())


async def published_keys(session: AsyncSession, now: datetime, window: timedelta) -> list[SigningKey]:
    """Keys whose tokens may still be alive: the unretired ones, and those retired within `window`."""
    query = (
        select(SigningKey)
        .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > now - window))
        .order_by(SigningKey.activated_at.desc())
    )
    return list((await session.scalars(query)).all())


class KeyRing:
    """The gateway's keys in memory: the one that signs, and the public keys that verify (as its JWKS publishes
    them). Read again every `reload_seconds`, to follow a rotation made elsewhere (another replica, the CLI), and
    when a token names a key not held (at most every few seconds)."""

    def __init__(self, db: Database, *, window: timedelta, reload_seconds: float) -> None:
        self.db = db
        self.window = window
        self.reload_seconds = reload_seconds
        self._keys: dict[str, RSAPrivateKey] = {}
        self._jwks: list[dict[str, Any]] = []
        self._signing: auth.SigningKey | None = None
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def reload(self) -> None:
        async with self._lock:
            async with self.db.sessions() as session:
                rows = await published_keys(session, utcnow(), self.window)
            keys: dict[str, RSAPrivateKey] = {}
            for row in rows:
                known = self._keys.get(row.kid)
                keys[row.kid] = known or await asyncio.to_thread(_load_private, row.private_key_pem)
            active = next((row for row in rows if row.retired_at is None), None)
            self._keys = keys
            self._jwks = [row.public_jwk for row in rows]
            self._signing = auth.SigningKey(active.kid, keys[active.kid]) if active else None
            self._loaded_at = time.monotonic()

    async def _fresh(self, at_least_every: float) -> None:
        if time.monotonic() - self._loaded_at >= at_least_every:
            await self.reload()

    async def signing_key(self) -> auth.SigningKey:
        await self._fresh(self.reload_seconds)
        if self._signing is None:
            raise RuntimeError("the gateway holds no active signing key; run `crm-gateway keys rotate`")
        return self._signing

    async def public_key(self, kid: str) -> RSAPublicKey | None:
        await self._fresh(self.reload_seconds)
        if kid not in self._keys:
            await self._fresh(UNKNOWN_KID_RELOAD_SECONDS)
        known = self._keys.get(kid)
        return known.public_key() if known else None

    async def jwks(self) -> dict[str, Any]:
        await self._fresh(self.reload_seconds)
        return {"keys": list(self._jwks)}


def _load_private(pem: str) -> RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("a signing key that is not RSA")
    return key
