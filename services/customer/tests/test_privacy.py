"""Privacy (PIPL) through the served API: unmasked reads only with `pii:read` and a reason, each audited and listed;
the export of everything held; erasure by pseudonymisation (once, published without personal data, not undone by
later BOSS events); the merge of a duplicate customer (moved, pointed at, followed by later BOSS events)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_customer.domain.privacy import pseudonym
from crm_kit.events import CloudEvent
from crm_kit.testing import bearer, eventually

ERASED = "customer.profile.erased.v1"
MERGED = "customer.profile.merged.v1"
CUSTOMERS = "/tmf-api/customerManagement/v4/customer"
PRIVACY = "/api/v1/privacy"
SUPERVISOR = bearer("sup-wang", roles=("supervisor",))
PII = bearer("agent-7", roles=("agent",), scopes=("pii:read",))
WHY = {"X-Access-Reason": "ticket T-1"}
PROBLEM = "application/problem+json"
ID_CARD = "110105198803120516"


def number(customer_id: str) -> str:
    return f"1390000{customer_id[1:].rjust(4, '0')}"


async def known_customer(service, boss, customer_id: str, name: str = "张伟") -> str:
    n = customer_id[1:].rjust(4, "0")
    await boss.send(boss.activated(customer_id, f"S{n}", number(customer_id), "2026-11-20T09:30:00+08:00", name=name))
    await service.wait_for(customer_id)
    return customer_id


def assert_problem(r: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    if field is not None:
        assert body["field"] == field, body
    return body


async def audit(service, **params: str) -> list[dict[str, Any]]:
    r = await service.http.get(f"{PRIVACY}/audit", params=params, headers=SUPERVISOR)
    assert r.status_code == 200, r.text
    assert r.headers["X-Total-Count"] == str(len(r.json()))
    return r.json()  # type: ignore[no-any-return]


async def profile_events_of(service, boss, event_type: str, expect: int) -> list[CloudEvent]:
    mine = []
    for key, event in await service.profile_events(expect=expect):
        if event.type == event_type:
            boss.contracts.validate_event(event)
            assert key == event.subject
            mine.append(event)
    return mine


# --- unmasked reads and their audit ---------------------------------------------------------------------------------


async def test_only_pii_read_with_a_reason_unmasks_and_each_unmasked_read_is_audited(service, boss):
    cid = await known_customer(service, boss, "C9001")

    shown = await service.http.get(f"{CUSTOMERS}/{cid}", headers={**PII, **WHY, "X-Request-ID": "req-pii-1"})
    assert shown.status_code == 200
    assert shown.json()["subscription"][0]["msisdn"] == number(cid)
    assert {"name": "idCardNumber", "value": ID_CARD, "valueType": "string"} in shown.json()["characteristic"]

    no_reason = await service.http.get(f"{CUSTOMERS}/{cid}", headers=PII)
    assert no_reason.json()["subscription"][0]["msisdn"] == "139****9001"
    assert no_reason.headers["X-PII-Masked"].startswith("reason-required")
    no_scope = await service.http.get(f"{CUSTOMERS}/{cid}", headers=WHY)
    assert no_scope.json()["subscription"][0]["msisdn"] == "139****9001"
    assert "X-PII-Masked" not in no_scope.headers

    [row] = await audit(service)
    assert row == {
        "id": row["id"],
        "at": row["at"],
        "actor": "agent-7",
        "roles": ["agent"],
        "customer_id": cid,
        "fields": ["msisdn", "id_card_no"],
        "reason": "ticket T-1",
        "action": f"GET {CUSTOMERS}/{cid}",
        "request_id": "req-pii-1",
    }
    assert row["at"].endswith("+08:00")


async def test_the_360_view_audits_its_unmasked_answers_and_only_those(service, boss):
    """The view runs no request transaction; its audit row is written in one of its own before the answer."""
    cid = await known_customer(service, boss, "C9005")
    view = f"/api/v1/customers/{cid}/view360"
    masked = await service.http.get(view, headers=PII)
    assert masked.json()["lines"][0]["msisdn"] == "139****9005"
    assert await audit(service) == []

    shown = await service.http.get(view, headers={**PII, **WHY, "X-Request-ID": "req-360"})
    assert shown.json()["lines"][0]["msisdn"] == number(cid)
    [row] = await audit(service)
    assert (row["customer_id"], row["action"], row["reason"], row["request_id"], row["fields"]) == (
        cid,
        f"GET /api/v1/customers/{cid}/view360",
        "ticket T-1",
        "req-360",
        ["msisdn", "id_card_no"],
    )


async def test_a_list_read_audits_one_row_per_customer_shown_and_the_audit_filters(service, boss):
    a = await known_customer(service, boss, "C9011")
    b = await known_customer(service, boss, "C9012")
    listed = await service.http.get(CUSTOMERS, headers={**PII, **WHY})
    assert sorted(c["subscription"][0]["msisdn"] for c in listed.json()) == [number(a), number(b)]
    other = bearer("agent-8", roles=("agent",), scopes=("pii:read",))
    await service.http.get(f"{CUSTOMERS}/{a}", headers={**other, "X-Access-Reason": "complaint 42"})

    rows = await audit(service)
    assert (rows[0]["actor"], rows[0]["customer_id"]) == ("agent-8", a)  # newest first
    assert sorted((r["actor"], r["customer_id"]) for r in rows) == [("agent-7", a), ("agent-7", b), ("agent-8", a)]
    assert [r["customer_id"] for r in await audit(service, customer_id=b)] == [b]
    assert {r["customer_id"] for r in await audit(service, actor="agent-7")} == {a, b}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await audit(service, since=future) == []
    assert len(await audit(service, since=(datetime.now(UTC) - timedelta(hours=1)).isoformat())) == 3
    page = await service.http.get(f"{PRIVACY}/audit", params={"limit": 1}, headers=SUPERVISOR)
    assert (page.headers["X-Total-Count"], page.headers["X-Result-Count"]) == ("3", "1")

    assert_problem(
        await service.http.get(f"{PRIVACY}/audit", params={"since": "yesterday"}, headers=SUPERVISOR), 422, "since"
    )
    assert_problem(
        await service.http.get(f"{PRIVACY}/audit", params={"since": "2026-11-20T09:30:00"}, headers=SUPERVISOR),
        422,
        "since",
    )
    assert_problem(await service.http.get(f"{PRIVACY}/audit"), 403)
    assert_problem(await service.http.get(f"{PRIVACY}/audit", headers={"Authorization": ""}), 401)


# --- export ---------------------------------------------------------------------------------------------------------


async def test_the_export_returns_everything_held_unmasked_and_is_itself_audited(service, boss):
    cid = await known_customer(service, boss, "C9021")
    await service.http.put(
        f"/api/v1/customers/{cid}/consents/sms/marketing",
        json={"granted": True, "source": "app", "recorded_at": "2026-11-21T10:00:00+08:00"},
    )
    await service.http.put(f"/api/v1/customers/{cid}/do-not-disturb", json={"enabled": True, "source": "hotline"})
    await service.http.put(
        f"/api/v1/key-accounts/{cid}",
        json={"tier": "gold", "account_manager": "kam-li", "reason": "Group contract"},
        headers=SUPERVISOR,
    )
    await boss.send_billing(
        boss.billing_example("billing.invoice.issued.v1", "individual_monthly", customer_id=cid, account_id="A9021"),
        boss.billing_example(
            "billing.payment.received.v1", "wechat_pay_for_invoice", customer_id=cid, account_id="A9021"
        ),
    )

    async def paid() -> dict[str, Any] | None:
        r = await service.http.get(
            f"{PRIVACY}/customers/{cid}/export", headers={**SUPERVISOR, "X-Access-Reason": "DSAR-7"}
        )
        assert r.status_code == 200, r.text
        export = r.json()
        # invoices and payments come on two topics, projected by two consumers: wait for both
        return export if export["payments"] and export["invoices"] else None

    export = await eventually(paid)
    assert export["customer_id"] == cid
    assert export["exported_at"].endswith("+08:00")
    assert export["profile"]["name"] == "张伟"
    assert export["profile"]["id_card_no"] == ID_CARD
    assert export["profile"]["created_at"].endswith("+08:00")
    assert [(a["id"], a["customer_id"]) for a in export["accounts"]] == [("A9021", cid)]
    [line] = export["lines"]
    assert (line["id"], line["msisdn"], line["monthly_fee_fen"]) == ("S9021", number(cid), 12900)
    assert [(c["channel"], c["purpose"], c["granted"]) for c in export["consents"]] == [("sms", "marketing", True)]
    assert [h["kind"] for h in export["consent_history"]] == ["consent", "do_not_disturb"]
    assert export["do_not_disturb"]["enabled"] is True
    [invoice] = export["invoices"]
    assert (invoice["amount_due_fen"], invoice["billing_period"], invoice["due_date"]) == (
        14900,
        "2026-11",
        "2026-12-31",
    )
    assert invoice["issued_at"] == "2026-12-01T02:00:00+08:00"
    assert [(p["kind"], p["amount_fen"]) for p in export["payments"]] == [("received", 14900)]
    assert [e["to_manager"] for e in export["key_account_history"]] == ["kam-li"]
    assert {e["type"] for e in export["timeline"]} >= {
        "billing.subscription.activated.v1",
        "billing.invoice.issued.v1",
        "billing.payment.received.v1",
        "customer.profile.consent_changed.v1",
    }
    for section in (
        "contact_media",
        "characteristics",
        "overdue",
        "usage_days",
        "tickets",
        "risk_scores",
        "campaign_contacts",
        "segment_memberships",
        "merges",
    ):
        assert export[section] == [], section
    assert export["erasure"] is None
    assert export["pii_access"]
    assert all(
        r["fields"] == "all" and r["reason"] == "DSAR-7" and r["actor"] == "sup-wang" for r in export["pii_access"]
    )
    assert {r["customer_id"] for r in await audit(service)} == {cid}


async def test_the_export_needs_a_supervisor_and_a_reason(service, boss):
    cid = await known_customer(service, boss, "C9031")
    url = f"{PRIVACY}/customers/{cid}/export"
    assert_problem(await service.http.get(url, headers=SUPERVISOR), 422, "X-Access-Reason")
    assert_problem(await service.http.get(url, headers={**PII, **WHY}), 403)
    assert_problem(await service.http.get(url, headers={"Authorization": ""}), 401)
    assert_problem(
        await service.http.get(f"{PRIVACY}/customers/C404/export", headers={**SUPERVISOR, **WHY}), 404, "customer_id"
    )
    assert await audit(service) == []


# --- erasure --------------------------------------------------------------------------------------------------------


async def erase(service, cid: str, headers: dict[str, str] = SUPERVISOR, **body: Any) -> Any:
    return await service.http.post(
        f"{PRIVACY}/customers/{cid}/erasure", json=body or {"reason": "customer_request"}, headers=headers
    )


async def test_erasure_pseudonymises_once_publishes_no_personal_data_and_keeps_the_billing_facts(service, boss):
    cid = await known_customer(service, boss, "C9041")
    await service.http.put(f"/api/v1/customers/{cid}/consents/sms/marketing", json={"granted": True, "source": "app"})

    first = await erase(service, cid)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body == {
        "customer_id": cid,
        "erased_at": body["erased_at"],
        "requested_by": "sup-wang",
        "reason": "customer_request",
        "name": pseudonym(cid),
    }
    assert body["name"].startswith("已删除客户 ")
    again = await erase(service, cid, reason="regulator_order")
    assert again.status_code == 200
    assert again.json() == body

    shown = await service.http.get(f"{CUSTOMERS}/{cid}", headers={**PII, **WHY})
    customer = shown.json()
    assert customer["name"] == pseudonym(cid)
    assert "张伟" not in shown.text and ID_CARD not in shown.text and number(cid) not in shown.text
    [line] = customer["subscription"]
    assert line["msisdn"].startswith("DEL") and line["status"] == "active"
    timeline = (await service.http.get(f"/api/v1/customers/{cid}/timeline")).json()
    assert timeline and all(e["summary"] == e["type"] for e in timeline)
    consents = (await service.http.get(f"/api/v1/customers/{cid}/consents")).json()
    assert [c["granted"] for c in consents["consents"] if (c["channel"], c["purpose"]) == ("sms", "marketing")] == [
        True
    ]

    [event] = await profile_events_of(service, boss, ERASED, expect=4)
    assert event.subject == cid
    assert event.data == {"customer_id": cid, "erased_at": event.data["erased_at"], "reason": "customer_request"}

    # a later BOSS event still carrying the name and ID number does not bring them back
    await boss.send(boss.activated(cid, "S9042", "13900009042", "2026-12-01T09:30:00+08:00", name="张伟"))
    after = await service.wait_for(cid, lambda c: len(c["subscription"]) == 2)
    assert after["name"] == pseudonym(cid)
    exported = (await service.http.get(f"{PRIVACY}/customers/{cid}/export", headers={**SUPERVISOR, **WHY})).json()
    assert exported["profile"]["id_card_no"] is None
    assert exported["profile"]["erased_at"] == exported["erasure"]["erased_at"]
    assert all(line["msisdn"].startswith("DEL") for line in exported["lines"])
    assert "13900009042" not in str(exported["lines"])
    assert len(await profile_events_of(service, boss, ERASED, expect=5)) == 1


@pytest.mark.parametrize(
    ("headers", "body", "status", "field"),
    [
        (bearer("agent-7", roles=("agent",), scopes=("pii:read",)), {"reason": "customer_request"}, 403, None),
        ({"Authorization": ""}, {"reason": "customer_request"}, 401, None),
        (SUPERVISOR, {"reason": "he asked nicely"}, 422, "reason"),
        (SUPERVISOR, {}, 422, "reason"),
        (SUPERVISOR, {"reason": "customer_request", "name": "x"}, 422, "name"),
    ],
)
async def test_bad_or_unauthorised_erasures_are_refused(service, boss, headers, body, status, field):
    cid = await known_customer(service, boss, "C9051")
    r = await service.http.post(f"{PRIVACY}/customers/{cid}/erasure", json=body, headers=headers)
    assert_problem(r, status, field)
    assert (await service.customer(cid))["name"] == "张伟"


# --- merge ----------------------------------------------------------------------------------------------------------


async def merge(service, survivor: str, duplicate: str, headers: dict[str, str] = SUPERVISOR) -> Any:
    return await service.http.post(
        f"{PRIVACY}/customers/{survivor}/merge",
        json={"duplicate_id": duplicate, "reason": "Same ID card"},
        headers=headers,
    )


async def consent(service, cid: str, channel: str, granted: bool, at: str) -> None:
    r = await service.http.put(
        f"/api/v1/customers/{cid}/consents/{channel}/marketing",
        json={"granted": granted, "source": "app", "recorded_at": at},
    )
    assert r.status_code == 200, r.text


async def test_a_merge_moves_everything_to_the_survivor_and_points_the_duplicate_there(service, boss):
    survivor = await known_customer(service, boss, "C9061")
    duplicate = await known_customer(service, boss, "C9062")
    await consent(service, survivor, "sms", True, "2025-06-01T10:00:00+08:00")
    await consent(service, duplicate, "sms", False, "2025-07-01T10:00:00+08:00")  # newer: wins
    await consent(service, survivor, "email", True, "2025-08-01T10:00:00+08:00")  # newer: stays
    await consent(service, duplicate, "email", False, "2025-05-01T10:00:00+08:00")
    await boss.send_billing(
        boss.billing_example(
            "billing.invoice.issued.v1", "individual_monthly", customer_id=duplicate, account_id="A9062"
        )
    )
    await eventually(lambda: _timeline_has(service, duplicate, "billing.invoice.issued.v1"))

    r = await merge(service, survivor, duplicate)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["survivor_id"], body["merged_id"], body["merged_by"]) == (survivor, duplicate, "sup-wang")
    assert body["merged_at"].endswith("+08:00")
    assert body["moved"]["subscription"] == 1
    assert body["moved"]["billing_account"] == 1
    assert body["moved"]["invoice"] == 1
    assert body["moved"]["consent"] == 1

    gone = assert_problem(await service.http.get(f"{CUSTOMERS}/{duplicate}"), 404)
    assert gone["merged_into"] == survivor
    assert (
        assert_problem(await service.http.get(f"/api/v1/customers/{duplicate}/consents"), 404)["merged_into"]
        == survivor
    )
    kept = await service.customer(survivor)
    assert sorted(s["id"] for s in kept["subscription"]) == ["S9061", "S9062"]
    assert sorted(a["id"] for a in kept["account"]) == ["A9061", "A9062"]
    assert [c["id"] for c in (await service.http.get(CUSTOMERS)).json()] == [survivor]
    state = (await service.http.get(f"/api/v1/customers/{survivor}/consents")).json()
    granted = {c["channel"]: c["granted"] for c in state["consents"] if c["purpose"] == "marketing"}
    assert (granted["sms"], granted["email"]) == (False, True)
    assert await _timeline_has(service, survivor, "billing.invoice.issued.v1")

    [event] = await profile_events_of(service, boss, MERGED, expect=9)
    assert event.subject == survivor
    assert (event.data["survivor_id"], event.data["merged_id"]) == (survivor, duplicate)

    # the BOSS still naming the duplicate: its news lands on the survivor
    await boss.send(boss.activated(duplicate, "S9063", "13900009063", "2026-12-01T09:30:00+08:00"))
    grown = await service.wait_for(survivor, lambda c: len(c["subscription"]) == 3)
    assert "S9063" in {s["id"] for s in grown["subscription"]}
    assert (await service.http.get(f"{CUSTOMERS}/{duplicate}")).status_code == 404


async def _timeline_has(service, cid: str, event_type: str) -> bool:
    r = await service.http.get(f"/api/v1/customers/{cid}/timeline")
    return r.status_code == 200 and any(e["type"] == event_type for e in r.json())


async def test_merges_that_make_no_sense_are_conflicts_and_strangers_are_refused(service, boss):
    a = await known_customer(service, boss, "C9071")
    b = await known_customer(service, boss, "C9072")
    c = await known_customer(service, boss, "C9073")
    erased = await known_customer(service, boss, "C9074")
    assert (await erase(service, erased)).status_code == 201

    assert_problem(await merge(service, a, a), 409, "duplicate_id")
    assert_problem(await merge(service, a, erased), 409, "duplicate_id")
    assert_problem(await merge(service, erased, a), 409, "customer_id")
    assert_problem(await merge(service, a, "C404"), 404, "duplicate_id")
    assert_problem(await merge(service, "C404", a), 404, "customer_id")
    assert_problem(await merge(service, a, b, headers=bearer("agent-1", roles=("agent",))), 403)
    assert_problem(await merge(service, a, b, headers={"Authorization": ""}), 401)
    r = await service.http.post(f"{PRIVACY}/customers/{a}/merge", json={"reason": "dup"}, headers=SUPERVISOR)
    assert_problem(r, 422, "duplicate_id")

    assert (await merge(service, a, b)).status_code == 200
    assert assert_problem(await merge(service, c, b), 409, "duplicate_id")["merged_into"] == a
    assert assert_problem(await merge(service, b, c), 409, "customer_id")["merged_into"] == a
    assert assert_problem(await erase(service, b), 409, "customer_id")["merged_into"] == a


async def _timeline(service, cid: str) -> list[dict[str, Any]]:
    r = await service.http.get(f"/api/v1/customers/{cid}/timeline")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_events_arriving_after_an_erasure_write_only_their_type_on_the_timeline(service, boss):
    cid = await known_customer(service, boss, "C9091")
    assert (await erase(service, cid)).status_code == 201

    await boss.send(boss.activated(cid, "S9092", "13900009092", "2026-12-01T09:30:00+08:00", name="张伟"))
    await boss.send_billing(
        boss.billing_example("billing.invoice.issued.v1", "individual_monthly", customer_id=cid, account_id="A9091")
    )

    async def arrived() -> list[dict[str, Any]] | None:
        entries = await _timeline(service, cid)
        types = {e["type"] for e in entries}
        return entries if "billing.invoice.issued.v1" in types and len(entries) >= 3 else None

    entries = await eventually(arrived, timeout=15)
    assert [e["summary"] for e in entries] == [e["type"] for e in entries]


async def test_a_merge_recomputes_the_survivors_facts_and_tiers_at_once(service, boss):
    survivor = await known_customer(service, boss, "C9081")
    duplicate = await known_customer(service, boss, "C9082")
    await boss.send_billing(
        boss.billing_example(
            "billing.invoice.issued.v1", "individual_monthly", customer_id=duplicate, account_id="A9082"
        )
    )

    async def value_tier(cid: str) -> str | None:
        r = await service.http.get(f"/api/v1/customers/{cid}/view360")
        assert r.status_code == 200, r.text
        return r.json()["tiers"]["value_tier"]  # type: ignore[no-any-return]

    billed = await eventually(lambda: value_tier(duplicate), timeout=15)
    assert await value_tier(survivor) is None  # no bill of its own yet

    assert (await merge(service, survivor, duplicate)).status_code == 200
    # no event about the survivor is in flight: what moves here moved in the merge's own transaction
    assert await value_tier(survivor) == billed
    two_lines = {
        "all": [{"field": "total_lines", "op": "eq", "value": 2}, {"field": "arpu_fen", "op": "gt", "value": 0}]
    }
    r = await service.http.post(
        "/api/v1/segments/preview", json={"rule": two_lines}, headers=bearer("mkt-1", roles=("marketer",))
    )
    assert r.status_code == 200, r.text
    assert (r.json()["count"], [c["customer_id"] for c in r.json()["sample"]]) == (1, [survivor])
