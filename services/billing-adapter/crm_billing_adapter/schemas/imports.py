"""Shapes of the file import API (BOSS batch files, 话单文件)."""

from typing import Literal

from pydantic import BaseModel, Field

ImportStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
FileFormat = Literal["csv", "ndjson"]


class ImportJobView(BaseModel):
    """An import job: the file, how far reading it got, and what came of its lines."""

    id: str
    href: str
    source: str = Field(description="The BOSS source the records are from (计费源)")
    file_name: str
    format: FileFormat
    gzip: bool = Field(description="Whether the file is gzip-compressed (read inflated)")
    size_bytes: int = Field(description="The file's size as uploaded")
    sha256: str | None
    status: ImportStatus
    lines_read: int = Field(description="Lines of the file read and committed (blank lines and a CSV header count)")
    accepted: int
    duplicates: int
    rejected: int
    progress: float | None = Field(
        description="0 to 1, from the byte position for a plain file; null for gzip until it completes"
    )
    error: str | None = Field(description="Why the job failed, when it did")
    created_by: str | None
    created_at: str = Field(description="Asia/Shanghai time with its offset")
    started_at: str | None
    finished_at: str | None
    updated_at: str
    rejected_href: str = Field(description="The rejected lines, as NDJSON or CSV")
