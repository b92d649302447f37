"""The admin API's shapes (`/gateway/v1/…`): users, clients, API keys, signing keys. Secrets appear in an answer
once, when they are made; never a hash."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from crm_kit.auth import ROLES
from crm_kit.shapes import Strict

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
SCOPE_PATTERN = r"^[\x21\x23-\x5B\x5D-\x7E]{1,64}$"
"""RFC 6749's scope-token: printable ASCII but space, `"` and `\\`."""


def _known_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role}; roles are {', '.join(sorted(ROLES))}")
    return role


Role = Annotated[str, AfterValidator(_known_role)]
Scope = Annotated[str, Field(pattern=SCOPE_PATTERN)]
Identifier = Annotated[str, Field(pattern=NAME_PATTERN)]
Password = Annotated[str, Field(min_length=12, max_length=256)]
Roles = Annotated[list[Role], Field(max_length=len(ROLES))]
Scopes = Annotated[list[Scope], Field(max_length=50)]


class UserIn(Strict):
    username: Identifier
    display_name: str = Field(min_length=1, max_length=200)
    password: Password
    roles: Roles = Field(min_length=1)
    scopes: Scopes = Field(default_factory=list)
    partner_id: Identifier | None = None


class UserChange(Strict):
    """What is to change; members left out stay as they are."""

    display_name: str | None = Field(None, min_length=1, max_length=200)
    roles: Roles | None = Field(None, min_length=1)
    scopes: Scopes | None = None
    partner_id: Identifier | None = None
    disabled: bool | None = None


class PasswordReset(Strict):
    password: Password


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    username: str
    display_name: str
    roles: list[str]
    scopes: list[str]
    partner_id: str | None
    disabled: bool
    created_at: datetime
    updated_at: datetime


class ClientIn(Strict):
    client_id: Identifier
    name: str = Field(min_length=1, max_length=200)
    roles: Roles = Field(min_length=1)
    scopes: Scopes = Field(default_factory=list)
    partner_id: Identifier | None = None


class ClientChange(Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    roles: Roles | None = Field(None, min_length=1)
    scopes: Scopes | None = None
    partner_id: Identifier | None = None
    disabled: bool | None = None


class ClientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    client_id: str
    name: str
    roles: list[str]
    scopes: list[str]
    partner_id: str | None
    disabled: bool
    created_at: datetime
    updated_at: datetime


class ClientWithSecret(ClientOut):
    client_secret: str = Field(description="shown this once: the gateway keeps only a digest")


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key_id: str
    client_id: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyWithSecret(ApiKeyOut):
    api_key: str = Field(description="`X-API-Key` header value, shown this once: the gateway keeps only a digest")


class SigningKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kid: str
    created_at: datetime
    activated_at: datetime
    retired_at: datetime | None
    public_jwk: dict[str, Any]


class TokenOut(BaseModel):
    """RFC 6749 §5.1."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the token type (RFC 6750), not a secret
    expires_in: int
    scope: str
