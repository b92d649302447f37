"""Consent and do-not-disturb shapes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, StrictBool

from crm_kit.shapes import Strict, ZonedTime

Channel = Literal["sms", "email", "push", "outbound_call"]
Purpose = Literal["marketing", "service"]
Source = Literal["app", "web", "store", "hotline", "sms_reply", "boss", "agent"]


class ConsentIn(Strict):
    """The customer gives (`granted: true`) or withdraws (`false`) consent on one channel for one purpose."""

    granted: StrictBool
    source: Source = Field(description="Where the customer said so: app, web, store (营业厅), hotline, sms_reply, …")
    recorded_at: ZonedTime | None = Field(
        None, description="When the customer said so (default: now); not in the future, not older than the record"
    )


class DoNotDisturbIn(Strict):
    """The customer asks for no marketing at all (免打扰), optionally until a moment, or lifts it."""

    enabled: StrictBool
    until: ZonedTime | None = Field(None, description="When it ends by itself; only with enabled, in the future")
    source: Source
    recorded_at: ZonedTime | None = Field(None, description="When the customer asked (default: now)")


class ConsentOut(BaseModel):
    channel: Channel
    purpose: Purpose
    granted: bool = Field(description="The consent in force: as recorded, else the default (marketing no, service yes)")
    recorded: bool = Field(description="false: nothing on record, the default applies")
    contactable: bool = Field(description="May be contacted now for this purpose on this channel (do-not-disturb too)")
    source: Source | None
    recorded_at: str | None
    updated_at: str | None


class DoNotDisturbOut(BaseModel):
    enabled: bool = Field(description="As recorded")
    active: bool = Field(description="In force now: enabled and `until`, if any, not yet passed")
    until: str | None
    source: Source | None
    recorded_at: str | None
    updated_at: str | None


class CustomerConsentsOut(BaseModel):
    customer_id: str
    href: str
    consents: list[ConsentOut] = Field(description="Every channel × purpose")
    do_not_disturb: DoNotDisturbOut


class ConsentHistoryOut(BaseModel):
    """One change, as it happened. kind=consent: channel, purpose, granted; kind=do_not_disturb: enabled, until."""

    id: int
    kind: Literal["consent", "do_not_disturb"]
    channel: Channel | None
    purpose: Purpose | None
    granted: bool | None
    enabled: bool | None
    until: str | None
    source: Source
    recorded_at: str
    changed_by: str
    changed_at: str
