"""The satisfaction survey (满意度回访) over HTTP: recorded once after the resolution, shown on the ticket, published
as the contract says; and the supervisors' report of averages and shares per agent, queue and category."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from crm_kit.testing import assert_problem, bearer
from crm_ticketing.domain.sla import SHANGHAI
from crm_ticketing.events import CSAT_RECORDED

TICKETS = "/tmf-api/troubleTicket/v4/troubleTicket"
SUPERVISOR = bearer("sup-wang", roles=("supervisor",))
ADMIN = bearer("admin-1", roles=("admin",))

REPORT = "/api/v1/tickets/satisfaction"
KAM = bearer("kam-li", roles=("key_account_manager",))


def survey_of(ticket_id: str) -> str:
    return f"{TICKETS}/{ticket_id}/satisfaction"


async def resolved_ticket(service: Any, customer_id: str = "C110000012345", **routing: str) -> str:
    """A ticket opened, routed as `routing` says (queue, assignee), and resolved."""
    ticket_id: str = (await service.create(customer_id))["id"]
    if routing:
        r = await service.patch(ticket_id, routing)
        assert r.status_code == 200, r.text
    await service.move(ticket_id, "resolved", "已退还多扣费用")
    return ticket_id


async def rate(service: Any, ticket_id: str, score: int, comment: str | None = None, **headers: str) -> None:
    body: dict[str, Any] = {"score": score} if comment is None else {"score": score, "comment": comment}
    r = await service.http.post(survey_of(ticket_id), json=body, headers=headers)
    assert r.status_code == 201, r.text


async def test_a_resolved_ticket_is_rated_and_shows_it(service):
    ticket_id = await resolved_ticket(service)
    service.clock.set(datetime(2026, 11, 24, 15, 30, tzinfo=SHANGHAI))

    r = await service.http.post(survey_of(ticket_id), json={"score": 4, "comment": "  退费及时, 但等了一天  "})

    assert r.status_code == 201, r.text
    recorded = {"score": 4, "comment": "退费及时, 但等了一天", "recordedAt": "2026-11-24T15:30:00+08:00"}
    assert r.json() == recorded
    ticket = await service.get(ticket_id)
    assert ticket["csat"] == recorded
    assert ticket["lastUpdate"] == "2026-11-24T15:30:00+08:00"


async def test_a_closed_ticket_is_rated_by_a_supervisor_without_comment(service):
    ticket_id = await resolved_ticket(service)
    await service.move(ticket_id, "closed")

    r = await service.http.post(survey_of(ticket_id), json={"score": 1}, headers=SUPERVISOR)

    assert r.status_code == 201, r.text
    assert r.json() == {"score": 1, "comment": None, "recordedAt": "2026-11-23T10:00:00+08:00"}


@pytest.mark.parametrize("status", ["acknowledged", "inProgress", "pending", "cancelled"])
async def test_before_the_resolution_there_is_no_survey(service, status):
    ticket_id = (await service.create())["id"]
    if status != "acknowledged":
        await service.move(ticket_id, status)

    r = await service.http.post(survey_of(ticket_id), json={"score": 5})

    problem = assert_problem(r, 409, "status")
    assert problem["current_status"] == status
    assert status in problem["detail"] and "follows the resolution" in problem["detail"]
    assert (await service.get(ticket_id))["csat"] is None


async def test_a_second_survey_is_refused_and_the_first_stands(service):
    ticket_id = await resolved_ticket(service)
    await rate(service, ticket_id, 2, "处理太慢")
    service.clock.advance(hours=1)

    r = await service.http.post(survey_of(ticket_id), json={"score": 5})

    problem = assert_problem(r, 409)
    assert "already rated 2" in problem["detail"] and "first survey stands" in problem["detail"]
    assert (await service.get(ticket_id))["csat"] == {
        "score": 2,
        "comment": "处理太慢",
        "recordedAt": "2026-11-23T10:00:00+08:00",
    }


@pytest.mark.parametrize("body", [{"score": 0}, {"score": 6}, {"score": "5"}, {"score": 4.0}, {}, {"comment": "好"}])
async def test_a_bad_score_is_a_422_naming_it(service, body):
    ticket_id = await resolved_ticket(service)

    assert_problem(await service.http.post(survey_of(ticket_id), json=body), 422, "score")
    assert (await service.get(ticket_id))["csat"] is None


async def test_a_long_comment_or_an_unknown_member_is_a_422_naming_it(service):
    ticket_id = await resolved_ticket(service)
    long = await service.http.post(survey_of(ticket_id), json={"score": 3, "comment": "慢" * 501})
    extra = await service.http.post(survey_of(ticket_id), json={"score": 3, "recordedAt": "2026-11-23T10:00:00+08:00"})

    assert_problem(long, 422, "comment")
    assert_problem(extra, 422, "recordedAt")


async def test_an_unknown_ticket_is_a_404_and_a_reader_may_not_rate(service):
    assert_problem(await service.http.post(survey_of("TT0000000000000000000000"), json={"score": 5}), 404, "id")
    ticket_id = await resolved_ticket(service)
    assert_problem(await service.http.post(survey_of(ticket_id), json={"score": 5}, headers=KAM), 403)


async def test_the_survey_is_published_as_the_contract_says(service):
    ticket_id = await resolved_ticket(service, "C2")
    service.clock.set(datetime(2026, 11, 24, 9, 15, tzinfo=SHANGHAI))
    await rate(service, ticket_id, 3, "还行")

    published = await service.ticket_events(expect=3)

    rated = [(key, event) for key, event in published if event.type == CSAT_RECORDED]
    assert len(rated) == 1
    key, event = rated[0]
    service.contracts.validate_event(event)
    assert key == event.subject == "C2"
    assert event.source == "/crm/ticketing"
    assert event.data == {
        "ticket_id": ticket_id,
        "customer_id": "C2",
        "occurred_at": "2026-11-24T01:15:00+00:00",
        "score": 3,
        "comment": "还行",
    }


# --- the report --------------------------------------------------------------------------------------------------


async def report(service: Any, **params: str) -> list[dict[str, Any]]:
    r = await service.http.get(REPORT, params=params, headers=SUPERVISOR)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["by"] == params["by"]
    groups: list[dict[str, Any]] = body["groups"]
    return groups


@pytest.fixture
async def rated(service):
    """Six surveys: agent-a 5, 4, 2 in queue billing (Monday, Monday, Tuesday); agent-b 3 in queue billing
    (Tuesday); unassigned tickets in queues network 1 and service-quality 5 (Wednesday); one resolved but not rated."""
    monday = datetime(2026, 11, 23, 10, tzinfo=SHANGHAI)
    population = [
        ({"queue": "billing", "assignee": "agent-a"}, 5, 0),
        ({"queue": "billing", "assignee": "agent-a"}, 4, 0),
        ({"queue": "billing", "assignee": "agent-a"}, 2, 1),
        ({"queue": "billing", "assignee": "agent-b"}, 3, 1),
        ({"queue": "network"}, 1, 2),
        ({"queue": "service-quality"}, 5, 2),
    ]
    for routing, score, day in population:
        service.clock.set(monday.replace(day=23 + day))
        await rate(service, await resolved_ticket(service, **routing), score)
    await resolved_ticket(service, queue="billing", assignee="agent-b")
    return service


async def test_the_report_by_agent_has_exact_averages_and_shares(rated):
    assert await report(rated, by="agent") == [
        {"group": "agent-a", "count": 3, "average": "3.67", "satisfied": "0.67"},
        {"group": "agent-b", "count": 1, "average": "3.00", "satisfied": "0.00"},
        {"group": None, "count": 2, "average": "3.00", "satisfied": "0.50"},
    ]


async def test_the_report_by_queue_and_by_category(rated):
    assert await report(rated, by="queue") == [
        {"group": "billing", "count": 4, "average": "3.50", "satisfied": "0.50"},
        {"group": "network", "count": 1, "average": "1.00", "satisfied": "0.00"},
        {"group": "service-quality", "count": 1, "average": "5.00", "satisfied": "1.00"},
    ]
    assert await report(rated, by="category") == [
        {"group": "billing_dispute", "count": 6, "average": "3.33", "satisfied": "0.50"},
    ]


async def test_the_window_takes_from_and_leaves_out_to(rated):
    tuesday = "2026-11-24T10:00:00+08:00"
    wednesday = "2026-11-25T10:00:00+08:00"
    r = await rated.http.get(REPORT, params={"by": "agent", "from": tuesday, "to": wednesday}, headers=ADMIN)

    assert r.status_code == 200, r.text
    assert r.json() == {
        "by": "agent",
        "from": tuesday,
        "to": wednesday,
        "groups": [
            {"group": "agent-a", "count": 1, "average": "2.00", "satisfied": "0.00"},
            {"group": "agent-b", "count": 1, "average": "3.00", "satisfied": "0.00"},
        ],
    }
    assert await report(rated, by="queue", to="2026-11-24T02:00:00Z") == [
        {"group": "billing", "count": 2, "average": "4.50", "satisfied": "1.00"},
    ]
    assert await report(rated, by="queue", **{"from": wednesday}) == [
        {"group": "network", "count": 1, "average": "1.00", "satisfied": "0.00"},
        {"group": "service-quality", "count": 1, "average": "5.00", "satisfied": "1.00"},
    ]


async def test_no_surveys_is_an_empty_report(service):
    await resolved_ticket(service)
    assert await report(service, by="agent") == []


async def test_only_supervisors_and_admins_see_the_report(service):
    assert_problem(await service.http.get(REPORT, params={"by": "agent"}), 403)
    assert_problem(await service.http.get(REPORT, params={"by": "agent"}, headers=KAM), 403)
    assert (await service.http.get(REPORT, params={"by": "agent"}, headers=ADMIN)).status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"by": "customer"}, "by"),
        ({}, "by"),
        ({"by": "agent", "from": "2026-11-24T10:00:00"}, "from"),
        ({"by": "agent", "to": "yesterday"}, "to"),
    ],
)
async def test_a_report_it_cannot_answer_is_a_422(service, params, field):
    problem = assert_problem(await service.http.get(REPORT, params=params, headers=SUPERVISOR), 422, field)
    if params.get("by") == "customer":
        assert all(name in problem["detail"] for name in ("agent", "queue", "category"))
