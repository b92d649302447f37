"""The TMF621 hub over HTTP: listeners registered, read and removed by administrators; ticket events staged with the
change they report and POSTed, signed, to a real listener on loopback; retried with backoff, given up with the
reason kept; nothing for a removed listener, nothing for a refused change."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_kit.broker import free_port
from crm_kit.testing import assert_problem, bearer, eventually, serve
from crm_ticketing.models import HubDelivery
from crm_ticketing.schemas.hub import TroubleTicketEvent
from crm_ticketing.settings import Settings

from .conftest import TestClock, Ticketing

HUB = "/tmf-api/troubleTicket/v4/hub"
ADMIN = bearer("admin-0001", roles=("admin",))
CREATE = "TroubleTicketCreateEvent"
STATUS_CHANGE = "TroubleTicketStatusChangeEvent"
RESOLVED = "TroubleTicketResolvedEvent"
ATTRIBUTE_VALUE_CHANGE = "TroubleTicketAttributeValueChangeEvent"
DELETE = "TroubleTicketDeleteEvent"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    @property
    def event_type(self) -> str:
        return self.event["eventType"]  # type: ignore[no-any-return]

    @property
    def ticket(self) -> dict[str, Any]:
        return self.event["event"]["troubleTicket"]  # type: ignore[no-any-return]


@dataclass
class Listener:
    """A partner's endpoint: records every POST under its path, and answers each path with the statuses queued for
    it, then 200."""

    url: str
    received: dict[str, list[Received]] = field(default_factory=dict)
    answers: dict[str, list[int]] = field(default_factory=dict)

    def callback(self, name: str, *statuses: int) -> str:
        self.answers[name] = list(statuses)
        self.received[name] = []
        return f"{self.url}/{name}"

    async def got(self, name: str, count: int) -> list[Received]:
        """Once `name` has received `count` POSTs (a few seconds at most), what it received."""

        async def enough() -> list[Received] | None:
            return self.received[name] if len(self.received[name]) >= count else None

        return await eventually(enough, timeout=10, interval=0.05)

    def types(self, name: str) -> list[str]:
        return [r.event_type for r in self.received[name]]


@pytest_asyncio.fixture
async def listener() -> AsyncIterator[Listener]:
    found = Listener("")

    async def receive(request: Request) -> Response:
        name = request.path_params["name"]
        found.received.setdefault(name, []).append(Received(dict(request.headers), await request.body()))
        queued = found.answers.setdefault(name, [])
        status = queued.pop(0) if queued else 200
        return Response("listener says no" if status >= 300 else "", status_code=status)

    async with serve(Starlette(routes=[Route("/{name}", receive, methods=["POST"])])) as url:
        found.url = url
        yield found


@pytest.fixture
def ticketing_settings(ticketing_settings: Settings) -> Settings:
    """Deliveries looked for often, retried within a test: backoff 0.2 s, given up after 3 POSTs."""
    return ticketing_settings.model_copy(
        update={"hub_delivery_seconds": 0.05, "hub_backoff_seconds": (0.2,), "hub_max_attempts": 3}
    )


@pytest.fixture(autouse=True)
def real_time(test_clock: TestClock) -> None:
    """Changes happen now: a delivery is due when the change it reports is made, on the worker's real clock."""
    test_clock.set(datetime.now().astimezone())


async def register(service: Ticketing, callback: str, query: str | None = None) -> dict[str, Any]:
    body = {"callback": callback, **({"query": query} if query else {})}
    r = await service.http.post(HUB, json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def deliveries(service: Ticketing, ticket_id: str) -> list[HubDelivery]:
    async with service.database() as db, db.sessions() as session:
        query = select(HubDelivery).where(HubDelivery.ticket_id == ticket_id).order_by(HubDelivery.seq)
        return list(await session.scalars(query))


def verify(secret: str, received: Received) -> bool:
    timestamp = received.headers["x-hub-timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(received.headers["x-hub-signature-256"], f"sha256={expected}")


def hub_counter(text: str, outcome: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "crm_ticketing_hub_deliveries_total" and sample.labels["outcome"] == outcome:
                return sample.value
    return 0.0


# --- listeners ---------------------------------------------------------------------------------------------------


async def test_an_administrator_registers_reads_and_removes_a_listener(service: Ticketing) -> None:
    body = {"callback": "https://partner.example/tmf/events", "query": "eventType=TroubleTicketStatusChangeEvent"}
    r = await service.http.post(HUB, json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    registered = r.json()
    assert r.headers["Location"] == f"{HUB}/{registered['id']}"
    assert {k: registered[k] for k in ("callback", "query")} == body
    assert len(registered["secret"]) >= 32

    shown = await service.http.get(r.headers["Location"], headers=ADMIN)
    assert shown.status_code == 200
    assert shown.json() == {"id": registered["id"], **body}, "the secret is shown once, at registration"

    assert (await service.http.delete(r.headers["Location"], headers=ADMIN)).status_code == 204
    assert_problem(await service.http.get(r.headers["Location"], headers=ADMIN), 404, "id")
    assert_problem(await service.http.delete(r.headers["Location"], headers=ADMIN), 404, "id")


async def test_only_administrators_manage_listeners(service: Ticketing) -> None:
    registered = await register(service, "https://partner.example/tmf/events")
    one = f"{HUB}/{registered['id']}"
    for caller in (service.http.headers, bearer("kam-1", roles=("key_account_manager",)), bearer("p1", ("partner",))):
        assert_problem(await service.http.post(HUB, json={"callback": "https://x.example/"}, headers=caller), 403)
        assert_problem(await service.http.get(one, headers=caller), 403)
        assert_problem(await service.http.delete(one, headers=caller), 403)
    assert (await service.http.get(one, headers=ADMIN)).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "eventType=TroubleTicketStateChangeEvent",
        "eventType=TroubleTicketCreateEvent,Nope",
        "eventType=",
        "eventType",
        "status=resolved",
        "eventType=TroubleTicketCreateEvent&priority=high",
    ],
)
async def test_a_query_that_is_not_event_types_is_refused(service: Ticketing, query: str) -> None:
    r = await service.http.post(HUB, json={"callback": "https://partner.example/e", "query": query}, headers=ADMIN)
    assert_problem(r, 422, "query")


@pytest.mark.parametrize("callback", ["ftp://partner.example/e", "/relative/path", "https://user:pw@partner.example/"])
async def test_a_callback_that_cannot_be_called_back_is_refused(service: Ticketing, callback: str) -> None:
    assert_problem(await service.http.post(HUB, json={"callback": callback}, headers=ADMIN), 422, "callback")


# --- delivery ----------------------------------------------------------------------------------------------------


async def test_a_listener_hears_a_ticket_opened_worked_and_resolved(service: Ticketing, listener: Listener) -> None:
    await register(service, listener.callback("all"))
    ticket = await service.create()
    await service.move(ticket["id"], "inProgress")
    resolved = await service.move(ticket["id"], "resolved", "已退还差额")

    got = await listener.got("all", 4)
    assert listener.types("all") == [CREATE, STATUS_CHANGE, STATUS_CHANGE, RESOLVED]
    assert [r.ticket["status"] for r in got] == ["acknowledged", "inProgress", "resolved", "resolved"]
    assert got[0].ticket == ticket, "the ticket as the API answered the create"
    assert got[3].ticket == resolved == await service.get(ticket["id"])
    for r in got:
        event = TroubleTicketEvent.model_validate(r.event)
        assert r.headers["content-type"] == "application/json"
        assert (r.headers["x-event-id"], r.headers["x-event-type"]) == (event.event_id, event.event_type)
        assert event.event_time.utcoffset() is not None and event.time_ocurred is not None
    assert len({r.event["eventId"] for r in got}) == 4

    told = {r.event["eventId"]: r.event_type for r in got}

    async def on_the_bus() -> dict[str, str] | None:
        published = {e.id: e.type for _, e in await service.ticket_events(expect=1)}
        return {told[i]: published[i] for i in told if i in published} if set(told) <= set(published) else None

    assert await eventually(on_the_bus) == {
        CREATE: "ticketing.ticket.created.v1",
        STATUS_CHANGE: "ticketing.ticket.state_changed.v1",
        RESOLVED: "ticketing.ticket.resolved.v1",
    }, "each notification carries the id of the ticketing.ticket event it mirrors"


async def test_every_post_is_signed_with_the_listeners_own_secret(service: Ticketing, listener: Listener) -> None:
    one = await register(service, listener.callback("one"))
    other = await register(service, listener.callback("other"))
    await service.create()
    [to_one], [to_other] = await listener.got("one", 1), await listener.got("other", 1)
    assert verify(one["secret"], to_one) and verify(other["secret"], to_other)
    assert not verify(other["secret"], to_one), "a secret signs for its own listener only"
    assert abs(int(to_one.headers["x-hub-timestamp"]) - time.time()) < 30, "the timestamp is when it was sent"
    forged = Received(to_one.headers, to_one.body.replace(b"acknowledged", b"resolved"))
    assert not verify(one["secret"], forged), "the signature covers the body"


async def test_a_listener_hears_only_the_event_types_its_query_selects(service: Ticketing, listener: Listener) -> None:
    await register(service, listener.callback("status"), "eventType=TroubleTicketStatusChangeEvent")
    await register(service, listener.callback("bookends"), f"eventType={CREATE},{RESOLVED}")
    ticket = await service.create()
    await service.move(ticket["id"], "inProgress")
    await service.move(ticket["id"], "resolved")

    await listener.got("status", 2)
    await listener.got("bookends", 2)
    # Each listener's deliveries go out in the order staged: a Create owed to "status" would have come first.
    assert listener.types("status") == [STATUS_CHANGE, STATUS_CHANGE]
    assert listener.types("bookends") == [CREATE, RESOLVED]


async def test_a_patch_of_other_members_and_a_delete_are_told(service: Ticketing, listener: Listener) -> None:
    await register(service, listener.callback("changes"), f"eventType={ATTRIBUTE_VALUE_CHANGE},{DELETE}")
    ticket = await service.create()
    patch = {"description": "客户补充: 多扣费用为45元", "priority": "high", "note": [{"text": "已致电客户"}]}
    assert (await service.patch(ticket["id"], patch)).status_code == 200
    assert (await service.patch(ticket["id"], {"priority": "high"})).status_code == 200, "no change: not told"
    deleted = await service.http.delete(f"/tmf-api/troubleTicket/v4/troubleTicket/{ticket['id']}", headers=ADMIN)
    assert deleted.status_code == 204

    changed, gone = await listener.got("changes", 2)
    assert changed.event_type == ATTRIBUTE_VALUE_CHANGE
    assert changed.event["fieldPath"] == "description,priority,note"
    assert (changed.ticket["description"], changed.ticket["priority"]) == (patch["description"], "high")
    assert gone.event_type == DELETE
    assert gone.ticket["id"] == ticket["id"] and gone.ticket["priority"] == "high", "the ticket as it was"
    assert listener.types("changes") == [ATTRIBUTE_VALUE_CHANGE, DELETE]


async def test_a_listener_that_refuses_twice_gets_it_on_the_third_post(service: Ticketing, listener: Listener) -> None:
    before = hub_counter((await service.http.get("/metrics")).text, "retried")
    await register(service, listener.callback("flaky", 500, 500))
    ticket = await service.create()

    first, second, third = await listener.got("flaky", 3)
    assert first.body == second.body == third.body, "the same event, fixed when staged"
    assert first.headers["x-event-id"] == third.headers["x-event-id"]

    async def delivered() -> HubDelivery | None:
        [row] = await deliveries(service, ticket["id"])
        return row if row.state == "delivered" else None

    row = await eventually(delivered)
    assert (row.attempts, row.next_attempt_at) == (3, None)
    assert row.delivered_at is not None
    assert row.last_error is not None and row.last_error.startswith("HTTP 500")
    assert hub_counter((await service.http.get("/metrics")).text, "retried") == before + 2


async def test_a_listener_that_never_answers_2xx_is_given_up_with_the_reason_kept(
    service: Ticketing, listener: Listener
) -> None:
    await register(service, listener.callback("broken", *[503] * 10))
    await register(service, f"http://127.0.0.1:{free_port()}/nobody-listens")
    await register(service, listener.callback("healthy"))
    ticket = await service.create()
    await service.move(ticket["id"], "inProgress")
    await listener.got("healthy", 2)

    async def given_up() -> list[HubDelivery] | None:
        rows = [r for r in await deliveries(service, ticket["id"]) if r.state != "delivered"]
        return rows if len(rows) == 4 and all(r.state == "failed" for r in rows) else None

    failed = await eventually(given_up)
    assert all(r.attempts == 3 and r.next_attempt_at is None for r in failed)
    reasons = {r.last_error or "" for r in failed}
    assert any(reason.startswith("HTTP 503: listener says no") for reason in reasons)
    assert any(reason.startswith("ConnectError") for reason in reasons)
    assert sorted(listener.types("broken")) == [CREATE] * 3 + [STATUS_CHANGE] * 3, "three POSTs each, no more"


async def test_a_removed_listener_hears_nothing_more(service: Ticketing, listener: Listener) -> None:
    leaving = await register(service, listener.callback("leaving"))
    await register(service, listener.callback("staying"))
    ticket = await service.create()
    await listener.got("leaving", 1)
    assert (await service.http.delete(f"{HUB}/{leaving['id']}", headers=ADMIN)).status_code == 204

    await service.move(ticket["id"], "inProgress")
    await listener.got("staying", 2)
    assert listener.types("leaving") == [CREATE]
    assert leaving["id"] not in {r.subscription_id for r in await deliveries(service, ticket["id"])}


async def test_a_refused_change_stages_nothing(service: Ticketing, listener: Listener) -> None:
    await register(service, listener.callback("all"))
    ticket = await service.create()
    refused = await service.patch(ticket["id"], {"status": "closed", "description": "改了也不算"})
    assert_problem(refused, 409, "status")
    assert [r.event_type for r in await deliveries(service, ticket["id"])] == [CREATE]

    await service.move(ticket["id"], "inProgress")
    await listener.got("all", 2)
    assert listener.types("all") == [CREATE, STATUS_CHANGE]
    assert [r.event_type for r in await deliveries(service, ticket["id"])] == [CREATE, STATUS_CHANGE]
