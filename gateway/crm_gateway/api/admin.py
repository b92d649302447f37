"""The gateway's admin API (`/gateway/v1/…`, role admin): console users, OAuth2 clients, API keys and signing
keys. Thin: parse, authorise, call the domain, shape the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from crm_gateway.api.auth import edge_of, passwords_of
from crm_gateway.domain import identity, tokens
from crm_gateway.schemas import (
    ApiKeyOut,
    ApiKeyWithSecret,
    ClientChange,
    ClientIn,
    ClientOut,
    ClientWithSecret,
    PasswordReset,
    SigningKeyOut,
    UserChange,
    UserIn,
    UserOut,
)
from crm_kit.auth import Principal
from crm_kit.db import utcnow

router = APIRouter(prefix="/gateway/v1", tags=["gateway admin"], responses={401: {}, 403: {}})


async def admin(request: Request) -> Principal:
    """An administrator, by bearer token or API key; 401 without credentials, 403 for another role."""
    admission = await edge_of(request).admit(
        authorization=request.headers.get("authorization"), api_key=request.headers.get("x-api-key")
    )
    assert admission.principal is not None
    admission.principal.require_role("admin")
    return admission.principal


async def _session(request: Request, _: Annotated[Principal, Depends(admin)]) -> AsyncIterator[AsyncSession]:
    """Only once the caller is known to be an admin; one commit after the route returns. After a change (a key
    revoked, a client disabled or given other roles) every API key is checked against the database again."""
    edge = edge_of(request)
    async with edge.db.sessions.begin() as session:
        yield session
    if request.method != "GET":
        edge.forget_api_keys()


Session = Annotated[AsyncSession, Depends(_session, scope="function")]
Offset = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.post("/users", status_code=201, response_model=UserOut, responses={409: {}, 422: {}})
async def create_user(body: UserIn, session: Session, request: Request) -> UserOut:
    user = await identity.create_user(session, passwords_of(request), **body.model_dump())
    return UserOut.model_validate(user)


@router.get("/users", response_model=list[UserOut])
async def list_users(session: Session, response: Response, offset: Offset = 0, limit: Limit = 100) -> list[UserOut]:
    users, total = await identity.list_users(session, offset=offset, limit=limit)
    response.headers["X-Total-Count"] = str(total)
    return [UserOut.model_validate(u) for u in users]


@router.get("/users/{username}", response_model=UserOut, responses={404: {}})
async def get_user(username: str, session: Session) -> UserOut:
    return UserOut.model_validate(await identity.get_user(session, username))


@router.patch("/users/{username}", response_model=UserOut, responses={404: {}, 422: {}})
async def update_user(username: str, body: UserChange, session: Session) -> UserOut:
    """Roles, scopes, partner, display name; `disabled: true` stops the user's logins (tokens already issued live
    out their few minutes)."""
    user = await identity.update_user(session, username, body.model_dump(exclude_unset=True))
    return UserOut.model_validate(user)


@router.put("/users/{username}/password", status_code=204, responses={404: {}, 422: {}})
async def reset_password(username: str, body: PasswordReset, session: Session, request: Request) -> Response:
    await identity.set_password(session, passwords_of(request), username, body.password)
    return Response(status_code=204)


@router.post("/clients", status_code=201, response_model=ClientWithSecret, responses={409: {}, 422: {}})
async def create_client(body: ClientIn, session: Session) -> ClientWithSecret:
    client, secret = await identity.create_client(session, **body.model_dump())
    return ClientWithSecret(**ClientOut.model_validate(client).model_dump(), client_secret=secret)


@router.get("/clients", response_model=list[ClientOut])
async def list_clients(session: Session, response: Response, offset: Offset = 0, limit: Limit = 100) -> list[ClientOut]:
    clients, total = await identity.list_clients(session, offset=offset, limit=limit)
    response.headers["X-Total-Count"] = str(total)
    return [ClientOut.model_validate(c) for c in clients]


@router.get("/clients/{client_id}", response_model=ClientOut, responses={404: {}})
async def get_client(client_id: str, session: Session) -> ClientOut:
    return ClientOut.model_validate(await identity.get_client(session, client_id))


@router.patch("/clients/{client_id}", response_model=ClientOut, responses={404: {}, 422: {}})
async def update_client(client_id: str, body: ClientChange, session: Session) -> ClientOut:
    """`disabled: true` refuses the client's grants and API keys from now on."""
    client = await identity.update_client(session, client_id, body.model_dump(exclude_unset=True))
    return ClientOut.model_validate(client)


@router.post("/clients/{client_id}/secret", response_model=ClientWithSecret, responses={404: {}})
async def rotate_client_secret(client_id: str, session: Session) -> ClientWithSecret:
    """A new secret, shown once; the old one stops working at once."""
    client, secret = await identity.rotate_client_secret(session, client_id)
    return ClientWithSecret(**ClientOut.model_validate(client).model_dump(), client_secret=secret)


@router.post(
    "/clients/{client_id}/api-keys", status_code=201, response_model=ApiKeyWithSecret, responses={404: {}, 409: {}}
)
async def issue_api_key(client_id: str, session: Session) -> ApiKeyWithSecret:
    key, presented = await identity.issue_api_key(session, client_id)
    return ApiKeyWithSecret(**ApiKeyOut.model_validate(key).model_dump(), api_key=presented)


@router.get("/api-keys", response_model=list[ApiKeyOut])
async def list_api_keys(session: Session, client_id: str | None = None) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(k) for k in await identity.list_api_keys(session, client_id)]


@router.delete("/api-keys/{key_id}", response_model=ApiKeyOut, responses={404: {}})
async def revoke_api_key(key_id: str, session: Session) -> ApiKeyOut:
    """Refused from now on; the key stays listed with when it was revoked."""
    return ApiKeyOut.model_validate(await identity.revoke_api_key(session, key_id))


@router.get("/signing-keys", response_model=list[SigningKeyOut])
async def list_signing_keys(session: Session) -> list[SigningKeyOut]:
    return [SigningKeyOut.model_validate(k) for k in await tokens.list_keys(session)]


@router.post("/signing-keys/rotate", status_code=201, response_model=SigningKeyOut)
async def rotate_signing_key(_: Annotated[Principal, Depends(admin)], request: Request) -> SigningKeyOut:
    """A new active key; the old one keeps verifying (and stays in the JWKS) until its tokens have expired. The
    gateway signs with the new key from the answer on: committed first, then read again."""
    edge = edge_of(request)
    async with edge.db.sessions.begin() as session:
        key = await tokens.rotate(session, utcnow())
    await edge.keys.reload()
    return SigningKeyOut.model_validate(key)
