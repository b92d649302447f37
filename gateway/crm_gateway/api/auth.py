"""The OAuth2 token endpoint (RFC 6749: client credentials and password grants) and the JWK Set the services
verify the gateway's tokens with. Both public: they are how a caller gets credentials."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request

from crm_gateway.api.edge import count
from crm_gateway.domain import identity
from crm_gateway.domain.identity import Edge, OAuthError, Passwords
from crm_gateway.schemas import TokenOut
from crm_kit.presentation import JSONResponse

router = APIRouter(tags=["auth"])
FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
TOKEN_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            FORM: {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials", "password"]},
                        "client_id": {"type": "string", "description": "or HTTP Basic"},
                        "client_secret": {"type": "string", "description": "or HTTP Basic"},
                        "username": {"type": "string", "description": "password grant"},
                        "password": {"type": "string", "description": "password grant"},
                        "scope": {"type": "string", "description": "space-separated; default: all granted"},
                    },
                }
            }
        },
    }
}


def edge_of(request: Request) -> Edge:
    return request.app.state.edge  # type: ignore[no-any-return]


def passwords_of(request: Request) -> Passwords:
    return request.app.state.passwords  # type: ignore[no-any-return]


async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
        raise OAuthError("invalid_request", f"Send the parameters as {FORM}", field="content-type")
    try:
        parsed = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise OAuthError("invalid_request", "The form is not UTF-8") from exc
    repeated = sorted(name for name, values in parsed.items() if len(values) > 1)
    if repeated:
        raise OAuthError("invalid_request", f"{repeated[0]} is given more than once", field=repeated[0])
    return {name: values[0] for name, values in parsed.items()}


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str] | None:
    """The client's id and secret, from HTTP Basic (RFC 6749 §2.3.1, form-encoded inside) or the form; both ways at
    once is refused."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    in_form = "client_id" in form or "client_secret" in form
    if scheme.lower() == "basic":
        if in_form:
            raise OAuthError("invalid_request", "Authenticate the client one way: HTTP Basic or the form, not both")
        try:
            client_id, colon, secret = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise OAuthError("invalid_client", "The Basic credentials cannot be read", status=401) from exc
        if not colon:
            raise OAuthError("invalid_client", "The Basic credentials hold no secret", status=401)
        return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
    if in_form:
        return form.get("client_id", ""), form.get("client_secret", "")
    return None


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise OAuthError("invalid_request", f"{name} is required", field=name)
    return value


@router.post(
    "/oauth2/token",
    summary="An access token for a client (client_credentials) or a console user (password)",
    response_model=TokenOut,
    responses={400: {}, 401: {}},
    openapi_extra=TOKEN_FORM,
)
async def token(request: Request) -> JSONResponse:
    rate_limit_headers = await count(request, None)  # per address: a password guesser has no client id yet
    form = await _form(request)
    grant_type = _required(form, "grant_type")
    client = _client_credentials(request, form)
    edge = edge_of(request)
    async with edge.db.sessions.begin() as session:
        if grant_type == "client_credentials":
            if client is None:
                raise OAuthError(
                    "invalid_client", "Authenticate the client: HTTP Basic or client_id and client_secret", status=401
                )
            grant = await identity.client_credentials_grant(session, *client, form.get("scope"))
        elif grant_type == "password":
            if client is not None:
                await identity.authenticate_client(session, *client)
            grant = await identity.password_grant(
                session,
                passwords_of(request),
                _required(form, "username"),
                _required(form, "password"),
                form.get("scope"),
            )
        else:
            raise OAuthError(
                "unsupported_grant_type", f"grant_type {grant_type[:40]} is not supported here", field="grant_type"
            )
    answer = TokenOut(
        access_token=await edge.issue(grant),
        expires_in=int(edge.access_ttl.total_seconds()),
        scope=" ".join(grant.scopes),
    )
    return JSONResponse(answer.model_dump(), headers={**NO_STORE, **rate_limit_headers})


@router.get("/.well-known/jwks.json", summary="The public keys access tokens are signed with (RFC 7517)")
async def jwks(request: Request) -> JSONResponse:
    return JSONResponse(await edge_of(request).keys.jwks(), headers={"Cache-Control": "public, max-age=60"})
