"""ticketing service settings (`CRM_TICKETING_*`)."""

from pydantic import Field, NonNegativeFloat
from pydantic_settings import SettingsConfigDict

from crm_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_TICKETING_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/ticketing.db"
    consumer_group: str = "ticketing"
    sla_scan_seconds: float = Field(30, gt=0, description="How often the SLA scanner looks for warnings and breaches")
    hub_delivery_seconds: float = Field(1, gt=0, description="How often the TMF621 hub looks for notifications due")
    hub_timeout_seconds: float = Field(5, gt=0, le=60, description="How long a listener has to answer a POST")
    hub_max_attempts: int = Field(10, ge=1, description="POSTs of one notification before it is given up (failed)")
    hub_backoff_seconds: tuple[NonNegativeFloat, ...] = Field(
        (5, 30, 120, 600, 3600),
        min_length=1,
        description="The wait after the 1st, 2nd… failed POST of a notification; the last repeats",
    )
    duplicate_window_hours: float = Field(
        72, gt=0, description="A new ticket repeats a customer's ticket of its category opened this recently (重复工单)"
    )
    report_gauge_seconds: float = Field(60, gt=0, description="How often the report gauges (backlog, SLA) refresh")
