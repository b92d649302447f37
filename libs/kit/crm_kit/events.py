"""CloudEvents 1.0 envelope and the contracts in `contracts/` (JSON Schema per event type, topic list)."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import yaml
from asgi_correlation_id import correlation_id
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError as SchemaError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from crm_kit.db import utcnow

TYPE_PATTERN = r"^[a-z][a-z_]*\.[a-z][a-z_]*\.[a-z][a-z_]*\.v[0-9]+$"
DLQ_SUFFIX = ".dlq"


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured JSON mode; `subject` is the customer id."""

    model_config = ConfigDict(extra="allow")

    specversion: str = Field("1.0", pattern=r"^1\.0$")
    id: str = Field(min_length=1, max_length=64)
    source: str = Field(min_length=1)
    type: str = Field(pattern=TYPE_PATTERN)
    subject: str | None = None
    time: AwareDatetime
    datacontenttype: str = "application/json"
    data: dict[str, Any]
    traceparent: str | None = None
    correlationid: str | None = None

    @property
    def topic(self) -> str:
        return topic_of(self.type)

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


def parse_rfc3339(value: object) -> datetime:
    """An RFC 3339 date-time as the contracts allow it. Python 3.11's `fromisoformat` refuses the lower-case
    `t`/`z` RFC 3339 permits; the upper-case spelling is the same instant. A time without offset is refused."""
    if not isinstance(value, str):
        raise TypeError("a date-time must be a string")
    moment = datetime.fromisoformat(value.upper())
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no zone offset")
    return moment


@lru_cache(maxsize=1024)
def topic_of(event_type: str) -> str:
    """`billing.subscription.activated.v1` → `billing.subscription`. Cached: a feed asks it for every record, of a
    few dozen types."""
    domain, entity, *_ = event_type.split(".")
    return f"{domain}.{entity}"


def new_event(
    event_type: str,
    *,
    source: str,
    subject: str,
    data: dict[str, Any],
    event_id: str | None = None,
    time: datetime | None = None,
) -> CloudEvent:
    """A fresh event carrying the current request's correlation id."""
    return CloudEvent(
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=event_type,
        subject=subject,
        time=time or utcnow(),
        data=data,
        correlationid=correlation_id.get(),
    )


def event_json(
    event_type: str, *, source: str, subject: str, data: dict[str, Any], event_id: str, time: datetime
) -> str:
    """The JSON of `new_event(...).to_json()` without building the model: for callers staging thousands of
    events a second whose data is already checked against its contract (a Decimal is written as a string, as
    the model writes it)."""
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "subject": subject,
        "time": time,
        "datacontenttype": "application/json",
        "data": data,
    }
    if (correlation := correlation_id.get()) is not None:
        envelope["correlationid"] = correlation
    return orjson.dumps(envelope, default=str).decode()


@lru_cache(maxsize=512)
def _ecma_pattern(pattern: str) -> re.Pattern[str]:
    """JSON Schema patterns are ECMA-262: a final `$` ends the string. Python's `$` also matches before a
    trailing newline, which would let `"13812345678\n"` pass as an MSISDN."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if validator.is_type(instance, "string") and not _ecma_pattern(pattern).search(instance):
        yield SchemaError(f"{instance!r} does not match {pattern!r}")


ContractValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


@dataclass
class Violation:
    field: str
    message: str


class ContractViolation(Exception):
    """The event does not match its contract; `violations` say where."""

    def __init__(self, event_type: str, violations: list[Violation]) -> None:
        self.event_type = event_type
        self.violations = violations
        first = violations[0]
        super().__init__(f"{first.field}: {first.message}" if first.field else first.message)


@dataclass
class Topic:
    name: str
    key: str
    partitions: int
    retention: str
    producer: str
    consumers: list[str]
    events: list[str]
    description: str = ""

    @property
    def dlq(self) -> str:
        return self.name + DLQ_SUFFIX


def _field(path: Any) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def is_integral(value: Any) -> bool:
    """No float or Decimal anywhere in a parsed JSON value (a loop, not recursion: it runs for every record)."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is dict:
            pending.extend(item.values())
        elif kind is list:
            pending.extend(item)
        elif kind is float or kind is Decimal:
            return False
    return True


def _matches_any(patterns: dict[str, Any], name: str) -> bool:
    return any(re.search(p, name) for p in patterns)


@dataclass
class Contracts:
    """Schemas by event type and the topic list, loaded once from a contracts folder."""

    root: Path
    validators: dict[str, Any] = field(default_factory=dict)
    fast_validators: dict[str, Any] = field(default_factory=dict)
    topics: dict[str, Topic] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> Contracts:
        c = cls(root=root)
        for path in sorted((root / "events").glob("*.json")):
            schema = json.loads(path.read_text(encoding="utf-8"))
            Draft202012Validator.check_schema(schema)
            c.validators[path.stem] = ContractValidator(schema, format_checker=FormatChecker())
            c.fast_validators[path.stem] = jsonschema_rs.validator_for(schema, validate_formats=True)
        spec = yaml.safe_load((root / "topics.yaml").read_text(encoding="utf-8"))
        for name, t in spec["topics"].items():
            c.topics[name] = Topic(name=name, **t)
        return c

    @property
    def event_types(self) -> list[str]:
        return sorted(self.validators)

    def knows(self, event_type: str) -> bool:
        return event_type in self.validators

    def violations(self, event_type: str, data: Any, *, integral: bool | None = None) -> list[Violation]:
        """What is wrong with `data` under its contract; empty when nothing is.

        Two validators of the same schema: the compiled one (Rust, ~1 µs) answers "valid" for the records that
        are, which is nearly all of them; the Python one explains the rest field by field. Data holding a
        non-integer number goes to the Python one only: the compiled one takes 129.0 for an integer, as JSON
        Schema allows, where our contracts want money written as whole fen. A caller that has already looked
        through `data` for such numbers passes what it found as `integral`.
        """
        validator = self.validators.get(event_type)
        if validator is None:
            return [Violation("type", f"unknown event type {event_type!r}")]
        if integral is None:
            integral = is_integral(data)
        if integral and self.fast_validators[event_type].is_valid(data):
            return []
        errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
        out = []
        for e in errors:
            where = _field(e.absolute_path)
            if e.validator == "required":
                missing = e.message.split("'")[1] if "'" in e.message else ""
                where = f"{where}.{missing}" if where else missing
                out.append(Violation(where, "is required"))
            elif e.validator == "additionalProperties" and isinstance(e.instance, dict):
                # Name the unexpected field itself, not the object that holds it.
                allowed = e.schema.get("properties", {})
                patterns = e.schema.get("patternProperties", {})
                for name in sorted(k for k in e.instance if k not in allowed and not _matches_any(patterns, k)):
                    out.append(Violation(f"{where}.{name}" if where else name, "is not allowed"))
            else:
                out.append(Violation(where, e.message))
        return out

    def validate(self, event_type: str, data: Any) -> None:
        found = self.violations(event_type, data)
        if found:
            raise ContractViolation(event_type, found)

    def validate_type(self, event: CloudEvent) -> None:
        """The event's type has a contract and a topic."""
        if not self.knows(event.type):
            raise ContractViolation(event.type, [Violation("type", f"unknown event type {event.type!r}")])
        if topic_of(event.type) not in self.topics:
            raise ContractViolation(event.type, [Violation("type", f"no topic for {event.type!r}")])

    def validate_event(self, event: CloudEvent) -> None:
        self.validate_type(event)
        self.validate(event.type, event.data)


@lru_cache(maxsize=8)
def load_contracts(root: Path) -> Contracts:
    return Contracts.load(root)


def parse_event(raw: bytes) -> CloudEvent:
    """Bytes off the bus → a CloudEvent, or ContractViolation saying what is wrong with the envelope."""
    try:
        return CloudEvent.model_validate_json(raw)
    except ValidationError as exc:
        violations = [Violation(_field(e["loc"]), e["msg"]) for e in exc.errors()]
        raise ContractViolation("envelope", violations) from exc
