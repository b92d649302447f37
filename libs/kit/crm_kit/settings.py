"""Settings shared by every service; each service subclasses with its own env prefix.

Only this module (and its subclasses) reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def find_contracts_dir(start: Path | None = None) -> Path:
    """The repo's `contracts/` folder, looked up from the working directory and from this file."""
    candidates = [start or Path.cwd(), Path(__file__).resolve()]
    for base in candidates:
        for folder in (base, *base.parents):
            if (folder / "contracts" / "topics.yaml").is_file():
                return folder / "contracts"
    raise FileNotFoundError("contracts/topics.yaml not found; set CRM_<SERVICE>_CONTRACTS_DIR")


class KafkaSettings(BaseSettings):
    """The bus, shared by all services (`CRM_KAFKA_*`)."""

    model_config = SettingsConfigDict(env_prefix="CRM_KAFKA_", extra="ignore")

    bootstrap: str = "127.0.0.1:9092"
    create_topics: bool = True
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 500
    rebalance_timeout_ms: int = 1000
    request_timeout_ms: int = 10000
    fetch_max_wait_ms: int = 100


class AuthSettings(BaseSettings):
    """How callers prove who they are (`CRM_AUTH_*`): JWTs the gateway issues and every service verifies.

    Production: the gateway signs RS256 tokens and publishes its public keys; each service sets `CRM_AUTH_JWKS_URL`
    to the gateway's `/.well-known/jwks.json` and `CRM_AUTH_ACCEPT_SHARED_SECRET=false`. The shared secret (HS256)
    is for a laptop and tests (`crm-dev token`, `crm_kit.testing.bearer`): its default is known to everyone.
    """

    model_config = SettingsConfigDict(env_prefix="CRM_AUTH_", extra="ignore")

    jwt_secret: str = "dev-only-not-a-secret-change-me-in-production"  # noqa: S105 - the laptop default
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    accept_shared_secret: bool = Field(
        True, description="accept tokens signed with `jwt_secret`; false in production, where only the gateway signs"
    )
    jwks_url: str | None = Field(
        None, description="the gateway's JWKS (…/.well-known/jwks.json): RS256 tokens are verified against its keys"
    )
    jwks_max_age_seconds: float = Field(300.0, gt=0, description="how long a fetched key set is used before a refetch")
    jwks_min_refetch_seconds: float = Field(
        5.0,
        ge=0,
        description="the least time between two fetches: a token naming an unknown key fetches the set again, at "
        "most this often, so forged key ids cannot make a service hammer the gateway",
    )
    jwks_timeout_seconds: float = Field(3.0, gt=0)
    issuer: str = "telecom-crm"
    audience: str = "telecom-crm"
    leeway_seconds: int = 30


class AppSettings(BaseSettings):
    """What every HTTP app has, the gateway included."""

    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore")

    max_body_bytes: int = 8 * 1024 * 1024
    log_level: str = "INFO"
    log_json: bool = True


class ServiceSettings(AppSettings):
    """What every service has. Subclasses set `env_prefix` (e.g. `CRM_CUSTOMER_`)."""

    database_url: str = "sqlite+aiosqlite:///var/crm.db"
    auto_migrate: bool = True
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    contracts_dir: Path = Field(default_factory=find_contracts_dir)
    outbox_relay: bool = Field(
        True,
        description="whether this process publishes its outbox; false where `crm relay` runs beside it as a process "
        "of its own",
    )
    consumers: bool = Field(
        True,
        description="whether this process runs the service's consumers; false for replicas that only serve the API "
        "while another deployment of the service consumes",
    )
    outbox_batch_size: int = 5000
    outbox_poll_seconds: float = 0.5
    consumer_max_attempts: int = 5
    consumer_backoff_seconds: float = 0.2
    consumer_batch_size: int = 500
    query_timeout_seconds: float = 10.0
    db_pool_size: int = Field(
        32,
        ge=1,
        description="connections each process keeps open. SQLite: past it, a request's connection is opened for it and "
        "closed after, which costs more than the request on a busy service. PostgreSQL: also the most it opens (the "
        "server's max_connections is shared by every replica); past it, a request waits for one",
    )
