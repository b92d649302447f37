"""Work queues (工单队列) over HTTP: a new ticket routed by its category, a key account's to the green channel
(绿色通道), handed out in turn (轮询) or to the least loaded agent (最少负荷) or left in the pool (工单池) for an
agent to pull; the queues' definitions, members and backlogs; who may change them; transfers with their reasons."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from crm_kit.testing import assert_problem, bearer
from crm_ticketing.models import TicketTransfer

QUEUES = "/api/v1/queues"
SUPERVISOR = bearer("sup-wang", roles=("supervisor",))
ADMIN = bearer("admin-1", roles=("admin",))
WAITING = "no agent available, waiting in the pool (工单池)"


def agent(agent_id: str) -> dict[str, str]:
    return bearer(agent_id, roles=("agent",))


async def join(service, queue: str, agent_id: str, **membership: Any) -> dict[str, Any]:
    r = await service.http.put(f"{QUEUES}/{queue}/agents/{agent_id}", json=membership, headers=SUPERVISOR)
    assert r.status_code in (200, 201), r.text
    return r.json()  # type: ignore[no-any-return]


async def queue(service, queue_id: str) -> dict[str, Any]:
    r = await service.http.get(f"{QUEUES}/{queue_id}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def transfers(service, ticket_id: str) -> list[tuple[str | None, ...]]:
    """(from queue, to queue, from assignee, to assignee, by, reason) of the ticket's transfers, oldest first."""
    async with service.database() as db, db.sessions() as session:
        rows = await session.scalars(
            select(TicketTransfer).where(TicketTransfer.ticket_id == ticket_id).order_by(TicketTransfer.seq)
        )
        return [(t.from_queue, t.to_queue, t.from_assignee, t.to_assignee, t.transferred_by, t.reason) for t in rows]


async def opened(service, category: str, customer: str = "C1", **changes: Any) -> dict[str, Any]:
    return await service.create(customer, category=category, **changes)


async def test_a_new_ticket_goes_to_the_queue_of_its_category_and_waits_there_without_agents(service):
    billing = await opened(service, "billing_dispute")
    fault = await opened(service, "broadband_fault")
    vas = await opened(service, "value_added_service")

    assert [(t["queue"], t["assignee"]) for t in (billing, fault, vas)] == [
        ("billing", None),
        ("broadband", None),
        ("activation", None),
    ]
    assert await service.get(billing["id"]) == billing
    assert await transfers(service, billing["id"]) == [
        (None, "billing", None, None, "agent-0001", f"routed: category billing_dispute; {WAITING}")
    ]


async def test_an_agent_named_at_open_keeps_the_ticket_in_its_queue(service):
    await join(service, "billing", "agent-b1")
    ticket = await service.create(
        relatedParty=[
            {"id": "C1", "role": "customer", "@referredType": "Individual"},
            {"id": "agent-0007", "role": "agent", "@referredType": "Individual"},
        ]
    )
    assert (ticket["queue"], ticket["assignee"]) == ("billing", "agent-0007")
    assert await transfers(service, ticket["id"]) == [
        (None, "billing", None, "agent-0007", "agent-0001", "routed: category billing_dispute; assigned at open")
    ]


@pytest.mark.usefixtures("consuming")
async def test_a_key_accounts_ticket_goes_to_the_green_channel_serving_its_category(service):
    designated = service.profile_event(
        "customer.profile.key_account_changed.v1",
        "designated_strategic",
        customer_id="C900",
        changed_at="2026-11-20T09:30:00+08:00",
    )
    await service.send_profile(designated)
    assert (await opened(service, "billing_dispute", "C900"))["queue"] == "key-accounts"
    assert (await opened(service, "billing_dispute", "C901"))["queue"] == "billing"

    # a green channel naming the category comes before the one taking all of them
    r = await service.http.put(
        f"{QUEUES}/ka-billing",
        json={"name": "大客户计费", "categories": ["billing_dispute"], "keyAccounts": True},
        headers=SUPERVISOR,
    )
    assert r.status_code == 201, r.text
    ticket = await opened(service, "billing_dispute", "C900")
    assert ticket["queue"] == "ka-billing"
    assert (await opened(service, "network_coverage", "C900"))["queue"] == "key-accounts"
    # a standard customer's ticket never lands in a green channel
    assert (await opened(service, "billing_dispute", "C901"))["queue"] == "billing"
    [routed] = await transfers(service, ticket["id"])
    assert routed[-1] == f"routed: key account, green channel ka-billing (绿色通道); {WAITING}"


async def test_round_robin_takes_turns_in_agent_order_wrapping_and_skipping_who_is_away(service):
    await join(service, "terminal", "agent-a1")
    await join(service, "terminal", "agent-a2", available=False)
    await join(service, "terminal", "agent-a3")

    handed = [(await opened(service, "handset_terminal"))["assignee"] for _ in range(3)]
    assert handed == ["agent-a1", "agent-a3", "agent-a1"]
    await join(service, "terminal", "agent-a2", available=True)
    handed = [(await opened(service, "handset_terminal"))["assignee"] for _ in range(3)]
    assert handed == ["agent-a2", "agent-a3", "agent-a1"]
    assert (await queue(service, "terminal"))["lastAssignee"] == "agent-a1"

    # an agent at their limit is passed over too
    await join(service, "terminal", "agent-a2", maxOpen=1)
    assert (await opened(service, "handset_terminal"))["assignee"] == "agent-a3"
    ticket = await opened(service, "handset_terminal")
    assert ticket["assignee"] == "agent-a1"
    assert (await transfers(service, ticket["id"]))[0][-1] == (
        "routed: category handset_terminal; assigned: round robin (轮询)"
    )


async def test_least_loaded_picks_the_fewest_open_tickets_and_passes_over_a_full_agent(service):
    for agent_id, limit in (("agent-b1", 1), ("agent-b2", None), ("agent-b3", None)):
        await join(service, "billing", agent_id, maxOpen=limit)
    held = []
    for _ in range(2):
        ticket = await service.create(
            relatedParty=[
                {"id": "C1", "role": "customer", "@referredType": "Individual"},
                {"id": "agent-b3", "role": "agent", "@referredType": "Individual"},
            ]
        )
        held.append(ticket["id"])

    # loads b1 0, b2 0, b3 2: b1 by id; then b1 is full (1 of 1), b2 has fewest; then b2 2 and b3 2: b2 by id
    handed = [(await opened(service, "billing_dispute"))["assignee"] for _ in range(3)]
    assert handed == ["agent-b1", "agent-b2", "agent-b2"]
    # a cancelled ticket no longer counts: b3 is down to 1
    await service.move(held[0], "cancelled", "客户撤诉")
    ticket = await opened(service, "billing_dispute")
    assert ticket["assignee"] == "agent-b3"
    assert (await transfers(service, ticket["id"]))[0][-1] == (
        "routed: category billing_dispute; assigned: least loaded (最少负荷)"
    )
    shown = {a["agentId"]: (a["openTickets"], a["maxOpen"]) for a in (await queue(service, "billing"))["agents"]}
    assert shown == {"agent-b1": (1, 1), "agent-b2": (2, None), "agent-b3": (2, None)}


async def test_nobody_available_or_under_their_limit_leaves_the_ticket_in_the_pool(service):
    await join(service, "network", "agent-n1", available=False)
    await join(service, "network", "agent-n2", maxOpen=1)
    assert (await opened(service, "network_coverage"))["assignee"] == "agent-n2"
    waiting = await opened(service, "network_coverage")
    assert (waiting["queue"], waiting["assignee"]) == ("network", None)


async def test_pull_next_gives_the_most_urgent_longest_waiting_unassigned_ticket(service):
    ids = {}
    for name, priority in (("low", "low"), ("high1", "high"), ("high2", "high"), ("medium", "medium")):
        ids[name] = (await opened(service, "network_coverage", priority=priority))["id"]
        service.clock.advance(minutes=5)
    shown = await queue(service, "network")
    assert shown["load"] == {
        "openTickets": 4,
        "unassignedTickets": 4,
        "oldestUnassignedDate": "2026-11-23T10:00:00+08:00",
        "oldestUnassignedAgeSeconds": 1200,
    }
    await join(service, "network", "agent-c1", available=False)
    pulls = []
    for _ in range(4):
        r = await service.http.post(f"{QUEUES}/network/next", headers=agent("agent-c1"))
        assert r.status_code == 200, r.text
        pulls.append((r.json()["id"], r.json()["assignee"], r.json()["queue"]))
    assert pulls == [(ids[name], "agent-c1", "network") for name in ("high1", "high2", "medium", "low")]
    assert (await transfers(service, ids["high1"]))[-1] == (
        "network",
        "network",
        None,
        "agent-c1",
        "agent-c1",
        "pulled from queue network (工单池)",
    )
    nothing = await service.http.post(f"{QUEUES}/network/next", headers=agent("agent-c1"))
    assert_problem(nothing, 404, "queue", slug="nothing-waiting")
    shown = await queue(service, "network")
    assert shown["load"] == {
        "openTickets": 4,
        "unassignedTickets": 0,
        "oldestUnassignedDate": None,
        "oldestUnassignedAgeSeconds": None,
    }
    assert shown["agents"][0]["openTickets"] == 4


async def test_pull_next_is_for_members_of_an_existing_queue(service):
    await opened(service, "network_coverage")
    outsider = await service.http.post(f"{QUEUES}/network/next", headers=agent("agent-x"))
    assert_problem(outsider, 409, "queue", slug="not-a-member")
    assert_problem(await service.http.post(f"{QUEUES}/nowhere/next"), 404, "id")
    # a closed ticket is not waiting
    await join(service, "billing", "agent-0001", available=False)
    await service.move((await opened(service, "billing_dispute"))["id"], "cancelled", "重复受理")
    assert_problem(await service.http.post(f"{QUEUES}/billing/next"), 404, slug="nothing-waiting")


async def test_the_queues_are_listed_with_their_agents_and_backlog(service):
    await join(service, "billing", "agent-b2", maxOpen=5)
    await join(service, "billing", "agent-b1")
    await opened(service, "billing_dispute")
    r = await service.http.get(QUEUES)
    assert r.status_code == 200, r.text
    assert (r.headers["X-Total-Count"], r.headers["X-Result-Count"]) == ("10", "10")
    by_id = {q["id"]: q for q in r.json()}
    assert list(by_id) == sorted(by_id)
    assert {"supervisors", "complaints-management", "key-accounts"} <= set(by_id)
    billing = by_id["billing"]
    assert {k: billing[k] for k in ("href", "categories", "keyAccounts", "strategy")} == {
        "href": f"{QUEUES}/billing",
        "categories": ["billing_dispute"],
        "keyAccounts": False,
        "strategy": "least_loaded",
    }
    assert [(a["agentId"], a["available"], a["maxOpen"], a["openTickets"]) for a in billing["agents"]] == [
        ("agent-b1", True, None, 1),
        ("agent-b2", True, 5, 0),
    ]
    assert billing["agents"][0]["joinedAt"] == "2026-11-23T10:00:00+08:00"
    assert billing["load"]["openTickets"] == 1
    page = await service.http.get(QUEUES, params={"offset": "8", "limit": "5"})
    assert [q["id"] for q in page.json()] == sorted(by_id)[8:]
    assert await queue(service, "billing") == billing
    assert_problem(await service.http.get(f"{QUEUES}/nowhere"), 404, "id")


async def test_a_supervisor_creates_replaces_and_staffs_a_queue(service):
    body = {"name": "宽带二线 Broadband L2", "categories": ["broadband_fault"], "strategy": "round_robin"}
    r = await service.http.put(f"{QUEUES}/broadband-l2", json=body, headers=SUPERVISOR)
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"{QUEUES}/broadband-l2"
    assert (r.json()["name"], r.json()["keyAccounts"], r.json()["agents"]) == ("宽带二线 Broadband L2", False, [])
    member = await service.http.put(f"{QUEUES}/broadband-l2/agents/agent-l2", json={}, headers=SUPERVISOR)
    assert member.status_code == 201, member.text
    assert member.json() == {
        "agentId": "agent-l2",
        "available": True,
        "maxOpen": None,
        "joinedAt": "2026-11-23T10:00:00+08:00",
        "openTickets": 0,
    }
    changed = await service.http.put(
        f"{QUEUES}/broadband-l2/agents/agent-l2", json={"available": False, "maxOpen": 3}, headers=ADMIN
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["available"], changed.json()["maxOpen"]) == (False, 3)

    service.clock.advance(minutes=1)
    replaced = await service.http.put(
        f"{QUEUES}/broadband-l2", json={"name": "宽带二线", "strategy": "least_loaded"}, headers=ADMIN
    )
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["categories"], replaced.json()["strategy"]) == ([], "least_loaded")
    assert [a["agentId"] for a in replaced.json()["agents"]] == ["agent-l2"]

    gone = await service.http.delete(f"{QUEUES}/broadband-l2/agents/agent-l2", headers=SUPERVISOR)
    assert gone.status_code == 204
    assert (await queue(service, "broadband-l2"))["agents"] == []
    again = await service.http.delete(f"{QUEUES}/broadband-l2/agents/agent-l2", headers=SUPERVISOR)
    assert_problem(again, 404, "agentId")


async def test_only_supervisors_change_queues_and_only_staff_read_them(service):
    body = {"name": "x", "categories": ["billing_dispute"]}
    assert_problem(await service.http.put(f"{QUEUES}/billing", json=body), 403)
    assert_problem(await service.http.put(f"{QUEUES}/billing/agents/agent-0001", json={}), 403)
    await join(service, "billing", "agent-0001")
    assert_problem(await service.http.delete(f"{QUEUES}/billing/agents/agent-0001"), 403)
    kam = bearer("kam-li", roles=("key_account_manager",))
    assert_problem(await service.http.get(QUEUES, headers=kam), 403)
    assert_problem(await service.http.post(f"{QUEUES}/billing/next", headers=kam), 403)
    assert_problem(await service.http.get(QUEUES, headers={"Authorization": ""}), 401)
    assert (await queue(service, "billing"))["name"] == "计费争议 Billing disputes"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("billing", {"name": "x", "categories": ["roaming"]}, "categories[0]"),
        ("billing", {"name": "x", "categories": ["billing_dispute", "billing_dispute"]}, "categories"),
        ("billing", {"name": "x", "strategy": "random"}, "strategy"),
        ("billing", {"name": " "}, "name"),
        ("billing", {"name": "x", "colour": "red"}, "colour"),
        ("billing", {"name": "x", "keyAccounts": "yes"}, "keyAccounts"),
        ("supervisors", {"name": "x", "categories": ["billing_dispute"]}, "categories"),
        ("complaints-management", {"name": "x", "keyAccounts": True}, "keyAccounts"),
        ("billing/agents/agent-1", {"maxOpen": 0}, "maxOpen"),
        ("billing/agents/agent-1", {"available": "no"}, "available"),
        ("billing/agents/agent 1", {}, "agent_id"),
    ],
)
async def test_a_bad_queue_or_membership_is_a_422(service, path, body, field):
    assert_problem(await service.http.put(f"{QUEUES}/{path}", json=body, headers=SUPERVISOR), 422, field)


async def test_a_membership_of_an_unknown_queue_is_a_404(service):
    r = await service.http.put(f"{QUEUES}/nowhere/agents/agent-1", json={}, headers=SUPERVISOR)
    assert_problem(r, 404, "id")


async def test_a_transfer_goes_to_an_existing_queue_only(service):
    ticket = (await opened(service, "billing_dispute"))["id"]
    assert_problem(await service.patch(ticket, {"queue": "billing-l3"}), 422, "queue")
    service.clock.advance(minutes=5)
    moved = await service.patch(ticket, {"queue": "service-quality", "assignee": "agent-0002"})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["queue"], moved.json()["assignee"]) == ("service-quality", "agent-0002")
    assert [t[:5] for t in await transfers(service, ticket)] == [
        (None, "billing", None, None, "agent-0001"),
        ("billing", "service-quality", None, "agent-0002", "agent-0001"),
    ]


async def test_two_replicas_opening_at_once_do_not_hand_out_the_same_turn(service, start_ticketing):
    if not service.database_url.startswith("postgresql"):
        pytest.skip("concurrent writers: PostgreSQL's row lock on the queue; SQLite writes one at a time anyway")
    for agent_id in ("agent-a1", "agent-a2", "agent-a3", "agent-a4"):
        await join(service, "terminal", agent_id)
    async with start_ticketing() as replica:
        created = await asyncio.gather(
            *(s.create(f"C{n}", category="handset_terminal") for n, s in enumerate([service, replica] * 2))
        )
    assert sorted(t["assignee"] for t in created) == ["agent-a1", "agent-a2", "agent-a3", "agent-a4"]
