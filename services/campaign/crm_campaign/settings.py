"""campaign service settings (`CRM_CAMPAIGN_*`)."""

from datetime import time
from decimal import Decimal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from crm_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_CAMPAIGN_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/campaign.db"
    consumer_group: str = "campaign"
    default_holdout: Decimal = Field(
        Decimal("0.10"), ge=0, lt=1, description="A campaign's control group (对照组) share unless it sets its own"
    )
    default_response_window_days: int = Field(
        30, ge=1, le=180, description="How long after a contact a response counts, unless the campaign sets it"
    )
    quiet_start: time = Field(time(21, 0), description="No SMS, push or outbound call from (Shanghai wall clock)")
    quiet_end: time = Field(time(8, 0), description="… until (the contacts held back go then)")
    weekly_marketing_cap: int = Field(2, ge=0, description="Marketing contacts per customer in 7 days, all campaigns")
    exclude_open_complaints: bool = Field(True, description="No marketing to a customer with an open complaint")
    dispatch_seconds: float = Field(
        30,
        gt=0,
        description="How often due campaigns are launched, running ones dispatched, ended ones closed",
    )
    report_gauge_seconds: float = Field(
        300, gt=0, description="How often the running campaigns' report figures are computed again for Prometheus"
    )
    dispatch_batch_size: int = Field(1000, ge=1, le=20_000, description="Contacts decided per transaction")
    dispatch_rate_per_second: float | None = Field(
        200, gt=0, description="The most contacts a campaign sends a second (None: as fast as the database goes)"
    )
