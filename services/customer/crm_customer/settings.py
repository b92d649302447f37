"""customer service settings (`CRM_CUSTOMER_*`)."""

from pydantic_settings import SettingsConfigDict

from crm_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_CUSTOMER_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/customer.db"
    consumer_group: str = "customer"
    segment_gauge_seconds: float = 60.0
    """How often the customers-per-tier gauges are counted again (one grouped scan of the base)."""
