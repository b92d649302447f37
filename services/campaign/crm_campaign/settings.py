"""campaign service settings (`CRM_CAMPAIGN_*`)."""

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
