"""Tables the gateway owns: who may call the CRM (console users, OAuth2 clients and their API keys) and the keys
it signs access tokens with."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, MetaData, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_kit.db import NAMING, UtcDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ConsoleUser(Base):
    """A person at an agent console or the admin UI, logging in with the password grant."""

    __tablename__ = "console_user"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(512), doc="argon2id, in its PHC string form")
    roles: Mapped[list[str]] = mapped_column(JSON)
    scopes: Mapped[list[str]] = mapped_column(JSON, doc="permissions beyond the roles, e.g. pii:read")
    partner_id: Mapped[str | None] = mapped_column(String(64), doc="a partner's (dealer's) staff: only its customers")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Client(Base):
    """An OAuth2 client (a partner app, the BOSS, a channel gateway): client-credentials grant or API keys."""

    __tablename__ = "oauth_client"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64), doc="SHA-256 hex of a high-entropy random secret")
    roles: Mapped[list[str]] = mapped_column(JSON)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    partner_id: Mapped[str | None] = mapped_column(String(64))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApiKey(Base):
    """A machine client's long-lived key (`X-API-Key: <key_id>.<secret>`); the id is shown to people, the secret
    only once."""

    __tablename__ = "api_key"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), doc="SHA-256 hex of the secret part")
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_client.client_id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SigningKey(Base):
    """An RS256 key pair the gateway signs access tokens with. The newest unretired one signs; a retired one is
    still published (JWKS) until the last token it signed has expired."""

    __tablename__ = "signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_key_pem: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    activated_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
