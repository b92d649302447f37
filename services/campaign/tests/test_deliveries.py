"""Delivery receipts (状态报告): the channel gateways say what became of the contacts they were handed; the report
counts the delivered. A receipt for a contact that was not sent refuses its batch whole, each bad receipt named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from crm_campaign.domain import control
from crm_kit.events import CloudEvent
from crm_kit.presentation import SHANGHAI
from crm_kit.testing import bearer, read_topic

from .conftest import MARKETER, Campaigns
from .test_attribution import CAMPAIGNS, CUSTOMERS, launched, population

DELIVERIES = "/campaign/v1/deliveries"
CHANNEL = bearer("sms-gateway", roles=("channel",))
KEY = "DELIVERY-TEST"
SILENT = [f"Q{n:03d}" for n in range(1, 11)]
"""Segment members who never gave a consent: suppressed (no_consent) in treatment."""


async def sent_contacts(c: Campaigns, campaign_id: str, expect: int) -> dict[str, str]:
    """customer → contact id, from what the campaign published on campaign.contact."""
    records = await read_topic(c.bootstrap, "campaign.contact", expect=expect)
    found = {}
    for record in records:
        event = CloudEvent.model_validate_json(record.value or b"")
        if event.type == "campaign.contact.sent.v1" and event.data["campaign_id"] == campaign_id:
            found[event.data["customer_id"]] = event.data["contact_id"]
    return found


def receipt(contact_id: str, status: str, minutes: int, **more: Any) -> dict[str, Any]:
    at = datetime(2026, 11, 23, 10, tzinfo=SHANGHAI) + timedelta(minutes=minutes)
    return {"contact_id": contact_id, "status": status, "at": at.isoformat(), **more}


async def post(c: Campaigns, *receipts: dict[str, Any], headers: dict[str, str] = CHANNEL) -> Any:
    return await c.http.post(DELIVERIES, json={"receipts": list(receipts)}, headers=headers)


async def test_receipts_are_recorded_once_and_the_report_counts_the_delivered(campaign: Campaigns) -> None:
    c = campaign
    c.clock.now = datetime(2026, 11, 23, 10, tzinfo=SHANGHAI).astimezone(UTC)
    await population(c)
    cid = await launched(c, holdout_key=KEY)
    treatment, held_out = control.assign(KEY, CUSTOMERS, Decimal("0.5"))
    contacts = await sent_contacts(c, cid, expect=len(treatment))
    assert sorted(contacts) == sorted(treatment)
    ids = [contacts[who] for who in treatment]

    first = [receipt(i, "delivered", 1) for i in ids[:8]] + [
        receipt(i, "failed", 2, error="UNDELIV:EXPIRED") for i in ids[8:11]
    ]
    r = await post(c, *first)
    assert (r.status_code, r.json()) == (200, {"recorded": 11, "unchanged": 0})
    r = await post(c, *first)
    assert r.json() == {"recorded": 0, "unchanged": 11}, "a resent batch changes nothing"

    r = await post(
        c,
        receipt(ids[8], "delivered", 30),  # the channel retried and got through
        receipt(ids[0], "failed", 40, error="late report"),  # delivered stays delivered
        receipt(ids[11], "failed", 5, error="SMSC busy"),
        receipt(ids[11], "delivered", 4),  # reported out of order: the delivery happened first, and stands
    )
    assert r.json() == {"recorded": 2, "unchanged": 2}

    report = (await c.http.get(f"{CAMPAIGNS}/{cid}/report")).json()
    delivered = 8 + 1 + 1
    assert (report["treatment"]["contacted"], report["treatment"]["delivered"]) == (len(treatment), delivered)
    assert (report["control"]["contacted"], report["control"]["delivered"]) == (0, 0)
    assert report["offers"][0]["delivered"] == delivered
    page = (await c.http.get(f"{CAMPAIGNS}/{cid}/report.html")).text
    assert f"<tr><th>delivered</th><td>{delivered:,}</td><td>0</td></tr>" in page
    assert len(held_out) > 0


async def test_a_receipt_for_a_contact_not_sent_refuses_its_batch(campaign: Campaigns) -> None:
    c = campaign
    c.clock.now = datetime(2026, 11, 23, 10, tzinfo=SHANGHAI).astimezone(UTC)
    await population(c)
    await c.send(
        *(c.event("customer.profile.created.v1", customer_id=who) for who in SILENT),
        *(
            c.event("customer.segment.membership_changed.v1", customer_id=who, segment_id="SEG-UP", change="joined")
            for who in SILENT
        ),
    )
    cid = await launched(c, holdout_key=KEY)
    treatment, _ = control.assign(KEY, CUSTOMERS + SILENT, Decimal("0.5"))
    consenting = [who for who in treatment if who not in SILENT]
    contacts = await sent_contacts(c, cid, expect=len(consenting))
    assert sorted(contacts) == sorted(consenting), "the silent are suppressed, not sent"
    good = contacts[consenting[0]]

    r = await post(c, receipt(good, "delivered", 1), receipt("CNT-NOSUCH", "delivered", 1))
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == "receipts[1].contact_id"
    assert [e["field"] for e in r.json()["errors"]] == ["receipts[1].contact_id"]

    report = (await c.http.get(f"{CAMPAIGNS}/{cid}/report")).json()
    assert report["treatment"]["delivered"] == 0, "nothing of a refused batch is taken"

    contacts_page = (await c.http.get(f"{CAMPAIGNS}/{cid}/contacts")).json()
    assert contacts_page["suppressed"] == {"no_consent": len(treatment) - len(consenting)}


async def test_bad_receipts_and_wrong_callers_get_problems(campaign: Campaigns) -> None:
    c = campaign
    cases = [
        ({"receipts": []}, "receipts"),
        ({"receipts": [receipt("CNT-1", "read", 1)]}, "receipts[0].status"),
        ({"receipts": [receipt("CNT-1", "delivered", 1, error="why?")]}, "receipts[0]"),
        ({"receipts": [{"contact_id": "CNT-1", "status": "failed", "at": "2026-11-23T10:00:00"}]}, "receipts[0].at"),
        ({"receipts": [receipt("CNT-1", "delivered", 1)] * 1001}, "receipts"),
    ]
    for body, field in cases:
        r = await c.http.post(DELIVERIES, json=body, headers=CHANNEL)
        assert r.status_code == 422, (field, r.text)
        assert r.json()["field"] == field, r.json()
    r = await c.http.post(DELIVERIES, json={"receipts": [receipt("CNT-1", "delivered", 1)]}, headers=MARKETER)
    assert r.status_code == 403, "a marketer does not report deliveries"
