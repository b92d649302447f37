"""File imports of BOSS batch feeds (日话单文件): keeping an upload, reading it line by line, and the worker that
ingests it chunk by chunk.

A job's `byte_offset`, `lines_read` and counts move forward in the transaction that ingests their lines, so a
crashed import resumes at the first line it had not committed. A worker holds a job by a lease: the
`updated_at` it last wrote. Every write it makes is conditional on that value, so when the job is cancelled, or
claimed by another worker because ours went quiet, our chunk rolls back instead of counting twice.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import hashlib
import io
import json
import logging
import re
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_billing_adapter.domain import reading
from crm_billing_adapter.domain.ingest import Origin, ingest
from crm_billing_adapter.domain.reading import Unparsed, bytes_text
from crm_billing_adapter.models import ImportJob, QuarantinedRecord
from crm_kit.db import Database, utcnow
from crm_kit.errors import Conflict, InvalidInput, MalformedBody, NotFound, UnsupportedMediaType
from crm_kit.events import Contracts

log = logging.getLogger(__name__)

USAGE = "billing.usage.recorded.v1"
USAGE_KIND = "usage.recorded"
"""A CSV file holds usage records only (用量话单): each row is the data of one `usage.recorded` record."""
STATUSES = ("queued", "running", "completed", "failed", "cancelled")
OPEN = ("queued", "running")
RETRYABLE = ("failed", "cancelled")
"""A file whose job ended so may be uploaded again; otherwise the same file is the same import (409)."""
GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
MAX_LINE_BYTES = 1024 * 1024
KEPT_OF_LONG_LINE = 4096
WRITE_BUFFER = 1024 * 1024
MEDIA = {
    "application/octet-stream": None,
    "application/gzip": None,
    "application/x-gzip": None,
    "text/csv": "csv",
    **dict.fromkeys(reading.NDJSON_TYPES, "ndjson"),
}
"""Content types an upload may carry, and the format each one names."""
SUFFIXES = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}
INTEGER = re.compile(r"[+-]?[0-9]+")
BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


class UnreadableFile(Exception):
    """The file cannot be read (any further); the job fails with this text as its `error`."""


class LostLease(Exception):
    """The job is no longer ours to write: cancelled, or claimed by another worker after ours went quiet."""


# Upload


@dataclass(frozen=True)
class Upload:
    """What an upload says about its file, before a byte of it is read."""

    source: str
    file_format: str
    gzip: bool
    file_name: str


def describe_upload(
    *,
    source: str,
    sources: Collection[str],
    file_format: str | None,
    file_name: str | None,
    content_type: str | None,
    content_encoding: str | None,
) -> Upload:
    """The format from `format`, else the Content-Type, else the file name; gzip from Content-Encoding, a gzip
    Content-Type or a `.gz` name. The source must be one the adapter knows, so a file's records share the
    event ids (and the de-duplication) of the same records pushed by that source."""
    if source not in sources:
        raise InvalidInput(f"Unknown BOSS source {source!r}; known: {', '.join(sorted(sources))}", field="source")
    media, *params = (content_type or "application/octet-stream").split(";")
    media = media.strip().lower()
    if media not in MEDIA:
        raise UnsupportedMediaType(
            f"Content-Type {media!r} is not taken for an import; use text/csv, application/x-ndjson or "
            "application/octet-stream",
            field="Content-Type",
        )
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in reading.CHARSETS:
            raise UnsupportedMediaType(f"charset {value.strip()!r} is not supported; send UTF-8", field="Content-Type")
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; use gzip or none", field="Content-Encoding"
        )
    named = MEDIA[media]
    if file_format and named and file_format != named:
        raise InvalidInput(f"format={file_format} but the Content-Type says {named}", field="format")
    lowered = (file_name or "").lower()
    fmt = file_format or named or SUFFIXES.get(Path(lowered.removesuffix(".gz")).suffix)
    if fmt is None:
        raise InvalidInput(
            "Say the file's format: format=csv or format=ndjson (or a file name ending .csv or .ndjson)",
            field="format",
        )
    gzipped = encoding != "identity" or media in ("application/gzip", "application/x-gzip") or lowered.endswith(".gz")
    return Upload(source, fmt, gzipped, file_name or f"import.{fmt}{'.gz' if gzipped else ''}")


@dataclass(frozen=True)
class StoredFile:
    path: Path
    size: int
    sha256: str


async def store_upload(chunks: AsyncIterable[bytes], folder: Path, job_id: str, upload: Upload) -> StoredFile:
    """The body streamed to `<folder>/<job id>.<format>[.gz]` as received, hashed on the way; never the whole
    file in memory. A body that stops short (413 at the size cap, a dropped connection) leaves no file."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    part = folder / f"{job_id}.part"
    digest = hashlib.sha256()
    size = 0
    head = b""
    buffer = bytearray()
    out: IO[bytes] = await asyncio.to_thread(part.open, "wb")
    try:
        async for chunk in chunks:
            if len(head) < len(GZIP_MAGIC):
                head = (head + chunk)[: len(GZIP_MAGIC)]
            digest.update(chunk)
            size += len(chunk)
            buffer += chunk
            if len(buffer) >= WRITE_BUFFER:
                await asyncio.to_thread(out.write, bytes(buffer))
                buffer.clear()
        await asyncio.to_thread(out.write, bytes(buffer))
        await asyncio.to_thread(out.close)
        if size == 0:
            raise InvalidInput("The file is empty", field="body")
        if upload.gzip and head != GZIP_MAGIC:
            raise MalformedBody("The file was sent as gzip but is not gzip", field="body")
        # A gzip file sent without saying so is read as what it is.
        path = folder / f"{job_id}.{upload.file_format}{'.gz' if head == GZIP_MAGIC else ''}"
        await asyncio.to_thread(part.replace, path)
    except BaseException:
        out.close()
        await asyncio.to_thread(part.unlink, missing_ok=True)
        raise
    return StoredFile(path.resolve(), size, digest.hexdigest())


async def accept_upload(
    session: AsyncSession,
    chunks: AsyncIterable[bytes],
    *,
    folder: Path,
    job_id: str,
    upload: Upload,
    created_by: str,
) -> ImportJob:
    """Keep the file and queue its job. The same file from the same source again, while its job has not failed
    or been cancelled, is the same import: 409 naming that job (and the copy is not kept)."""
    stored = await store_upload(chunks, folder, job_id, upload)
    try:
        earlier = await session.scalar(
            select(ImportJob)
            .where(
                ImportJob.source == upload.source,
                ImportJob.sha256 == stored.sha256,
                ImportJob.status.not_in(RETRYABLE),
            )
            .order_by(ImportJob.created_at.desc())
            .limit(1)
        )
        if earlier is not None:
            raise Conflict(
                f"This file (sha256 {stored.sha256}) was already uploaded from {upload.source} as import "
                f"{earlier.id}, which is {earlier.status}",
                field="body",
                job_id=earlier.id,
                job_status=earlier.status,
            )
        now = utcnow()
        job = ImportJob(
            id=job_id,
            source=upload.source,
            file_name=upload.file_name,
            file_format=upload.file_format,
            stored_path=str(stored.path),
            size_bytes=stored.size,
            sha256=stored.sha256,
            status="queued",
            byte_offset=0,
            lines_read=0,
            accepted=0,
            duplicates=0,
            rejected=0,
            created_by=created_by,
            created_at=now,
            updated_at=now,
        )
        session.add(job)
        await session.flush()
    except BaseException:
        await asyncio.to_thread(stored.path.unlink, missing_ok=True)
        raise
    return job


# The job resource


async def load_job(session: AsyncSession, job_id: str) -> ImportJob:
    job = await session.get(ImportJob, job_id)
    if job is None:
        raise NotFound(f"No import job {job_id}", field="job_id")
    return job


async def list_jobs(
    session: AsyncSession, *, status: str | None, source: str | None, offset: int, limit: int
) -> tuple[int, list[ImportJob]]:
    """The total matching and one page of them, newest first."""
    query = select(ImportJob)
    if status:
        query = query.where(ImportJob.status == status)
    if source:
        query = query.where(ImportJob.source == source)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(ImportJob.created_at.desc(), ImportJob.id.desc()).offset(offset).limit(limit)
    )
    return total or 0, list(rows)


def is_gzip(job: ImportJob) -> bool:
    return job.stored_path.endswith(".gz")


def progress(job: ImportJob) -> float | None:
    """How far the reading got, 0 to 1: the byte position over the size for a plain file; unknown for gzip
    (its position is in the inflated text, its size compressed) until it completes."""
    if job.status == "completed":
        return 1.0
    if is_gzip(job) or not job.size_bytes:
        return None
    return round(min(job.byte_offset / job.size_bytes, 1.0), 4)


async def cancel(session: AsyncSession, job: ImportJob) -> ImportJob:
    """A queued or running job stops; a running one at its next chunk (that chunk is not counted)."""
    now = utcnow()
    result = await session.execute(
        update(ImportJob)
        .where(ImportJob.id == job.id, ImportJob.status.in_(OPEN))
        .values(status="cancelled", finished_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(job)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(
            f"Import {job.id} is {job.status}; only a queued or running import can be cancelled", field="status"
        )
    return job


# Reading a stored file


@dataclass(frozen=True)
class CsvLayout:
    """A CSV file's columns, checked against the usage contract, and how each cell is read."""

    columns: tuple[str, ...]
    kinds: tuple[str, ...]

    @classmethod
    def from_header(cls, line: bytes | None, contracts: Contracts) -> CsvLayout:
        schema = contracts.validators[USAGE].schema
        fields = {k: v for k, v in schema["properties"].items() if k != "boss_event_id"}
        allowed = ["event_id", *fields]
        required = ["event_id", *(f for f in schema["required"] if f != "boss_event_id")]
        expected = f"The columns are: {', '.join(allowed)} (required: {', '.join(required)})"
        text = (line or b"").removeprefix(BOM).rstrip(b"\r\n")
        if not text.strip():
            raise UnreadableFile(f"The CSV file has no header row on line 1. {expected}")
        try:
            names = [c.strip() for c in next(csv.reader([text.decode("utf-8")], strict=True))]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise UnreadableFile(f"The CSV header (line 1) cannot be read: {exc}. {expected}") from exc
        faults = []
        if unknown := [c for c in names if c not in allowed]:
            faults.append(f"unknown column(s) {', '.join(repr(c) for c in unknown)}")
        if missing := [c for c in required if c not in names]:
            faults.append(f"missing column(s) {', '.join(missing)}")
        if repeated := sorted({c for c in names if names.count(c) > 1}):
            faults.append(f"repeated column(s) {', '.join(repeated)}")
        if faults:
            raise UnreadableFile(f"The CSV header does not match {USAGE}: {'; '.join(faults)}. {expected}")
        kinds = tuple("string" if c == "event_id" else _json_type(schema, fields[c]) for c in names)
        return cls(tuple(names), kinds)

    def record(self, raw: bytes, n: int) -> Any:
        """Line `n` as a BOSS push record; a cell that is not of its column's type is passed on as written, so
        the contract check rejects the line naming that column. None for a blank line."""
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            return None
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Unparsed(bytes_text(line), f"line {n} is not UTF-8: {exc.reason} at byte {exc.start}")
        try:
            cells = next(csv.reader([text], strict=True))
        except csv.Error as exc:
            return Unparsed(text, f"line {n} is not valid CSV: {exc}")
        if len(cells) != len(self.columns):
            return Unparsed(text, f"line {n} has {len(cells)} values for the header's {len(self.columns)} columns")
        record: dict[str, Any] = {}
        data: dict[str, Any] = {}
        for name, kind, cell in zip(self.columns, self.kinds, cells, strict=True):
            cell = cell.strip()
            if not cell:
                continue
            if name == "event_id":
                record["event_id"] = cell
            else:
                data[name] = _cell(kind, cell)
        record["event_type"] = USAGE_KIND
        record["data"] = data
        return record


def _json_type(schema: dict[str, Any], prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        prop = schema["$defs"][prop["$ref"].rsplit("/", 1)[-1]]
    return str(prop.get("type", "string"))


def _cell(kind: str, cell: str) -> Any:
    if kind == "integer" and INTEGER.fullmatch(cell):
        return int(cell)
    if kind == "boolean":
        return BOOLEANS.get(cell.lower(), cell)
    return cell


def ndjson_record(raw: bytes, n: int) -> Any:
    """Line `n` of an NDJSON file as a BOSS push record, read as a push reads it; None for a blank line."""
    line = raw.rstrip(b"\r\n")
    if n == 1:
        line = line.removeprefix(BOM)
    if not line.strip():
        return None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Unparsed(bytes_text(line), f"line {n} is not UTF-8: {exc.reason} at byte {exc.start}")
    try:
        return reading.loads_record(text)
    except reading.UNREADABLE as exc:
        return Unparsed(text, f"line {n} is not valid JSON: {reading.why_unreadable(exc)}")


@dataclass
class Chunk:
    records: list[Any]
    line_numbers: list[int]
    lines_read: int
    """Lines of the file read once this chunk is in (blank ones and the CSV header included)."""
    byte_offset: int
    """Where the next chunk starts, in the file's text (inflated, for gzip)."""
    eof: bool


class LineReader:
    """A stored file read line by line from where its job got to (gzip inflated on the way), with line numbers."""

    def __init__(self, job: ImportJob, contracts: Contracts) -> None:
        path = Path(job.stored_path)
        try:
            # held across chunks, closed by close()
            self.file: IO[bytes] = gzip.open(path, "rb") if is_gzip(job) else path.open("rb")  # noqa: SIM115
        except OSError as exc:
            raise UnreadableFile(f"The stored file cannot be opened: {exc}") from exc
        self.line_no = 0
        self.position = 0
        self.layout: CsvLayout | None = None
        try:
            if job.file_format == "csv":
                header = self._line()
                self.layout = CsvLayout.from_header(header[0] if header else None, contracts)
            if job.lines_read:  # resuming: on from the first line not committed
                self.file.seek(job.byte_offset)
                self.line_no, self.position = job.lines_read, job.byte_offset
        except (OSError, EOFError, zlib.error) as exc:
            self.file.close()
            raise UnreadableFile(f"The file cannot be read: {exc}") from exc
        except BaseException:
            self.file.close()
            raise

    def _line(self) -> tuple[bytes, bool] | None:
        """The next line and whether it is whole (a line over MAX_LINE_BYTES is cut); None at the end."""
        line = self.file.readline(MAX_LINE_BYTES + 1)
        if not line:
            return None
        self.line_no += 1
        self.position += len(line)
        if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
            return line, True
        while rest := self.file.readline(MAX_LINE_BYTES):
            self.position += len(rest)
            if rest.endswith(b"\n"):
                break
        return line, False

    def read_chunk(self, max_lines: int) -> Chunk:
        """Up to `max_lines` lines as records, each with its line number (blank lines are skipped)."""
        records: list[Any] = []
        numbers: list[int] = []
        start = self.line_no
        eof = False
        try:
            while self.line_no - start < max_lines:
                got = self._line()
                if got is None:
                    eof = True
                    break
                raw, whole = got
                n = self.line_no
                if whole:
                    value = self.layout.record(raw, n) if self.layout else ndjson_record(raw, n)
                else:
                    value = Unparsed(
                        bytes_text(raw[:KEPT_OF_LONG_LINE]),
                        f"line {n} is longer than {MAX_LINE_BYTES} bytes (its first {KEPT_OF_LONG_LINE} are kept)",
                    )
                if value is not None:
                    records.append(value)
                    numbers.append(n)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableFile(f"The file cannot be read after line {self.line_no}: {exc}") from exc
        return Chunk(records, numbers, self.line_no, self.position, eof)

    def close(self) -> None:
        self.file.close()


# The worker


class ImportRun:
    """One claimed job: its lease (the `updated_at` it last wrote) and, once opened, its file."""

    def __init__(self, worker: ImportWorker, job: ImportJob, lease: datetime) -> None:
        self.worker = worker
        self.job = job
        self.lease = lease
        self.reader: LineReader | None = None

    async def step(self) -> bool:
        """Read, ingest and commit one chunk; False once the job is over (completed, failed, cancelled, taken)."""
        worker, job = self.worker, self.job
        try:
            if self.reader is None:
                self.reader = await asyncio.to_thread(LineReader, job, worker.contracts)
            chunk = await asyncio.to_thread(self.reader.read_chunk, worker.chunk_lines)
        except UnreadableFile as exc:
            log.warning("import %s failed: %s", job.id, exc)
            await self._write(status="failed", error=str(exc))
            return False
        accepted = duplicates = rejected = 0
        try:
            async with worker.db.sessions.begin() as session:
                if chunk.records:
                    origin = Origin(job.source, job_id=job.id, line_numbers=chunk.line_numbers)
                    result = await ingest(session, worker.contracts, origin, chunk.records)
                    accepted = result.count("accepted")
                    duplicates = result.count("duplicate")
                    rejected = result.count("rejected")
                lease = await self._advance(
                    session,
                    byte_offset=chunk.byte_offset,
                    lines_read=chunk.lines_read,
                    accepted=ImportJob.accepted + accepted,
                    duplicates=ImportJob.duplicates + duplicates,
                    rejected=ImportJob.rejected + rejected,
                    **({"status": "completed"} if chunk.eof else {}),
                )
        except LostLease:
            log.info(
                "import %s was cancelled or taken over; its chunk to line %d is not counted", job.id, chunk.lines_read
            )
            return False
        self.lease = lease
        if chunk.eof:
            log.info("import %s completed at line %d", job.id, chunk.lines_read)
        return not chunk.eof

    async def _advance(self, session: AsyncSession, **values: Any) -> datetime:
        """Write the job if it is still ours; the new lease. Else LostLease (and the caller's transaction rolls
        back with everything it ingested)."""
        now = utcnow()
        if values.get("status") in ("completed", "failed"):
            values["finished_at"] = now
        result = await session.execute(
            update(ImportJob)
            .where(ImportJob.id == self.job.id, ImportJob.status == "running", ImportJob.updated_at == self.lease)
            .values(updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise LostLease(self.job.id)
        return now

    async def _write(self, **values: Any) -> None:
        try:
            async with self.worker.db.sessions.begin() as session:
                self.lease = await self._advance(session, **values)
        except LostLease:
            log.info("import %s was cancelled or taken over", self.job.id)

    async def run_to_end(self) -> None:
        try:
            while await self.step():
                pass
        finally:
            self.close()

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None


class ImportWorker:
    """Picks the oldest queued (or abandoned) import and reads it through, one committed chunk at a time.

    Every replica may run one: a job is claimed with an UPDATE conditional on the status and `updated_at` it
    was seen with, so of two claimers one wins; a running job whose `updated_at` is older than the lease is
    taken as abandoned (its worker crashed) and claimed again.
    """

    def __init__(
        self,
        db: Database,
        contracts: Contracts,
        *,
        chunk_lines: int = 5000,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self.db = db
        self.contracts = contracts
        self.chunk_lines = chunk_lines
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds

    async def claim(self) -> ImportRun | None:
        now = utcnow()
        abandoned = now - timedelta(seconds=self.lease_seconds)
        async with self.db.sessions() as session:
            candidates: Sequence[ImportJob] = (
                await session.scalars(
                    select(ImportJob)
                    .where(
                        or_(
                            ImportJob.status == "queued",
                            and_(ImportJob.status == "running", ImportJob.updated_at < abandoned),
                        )
                    )
                    .order_by(ImportJob.created_at, ImportJob.id)
                    .limit(5)
                )
            ).all()
        for job in candidates:
            async with self.db.sessions.begin() as session:
                result = await session.execute(
                    update(ImportJob)
                    .where(
                        ImportJob.id == job.id,
                        ImportJob.status == job.status,
                        ImportJob.updated_at == job.updated_at,
                    )
                    .values(status="running", started_at=job.started_at or now, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                log.info("import %s claimed (%s), from line %d", job.id, job.status, job.lines_read + 1)
                return ImportRun(self, job, now)
        return None

    async def run(self) -> None:
        while True:
            try:
                claimed = await self.claim()
                if claimed is None:
                    await asyncio.sleep(self.poll_seconds)
                    continue
                await claimed.run_to_end()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is down, say: the job's lease runs out and it is claimed again
                if (task := asyncio.current_task()) is not None and task.cancelling():
                    # The cancel was swallowed below us (wait_for in 3.11): stop, don't retry.
                    raise asyncio.CancelledError from exc
                log.warning("import worker failed, retrying in %.1fs: %s", self.poll_seconds, exc, exc_info=True)
                await asyncio.sleep(self.poll_seconds)


# Rejected lines


REJECTED_COLUMNS = ("line", "reason", "field", "raw", "quarantine_id")
RECORD_INDEX = re.compile(r"^records\[\d+\]\.?")


async def rejected_pages(db: Database, job_id: str, page_size: int = 1000) -> AsyncIterator[list[dict[str, Any]]]:
    """A job's rejected lines from the quarantine, by line, a page per query (keyset), so none waits in memory."""
    last_line, last_id = -1, ""
    q = QuarantinedRecord
    while True:
        async with db.sessions() as session:
            rows = (
                await session.execute(
                    select(q.line_no, q.id, q.reason, q.field, q.raw)
                    .where(
                        q.job_id == job_id,
                        or_(q.line_no > last_line, and_(q.line_no == last_line, q.id > last_id)),
                    )
                    .order_by(q.line_no, q.id)
                    .limit(page_size)
                )
            ).all()
        if rows:
            yield [
                {
                    "line": r.line_no,
                    "reason": r.reason,
                    # the record's place in its chunk means nothing to whoever reads the file: its line does
                    "field": RECORD_INDEX.sub("", r.field or "") or None,
                    "raw": r.raw,
                    "quarantine_id": r.id,
                }
                for r in rows
            ]
        if len(rows) < page_size:
            return
        last_line, last_id = rows[-1].line_no, rows[-1].id


async def export_rejected(db: Database, job_id: str, fmt: str) -> AsyncIterator[bytes]:
    """The rejected lines as NDJSON (one object a line) or CSV (with a header row)."""
    if fmt == "csv":
        yield _csv_rows([REJECTED_COLUMNS])
    async for page in rejected_pages(db, job_id):
        if fmt == "csv":
            yield _csv_rows([[row[c] for c in REJECTED_COLUMNS] for row in page])
        else:
            yield "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in page).encode()


def _csv_rows(rows: Sequence[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()
