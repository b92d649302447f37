"""What ticketing tells the rest of the system on ticketing.ticket: created and state_changed read back from the real
broker, valid against their contracts, keyed by the customer, carrying the request's correlation id; nothing for a
refused change; and the three builders against the contracts on their own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_kit.events import ContractViolation, load_contracts, parse_rfc3339
from crm_kit.settings import find_contracts_dir
from crm_ticketing import events
from crm_ticketing.models import Ticket

CREATED = "ticketing.ticket.created.v1"
STATE_CHANGED = "ticketing.ticket.state_changed.v1"
TICKETS = "/tmf-api/troubleTicket/v4/troubleTicket"
LONG = (
    "客户反映自11月20日起小区4G信号时有时无, 通话经常中断, 影响工作; "
    "已重启手机并更换SIM卡仍无改善, 要求尽快处理并给予补偿"
)


async def test_created_and_state_changed_are_published_valid_keyed_and_correlated(service):
    opened = await service.http.post(TICKETS, json=service.body("C1"))
    assert opened.status_code == 201, opened.text
    first = opened.json()["id"]
    untitled = service.body("C2", description=LONG, category="network_coverage", ticketType="trouble")
    del untitled["name"], untitled["channel"]
    second = (await service.http.post(TICKETS, json=untitled)).json()["id"]
    service.clock.advance(minutes=20)
    taken = await service.patch(first, {"status": "inProgress", "statusChangeReason": "已联系客户"})
    service.clock.advance(minutes=10)
    await service.move(first, "pending")
    refused = await service.patch(first, {"status": "closed"})
    assert refused.status_code == 409

    published = await service.ticket_events(expect=4)

    assert len(published) == 4
    for key, event in published:
        service.contracts.validate_event(event)
        assert key == event.subject == event.data["customer_id"]
        assert event.source == "/crm/ticketing"
        assert parse_rfc3339(event.data["occurred_at"]) == event.time
    mine = [event for _, event in published if event.data["ticket_id"] == first]
    assert [(e.type, e.data.get("from_state"), e.data.get("to_state")) for e in mine] == [
        (CREATED, None, None),
        (STATE_CHANGED, "acknowledged", "inProgress"),
        (STATE_CHANGED, "inProgress", "pending"),
    ]
    created, moved, waiting = mine
    assert created.data == {
        "ticket_id": first,
        "customer_id": "C1",
        "occurred_at": "2026-11-23T02:00:00+00:00",
        "ticket_type": "complaint",
        "category": "billing_dispute",
        "title": "流量费用异常",
        "priority": "medium",
        "state": "acknowledged",
        "sla_due_at": "2026-11-25T02:00:00+00:00",  # the resolution deadline, Wednesday 10:00 in Shanghai
        "channel": "hotline",
    }
    assert created.correlationid == opened.headers["X-Request-ID"]
    assert moved.correlationid == taken.headers["X-Request-ID"]
    assert (moved.data["reason"], moved.data["occurred_at"]) == ("已联系客户", "2026-11-23T02:20:00+00:00")
    assert (waiting.data["reason"], waiting.time) == (None, datetime(2026, 11, 23, 2, 30, tzinfo=UTC))

    [other] = [event for _, event in published if event.data["ticket_id"] == second]
    assert other.data["title"] == LONG[:60]
    assert other.data["channel"] == "hotline"
    # network_coverage medium counts round the clock: 48 h
    assert other.data["sla_due_at"] == "2026-11-25T02:00:00+00:00"


def _ticket(**changes: object) -> Ticket:
    at = datetime(2026, 11, 23, 2, tzinfo=UTC)
    values: dict[str, object] = {
        "id": "TT01M8323B80SW64BHWC78",
        "customer_id": "C110000012345",
        "ticket_type": "inquiry",
        "category": "number_portability",
        "priority": "low",
        "name": None,
        "description": "携号转网咨询",
        "status": "acknowledged",
        "status_change_date": at,
        "status_change_reason": None,
        "channel": "wechat",
        "creation_date": at,
    }
    return Ticket(**{**values, **changes})


def test_the_builders_keep_the_contracts():
    contracts = load_contracts(find_contracts_dir().resolve())
    ticket = _ticket()
    no_sla = events.ticket_created(ticket, None)
    assert (no_sla.data["sla_due_at"], no_sla.data["title"]) == (None, "携号转网咨询")
    resolved = _ticket(status="resolved", status_change_reason=None)
    rated = _ticket(status="closed", csat_score=5, csat_comment=None)
    commented = _ticket(status="closed", csat_score=2, csat_comment="处理太慢")
    at = datetime(2026, 11, 24, 1, tzinfo=UTC)
    built = [
        no_sla,
        events.state_changed(resolved, "inProgress"),
        events.csat_recorded(rated, at),
        events.csat_recorded(commented, at),
    ]
    for event in built:
        contracts.validate_event(event)
        assert (event.source, event.subject) == ("/crm/ticketing", "C110000012345")
    assert built[2].data == {
        "ticket_id": "TT01M8323B80SW64BHWC78",
        "customer_id": "C110000012345",
        "occurred_at": "2026-11-24T01:00:00+00:00",
        "score": 5,
        "comment": None,
    }
    with pytest.raises(ContractViolation):
        contracts.validate_event(events.csat_recorded(_ticket(csat_score=6), at))
