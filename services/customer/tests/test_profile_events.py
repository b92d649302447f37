"""What the customer service tells the rest of the system: customer.profile.created/updated.v1 on `customer.profile`,
valid against their contracts, keyed by customer id, carrying the correlation id of the event that caused them."""

from __future__ import annotations

from datetime import datetime

CREATED = "customer.profile.created.v1"
UPDATED = "customer.profile.updated.v1"


def _zoned(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None, value
    return moment


async def test_new_customers_and_their_changes_are_published_valid_keyed_and_correlated(service, boss):
    cid, sid, msisdn = "C500", "S500", "13900000500"
    await boss.send(
        boss.activated(cid, sid, msisdn, "2026-11-20T09:30:00+08:00", correlation_id="req-activation-500"),
        boss.line(
            "suspended",
            cid,
            sid,
            msisdn,
            "2027-01-05T02:00:00+08:00",
            reason="arrears",
            correlation_id="req-suspend-500",
        ),
    )
    # C510 is first heard of through a line event (no details), without a correlation id; details come later
    unknown_first = boss.line("suspended", "C510", "S511", "13900000511", "2027-01-05T02:00:00+08:00", reason="fraud")
    await boss.send(unknown_first)
    await service.wait_for("C510")
    await boss.send(
        boss.activated(
            "C510",
            "S512",
            "13900000512",
            "2027-01-06T09:00:00+08:00",
            name="深圳市腾达科技有限公司",
            customer_type="organization",
            region="GD-SZ",
            id_card_no=None,
            correlation_id="req-details-510",
        )
    )
    await service.wait_for(cid, lambda c: c["status"] == "suspended")
    await service.wait_for("C510", lambda c: c["status"] == "active")

    published = await service.profile_events(expect=6)

    for key, event in published:
        boss.contracts.validate_event(event)  # raises on any contract violation
        assert event.topic == "customer.profile"
        assert key == event.subject == event.data["customer_id"]
        assert event.source == "/crm/customer"
    assert len({e.id for _, e in published}) == len(published)

    mine = [e for key, e in published if key == cid]
    created = [e for e in mine if e.type == CREATED]
    assert len(created) == 1
    assert created[0].data == {
        "customer_id": cid,
        "name": "张伟",
        "customer_type": "individual",
        "region": "BJ",
        "status": "active",
        "created_at": created[0].data["created_at"],
    }
    _zoned(created[0].data["created_at"])
    assert created[0].correlationid == "req-activation-500"
    suspended = [e for e in mine if e.type == UPDATED and e.data["status"] == "suspended"]
    assert len(suspended) == 1
    assert suspended[0].data["active_lines"] == 0
    assert suspended[0].data["total_lines"] == 1
    assert suspended[0].data["name"] == "张伟"
    assert suspended[0].correlationid == "req-suspend-500"
    _zoned(suspended[0].data["updated_at"])
    assert mine.index(created[0]) < mine.index(suspended[0])

    learned = [e for key, e in published if key == "C510"]
    [created_unknown] = [e for e in learned if e.type == CREATED]
    assert {k: created_unknown.data[k] for k in ("name", "customer_type", "region", "status")} == {
        "name": None,
        "customer_type": None,
        "region": None,
        "status": "suspended",
    }
    assert created_unknown.correlationid == unknown_first.id  # no correlation id came in: the event's id stands in
    last = learned[-1]
    assert last.type == UPDATED
    assert last.correlationid == "req-details-510"
    assert {k: last.data[k] for k in ("name", "customer_type", "region", "status", "active_lines", "total_lines")} == {
        "name": "深圳市腾达科技有限公司",
        "customer_type": "organization",
        "region": "GD-SZ",
        "status": "active",
        "active_lines": 1,
        "total_lines": 2,
    }
