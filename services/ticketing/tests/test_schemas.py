"""The TMF621 shapes on their own: camelCase both ways, strict request bodies whose errors name the field, the one
customer of a ticket, the limits that make oversize input a 422, the hub callback, and enumerations that agree with
TMF621 and with the ticketing event contracts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from crm_ticketing.schemas.hub import EVENT_TYPES, EventSubscriptionInput, TroubleTicketEvent
from crm_ticketing.schemas.trouble_ticket import (
    CATEGORIES,
    CHANNELS,
    PRIORITIES,
    SEVERITIES,
    STATUSES,
    TICKET_TYPES,
    CsatInput,
    TroubleTicket,
    TroubleTicketCreate,
    TroubleTicketUpdate,
)

CONTRACTS = Path(__file__).resolve().parents[3] / "contracts" / "events"


def customer(customer_id: str = "C110000012345") -> dict[str, Any]:
    return {"id": customer_id, "role": "customer", "@referredType": "Customer", "name": "张三"}


def create_body(**changes: Any) -> dict[str, Any]:
    """A billing complaint as the hotline desk files it, every member in TMF camelCase."""
    body: dict[str, Any] = {
        "description": "本月账单多扣30元流量费, 客户称未使用",
        "ticketType": "complaint",
        "priority": "high",
        "severity": "minor",
        "name": "流量费用异常",
        "category": "billing_dispute",
        "channel": {"id": "hotline", "name": "10086"},
        "relatedParty": [customer()],
        "relatedEntity": [
            {"id": "B202611-0042", "role": "disputedBill", "@referredType": "CustomerBill"},
            {"id": "S0042", "role": "affectedLine", "@referredType": "Subscription", "name": "138****0042"},
        ],
        "note": [{"text": "客户要求退还差额"}],
        "attachment": [
            {"id": "DOC-7", "name": "bill.pdf", "url": "https://docs.crm.example/DOC-7", "mimeType": "application/pdf"}
        ],
        "externalIdentifier": [{"id": "MIIT-2026-000123", "owner": "MIIT", "externalIdentifierType": "regulatorCase"}],
        "requestedResolutionDate": "2026-11-22T18:00:00+08:00",
    }
    body.update(changes)
    return body


def errors_of(model: type[BaseModel], body: dict[str, Any]) -> list[Any]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return caught.value.errors()


def locations(errors: list[Any]) -> list[tuple[Any, ...]]:
    return [tuple(e["loc"]) for e in errors]


def test_create_body_round_trips_in_camel_case() -> None:
    body = create_body()
    created = TroubleTicketCreate.model_validate(body)
    assert created.ticket_type == "complaint"
    assert created.related_party[0].referred_type == "Customer"
    assert created.related_entity[0].role == "disputedBill"
    assert created.attachment[0].mime_type == "application/pdf"
    assert created.external_identifier[0].external_identifier_type == "regulatorCase"
    assert created.requested_resolution_date is not None and created.requested_resolution_date.utcoffset()
    assert created.model_dump(mode="json", exclude_unset=True) == body


def test_create_defaults_priority_to_medium() -> None:
    body = create_body()
    del body["priority"]
    assert TroubleTicketCreate.model_validate(body).priority == "medium"


def test_create_names_an_unknown_field() -> None:
    errors = errors_of(TroubleTicketCreate, create_body(colour="red"))
    assert locations(errors) == [("colour",)]
    assert errors[0]["type"] == "extra_forbidden"


def test_create_refuses_status_because_the_server_sets_it() -> None:
    errors = errors_of(TroubleTicketCreate, create_body(status="acknowledged"))
    assert locations(errors) == [("status",)]
    assert errors[0]["msg"].startswith("set by the server") and "acknowledged" in errors[0]["msg"]


def test_create_refuses_a_nested_unknown_field_and_binary_attachments() -> None:
    note = [{"text": "x", "author": "someone-else"}]
    attachment = [{"id": "DOC-8", "content": "JVBERi0xLjQK"}]
    errors = errors_of(TroubleTicketCreate, create_body(note=note, attachment=attachment))
    assert sorted(locations(errors)) == [("attachment", 0, "content"), ("note", 0, "author")]


@pytest.mark.parametrize(
    "parties",
    [
        [{"id": "agent-0001", "role": "agent", "@referredType": "Individual"}],
        [customer("C1"), customer("C2")],
        [],
    ],
    ids=["no customer", "two customers", "empty"],
)
def test_create_needs_exactly_one_customer(parties: list[dict[str, Any]]) -> None:
    errors = errors_of(TroubleTicketCreate, create_body(relatedParty=parties))
    assert locations(errors) == [("relatedParty",)]


def test_create_accepts_an_agent_beside_the_customer() -> None:
    agent = {"id": "agent-0001", "role": "agent", "@referredType": "Individual"}
    assert len(TroubleTicketCreate.model_validate(create_body(relatedParty=[customer(), agent])).related_party) == 2


def test_create_refuses_a_customer_id_outside_the_event_contract() -> None:
    errors = errors_of(TroubleTicketCreate, create_body(relatedParty=[customer("C 1")]))
    assert locations(errors) == [("relatedParty", 0, "id")]


def test_create_limits_the_description() -> None:
    assert len(TroubleTicketCreate.model_validate(create_body(description="长" * 4000)).description) == 4000
    errors = errors_of(TroubleTicketCreate, create_body(description="长" * 4001))
    assert locations(errors) == [("description",)]
    assert errors[0]["type"] == "string_too_long"
    assert locations(errors_of(TroubleTicketCreate, create_body(description="   "))) == [("description",)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "x" * 201),
        ("relatedEntity", [{"id": "B" * 65, "role": "disputedBill", "@referredType": "CustomerBill"}]),
        ("externalIdentifier", [{"id": "x" * 65}]),
        ("note", [{"text": "x" * 2001}]),
    ],
)
def test_create_limits_every_string(field: str, value: Any) -> None:
    errors = errors_of(TroubleTicketCreate, create_body(**{field: value}))
    assert locations(errors)[0][0] == field


def test_create_refuses_a_local_requested_resolution_date() -> None:
    errors = errors_of(TroubleTicketCreate, create_body(requestedResolutionDate="2026-11-22T18:00:00"))
    assert locations(errors) == [("requestedResolutionDate",)]


def test_create_refuses_a_value_outside_the_enumerations() -> None:
    body = create_body(ticketType="incident", priority="urgent", category="roaming", channel={"id": "fax"})
    assert sorted(locations(errors_of(TroubleTicketCreate, body))) == [
        ("category",),
        ("channel", "id"),
        ("priority",),
        ("ticketType",),
    ]


def test_update_needs_at_least_one_field() -> None:
    errors = errors_of(TroubleTicketUpdate, {})
    assert "at least one field" in errors[0]["msg"]


def test_update_takes_a_transfer_and_a_status_change() -> None:
    patch = TroubleTicketUpdate.model_validate(
        {"queue": "billing-l2", "assignee": "agent-0002", "status": "inProgress", "statusChangeReason": "转二线"}
    )
    assert patch.model_dump(exclude_unset=True) == {
        "queue": "billing-l2",
        "assignee": "agent-0002",
        "status": "inProgress",
        "statusChangeReason": "转二线",
    }


@pytest.mark.parametrize("field", ["id", "href", "creationDate", "lastUpdate", "statusChange", "resolutionDate"])
def test_update_refuses_a_field_the_server_keeps(field: str) -> None:
    errors = errors_of(TroubleTicketUpdate, {field: "x", "priority": "low"})
    assert locations(errors) == [(field,)]
    assert "set by the server" in errors[0]["msg"]


def test_update_names_an_unknown_field() -> None:
    errors = errors_of(TroubleTicketUpdate, {"ticketTyp": "complaint"})
    assert locations(errors) == [("ticketTyp",)]
    assert errors[0]["type"] == "extra_forbidden"


def test_update_refuses_null_where_a_ticket_always_has_a_value() -> None:
    assert locations(errors_of(TroubleTicketUpdate, {"status": None})) == [("status",)]
    assert TroubleTicketUpdate.model_validate({"assignee": None}).model_fields_set == {"assignee"}


def test_update_takes_a_status_change_reason_only_with_a_status() -> None:
    assert locations(errors_of(TroubleTicketUpdate, {"statusChangeReason": "客户未接听"})) == [("statusChangeReason",)]


@pytest.mark.parametrize("score", [0, 6, "5", 4.5])
def test_csat_refuses_a_score_outside_one_to_five(score: Any) -> None:
    assert locations(errors_of(CsatInput, {"score": score})) == [("score",)]


@pytest.mark.parametrize("score", [1, 5])
def test_csat_takes_one_to_five(score: int) -> None:
    assert CsatInput.model_validate({"score": score, "comment": "处理及时"}).score == score


@pytest.mark.parametrize(
    "callback",
    [
        "/listener/troubleTicket",
        "listener.example/tmf/events",
        "ftp://listener.example/tmf/events",
        "javascript:alert(1)",
        "https://",
        "https://listener.example/tmf events",
        "https://user:secret@listener.example/tmf/events",
        "https://listener.example/" + "x" * 2048,
    ],
)
def test_hub_refuses_a_callback_that_is_not_an_absolute_http_url(callback: str) -> None:
    assert locations(errors_of(EventSubscriptionInput, {"callback": callback})) == [("callback",)]


def test_hub_takes_an_absolute_http_callback() -> None:
    body = {"callback": "https://listener.example/tmf/events", "query": "eventType=TroubleTicketStatusChangeEvent"}
    assert EventSubscriptionInput.model_validate(body).model_dump(exclude_unset=True) == body
    assert locations(errors_of(EventSubscriptionInput, {**body, "id": "h1"})) == [("id",)]


def served_ticket() -> TroubleTicket:
    return TroubleTicket(
        id="TT202611200001",
        href="/tmf-api/troubleTicket/v4/troubleTicket/TT202611200001",
        description="本月账单多扣30元流量费",
        priority="high",
        ticket_type="complaint",
        status="acknowledged",
        status_change_date="2026-11-20T10:05:00+08:00",
        status_change=[{"status": "acknowledged", "change_date": "2026-11-20T10:05:00+08:00"}],
        related_party=[
            customer(),
            {"id": "agent-0001", "role": "agent", "referred_type": "Individual"},
        ],
        related_entity=[{"id": "B202611-0042", "role": "disputedBill", "referred_type": "CustomerBill"}],
        trouble_ticket_relationship=[{"id": "TT202611190007", "relationship_type": "isDuplicateOf"}],
        creation_date="2026-11-20T10:05:00+08:00",
        last_update="2026-11-20T10:05:00+08:00",
        category="billing_dispute",
        queue="billing-l1",
        assignee="agent-0001",
        resolution_due_date="2026-11-22T10:05:00+08:00",
        csat={"score": 4},
    )


def all_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in all_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in all_keys(v)}
    return set()


def test_a_ticket_is_served_in_tmf_names() -> None:
    served = served_ticket().model_dump(mode="json")
    assert served["@type"] == "TelecomTroubleTicket"
    assert served["@baseType"] == "TroubleTicket"
    assert [p["@referredType"] for p in served["relatedParty"]] == ["Customer", "Individual"]
    assert served["relatedEntity"][0]["@referredType"] == "CustomerBill"
    assert served["statusChange"] == [
        {"status": "acknowledged", "changeDate": "2026-11-20T10:05:00+08:00", "changeReason": None}
    ]
    assert served["troubleTicketRelationship"][0]["relationshipType"] == "isDuplicateOf"
    assert {"ticketType", "statusChangeDate", "creationDate", "lastUpdate", "resolutionDueDate", "slaBreached"} <= set(
        served
    )
    assert not [key for key in all_keys(served) if "_" in key]


def test_a_ticket_refuses_a_local_time() -> None:
    served = served_ticket().model_dump(mode="json")
    assert TroubleTicket.model_validate(served) == served_ticket()
    errors = errors_of(TroubleTicket, {**served, "creationDate": "2026-11-20T10:05:00"})
    assert locations(errors) == [("creationDate",)]


def test_the_event_posted_to_a_listener_is_the_tmf621_envelope() -> None:
    event = TroubleTicketEvent(
        event_id="EV-1",
        event_time="2026-11-20T10:05:01+08:00",
        event_type="TroubleTicketCreateEvent",
        time_ocurred="2026-11-20T10:05:00+08:00",
        event={"trouble_ticket": served_ticket()},
    ).model_dump(mode="json", exclude_none=True)
    assert set(event) == {"eventId", "eventTime", "eventType", "timeOcurred", "event"}
    assert event["event"]["troubleTicket"]["id"] == "TT202611200001"
    assert TroubleTicketEvent.model_validate(event).event.trouble_ticket.status == "acknowledged"
    with pytest.raises(ValidationError):
        TroubleTicketEvent.model_validate({**event, "eventType": "TroubleTicketStateChangeEvent"})


def test_the_enumerations_are_the_tmf621_names() -> None:
    assert STATUSES == (
        "acknowledged",
        "inProgress",
        "pending",
        "held",
        "resolved",
        "closed",
        "rejected",
        "cancelled",
    )
    assert TICKET_TYPES == ("complaint", "trouble", "inquiry")
    assert SEVERITIES == ("critical", "major", "minor")
    assert PRIORITIES == ("critical", "high", "medium", "low")
    assert CHANNELS == ("hotline", "app", "web", "store", "wechat", "email", "regulator")
    assert CATEGORIES == (
        "billing_dispute",
        "network_coverage",
        "service_activation",
        "handset_terminal",
        "broadband_fault",
        "value_added_service",
        "number_portability",
        "staff_complaint",
    )
    assert EVENT_TYPES == (
        "TroubleTicketCreateEvent",
        "TroubleTicketStatusChangeEvent",
        "TroubleTicketResolvedEvent",
        "TroubleTicketAttributeValueChangeEvent",
        "TroubleTicketDeleteEvent",
    )


def contract(event_type: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CONTRACTS / f"{event_type}.json").read_text(encoding="utf-8"))
    return schema


def test_the_enumerations_agree_with_the_ticketing_event_contracts() -> None:
    created = contract("ticketing.ticket.created.v1")["properties"]
    changed = contract("ticketing.ticket.state_changed.v1")["properties"]
    csat = contract("ticketing.ticket.csat_recorded.v1")["properties"]
    assert set(created["ticket_type"]["enum"]) == set(TICKET_TYPES)
    assert set(created["priority"]["enum"]) == set(PRIORITIES)
    assert set(created["channel"]["enum"]) == set(CHANNELS)
    assert set(changed["to_state"]["enum"]) == set(changed["from_state"]["enum"]) == set(STATUSES)
    assert created["state"]["const"] in STATUSES
    assert all(len(category) <= created["category"]["maxLength"] for category in CATEGORIES)
    comment_limit = csat["comment"]["maxLength"]
    assert CsatInput.model_validate({"score": 3, "comment": "x" * comment_limit}).comment
    assert locations(errors_of(CsatInput, {"score": 3, "comment": "x" * (comment_limit + 1)})) == [("comment",)]
    reason_limit = changed["reason"]["maxLength"]
    assert TroubleTicketUpdate.model_validate({"status": "held", "statusChangeReason": "x" * reason_limit})
    too_long = {"status": "held", "statusChangeReason": "x" * (reason_limit + 1)}
    assert locations(errors_of(TroubleTicketUpdate, too_long)) == [("statusChangeReason",)]
