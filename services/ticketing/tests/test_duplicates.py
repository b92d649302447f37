"""Duplicate tickets (重复工单): a customer's new ticket in a category they already have one open in, or had one opened
in within the window, is linked to it (`isDuplicateOf`) and still opened; another customer's or another category's
is not. The window here is 24 h (CRM_TICKETING_DUPLICATE_WINDOW_HOURS), to show the setting is the one applied."""

from __future__ import annotations

from typing import Any

import pytest

from crm_ticketing.settings import Settings

TICKETS = "/tmf-api/troubleTicket/v4/troubleTicket"


@pytest.fixture
def ticketing_settings(ticketing_settings: Settings) -> Settings:
    return ticketing_settings.model_copy(update={"duplicate_window_hours": 24})


def duplicate_of(ticket: dict[str, Any]) -> str | None:
    """The ticket this one repeats, as the representation links it."""
    links = ticket["troubleTicketRelationship"]
    assert len(links) <= 1, links
    if not links:
        return None
    [link] = links
    assert (link["relationshipType"], link["href"]) == ("isDuplicateOf", f"{TICKETS}/{link['id']}")
    return link["id"]  # type: ignore[no-any-return]


async def test_a_repeat_while_the_first_is_open_is_linked_to_the_earliest_open_one(service):
    first = await service.create("C1")
    service.clock.advance(hours=30)  # past the window: an open ticket is repeated however old
    second = await service.create("C1")
    service.clock.advance(minutes=10)
    third = await service.create("C1")

    assert duplicate_of(first) is None
    assert duplicate_of(second) == duplicate_of(third) == first["id"]
    assert duplicate_of(await service.get(third["id"])) == first["id"]
    assert third["status"] == "acknowledged"


async def test_another_customer_or_category_is_not_a_duplicate(service):
    first = await service.create("C1")
    other_customer = await service.create("C2")
    other_category = await service.create("C1", category="network_coverage")
    assert duplicate_of(first) is duplicate_of(other_customer) is duplicate_of(other_category) is None


async def test_a_repeat_within_the_window_of_a_resolved_one_is_linked_and_not_later(service):
    first = await service.create("C1")
    service.clock.advance(hours=1)
    await service.move(first["id"], "resolved", "已退还差额")
    service.clock.advance(hours=22, minutes=59)
    within = await service.create("C1")
    assert duplicate_of(within) == first["id"]

    await service.move(within["id"], "cancelled", "客户撤诉")
    service.clock.advance(hours=24, minutes=1)  # past the window of both
    assert duplicate_of(await service.create("C1")) is None


async def test_the_most_recent_in_the_window_when_none_is_open(service):
    older = await service.create("C1")
    service.clock.advance(hours=2)
    newer = await service.create("C1")
    await service.move(older["id"], "cancelled", "重复受理")
    await service.move(newer["id"], "resolved", "已解释")
    service.clock.advance(hours=1)
    assert duplicate_of(await service.create("C1")) == newer["id"]
