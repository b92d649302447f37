"""churn service settings (`CRM_CHURN_*`)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from crm_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_CHURN_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/churn.db"
    consumer_group: str = "churn"
    churn_horizon_days: int = Field(60, ge=7, le=365, description="Churn (离网) = every line closed within this")
    bad_debt_horizon_days: int = Field(
        120, ge=30, le=365, description="Bad debt (坏账) = a bill more than 90 days overdue within this"
    )
    snapshot_hour: int = Field(
        6,
        ge=0,
        le=23,
        description="Training snapshots are taken on the 1st of each month at this hour (Asia/Shanghai), after the "
        "BOSS has sent the month's bills (02:00) and the last day's usage (01:30)",
    )
    batch_score_hour: int | None = Field(
        3, ge=0, le=23, description="The whole base is scored every day at this hour (Asia/Shanghai); None: on request"
    )
    high_band_share: float = Field(0.10, gt=0, lt=1, description="The riskiest share of the base called high (高危)")
    medium_band_share: float = Field(0.20, gt=0, lt=1, description="The next share called medium (中危)")
    gauge_seconds: float = Field(60, gt=0, description="How often the model, band and freshness gauges refresh")
