"""The satisfaction report (满意度统计): averages and shares as decimal strings, so no client sees
3.6666666666666665 or adds up rounding errors."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, Field

from crm_kit.shapes import TmfModel

TwoPlaces = Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]{2}$")]


class CsatGroupRow(TmfModel):
    group: str | None = Field(description="The agent, queue or category; null: tickets with none")
    count: int = Field(ge=1, description="Surveys recorded in the window")
    average: TwoPlaces = Field(description="Mean score, 2 places, e.g. 4.33")
    satisfied: TwoPlaces = Field(description="Share of scores 4 and 5, 2 places, e.g. 0.75")


class CsatReport(TmfModel):
    by: str = Field(description="agent, queue or category")
    from_: AwareDatetime | None = Field(None, alias="from", description="Inclusive, on when the survey was recorded")
    to: AwareDatetime | None = Field(None, description="Exclusive")
    groups: list[CsatGroupRow] = Field(description="Ordered by group, null last")
