"""Tables the adapter owns: the ingestion log (idempotency), the quarantine of rejected records and the
file imports."""

from datetime import datetime

from sqlalchemy import BigInteger, Index, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_kit.db import NAMING, UtcDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class IngestedRecord(Base):
    """One accepted BOSS record (入库记录). Its key makes a push idempotent across restarts.

    No index beyond the key: `event_id` is derived from the key (so unique already) and nothing looks a record up
    by it or by customer; at 20,000 records a second every index is one more B-tree write per record."""

    __tablename__ = "ingestion_log"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    boss_event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(128))
    customer_id: Mapped[str] = mapped_column(String(64))
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
    """open → replayed (accepted after a fix or as it was) or discarded (with a note)."""
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    job_id: Mapped[str | None] = mapped_column(String(36), index=True)
    """The file import the record came from, when it came from a file."""
    line_no: Mapped[int | None] = mapped_column(BigInteger)
    fixed_raw: Mapped[str | None] = mapped_column(Text)
    """The corrected record an operator saved, replayed instead of `raw`."""
    replayed_event_id: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolution_note: Mapped[str | None] = mapped_column(Text)


class ImportJob(Base):
    """A BOSS batch file (话单文件) being imported: where it is stored, how far it got, what came of it.

    `byte_offset` and the counts move forward in the same transaction as the records they cover, so a
    crashed import resumes at the first line it had not committed.
    """

    __tablename__ = "import_job"
    __table_args__ = (Index("ix_import_job_status_created", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(255))
    file_format: Mapped[str] = mapped_column(String(16))
    stored_path: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    """queued → running → completed | failed | cancelled."""
    byte_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    lines_read: Mapped[int] = mapped_column(BigInteger, default=0)
    accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    duplicates: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
