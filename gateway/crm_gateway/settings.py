"""Gateway settings (`CRM_GATEWAY_*`)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from crm_gateway.domain.limits import LimitSettings
from crm_gateway.domain.resilience import ResilienceSettings
from crm_kit.settings import AppSettings, AuthSettings


class Settings(AppSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_GATEWAY_", env_nested_delimiter="__", extra="ignore")

    customer_url: str = "http://127.0.0.1:8001"
    billing_adapter_url: str = "http://127.0.0.1:8002"
    ticketing_url: str = "http://127.0.0.1:8003"
    churn_url: str = "http://127.0.0.1:8004"
    campaign_url: str = "http://127.0.0.1:8005"
    timeout_seconds: float = 10.0
    boss_timeout_seconds: float = 30.0
    boss_upload_timeout_seconds: float = 600.0
    """Between two chunks of an upload or its answer, not for the whole file."""
    boss_upload_max_bytes: int = 4 * 1024**3
    connect_timeout_seconds: float = 2.0
    max_connections: int = 200
    compose_part_timeout_seconds: float = Field(
        3.0, gt=0, description="how long the composed 360 view waits for each part before reporting it missing"
    )
    openapi_refresh_seconds: float = Field(
        300.0, gt=0, description="how long the merged OpenAPI document is served before the services are asked again"
    )
    openapi_fetch_timeout_seconds: float = Field(
        3.0, gt=0, description="how long a service's /openapi.json is waited for before its last copy stands in"
    )
    openapi_snapshots_dir: str | None = Field(
        None,
        description="the services' OpenAPI snapshots, standing in for a service that is down (default: the "
        "repository's contracts/openapi when there is one)",
    )

    database_url: str = Field(
        "sqlite+aiosqlite:///var/gateway.db",
        description="the identity store: console users, OAuth2 clients, API keys, signing keys",
    )
    auto_migrate: bool = True
    auth: AuthSettings = Field(
        default_factory=AuthSettings,
        description="issuer, audience and leeway of the tokens, and whether shared-secret (HS256) tokens are accepted "
        "at the edge (`CRM_AUTH_*`, as the services read them)",
    )
    access_token_seconds: int = Field(15 * 60, ge=30, le=24 * 3600, description="the life of an access token")
    api_key_token_seconds: int = Field(
        5 * 60,
        ge=30,
        le=3600,
        description="the life of the token minted for an API key's request (reused for the key until half of it is "
        "left)",
    )
    key_reload_seconds: float = Field(
        30.0,
        gt=0,
        description="how often the gateway reads its signing keys again, to follow a rotation made by another "
        "replica or by `crm-gateway keys rotate`",
    )
    password_time_cost: int = Field(3, ge=1, description="argon2id iterations (a changed cost rehashes at login)")
    password_memory_kib: int = Field(64 * 1024, ge=8, description="argon2id memory per hash, KiB")
    password_parallelism: int = Field(4, ge=1)
    api_key_touch_seconds: float = Field(
        60.0, ge=0, description="an API key's last use is written at most this often (not on every request)"
    )
    api_key_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="an API key checked against the database is trusted this long without reading it again: a key "
        "revoked or a client disabled on another replica is refused within this time (at once on the replica that "
        "made the change); 0 reads it on every request",
    )
    limits: LimitSettings = Field(
        default_factory=LimitSettings,
        description="rate limits and daily quotas per client and route (`CRM_GATEWAY_LIMITS__REDIS_URL` shares them "
        "between replicas)",
    )
    resilience: ResilienceSettings = Field(
        default_factory=ResilienceSettings, description="circuit breakers per upstream and retries of idempotent calls"
    )
