"""One customer's campaign contacts, newest first, bounded, with what the channel and the customer made of them: what
the agents and the gateway's 360 view read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from crm_campaign.domain import control
from crm_kit.presentation import SHANGHAI
from crm_kit.testing import assert_problem, bearer

from .conftest import AGENT, ANALYST, Campaigns
from .test_attribution import CUSTOMERS, UPGRADE, launched, plan_change, population

KEY = "CONTACTS-TEST"


def contacts_of(customer_id: str) -> str:
    return f"/campaign/v1/customers/{customer_id}/contacts"


async def test_a_customers_contacts_come_newest_first_with_delivery_and_response(campaign: Campaigns) -> None:
    c = campaign
    c.clock.now = datetime(2026, 11, 23, 10, tzinfo=SHANGHAI).astimezone(UTC)
    await population(c)
    first = await launched(c, holdout_key=KEY)
    treatment, held_out = control.assign(KEY, CUSTOMERS, Decimal("0.5"))
    someone, nobody = treatment[0], held_out[0]
    await c.send(plan_change(c, someone, UPGRADE["plan_code"], 2))
    c.clock.now += timedelta(days=1)
    second = await launched(c, name="二次升档", holdout_key=KEY, priority=7)

    r = await c.http.get(contacts_of(someone), headers=AGENT)
    assert r.status_code == 200, r.text
    assert r.headers["X-Total-Count"] == "2"
    body = r.json()
    assert [x["campaign_id"] for x in body] == [second, first], "newest first"
    latest, earlier = body
    assert (earlier["status"], earlier["channel"], earlier["purpose"]) == ("sent", "sms", "marketing")
    assert (earlier["campaign_name"], earlier["objective"]) == ("升档活动", "upsell")
    assert (earlier["offer_code"], earlier["offer_name"]) == (UPGRADE["code"], UPGRADE["name"])
    assert earlier["sent_at"] == "2026-11-23T10:00:00+08:00", "times in China Standard Time"
    assert earlier["responded_at"] == "2026-11-25T10:00:00+08:00"
    assert (latest["status"], latest["reason"], latest["sent_at"]) == ("suppressed", "outranked", None), (
        "the first campaign still runs and outranks it: held back, and shown with why"
    )
    assert latest["planned_at"] == "2026-11-24T10:00:00+08:00"
    assert latest["responded_at"] is None

    page = await c.http.get(contacts_of(someone), params={"limit": 1, "offset": 1}, headers=ANALYST)
    assert [x["campaign_id"] for x in page.json()] == [first]
    assert (page.headers["X-Total-Count"], page.headers["X-Result-Count"]) == ("2", "1")

    held = await c.http.get(contacts_of(nobody), headers=AGENT)
    assert (held.status_code, held.json(), held.headers["X-Total-Count"]) == (200, [], "0"), "control: never contacted"
    unknown = await c.http.get(contacts_of("C999999"), headers=AGENT)
    assert (unknown.status_code, unknown.json()) == (200, [])


async def test_readers_only_and_bad_input_is_refused(campaign: Campaigns) -> None:
    c = campaign
    for headers in (bearer("kam-01", roles=("key_account_manager",)), bearer("sms-gw", roles=("channel",))):
        assert_problem(await c.http.get(contacts_of("C001"), headers=headers), 403)
    assert_problem(await c.http.get(contacts_of("C001"), headers={"Authorization": ""}), 401)
    assert_problem(await c.http.get(contacts_of("C 001"), headers=AGENT), 422, "customer_id")
    assert_problem(await c.http.get(contacts_of("C001"), params={"limit": 201}, headers=AGENT), 422, "limit")
