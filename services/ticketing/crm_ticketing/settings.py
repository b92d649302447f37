"""ticketing service settings (`CRM_TICKETING_*`)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from crm_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_TICKETING_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/ticketing.db"
    consumer_group: str = "ticketing"
    sla_scan_seconds: float = Field(30, gt=0, description="How often the SLA scanner looks for warnings and breaches")
