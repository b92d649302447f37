"""`crm-gateway`: the gateway's identity store from the command line, on its database directly (`CRM_GATEWAY_*`
settings): the first admin before any token exists, clients and API keys for partner apps and the BOSS, signing
key rotation. Secrets are printed once, when they are made; passwords are read from the terminal or stdin."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from crm_gateway.app import MIGRATIONS
from crm_gateway.domain import identity, tokens
from crm_gateway.settings import Settings
from crm_kit.db import Database, upgrade, utcnow
from crm_kit.errors import CrmError

T = TypeVar("T")

cli = typer.Typer(
    help="The gateway's users, clients, API keys and signing keys.", no_args_is_help=True, add_completion=False
)
users = typer.Typer(help="Console users (password grant).", no_args_is_help=True)
clients = typer.Typer(
    help="OAuth2 clients (client-credentials grant) of partner apps, the BOSS, channels.", no_args_is_help=True
)
api_keys = typer.Typer(help="API keys of machine clients.", no_args_is_help=True)
keys = typer.Typer(help="The RS256 keys access tokens are signed with.", no_args_is_help=True)
cli.add_typer(users, name="user")
cli.add_typer(clients, name="client")
cli.add_typer(api_keys, name="api-key")
cli.add_typer(keys, name="keys")

Roles = Annotated[list[str], typer.Option("--role", help="a role (repeat for more)")]
Scopes = Annotated[list[str] | None, typer.Option("--scope", help="a scope such as pii:read (repeat for more)")]
Partner = Annotated[str | None, typer.Option(help="the partner (dealer) whose customers alone it may see")]


def _in_store(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """`work` in one transaction on the gateway's database, brought to its latest migration first."""
    settings = Settings()
    upgrade(settings.database_url, MIGRATIONS)

    async def run() -> T:
        db = Database(settings.database_url, pool_size=1)
        try:
            async with db.sessions.begin() as session:
                return await work(session)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except CrmError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc


def _passwords() -> identity.Passwords:
    s = Settings()
    return identity.Passwords(
        time_cost=s.password_time_cost, memory_kib=s.password_memory_kib, parallelism=s.password_parallelism
    )


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 12:
        typer.echo("error: a password has at least 12 characters", err=True)
        raise typer.Exit(1)
    return password


def _show(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        typer.echo(json.dumps(row, ensure_ascii=False, default=str))


StdinPassword = Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")]


@cli.command()
def migrate() -> None:
    """Bring the gateway's database to its latest schema (the gateway does it itself at start)."""
    upgrade(Settings().database_url, MIGRATIONS)


@users.command("add")
def add_user(
    username: str,
    role: Roles,
    name: Annotated[str | None, typer.Option(help="display name (default: the username)")] = None,
    scope: Scopes = None,
    partner_id: Partner = None,
    password_stdin: StdinPassword = False,
) -> None:
    """Add a console user, e.g. the first admin: `crm-gateway user add ops-admin --role admin`."""
    password = _read_password(password_stdin)
    user = _in_store(
        lambda s: identity.create_user(
            s,
            _passwords(),
            username=username,
            display_name=name or username,
            password=password,
            roles=role,
            scopes=scope or [],
            partner_id=partner_id,
        )
    )
    typer.echo(f"user {user.username} added with roles {', '.join(user.roles)}")


@users.command("list")
def list_users() -> None:
    found, _ = _in_store(lambda s: identity.list_users(s, limit=10_000))
    _show([{k: getattr(u, k) for k in ("username", "display_name", "roles", "scopes", "disabled")} for u in found])


@users.command("password")
def reset_password(username: str, password_stdin: StdinPassword = False) -> None:
    """Set a user's password."""
    password = _read_password(password_stdin)
    _in_store(lambda s: identity.set_password(s, _passwords(), username, password))
    typer.echo(f"password of {username} set")


@users.command("roles")
def set_user_roles(username: str, role: Roles) -> None:
    """Replace a user's roles."""
    _in_store(lambda s: identity.update_user(s, username, {"roles": role}))
    typer.echo(f"{username} now has roles {', '.join(sorted(set(role)))}")


@users.command("disable")
def disable_user(username: str, enable: Annotated[bool, typer.Option(help="enable instead")] = False) -> None:
    """Stop (or allow again) a user's logins."""
    _in_store(lambda s: identity.update_user(s, username, {"disabled": not enable}))
    typer.echo(f"{username} {'enabled' if enable else 'disabled'}")


@clients.command("add")
def add_client(
    client_id: str,
    role: Roles,
    name: Annotated[str | None, typer.Option(help="display name (default: the client id)")] = None,
    scope: Scopes = None,
    partner_id: Partner = None,
) -> None:
    """Add an OAuth2 client; prints its secret, this once."""
    client, secret = _in_store(
        lambda s: identity.create_client(
            s, client_id=client_id, name=name or client_id, roles=role, scopes=scope or [], partner_id=partner_id
        )
    )
    typer.echo(f"client {client.client_id} added; its secret (shown once):")
    typer.echo(secret)


@clients.command("list")
def list_clients() -> None:
    found, _ = _in_store(lambda s: identity.list_clients(s, limit=10_000))
    _show(
        [{k: getattr(c, k) for k in ("client_id", "name", "roles", "scopes", "partner_id", "disabled")} for c in found]
    )


@clients.command("disable")
def disable_client(client_id: str, enable: Annotated[bool, typer.Option(help="enable instead")] = False) -> None:
    """Refuse (or allow again) a client's grants and API keys."""
    _in_store(lambda s: identity.update_client(s, client_id, {"disabled": not enable}))
    typer.echo(f"{client_id} {'enabled' if enable else 'disabled'}")


@clients.command("rotate-secret")
def rotate_client_secret(client_id: str) -> None:
    """A new secret for the client, printed once; the old one stops working."""
    _, secret = _in_store(lambda s: identity.rotate_client_secret(s, client_id))
    typer.echo(secret)


@api_keys.command("issue")
def issue_api_key(client_id: str) -> None:
    """An API key for the client, printed once (`X-API-Key: <key>`)."""
    key, presented = _in_store(lambda s: identity.issue_api_key(s, client_id))
    typer.echo(f"API key {key.key_id} for {client_id} (shown once):", err=True)
    typer.echo(presented)


@api_keys.command("list")
def list_api_keys(client_id: Annotated[str | None, typer.Option(help="only this client's")] = None) -> None:
    found = _in_store(lambda s: identity.list_api_keys(s, client_id))
    _show(
        [{k: getattr(a, k) for k in ("key_id", "client_id", "created_at", "last_used_at", "revoked_at")} for a in found]
    )


@api_keys.command("revoke")
def revoke_api_key(key_id: str) -> None:
    _in_store(lambda s: identity.revoke_api_key(s, key_id))
    typer.echo(f"{key_id} revoked")


@keys.command("list")
def list_keys() -> None:
    found = _in_store(tokens.list_keys)
    _show([{k: getattr(key, k) for k in ("kid", "created_at", "activated_at", "retired_at")} for key in found])


@keys.command("rotate")
def rotate_keys() -> None:
    """A new signing key; running gateways take it up within `CRM_GATEWAY_KEY_RELOAD_SECONDS`, and the old key
    keeps verifying until its tokens have expired."""
    key = _in_store(lambda s: tokens.rotate(s, utcnow()))
    typer.echo(f"signing key {key.kid} active")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
