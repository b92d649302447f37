"""Tables the ticketing service owns: tickets (工单) with their status history, notes, transfers (转派) and SLA
clocks, and its projection of customer.profile (who is a key account, 大客户)."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_kit.db import NAMING, BigId, UtcDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Ticket(Base):
    """A trouble ticket (TMF621): a complaint (投诉), a fault report (障碍申告) or an inquiry (咨询) of one customer.

    The customer is kept in columns (it is what lists filter on and events are keyed by); the other parties,
    related entities, attachments and external identifiers are kept as given, as JSON lists in TMF camelCase."""

    __tablename__ = "ticket"
    __table_args__ = (
        Index("ix_ticket_status_priority_created", "status", "priority", "creation_date", "id"),
        Index("ix_ticket_queue_status_created", "queue", "status", "creation_date", "id"),
        Index("ix_ticket_assignee_status_created", "assignee", "status", "creation_date", "id"),
        Index("ix_ticket_type_created", "ticket_type", "creation_date"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, doc="TT + 20 characters, sortable by creation")
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    customer_name: Mapped[str | None] = mapped_column(String(200))
    customer_referred_type: Mapped[str] = mapped_column(String(64), doc="Customer, Individual or Organization")
    ticket_type: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32), index=True)
    priority: Mapped[str] = mapped_column(String(16), index=True)
    severity: Mapped[str | None] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_change_date: Mapped[datetime] = mapped_column(UtcDateTime)
    status_change_reason: Mapped[str | None] = mapped_column(String(300))
    channel: Mapped[str] = mapped_column(String(16), index=True)
    channel_name: Mapped[str | None] = mapped_column(String(64))
    queue: Mapped[str | None] = mapped_column(String(64))
    assignee: Mapped[str | None] = mapped_column(String(64))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    sla_policy_id: Mapped[str] = mapped_column(String(64))
    key_account: Mapped[bool] = mapped_column(Boolean, doc="the customer's standing when the ticket was opened")
    related_parties: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, doc="parties other than the customer and the assignee"
    )
    related_entities: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    external_identifiers: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    creation_date: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    last_update: Mapped[datetime] = mapped_column(UtcDateTime)
    expected_resolution_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    requested_resolution_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolution_date: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    first_responded_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="首次响应: the first move on")
    csat_score: Mapped[int | None] = mapped_column(Integer)
    csat_comment: Mapped[str | None] = mapped_column(String(500))
    csat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    duplicate_of: Mapped[str | None] = mapped_column(
        ForeignKey("ticket.id", ondelete="SET NULL"), index=True, doc="重复工单: the ticket this one repeats"
    )


class TicketStatusChange(Base):
    """Every status a ticket has been in, from acknowledged on: who moved it, when and why."""

    __tablename__ = "ticket_status_change"
    __table_args__ = (Index("ix_ticket_status_change_ticket_seq", "ticket_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(String(16), doc="null for the first, acknowledged")
    status: Mapped[str] = mapped_column(String(16))
    change_date: Mapped[datetime] = mapped_column(UtcDateTime)
    change_reason: Mapped[str | None] = mapped_column(String(300))
    changed_by: Mapped[str] = mapped_column(String(128))


class TicketNote(Base):
    """A note on a ticket (备注), written by the authenticated caller; notes are only ever added."""

    __tablename__ = "ticket_note"
    __table_args__ = (Index("ix_ticket_note_ticket_seq", "ticket_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(128))
    date: Mapped[datetime] = mapped_column(UtcDateTime)
    text: Mapped[str] = mapped_column(Text)


class TicketTransfer(Base):
    """A change of queue or assignee (转派): from where to where, by whom, when."""

    __tablename__ = "ticket_transfer"
    __table_args__ = (Index("ix_ticket_transfer_ticket_seq", "ticket_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"))
    from_queue: Mapped[str | None] = mapped_column(String(64))
    to_queue: Mapped[str | None] = mapped_column(String(64))
    from_assignee: Mapped[str | None] = mapped_column(String(64))
    to_assignee: Mapped[str | None] = mapped_column(String(64))
    transferred_by: Mapped[str] = mapped_column(String(128))
    transferred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str | None] = mapped_column(String(300), doc="why, e.g. the SLA clock whose breach escalated it")


class SlaClockRow(Base):
    """One SLA clock of a ticket (crm_ticketing.domain.sla.SlaClock, persisted): first response (首次响应) or
    resolution (处理时限). Exactly one of running_since, paused_at, stopped_at is set. `due_at` is when the clock
    breaches if it keeps running; null while paused or stopped, so `due_at <= now` finds exactly the running clocks
    that are due. `warn_at` is the same for the 80% warning (预警), kept as a column because on a business calendar
    it cannot be computed in SQL."""

    __tablename__ = "sla_clock"
    __table_args__ = (CheckConstraint("kind IN ('first_response', 'resolution')", name="kind"),)

    ticket_id: Mapped[str] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    target_seconds: Mapped[int] = mapped_column(Integer)
    calendar: Mapped[str] = mapped_column(String(32), doc="a name in DEFAULT_CALENDARS")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    accumulated_us: Mapped[int] = mapped_column(
        BigInteger, doc="business time counted before the current running segment, in microseconds"
    )
    running_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    paused_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    breached_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    warned_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="when the 80% warning (预警) went out")
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    warn_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, index=True, doc="when the 80% warning is due if the clock keeps running; null like due_at"
    )


class CustomerStanding(Base):
    """What ticketing knows of a customer, from customer.profile: whether it is a key account (大客户, the SLA's
    green channel 绿色通道) and who its account manager (客户经理) is, whether it was erased or merged away."""

    __tablename__ = "customer_standing"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_account: Mapped[bool] = mapped_column(Boolean, default=False)
    key_account_tier: Mapped[str | None] = mapped_column(String(16), doc="strategic, gold, silver")
    account_manager: Mapped[str | None] = mapped_column(String(128), index=True)
    last_event_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, doc="changed_at of the newest key-account change applied: an older one arriving late is skipped"
    )
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    merged_into: Mapped[str | None] = mapped_column(String(64), doc="the surviving customer of a merged duplicate")


class Queue(Base):
    """A work queue (工单队列) of agents with one skill: the categories it serves, and how it hands tickets out:
    `round_robin` (轮询) in turn after `last_assignee`, or `least_loaded` (最少负荷) to whoever has fewest open."""

    __tablename__ = "queue"
    __table_args__ = (CheckConstraint("strategy IN ('round_robin', 'least_loaded')", name="strategy"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    categories: Mapped[list[str]] = mapped_column(JSON, doc="ticket categories routed here when a ticket is opened")
    key_accounts: Mapped[bool] = mapped_column(
        Boolean, default=False, doc="the green channel (绿色通道): key accounts' tickets of its categories come here"
    )
    strategy: Mapped[str] = mapped_column(String(16))
    last_assignee: Mapped[str | None] = mapped_column(String(64), doc="round robin: who was handed the last ticket")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class QueueAgent(Base):
    """An agent (坐席) who works a queue; one that is not `available` (on break, off shift) is handed nothing."""

    __tablename__ = "queue_agent"

    queue_id: Mapped[str] = mapped_column(ForeignKey("queue.id", ondelete="CASCADE"), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    available: Mapped[bool] = mapped_column(Boolean, default=True)
    max_open: Mapped[int | None] = mapped_column(Integer, doc="open tickets beyond which the agent is passed over")
    joined_at: Mapped[datetime] = mapped_column(UtcDateTime)


class HubSubscription(Base):
    """A TMF621 listener (`/hub`): a partner's or the regulator platform's endpoint, called back with the ticket
    events its query selects, each POST signed with the listener's own secret."""

    __tablename__ = "hub_subscription"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    callback: Mapped[str] = mapped_column(String(2000))
    query: Mapped[str | None] = mapped_column(String(1000))
    event_types: Mapped[list[str]] = mapped_column(JSON, doc="the TMF event types the query selects; all when empty")
    secret: Mapped[str] = mapped_column(String(128), doc="the HMAC-SHA256 key the deliveries are signed with")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class HubDelivery(Base):
    """One TMF event owed to one listener, staged with the change it reports so none is lost, and POSTed by the
    delivery worker until the listener answers 2xx; retried with backoff, given up (`failed`, kept with the last
    error) after the last attempt."""

    __tablename__ = "hub_delivery"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="state"),
        Index("ix_hub_delivery_due", "next_attempt_at"),
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("hub_subscription.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[str] = mapped_column(String(32), index=True)
    body: Mapped[str] = mapped_column(Text, doc="the JSON POSTed, fixed when staged: the ticket as the event left it")
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="null once delivered or given up")
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class KnowledgeArticle(Base):
    """A knowledge-base article (知识库文章): how to answer a common problem, for agents only (`agent`, 内部口径) or
    for the self-service channel too (`public`); searched once `published`, out of sight once `retired`.

    `search_text` holds its distinct search terms (crm_ticketing.domain.knowledge), indexed per database by migration
    0004: an FTS5 table kept in step by triggers on SQLite, a GIN index over the terms as an array on PostgreSQL."""

    __tablename__ = "knowledge_article"
    __table_args__ = (
        CheckConstraint("audience IN ('agent', 'public')", name="audience"),
        CheckConstraint("status IN ('draft', 'published', 'retired')", name="status"),
        Index("ix_knowledge_article_status_audience", "status", "audience"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(32), doc="a ticket category; null: general (通用)")
    keywords: Mapped[list[str]] = mapped_column(JSON)
    audience: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    author: Mapped[str] = mapped_column(String(128))
    search_text: Mapped[str] = mapped_column(Text, doc="distinct terms of title, keywords and body, space-separated")
    helpful: Mapped[int] = mapped_column(Integer, default=0)
    not_helpful: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
