"""TMF621 Trouble Ticket v4 shapes (投诉/障碍申告), with the operator's routing, SLA and satisfaction fields as
extensions of `@type: TelecomTroubleTicket`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ErrorType

from crm_kit.shapes import Strict, TmfModel, ZonedTime

# --- enumerations ------------------------------------------------------------------------------------------------

TicketType = Literal["complaint", "trouble", "inquiry"]
"""complaint = 投诉, trouble = 故障 (障碍申告), inquiry = 咨询; free text in TMF, fixed by the event contract."""
TICKET_TYPES: tuple[TicketType, ...] = get_args(TicketType)

Severity = Literal["critical", "major", "minor"]
"""How badly the service is hurt; TMF621 gives these as examples of a free-text field."""
SEVERITIES: tuple[Severity, ...] = get_args(Severity)

Priority = Literal["critical", "high", "medium", "low"]
"""How fast to act; the values of ticketing.ticket.created.v1."""
PRIORITIES: tuple[Priority, ...] = get_args(Priority)

Status = Literal["acknowledged", "inProgress", "pending", "held", "resolved", "closed", "rejected", "cancelled"]
"""TMF621 TroubleTicketStatusType: 已受理, 处理中, 待客户反馈, 挂起, 已解决, 已关闭, 已驳回, 已撤销."""
STATUSES: tuple[Status, ...] = get_args(Status)

Category = Literal[
    "billing_dispute",
    "network_coverage",
    "service_activation",
    "handset_terminal",
    "broadband_fault",
    "value_added_service",
    "number_portability",
    "staff_complaint",
]
"""Extension: what the ticket is about; it picks the queue and the SLA policy. 计费争议, 网络覆盖, 业务开通, 终端,
宽带故障, 增值业务, 携号转网, 服务态度."""
CATEGORIES: tuple[Category, ...] = get_args(Category)

Channel = Literal["hotline", "app", "web", "store", "wechat", "email", "regulator"]
"""Where it was raised: hotline (10000/10086 客服热线), app, web (网厅), store (营业厅), wechat (微信), email, regulator
(工信部申诉, escalated by the regulator)."""
CHANNELS: tuple[Channel, ...] = get_args(Channel)

# --- field types: every accepted string has a length, so oversize input is a 422 and not a database error ---------

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
"""An id this CRM keys by (customer, agent): the event contracts' id pattern."""
RefId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S+$")]
"""An id owned by another system (a bill, a line, a regulator case): any characters but blanks."""
Href = Annotated[str, Field(min_length=1, max_length=512)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
TypeName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
Role = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]
Description = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
NoteText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
"""At most what ticketing.ticket.state_changed.v1 carries as the reason."""
QueueName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
MimeType = Annotated[str, Field(max_length=100, pattern=r"^[\w.+-]+/[\w.+-]+$")]


def _absolute_http_url(value: str) -> str:
    """Only http(s) to a named host: a relative path cannot be called back, a `javascript:` link must not reach an
    agent's screen, and credentials in a URL are shown to whoever reads it back."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL, e.g. https://listener.example/tmf/events")
    if parts.username is not None:
        raise ValueError("must not carry credentials (user:password@host)")
    return value


WebUrl = Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^\S+$"), AfterValidator(_absolute_http_url)]


def _storable(moment: datetime) -> datetime:
    """Times are stored in UTC: 9999-12-31T23:00-05:00 is a valid RFC 3339 string but no instant a database holds."""
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("must fall between the years 1 and 9999 in UTC") from None
    return moment


Instant = Annotated[ZonedTime, AfterValidator(_storable)]
"""A time in a body or a query: RFC 3339 with its offset, storable in UTC."""


# --- request bodies ----------------------------------------------------------------------------------------------


class TmfBody(TmfModel, Strict):
    """A request body in TMF camelCase: an unknown member is a mistake worth naming, and a member the server owns
    (in `server_owned`, with why) is refused with that reason, at its own place, rather than as merely unknown."""

    server_owned: ClassVar[Mapping[str, str]] = {}

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """JSON can carry U+0000 in a string, PostgreSQL text cannot hold it: refused here, at its field."""
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain the NUL character (U+0000)")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _name_server_owned(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            errors = exc.errors()
            owned = [e for e in errors if e["type"] == "extra_forbidden" and _top_name(e) in cls.server_owned]
            if not owned or any(e["type"] not in _BUILT_IN_ERRORS for e in errors):
                raise  # nothing to reword, or errors that cannot be raised again as they are
            raise ValidationError.from_exception_data(
                exc.title, [_reworded(e, cls.server_owned) if e in owned else e for e in errors]
            ) from None


_BUILT_IN_ERRORS = frozenset(get_args(ErrorType))


def _top_name(error: Any) -> Any:
    loc = error["loc"]
    return loc[0] if len(loc) == 1 else None


def _reworded(error: Any, server_owned: Mapping[str, str]) -> InitErrorDetails:
    field = error["loc"][0]
    message = PydanticCustomError(
        "server_owned", "set by the server: {why}", {"field": field, "why": server_owned[field]}
    )
    return InitErrorDetails(type=message, loc=error["loc"], input=error["input"])


class RelatedParty(TmfBody):
    """A party and its part in the ticket: `customer` (who complains; exactly one) or `agent` (who handles it)."""

    id: Id
    href: Href | None = None
    name: Name | None = None
    role: Role
    referred_type: TypeName = Field(alias="@referredType", description="e.g. Customer, Individual, Organization")


class RelatedEntity(TmfBody):
    """What the ticket is about: the line (subscription), the bill in dispute, a product or an order."""

    id: RefId
    href: Href | None = None
    name: Name | None = None
    role: Role = Field(description="e.g. disputedBill, affectedLine")
    referred_type: TypeName = Field(alias="@referredType", description="e.g. CustomerBill, Subscription, Product")


class AttachmentRef(TmfBody):
    """A file kept elsewhere (a screenshot, a scanned bill), by reference only: no binary content in a ticket."""

    id: RefId
    href: Href | None = None
    name: Name | None = None
    description: Annotated[str, Field(max_length=1000)] | None = None
    url: WebUrl | None = None
    mime_type: MimeType | None = Field(None, alias="mimeType")


class ChannelRef(TmfBody):
    """Where the ticket was raised; `id` is the channel code, `name` what the customer saw (e.g. 10086)."""

    id: Channel
    name: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class ExternalIdentifier(TmfBody):
    """The ticket's number in another system: the regulator's case number, a partner's or the BOSS's ticket id."""

    id: RefId
    owner: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(None, description="e.g. MIIT, BOSS")
    external_identifier_type: TypeName | None = Field(None, alias="externalIdentifierType")


class NoteInput(TmfBody):
    """A note added by the caller. Its id, author and date are the server's (the author is the authenticated
    caller), so they are not members here and cannot be forged."""

    text: NoteText


_SERVER_KEEPS = {
    "id": "the ticket id is assigned on create",
    "href": "derived from the id",
    "creationDate": "the time the ticket was received",
    "lastUpdate": "the time of the last change",
    "statusChange": "the history is written as the status changes",
    "statusChangeDate": "the time of the last status change",
    "resolutionDate": "the time the ticket reached resolved",
    "slaPolicyId": "chosen from the category and the customer's standing",
    "firstResponseDueDate": "computed from the SLA policy",
    "resolutionDueDate": "computed from the SLA policy",
    "slaBreached": "computed from the SLA clock",
    "escalationLevel": "raised by the SLA clock or a supervisor",
    "csat": "recorded through the satisfaction survey",
}


class TroubleTicketCreate(TmfBody):
    """A new complaint or trouble report (TMF621 TroubleTicket_Create). It starts `acknowledged` (已受理); the server
    assigns the queue and the SLA."""

    server_owned: ClassVar[Mapping[str, str]] = {
        **_SERVER_KEEPS,
        "status": "a new ticket is acknowledged; change it afterwards with PATCH",
        "statusChangeReason": "a new ticket has no status change yet",
        "expectedResolutionDate": "set by the ticket system once the ticket is worked on",
    }

    description: Description
    ticket_type: TicketType = Field(alias="ticketType")
    priority: Priority = "medium"
    severity: Severity | None = None
    name: Name | None = Field(None, description="A short title (标题)")
    category: Category
    channel: ChannelRef | None = None
    related_party: list[RelatedParty] = Field(alias="relatedParty", min_length=1, max_length=10)
    related_entity: list[RelatedEntity] = Field(default_factory=list, alias="relatedEntity", max_length=20)
    note: list[NoteInput] = Field(default_factory=list, max_length=20)
    attachment: list[AttachmentRef] = Field(default_factory=list, max_length=20)
    external_identifier: list[ExternalIdentifier] = Field(
        default_factory=list, alias="externalIdentifier", max_length=10
    )
    requested_resolution_date: Instant | None = Field(None, alias="requestedResolutionDate")

    @field_validator("related_party")
    @classmethod
    def _one_customer(cls, parties: list[RelatedParty]) -> list[RelatedParty]:
        customers = sum(party.role == "customer" for party in parties)
        if customers != 1:
            raise ValueError(f"must hold exactly one party with role 'customer' (the one it is for); {customers} given")
        return parties


_NOT_NULL = ("description", "priority", "status", "category", "queue", "related_entity", "note", "attachment")


class TroubleTicketUpdate(TmfBody):
    """A JSON merge-patch (RFC 7396) of a ticket (TMF621 TroubleTicket_Update): a member present is set, one absent is
    kept, null clears what may be empty. `note` appends; `relatedEntity` and `attachment` replace the list. A new
    `queue` or `assignee` transfers the ticket (转派); `status` moves it, with `statusChangeReason` saying why."""

    server_owned: ClassVar[Mapping[str, str]] = {
        **_SERVER_KEEPS,
        "relatedParty": "the customer of a ticket does not change; transfer it with queue or assignee",
    }

    description: Description | None = None
    severity: Severity | None = None
    priority: Priority | None = None
    status: Status | None = None
    status_change_reason: Reason | None = Field(None, alias="statusChangeReason")
    name: Name | None = None
    category: Category | None = None
    related_entity: list[RelatedEntity] | None = Field(None, alias="relatedEntity", max_length=20)
    note: list[NoteInput] | None = Field(None, max_length=20)
    attachment: list[AttachmentRef] | None = Field(None, max_length=20)
    expected_resolution_date: Instant | None = Field(None, alias="expectedResolutionDate")
    requested_resolution_date: Instant | None = Field(None, alias="requestedResolutionDate")
    queue: QueueName | None = Field(None, description="Extension: the team the ticket is transferred to")
    assignee: Id | None = Field(None, description="Extension: the agent it is transferred to; null puts it back")

    @field_validator(*_NOT_NULL, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null: a ticket always has one; leave it out to keep it as it is")
        return value

    @field_validator("status_change_reason")
    @classmethod
    def _with_status(cls, reason: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("status") is None:
            raise ValueError("says why the status changes, so it comes with status")
        return reason

    @model_validator(mode="after")
    def _something(self) -> TroubleTicketUpdate:
        if not self.model_fields_set:
            raise ValueError("a patch must change at least one field")
        return self


class CsatInput(TmfBody):
    """The customer's rating of how the ticket was handled (满意度回访): 1 very dissatisfied … 5 very satisfied."""

    score: StrictInt = Field(ge=1, le=5)
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None


# --- the resource as served --------------------------------------------------------------------------------------


class StatusChange(TmfModel):
    status: Status
    change_date: AwareDatetime = Field(alias="changeDate")
    change_reason: str | None = Field(None, alias="changeReason")


class Note(TmfModel):
    id: str
    author: str | None = None
    date: AwareDatetime
    text: str


class TroubleTicketRelationship(TmfModel):
    """A link to another ticket, e.g. `isDuplicateOf` when the same fault is reported twice (重复工单)."""

    id: str
    href: str | None = None
    relationship_type: str = Field(alias="relationshipType")


class Csat(TmfModel):
    """The satisfaction survey's answer (满意度回访), as recorded once the ticket was resolved."""

    score: int
    comment: str | None = None
    recorded_at: AwareDatetime | None = Field(None, alias="recordedAt")


class TroubleTicket(TmfModel):
    """A ticket as TMF621 serves it. TMF fields first; after them the extensions of `TelecomTroubleTicket`: category,
    routing (queue, assignee), the SLA clock and the satisfaction score."""

    id: str
    href: str
    name: str | None = None
    description: str
    severity: Severity | None = None
    priority: Priority
    ticket_type: TicketType = Field(alias="ticketType")
    status: Status
    status_change_date: AwareDatetime = Field(alias="statusChangeDate")
    status_change_reason: str | None = Field(None, alias="statusChangeReason")
    status_change: list[StatusChange] = Field(default_factory=list, alias="statusChange")
    related_party: list[RelatedParty] = Field(alias="relatedParty")
    related_entity: list[RelatedEntity] = Field(default_factory=list, alias="relatedEntity")
    note: list[Note] = Field(default_factory=list)
    attachment: list[AttachmentRef] = Field(default_factory=list)
    channel: ChannelRef | None = None
    creation_date: AwareDatetime = Field(alias="creationDate")
    last_update: AwareDatetime = Field(alias="lastUpdate")
    expected_resolution_date: AwareDatetime | None = Field(
        None, alias="expectedResolutionDate", description="The handler's estimate, told to the customer"
    )
    resolution_date: AwareDatetime | None = Field(None, alias="resolutionDate")
    requested_resolution_date: AwareDatetime | None = Field(None, alias="requestedResolutionDate")
    external_identifier: list[ExternalIdentifier] = Field(default_factory=list, alias="externalIdentifier")
    trouble_ticket_relationship: list[TroubleTicketRelationship] = Field(
        default_factory=list, alias="troubleTicketRelationship"
    )
    type: str = Field("TelecomTroubleTicket", alias="@type")
    base_type: str = Field("TroubleTicket", alias="@baseType")
    schema_location: str | None = Field(None, alias="@schemaLocation")
    category: Category
    queue: str | None = None
    assignee: str | None = Field(None, description="The agent's id; also a relatedParty with role agent")
    sla_policy_id: str | None = Field(None, alias="slaPolicyId")
    first_response_due_date: AwareDatetime | None = Field(
        None, alias="firstResponseDueDate", description="When a first answer is due (首次响应时限)"
    )
    resolution_due_date: AwareDatetime | None = Field(
        None, alias="resolutionDueDate", description="The SLA deadline (处理时限), not an estimate"
    )
    sla_breached: bool = Field(False, alias="slaBreached")
    escalation_level: int = Field(0, ge=0, alias="escalationLevel", description="0: not escalated (升级)")
    csat: Csat | None = None
