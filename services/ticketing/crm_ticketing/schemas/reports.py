"""The service-quality reports (服务质量报表): counts as integers, ratios as decimal strings of 4 places (null when
there was nothing to count), times in China Standard Time."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, Field

from crm_kit.shapes import TmfModel

Ratio = Annotated[str, Field(pattern=r"^[01]\.[0-9]{4}$", description="A share, 4 places, e.g. 0.9375")]


class BacklogReport(TmfModel):
    """Open tickets (未结工单) as they stand."""

    as_of: AwareDatetime = Field(alias="asOf")
    total: int = Field(ge=0)
    by_priority: dict[str, int] = Field(alias="byPriority", description="Every priority, zeros included")
    by_age: dict[str, int] = Field(
        alias="byAge", description="By time since opened: under_4h, 4h_to_24h, 1d_to_3d, 3d_to_7d, over_7d"
    )
    oldest_opened_at: AwareDatetime | None = Field(alias="oldestOpenedAt", description="null when none is open")


class ServiceQualityReport(TmfModel):
    """Tickets resolved in [from, to) and complaints opened in it."""

    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime
    resolved: int = Field(ge=0, description="Tickets resolved in the window (closed since included)")
    first_response_attainment: Ratio | None = Field(
        alias="firstResponseAttainment", description="Share answered within the first-response target (首次响应达标率)"
    )
    resolution_attainment: Ratio | None = Field(
        alias="resolutionAttainment", description="Share resolved within the resolution target (处理时限达标率)"
    )
    first_contact_resolution: Ratio | None = Field(
        alias="firstContactResolution",
        description="Share resolved without a transfer after opening and never reopened (一次解决率)",
    )
    complaints: int = Field(ge=0, description="Complaints (投诉) opened in the window")
    repeat_complaints: int = Field(
        alias="repeatComplaints", ge=0, description="Of them, from a customer who complained in the 30 days before"
    )
    repeat_complaint_rate: Ratio | None = Field(alias="repeatComplaintRate", description="重复投诉率")
