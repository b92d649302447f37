"""Gateway settings (`CRM_GATEWAY_*`)."""

from pydantic_settings import SettingsConfigDict

from crm_kit.settings import AppSettings


class Settings(AppSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_GATEWAY_", extra="ignore")

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
