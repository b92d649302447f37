"""Tables the adapter owns: the ingestion log (idempotency) and the quarantine of rejected records."""

from datetime import datetime

from sqlalchemy import Index, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_kit.db import NAMING, UtcDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class IngestedRecord(Base):
    """One accepted BOSS record (入库记录). Its key makes a push idempotent across restarts."""

    __tablename__ = "ingestion_log"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    boss_event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_type: Mapped[str] = mapped_column(String(128))
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    payload_sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class QuarantinedRecord(Base):
    """A record the adapter could not accept, kept with its reason and raw text (隔离区)."""

    __tablename__ = "quarantine"
    __table_args__ = (Index("ix_quarantine_status_received", "status", "received_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    boss_event_id: Mapped[str | None] = mapped_column(String(64), index=True)
    event_type: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    field: Mapped[str | None] = mapped_column(String(256))
    raw: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
