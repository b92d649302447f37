"""Reading a push: the body's encoding and media type, its records, and each record against its contract.

Pure functions, no database: `ingest` decides what happens to what these return.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import orjson

from crm_billing_adapter.events import occurred_at
from crm_kit.errors import InvalidInput, MalformedBody, PayloadTooLarge, UnsupportedMediaType
from crm_kit.events import Contracts, is_integral, topic_of

BOSS_EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # whole string (fullmatch): no trailing newline
JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")
CHARSETS = ("utf-8", "utf8")
MAX_REASON = 2000
MAX_FIELD = 256  # quarantine.field is VARCHAR(256)

Status = Literal["accepted", "duplicate", "rejected"]


@dataclass
class Unparsed:
    """A line that is not JSON; kept as text so it can be quarantined."""

    text: str
    reason: str


@dataclass
class Outcome:
    index: int
    status: Status
    event_id: str | None = None
    reason: str | None = None
    field: str | None = None
    quarantine_id: str | None = None


@dataclass
class Checked:
    """A record that passed its contract, ready to publish."""

    index: int
    boss_event_id: str
    event_type: str
    data: dict[str, Any]
    digest: str
    occurred_at: datetime


@dataclass
class Rejected:
    index: int
    reason: str
    field: str | None
    raw: str
    boss_event_id: str | None = None
    event_type: str | None = None

    def __post_init__(self) -> None:
        # What the BOSS sent may hold anything; what is stored and answered must be storable text.
        self.reason = storable(self.reason, MAX_REASON)
        self.field = storable(self.field, MAX_FIELD) if self.field is not None else None
        self.raw = storable(self.raw)


@dataclass
class BatchResult:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """gzip bodies are inflated with a ceiling, so a small bomb cannot fill memory.

    Every member of a multi-member gzip is read (`cat a.gz b.gz` is a valid gzip file), and a stream
    that stops before its end is refused rather than read in part.
    """
    if not encoding or encoding.strip().lower() == "identity":
        return body
    if encoding.strip().lower() not in ("gzip", "x-gzip"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; use gzip or none", field="Content-Encoding"
        )
    out = bytearray()
    rest = body
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise MalformedBody(f"Body is not valid gzip: {exc}", field="body") from exc
        if len(out) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"Body inflates beyond {limit} bytes", field="body")
        if not inflater.eof:
            raise MalformedBody("Body is not valid gzip: the stream ends before its end marker", field="body")
        rest = inflater.unused_data
        if not rest.strip(b"\x00"):  # trailing zero padding after the last member is tolerated, as gzip does
            return bytes(out)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads_record(text: str | bytes) -> Any:
    """JSON text → value, numbers with a fraction as Decimal (money is integer fen: 129.0 must fail "integer").

    orjson reads the common record (no fraction anywhere) several times faster; anything else it cannot take
    as it is (a fraction, a number beyond 64 bits, a lone surrogate, an error to explain) is read again by the
    standard library, whose behaviour and messages are the rules here.
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    else:
        if is_integral(value):
            return value
    return json.loads(text, parse_float=Decimal, parse_constant=_no_constant)


# What a JSON text can fail with in Python besides JSONDecodeError: an undecodable byte, a number of
# more than 4300 digits (ValueError), nesting deeper than the interpreter's recursion limit.
UNREADABLE = (ValueError, RecursionError)


def why_unreadable(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def media_type(content_type: str | None) -> str:
    """`json` or `ndjson` from a Content-Type; 415 for anything else, or for a charset other than UTF-8."""
    media, *params = (content_type or "application/json").split(";")
    media = media.strip().lower()
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in CHARSETS:
            raise UnsupportedMediaType(f"charset {value.strip()!r} is not supported; send UTF-8", field="Content-Type")
    if media in NDJSON_TYPES:
        return "ndjson"
    if media in JSON_TYPES or not media:
        return "json"
    raise UnsupportedMediaType(
        f"Content-Type {media!r} is not supported; use application/json or application/x-ndjson",
        field="Content-Type",
    )


def parse_records(body: bytes, content_type: str | None) -> list[Any]:
    """The records of a push: `{"records": [...]}` or a JSON array, or NDJSON (one record a line).

    NDJSON lines end at "\\n" only (U+2028 and friends are ordinary characters inside a JSON string);
    a line that is not UTF-8 or not JSON becomes an `Unparsed` record, quarantined on its own.
    """
    if media_type(content_type) == "ndjson":
        records: list[Any] = []
        for n, chunk in enumerate(body.split(b"\n"), start=1):
            chunk = chunk.removesuffix(b"\r")
            if n == 1:
                chunk = chunk.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
            if not chunk.strip():
                continue
            try:
                line = chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                records.append(Unparsed(bytes_text(chunk), f"line {n} is not UTF-8: {exc.reason} at byte {exc.start}"))
                continue
            try:
                records.append(loads_record(line))
            except UNREADABLE as exc:
                records.append(Unparsed(line, f"line {n} is not valid JSON: {why_unreadable(exc)}"))
        return records
    try:
        doc = loads_record(body)
    except UNREADABLE as exc:
        raise MalformedBody(f"Body is not valid JSON: {why_unreadable(exc)}", field="body") from exc
    if isinstance(doc, dict) and isinstance(doc.get("records"), list):
        return list(doc["records"])
    if isinstance(doc, list):
        return doc
    raise InvalidInput('Body must be {"records": [...]} or a JSON array of records', field="records")


def json_text(value: Any, *, sort_keys: bool = False) -> str:
    """A parsed record back as JSON text, numbers as they were written (129.0 stays 129.0, not "129.0");
    a string that is not Unicode text (an unpaired surrogate) is kept, escaped, so the text can be stored."""
    text = _dump(value, sort_keys=sort_keys, ensure_ascii=False)
    return text if _is_text(text) else _dump(value, sort_keys=sort_keys, ensure_ascii=True)


def _dump(value: Any, *, sort_keys: bool, ensure_ascii: bool) -> str:
    if is_integral(value):  # the common case: no number to keep as written
        return json.dumps(value, ensure_ascii=ensure_ascii, sort_keys=sort_keys)
    numbers: list[Decimal] = []
    token = uuid.uuid4().hex

    def mark(v: Any) -> Any:
        if isinstance(v, Decimal):
            numbers.append(v)
            return f"{token}:{len(numbers) - 1}"
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list):
            return [mark(x) for x in v]
        return v

    text = json.dumps(mark(value), ensure_ascii=ensure_ascii, sort_keys=sort_keys)
    if numbers:
        text = re.sub(f'"{token}:([0-9]+)"', lambda m: str(numbers[int(m.group(1))]), text)
    return text


def _is_text(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def bytes_text(body: bytes) -> str:
    """Bytes that may not be UTF-8, as text that keeps every byte visible."""
    return body.decode("utf-8", errors="backslashreplace")


def storable(s: str, limit: int | None = None) -> str:
    """Text any database takes: no NUL (PostgreSQL refuses it), no unpaired surrogate, bounded."""
    s = s.replace("\x00", "\\u0000")
    if not _is_text(s):
        s = s.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return s[:limit] if limit is not None else s


def _not_text(value: Any, at: str) -> str | None:
    """Where the first string (or key) holding an unpaired surrogate is, if any: that is not Unicode text."""
    if isinstance(value, str):
        return None if _is_text(value) else at
    if isinstance(value, dict):
        for k, v in value.items():
            if not _is_text(k):
                return at
            found = _not_text(v, f"{at}.{k}")
            if found:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _not_text(v, f"{at}[{i}]")
            if found:
                return found
    return None


def check_record(contracts: Contracts, index: int, value: Any) -> Checked | Rejected:
    """One BOSS record against the shape `{event_id, event_type, data}` and its event's contract."""
    at = f"records[{index}]"
    if isinstance(value, Unparsed):
        return Rejected(index, value.reason, at, value.text)
    if not isinstance(value, dict):
        return Rejected(index, "record must be a JSON object", at, json_text(value))
    boss_id = value.get("event_id")
    if not isinstance(boss_id, str) or not BOSS_EVENT_ID.fullmatch(boss_id):
        return Rejected(
            index, "event_id is required: 1-64 characters of A-Z a-z 0-9 . _ : -", f"{at}.event_id", json_text(value)
        )
    kind = value.get("event_type")
    event_type = f"billing.{kind}.v1" if isinstance(kind, str) else None
    if event_type is None or not contracts.knows(event_type) or not topic_of(event_type).startswith("billing."):
        known = sorted(
            t.removeprefix("billing.").removesuffix(".v1") for t in contracts.event_types if t.startswith("billing.")
        )
        return Rejected(
            index,
            f"unknown event_type {kind!r}; known: {', '.join(known)}",
            f"{at}.event_type",
            json_text(value),
            boss_id,
        )
    data = value.get("data")
    if not isinstance(data, dict):
        return Rejected(
            index, "data is required and must be an object", f"{at}.data", json_text(value), boss_id, event_type
        )
    data = {**data, "boss_event_id": boss_id}
    integral = is_integral(data)
    canonical = _canonical(kind, data, integral)
    if canonical is None:
        return Rejected(
            index,
            "data holds a string that is not valid Unicode text (an unpaired surrogate)",
            _not_text(data, f"{at}.data") or f"{at}.data",
            json_text(value),
            boss_id,
            event_type,
        )
    violations = contracts.violations(event_type, data, integral=integral)
    if violations:
        reason = "; ".join(f"data.{v.field}: {v.message}" if v.field else v.message for v in violations[:5])
        first = violations[0].field
        return Rejected(
            index,
            reason[:MAX_REASON],
            f"{at}.data.{first}" if first else f"{at}.data",
            json_text(value),
            boss_id,
            event_type,
        )
    try:
        occurred = occurred_at(data)
    except (KeyError, TypeError, ValueError) as exc:
        return Rejected(
            index, f"data.occurred_at: {exc}", f"{at}.data.occurred_at", json_text(value), boss_id, event_type
        )
    return Checked(index, boss_id, event_type, data, hashlib.sha256(canonical).hexdigest(), occurred)


def _canonical(kind: str, data: dict[str, Any], integral: bool) -> bytes | None:
    """The record's content as JSON with sorted keys, what its digest is taken of (the same content, the same
    bytes); None when a string in it is not Unicode text (an unpaired surrogate, which orjson refuses)."""
    record = {"event_type": kind, "data": data}
    if integral:
        try:
            return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            return None
    text = _dump(record, sort_keys=True, ensure_ascii=False)
    return text.encode() if _is_text(text) else None
