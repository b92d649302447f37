"""Consents and do-not-disturb (营销授权/免打扰) through the served API: opt-in by default, grant and withdraw,
idempotent repeats, late (stale) changes refused, the history, do-not-disturb with an end, every bad input answered
with problem+json naming the field, and what is published on customer.profile."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_customer.domain import consents
from crm_kit.events import CloudEvent
from crm_kit.testing import bearer

CONSENT_CHANGED = "customer.profile.consent_changed.v1"
DND_CHANGED = "customer.profile.dnd_changed.v1"
PROBLEM = "application/problem+json"


def base(customer_id: str) -> str:
    return f"/api/v1/customers/{customer_id}"


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def ahead(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


async def known_customer(service, boss, customer_id: str) -> str:
    """A customer the service knows, learned from the BOSS as in production."""
    n = customer_id[1:].rjust(4, "0")
    await boss.send(boss.activated(customer_id, f"S{n}", f"1390000{n}", "2026-11-20T09:30:00+08:00"))
    await service.wait_for(customer_id)
    return customer_id


async def consents_of(service, customer_id: str) -> dict[str, Any]:
    r = await service.http.get(f"{base(customer_id)}/consents")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def consent(state: dict[str, Any], channel: str, purpose: str) -> dict[str, Any]:
    [found] = [c for c in state["consents"] if (c["channel"], c["purpose"]) == (channel, purpose)]
    return found


async def put_consent(service, customer_id: str, channel: str, purpose: str, **body: Any) -> Any:
    actor, rid = body.pop("actor", None), body.pop("rid", None)
    headers = {**(bearer(subject=actor) if actor else {}), **({"X-Request-ID": rid} if rid else {})}
    return await service.http.put(f"{base(customer_id)}/consents/{channel}/{purpose}", json=body, headers=headers)


async def consent_events(service, boss, expect: int) -> list[CloudEvent]:
    """Consent and do-not-disturb events on customer.profile, each valid and keyed by its customer."""
    published = await service.profile_events(expect=expect)
    mine = []
    for key, event in published:
        if event.type not in (CONSENT_CHANGED, DND_CHANGED):
            continue
        boss.contracts.validate_event(event)
        assert key == event.subject == event.data["customer_id"]
        assert event.source == "/crm/customer"
        mine.append(event)
    return mine


def assert_problem(r: Any, status: int, field: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status
    assert body["field"] == field, body
    assert body["type"].startswith("urn:telecom-crm:problem:")
    assert "request_id" in body


async def test_without_a_record_marketing_is_not_consented_and_service_is(service, boss):
    cid = await known_customer(service, boss, "C7001")

    state = await consents_of(service, cid)

    assert state["customer_id"] == cid
    assert state["href"] == f"{base(cid)}/consents"
    assert len(state["consents"]) == len(consents.CHANNELS) * len(consents.PURPOSES) == 8
    for c in state["consents"]:
        marketing = c["purpose"] == "marketing"
        assert c["granted"] is not marketing
        assert c["contactable"] is not marketing
        assert c["recorded"] is False
        assert c["source"] is c["recorded_at"] is c["updated_at"] is None
    assert state["do_not_disturb"] == {
        "enabled": False,
        "active": False,
        "until": None,
        "source": None,
        "recorded_at": None,
        "updated_at": None,
    }
    history = await service.http.get(f"{base(cid)}/consents/history")
    assert history.status_code == 200
    assert history.json() == []
    assert history.headers["X-Total-Count"] == "0"


async def test_grant_withdraw_and_an_idempotent_repeat_are_recorded_and_published_once_each(service, boss):
    cid = await known_customer(service, boss, "C7002")
    given = "2025-06-01T10:00:00+08:00"

    granted = await put_consent(
        service, cid, "sms", "marketing", granted=True, source="app", recorded_at=given, actor="agent:zhang", rid="r-1"
    )
    assert granted.status_code == 200, granted.text
    assert granted.json() == {
        "channel": "sms",
        "purpose": "marketing",
        "granted": True,
        "recorded": True,
        "contactable": True,
        "source": "app",
        "recorded_at": "2025-06-01T10:00:00+08:00",
        "updated_at": granted.json()["updated_at"],
    }
    assert granted.json()["updated_at"].endswith("+08:00")  # shown in China Standard Time

    again = await put_consent(service, cid, "sms", "marketing", granted=True, source="web", rid="r-2")
    assert again.status_code == 200
    assert again.json() == granted.json()  # nothing changed: not the source, not the time

    withdrawn = await put_consent(
        service, cid, "sms", "marketing", granted=False, source="sms_reply", rid="r-3", actor="customer"
    )
    assert withdrawn.status_code == 200
    assert withdrawn.json()["granted"] is False
    assert withdrawn.json()["contactable"] is False
    # service notices by e-mail withdrawn: recorded; they were allowed by default
    service_mail = await put_consent(service, cid, "email", "service", granted=False, source="store", rid="r-4")
    assert service_mail.json()["contactable"] is False

    state = await consents_of(service, cid)
    assert consent(state, "sms", "marketing")["granted"] is False
    assert consent(state, "sms", "marketing")["source"] == "sms_reply"
    assert consent(state, "email", "service")["granted"] is False
    assert consent(state, "sms", "service")["granted"] is True  # untouched: the default
    assert consent(state, "push", "marketing")["granted"] is False

    history = (await service.http.get(f"{base(cid)}/consents/history")).json()
    assert [(h["channel"], h["purpose"], h["granted"], h["changed_by"]) for h in history] == [
        ("email", "service", False, "agent-0001"),
        ("sms", "marketing", False, "customer"),
        ("sms", "marketing", True, "agent:zhang"),
    ]
    assert history[-1]["recorded_at"] == "2025-06-01T10:00:00+08:00"
    assert all(h["kind"] == "consent" and h["enabled"] is None for h in history)

    events = await consent_events(service, boss, expect=5)
    assert [(e.data["channel"], e.data["purpose"], e.data["granted"], e.correlationid) for e in events] == [
        ("sms", "marketing", True, "r-1"),
        ("sms", "marketing", False, "r-3"),
        ("email", "service", False, "r-4"),
    ]
    assert events[0].data == {
        "customer_id": cid,
        "channel": "sms",
        "purpose": "marketing",
        "granted": True,
        "source": "app",
        "recorded_at": events[0].data["recorded_at"],
        "do_not_disturb": {"enabled": False, "until": None},
    }
    assert datetime.fromisoformat(events[0].data["recorded_at"]) == datetime.fromisoformat(given)


async def test_a_change_older_than_the_record_is_refused_and_one_in_the_future_too(service, boss):
    cid = await known_customer(service, boss, "C7003")
    r = await put_consent(
        service, cid, "push", "marketing", granted=True, source="app", recorded_at="2025-06-01T10:00:00+08:00"
    )
    assert r.status_code == 200

    stale = await put_consent(
        service, cid, "push", "marketing", granted=False, source="hotline", recorded_at="2025-06-01T09:59:59+08:00"
    )
    assert_problem(stale, 409, "recorded_at")
    assert stale.json()["type"].endswith(":conflict")

    future = await put_consent(
        service, cid, "push", "marketing", granted=False, source="app", recorded_at=ahead(hours=1)
    )
    assert_problem(future, 422, "recorded_at")

    # the same instant in another zone is not older: it is accepted
    same = await put_consent(
        service, cid, "push", "marketing", granted=False, source="hotline", recorded_at="2025-06-01T02:00:00Z"
    )
    assert same.status_code == 200
    assert same.json()["granted"] is False

    dnd = await service.http.put(
        f"{base(cid)}/do-not-disturb", json={"enabled": True, "source": "app", "recorded_at": ago(minutes=1)}
    )
    assert dnd.status_code == 200
    stale_dnd = await service.http.put(
        f"{base(cid)}/do-not-disturb", json={"enabled": False, "source": "app", "recorded_at": ago(hours=1)}
    )
    assert_problem(stale_dnd, 409, "recorded_at")

    state = await consents_of(service, cid)
    assert consent(state, "push", "marketing")["granted"] is False
    assert state["do_not_disturb"]["enabled"] is True
    history = (await service.http.get(f"{base(cid)}/consents/history")).json()
    assert len(history) == 3  # the refused changes left no trace


async def test_history_is_paged_newest_first_and_bounded(service, boss):
    cid = await known_customer(service, boss, "C7004")
    start = datetime(2025, 6, 1, 2, 0, tzinfo=UTC)
    for i in range(7):
        r = await put_consent(
            service,
            cid,
            "outbound_call",
            "marketing",
            granted=i % 2 == 0,
            source="agent",
            recorded_at=(start + timedelta(minutes=i)).isoformat(),
            actor=f"agent:{i}",
        )
        assert r.status_code == 200, r.text

    first = await service.http.get(f"{base(cid)}/consents/history", params={"limit": 3})
    second = await service.http.get(f"{base(cid)}/consents/history", params={"offset": 3, "limit": 3})
    last = await service.http.get(f"{base(cid)}/consents/history", params={"offset": 6, "limit": 3})
    beyond = await service.http.get(f"{base(cid)}/consents/history", params={"offset": 10})

    assert [h["changed_by"] for h in first.json()] == ["agent:6", "agent:5", "agent:4"]
    assert [h["changed_by"] for h in second.json()] == ["agent:3", "agent:2", "agent:1"]
    assert [h["changed_by"] for h in last.json()] == ["agent:0"]
    assert beyond.json() == []
    for r, count in ((first, 3), (second, 3), (last, 1), (beyond, 0)):
        assert r.headers["X-Total-Count"] == "7"
        assert r.headers["X-Result-Count"] == str(count)
    assert first.json()[0]["recorded_at"] == "2025-06-01T10:06:00+08:00"
    ids = [h["id"] for h in first.json() + second.json() + last.json()]
    assert ids == sorted(ids, reverse=True)

    assert (await service.http.get(f"{base(cid)}/consents/history", params={"limit": 1000})).status_code == 200
    assert_problem(await service.http.get(f"{base(cid)}/consents/history", params={"limit": 1001}), 422, "limit")
    assert_problem(await service.http.get(f"{base(cid)}/consents/history", params={"limit": 0}), 422, "limit")
    assert_problem(await service.http.get(f"{base(cid)}/consents/history", params={"offset": -1}), 422, "offset")


async def test_do_not_disturb_silences_marketing_until_it_ends(service, boss):
    cid = await known_customer(service, boss, "C7005")
    await put_consent(service, cid, "sms", "marketing", granted=True, source="app", rid="r-grant")
    until = (datetime.now(UTC) + timedelta(days=90)).replace(microsecond=0)

    on = await service.http.put(
        f"{base(cid)}/do-not-disturb",
        json={"enabled": True, "until": until.isoformat(), "source": "sms_reply"},
        headers={**bearer(subject="sms-gateway"), "X-Request-ID": "r-dnd-on"},
    )
    assert on.status_code == 200, on.text
    assert on.json()["enabled"] is on.json()["active"] is True
    assert datetime.fromisoformat(on.json()["until"]) == until
    assert on.json()["until"].endswith("+08:00")

    state = await consents_of(service, cid)
    assert state["do_not_disturb"]["active"] is True
    sms_marketing = consent(state, "sms", "marketing")
    assert sms_marketing["granted"] is True and sms_marketing["contactable"] is False
    assert consent(state, "sms", "service")["contactable"] is True  # service notices still go

    repeat = await service.http.put(
        f"{base(cid)}/do-not-disturb", json={"enabled": True, "until": until.isoformat(), "source": "app"}
    )
    assert repeat.json() == on.json()

    # a consent changed during do-not-disturb carries it
    await put_consent(service, cid, "email", "marketing", granted=True, source="web", rid="r-mail")

    off = await service.http.put(
        f"{base(cid)}/do-not-disturb", json={"enabled": False, "source": "app"}, headers={"X-Request-ID": "r-dnd-off"}
    )
    assert off.json()["enabled"] is off.json()["active"] is False
    assert off.json()["until"] is None
    assert consent(await consents_of(service, cid), "sms", "marketing")["contactable"] is True

    # a do-not-disturb whose `until` has passed is off, though still recorded as enabled
    brief = await service.http.put(
        f"{base(cid)}/do-not-disturb", json={"enabled": True, "until": ahead(seconds=1.5), "source": "app"}
    )
    assert brief.json()["active"] is True
    await asyncio.sleep(2)
    state = await consents_of(service, cid)
    assert state["do_not_disturb"]["enabled"] is True
    assert state["do_not_disturb"]["active"] is False
    assert consent(state, "sms", "marketing")["contactable"] is True

    history = (await service.http.get(f"{base(cid)}/consents/history")).json()
    dnd_history = [h for h in history if h["kind"] == "do_not_disturb"]
    assert [(h["enabled"], h["changed_by"]) for h in dnd_history] == [
        (True, "agent-0001"),
        (False, "agent-0001"),
        (True, "sms-gateway"),
    ]
    assert all(h["channel"] is h["purpose"] is h["granted"] is None for h in dnd_history)

    events = await consent_events(service, boss, expect=7)
    assert [(e.type, e.correlationid) for e in events][:4] == [
        (CONSENT_CHANGED, "r-grant"),
        (DND_CHANGED, "r-dnd-on"),
        (CONSENT_CHANGED, "r-mail"),
        (DND_CHANGED, "r-dnd-off"),
    ]
    assert len(events) == 5
    assert events[0].data["do_not_disturb"] == {"enabled": False, "until": None}
    assert events[1].data["enabled"] is True
    assert datetime.fromisoformat(events[1].data["until"]) == until
    assert events[1].data["source"] == "sms_reply"
    assert events[2].data["do_not_disturb"]["enabled"] is True
    assert datetime.fromisoformat(events[2].data["do_not_disturb"]["until"]) == until
    assert events[3].data == {
        "customer_id": cid,
        "enabled": False,
        "until": None,
        "source": "app",
        "recorded_at": events[3].data["recorded_at"],
    }


BAD_CONSENT_PUTS = [
    ("/consents/fax/marketing", {"granted": True, "source": "app"}, "channel"),
    ("/consents/sms/advertising", {"granted": True, "source": "app"}, "purpose"),
    ("/consents/sms/marketing", {"source": "app"}, "granted"),
    ("/consents/sms/marketing", {"granted": "yes", "source": "app"}, "granted"),
    ("/consents/sms/marketing", {"granted": 1, "source": "app"}, "granted"),
    ("/consents/sms/marketing", {"granted": True}, "source"),
    ("/consents/sms/marketing", {"granted": True, "source": "fax"}, "source"),
    ("/consents/sms/marketing", {"granted": True, "source": "app", "colour": "red"}, "colour"),
    (
        "/consents/sms/marketing",
        {"granted": True, "source": "app", "recorded_at": "2025-06-01T10:00:00"},
        "recorded_at",
    ),
    ("/consents/sms/marketing", {"granted": True, "source": "app", "recorded_at": 1764554400}, "recorded_at"),
    ("/consents/sms/marketing", {"granted": True, "source": "app", "recorded_at": "yesterday"}, "recorded_at"),
    ("/do-not-disturb", {"enabled": "on", "source": "app"}, "enabled"),
    ("/do-not-disturb", {"source": "app"}, "enabled"),
    ("/do-not-disturb", {"enabled": True}, "source"),
    ("/do-not-disturb", {"enabled": True, "source": "app", "reason": "busy"}, "reason"),
    ("/do-not-disturb", {"enabled": True, "source": "app", "until": "2027-01-01T00:00:00"}, "until"),
    ("/do-not-disturb", {"enabled": True, "source": "app", "until": "2020-01-01T00:00:00+08:00"}, "until"),
    ("/do-not-disturb", {"enabled": False, "source": "app", "until": "2099-01-01T00:00:00+08:00"}, "until"),
    ("/do-not-disturb", {"enabled": True, "source": "app", "recorded_at": "2099-01-01T00:00:00+08:00"}, "recorded_at"),
]


async def test_bad_input_is_refused_with_problem_json_naming_the_field_and_changes_nothing(service, boss):
    cid = await known_customer(service, boss, "C7006")

    for path, body, field in BAD_CONSENT_PUTS:
        assert_problem(await service.http.put(base(cid) + path, json=body), 422, field)
    assert_problem(
        await service.http.put(f"{base(cid)}/consents/sms/marketing", json=["granted"]), 422, "body"
    )  # not an object
    grant = {"granted": True, "source": "app"}
    anonymous = await service.http.put(f"{base(cid)}/consents/sms/marketing", json=grant, headers={"Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.headers["content-type"] == "application/problem+json"
    forged = await service.http.put(
        f"{base(cid)}/consents/sms/marketing", json=grant, headers={"Authorization": "Bearer not.a.jwt"}
    )
    assert forged.status_code == 401, forged.text
    read_only = await service.http.put(
        f"{base(cid)}/consents/sms/marketing", json=grant, headers=bearer("analyst-1", roles=("analyst",))
    )
    assert read_only.status_code == 403 and read_only.json()["type"].endswith(":forbidden")
    malformed = await service.http.put(
        f"{base(cid)}/consents/sms/marketing", content=b"{granted", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.headers["content-type"].startswith(PROBLEM)

    nobody = base("C-NOBODY")
    assert_problem(await service.http.get(f"{nobody}/consents"), 404, "customer_id")
    assert_problem(await service.http.get(f"{nobody}/consents/history"), 404, "customer_id")
    assert_problem(
        await service.http.put(f"{nobody}/consents/sms/marketing", json={"granted": True, "source": "app"}),
        404,
        "customer_id",
    )
    assert_problem(
        await service.http.put(f"{nobody}/do-not-disturb", json={"enabled": True, "source": "app"}), 404, "customer_id"
    )

    state = await consents_of(service, cid)
    assert not any(c["recorded"] for c in state["consents"])
    assert state["do_not_disturb"]["enabled"] is False
    assert (await service.http.get(f"{base(cid)}/consents/history")).headers["X-Total-Count"] == "0"
    assert await consent_events(service, boss, expect=2) == []


@pytest.mark.parametrize(
    ("enabled", "until", "active"),
    [
        (False, None, False),
        (True, None, True),
        (True, datetime(2027, 1, 1, tzinfo=UTC), True),
        (True, datetime(2026, 12, 31, 23, 59, tzinfo=UTC), False),
        (True, datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), False),
    ],
)
def test_do_not_disturb_is_in_force_while_enabled_and_before_until(enabled, until, active):
    now = datetime(2027, 1, 1, tzinfo=UTC) - timedelta(microseconds=1)
    assert consents.dnd_active(enabled, until, now) is active


def test_marketing_is_opt_in_and_do_not_disturb_silences_marketing_only():
    assert consents.default_granted("marketing") is False
    assert consents.default_granted("service") is True
    assert consents.contactable("marketing", granted=True, dnd_on=False) is True
    assert consents.contactable("marketing", granted=True, dnd_on=True) is False
    assert consents.contactable("service", granted=True, dnd_on=True) is True
    assert consents.contactable("service", granted=False, dnd_on=False) is False
