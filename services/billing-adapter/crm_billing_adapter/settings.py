"""billing-adapter settings (`CRM_BILLING_ADAPTER_*`)."""

from pydantic_settings import SettingsConfigDict

from crm_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_BILLING_ADAPTER_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/billing-adapter.db"
    max_batch_records: int = 5000
    max_decompressed_bytes: int = 64 * 1024 * 1024
    source_name: str = "boss"
