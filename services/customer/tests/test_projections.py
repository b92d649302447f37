"""Projections of the other services' events (tickets, risk scores, campaign contacts) through the real broker and
database, read back over HTTP: the 360 view, the lists and the timeline. Events may arrive out of order (an older
one never overwrites newer state), may name a customer not seen yet (a placeholder is created, as for billing
events), and one that breaks its contract goes to its topic's dead-letter queue while the next one is applied."""

from __future__ import annotations

import json
from typing import Any

from crm_kit.events import CloudEvent, new_event
from crm_kit.testing import read_topic

BASE = "/api/v1/customers"
CREATED = "ticketing.ticket.created.v1"
STATE = "ticketing.ticket.state_changed.v1"
CSAT = "ticketing.ticket.csat_recorded.v1"
SCORE = "churn.score.computed.v1"
SENT = "campaign.contact.sent.v1"
RESPONDED = "campaign.contact.responded.v1"
SOURCES = {"ticketing": "/crm/ticketing", "churn": "/crm/churn", "campaign": "/crm/campaign"}


def ticket(boss, cid: str, tid: str, at: str, **changes: Any) -> CloudEvent:
    return boss.produced(CREATED, "billing_complaint", customer_id=cid, ticket_id=tid, occurred_at=at, **changes)


def moved(boss, cid: str, tid: str, at: str, from_state: str, to_state: str, reason: str | None = None) -> CloudEvent:
    return boss.produced(
        STATE,
        "resolved",
        customer_id=cid,
        ticket_id=tid,
        occurred_at=at,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
    )


def rated(boss, cid: str, tid: str, at: str, score: int) -> CloudEvent:
    return boss.produced(CSAT, "satisfied", customer_id=cid, ticket_id=tid, occurred_at=at, score=score)


async def listing(service, cid: str, what: str, **params: Any) -> tuple[list[dict[str, Any]], Any]:
    r = await service.http.get(f"{BASE}/{cid}/{what}", params=params)
    assert r.status_code == 200, r.text
    return r.json(), r.headers


async def test_a_ticket_is_projected_from_creation_to_survey(service, boss):
    cid = "C700"
    await boss.send(boss.activated(cid, "S700", "13800000700", "2026-11-01T09:00:00+08:00"))
    await boss.send_billing(
        ticket(boss, cid, "T700-1", "2026-11-20T10:05:00+08:00"),
        ticket(
            boss,
            cid,
            "T700-2",
            "2026-11-21T08:00:00+08:00",
            ticket_type="trouble",
            category="network_coverage",
            title="家中5G信号弱",
            priority="medium",
            sla_due_at="2026-11-21T20:00:00+08:00",
        ),
        moved(boss, cid, "T700-1", "2026-11-20T11:00:00+08:00", "acknowledged", "inProgress"),
        moved(boss, cid, "T700-1", "2026-11-21T16:40:00+08:00", "inProgress", "resolved", "Refunded 30 yuan (退费)"),
        rated(boss, cid, "T700-1", "2026-11-22T09:00:00+08:00", 4),
    )

    page = await service.view360(cid, lambda v: v["tickets"]["last_csat"] == 4)
    tickets = page["tickets"]
    assert tickets["open_count"] == 1
    [open_ticket] = tickets["open"]
    assert open_ticket == {
        "ticket_id": "T700-2",
        "ticket_type": "trouble",
        "category": "network_coverage",
        "title": "家中5G信号弱",
        "priority": "medium",
        "state": "acknowledged",
        "opened_at": "2026-11-21T08:00:00+08:00",
        "sla_due_at": "2026-11-21T20:00:00+08:00",
        "sla_breached": True,  # still open, long past its SLA
        "resolved_at": None,
        "csat_score": None,
    }

    every, headers = await listing(service, cid, "tickets")
    assert headers["X-Total-Count"] == "2"
    assert [t["ticket_id"] for t in every] == ["T700-2", "T700-1"]  # newest first
    resolved = every[1]
    assert resolved["state"] == "resolved"
    assert resolved["resolved_at"] == "2026-11-21T16:40:00+08:00"
    assert resolved["csat_score"] == 4
    assert resolved["sla_breached"] is False
    only_open, headers = await listing(service, cid, "tickets", open="true")
    assert [t["ticket_id"] for t in only_open] == ["T700-2"]
    assert headers["X-Total-Count"] == "1"
    second, headers = await listing(service, cid, "tickets", offset=1, limit=1)
    assert [t["ticket_id"] for t in second] == ["T700-1"]
    assert (headers["X-Total-Count"], headers["X-Result-Count"]) == ("2", "1")

    rows, _ = await listing(service, cid, "timeline", kind="ticket")
    assert [r["type"] for r in rows] == [CSAT, STATE, CREATED, STATE, CREATED]
    assert rows[0]["summary"] == "Ticket T700-1 rated 4/5 (满意度): 处理及时"
    assert rows[1]["summary"] == "Ticket T700-1 inProgress → resolved (已解决): Refunded 30 yuan (退费)"
    assert "complaint (投诉)" in rows[4]["summary"]


async def test_out_of_order_events_never_overwrite_newer_state(service, boss):
    cid = "C701"
    newer_churn = boss.produced(SCORE, "high_churn", customer_id=cid, scored_at="2026-11-23T02:00:00+08:00")
    older_churn = boss.produced(
        SCORE,
        "high_churn",
        customer_id=cid,
        score=0.31,
        risk_band="low",
        model_version="churn-lgbm-2026.10.4",
        occurred_at="2026-11-24T05:00:00+08:00",  # delivered later, but scored earlier
        scored_at="2026-10-23T02:00:00+08:00",
    )
    contact = {"customer_id": cid, "contact_id": "CT701"}
    await boss.send_billing(  # the resolution overtakes the ticket's creation and an older state change
        moved(boss, cid, "T701", "2026-11-21T16:40:00+08:00", "inProgress", "resolved"),
        ticket(boss, cid, "T701", "2026-11-20T10:05:00+08:00"),
        moved(boss, cid, "T701", "2026-11-20T11:00:00+08:00", "acknowledged", "inProgress"),
        rated(boss, cid, "T701", "2026-11-23T09:00:00+08:00", 2),
        rated(boss, cid, "T701", "2026-11-22T09:00:00+08:00", 5),  # an older survey arrives late
        newer_churn,
        older_churn,
        boss.produced(RESPONDED, "accepted", **contact, occurred_at="2026-11-25T12:30:00+08:00"),
        boss.produced(SENT, "upgrade_offer_sms", **contact, occurred_at="2026-11-25T10:00:00+08:00"),
        boss.produced(RESPONDED, "accepted", **contact, response="clicked", occurred_at="2026-11-25T11:00:00+08:00"),
    )

    # The page's reads are not one snapshot on SQLite: wait for the last event's metrics too, not only its row.
    page = await service.view360(
        cid, lambda v: len(v["timeline"]) == 10 and v["tickets"]["last_csat"] is not None, timeline_limit=10
    )
    assert page["tickets"]["open_count"] == 0
    assert page["tickets"]["last_csat"] == 2  # the newest survey, not the last delivered
    [t701], _ = await listing(service, cid, "tickets")
    assert t701["state"] == "resolved"
    assert t701["title"] == "流量费用异常: 本月账单多扣30元"  # filled in by the creation that came late
    assert t701["opened_at"] == "2026-11-20T10:05:00+08:00"
    churn = page["risk"]["churn"]
    assert (churn["score"], churn["risk_band"], churn["model_version"]) == ("0.8731", "high", "churn-lgbm-2026.11.1")
    [contact_row] = page["campaign_contacts"]
    assert contact_row["response"] == "accepted"  # not the older click
    assert contact_row["status"] == "responded"
    assert contact_row["channel"] == "sms"  # the contact's own details, although they came after the response
    assert contact_row["contacted_at"] == "2026-11-25T10:00:00+08:00"
    assert contact_row["responded_at"] == "2026-11-25T12:30:00+08:00"
    # every event is on the timeline at the time it happened, newest first, whatever the order of arrival
    moments = [row["occurred_at"] for row in page["timeline"]]
    assert moments == sorted(moments, reverse=True)
    assert [row["type"] for row in page["timeline"]].count(SCORE) == 2


async def test_risk_scores_keep_their_decimals_and_their_reasons(service, boss):
    cid = "C702"
    await boss.send(boss.activated(cid, "S702", "13800000702", "2026-01-01T09:00:00+08:00"))
    await boss.send_billing(
        boss.produced(SCORE, "high_churn", customer_id=cid),
        boss.produced(SCORE, "low_bad_debt", customer_id=cid, score=0.04125),
    )

    page = await service.view360(cid, lambda v: v["risk"]["bad_debt"] is not None and v["risk"]["churn"] is not None)
    churn, bad_debt = page["risk"]["churn"], page["risk"]["bad_debt"]
    assert churn == {
        "model_kind": "churn",
        "score": "0.8731",
        "risk_band": "high",
        "model_version": "churn-lgbm-2026.11.1",
        "scored_at": "2026-11-23T02:00:00+08:00",
        "top_reasons": [
            {
                "feature": "arpu_trend_3m",
                "description": "ARPU down 35% over 3 months (ARPU连续下降)",
                "contribution": 0.21,
            },
            {"feature": "complaints_30d", "description": "2 complaints in 30 days (近期投诉)", "contribution": 0.14},
            {
                "feature": "contract_months_left",
                "description": "Contract ends in 1 month (合约到期)",
                "contribution": 0.09,
            },
        ],
    }
    assert bad_debt["score"] == "0.0413"  # four places, rounded half up from the decimal as sent
    assert bad_debt["top_reasons"] == []
    assert page["tiers"]["lifecycle_stage"] == "at_risk"  # a churn score of 0.6 or more

    scores, headers = await listing(service, cid, "risk-scores")
    assert headers["X-Total-Count"] == "2"
    assert [s["model_kind"] for s in scores] == ["churn", "bad_debt"]
    assert len(scores[0]["top_reasons"]) == 4  # the list shows every reason
    rows, _ = await listing(service, cid, "timeline", kind="score")
    assert {r["summary"] for r in rows} == {
        "Churn risk (离网) scored 0.8731, high band, model churn-lgbm-2026.11.1",
        "Bad-debt risk (坏账) scored 0.0413, low band, model baddebt-lgbm-2026.10.2",
    }


async def test_campaign_contacts_are_listed_newest_first(service, boss):
    cid = "C703"
    await boss.send(boss.activated(cid, "S703", "13800000703", "2026-01-01T09:00:00+08:00"))
    events = [
        boss.produced(
            SENT,
            "upgrade_offer_sms",
            customer_id=cid,
            contact_id=f"CT703-{i:02d}",
            occurred_at=f"2026-11-{i:02d}T10:00:00+08:00",
        )
        for i in range(1, 13)
    ]
    events.append(boss.produced(RESPONDED, "accepted", customer_id=cid, contact_id="CT703-12", response="opted_out"))
    await boss.send_billing(*events)

    page = await service.view360(cid, lambda v: v["campaign_contacts"] and v["campaign_contacts"][0]["response"])
    shown = page["campaign_contacts"]
    assert [c["contact_id"] for c in shown] == [f"CT703-{i:02d}" for i in range(12, 2, -1)]  # the latest 10
    assert shown[0]["response"] == "opted_out"
    assert shown[0]["offer_name"] == "5G畅享套餐199元 半价升档6个月"

    rest, headers = await listing(service, cid, "campaign-contacts", offset=10, limit=5)
    assert [c["contact_id"] for c in rest] == ["CT703-02", "CT703-01"]
    assert (headers["X-Total-Count"], headers["X-Result-Count"]) == ("12", "2")
    beyond, headers = await listing(service, cid, "campaign-contacts", offset=50)
    assert (beyond, headers["X-Total-Count"]) == ([], "12")
    rows, _ = await listing(service, cid, "timeline", kind="campaign", limit=1)
    assert rows[0]["summary"] == "Campaign CMP-2026-RETAIN-11 contact CT703-12: opted_out (退订)"


async def test_an_event_about_an_unknown_customer_creates_a_placeholder(service, boss):
    cid = "C704"
    await boss.send_billing(ticket(boss, cid, "T704", "2026-11-20T10:05:00+08:00"))

    page = await service.view360(cid)
    assert page["profile"]["status"] == "inactive"
    assert page["profile"]["name"] is None
    assert page["tickets"]["open_count"] == 1
    events = await service.profile_events(expect=1)
    assert [(key, e.type) for key, e in events if key == cid] == [(cid, "customer.profile.created.v1")]


async def test_events_breaking_their_contract_are_dead_lettered_and_the_next_is_applied(service, boss):
    folder = boss.contracts_dir / "examples"
    cid = "C705"
    invalid: dict[str, list[CloudEvent]] = {}
    for event_type in (CREATED, STATE, CSAT, SCORE, SENT, RESPONDED):
        for path in sorted((folder / event_type / "invalid").glob("*.json")):
            data = {**json.loads(path.read_text(encoding="utf-8"))["data"], "customer_id": cid}
            event = new_event(event_type, source=SOURCES[event_type.split(".")[0]], subject=cid, data=data)
            invalid.setdefault(event.topic, []).append(event)
    assert set(invalid) == {"ticketing.ticket", "churn.score", "campaign.contact"}
    valid = [
        ticket(boss, cid, "T705", "2026-11-20T10:05:00+08:00"),
        boss.produced(SCORE, "high_churn", customer_id=cid),
        boss.produced(SENT, "upgrade_offer_sms", customer_id=cid, contact_id="CT705"),
    ]

    for topic_events in invalid.values():
        await boss.send_billing(*topic_events)
    await boss.send_billing(*valid)

    page = await service.view360(
        cid,
        lambda v: v["tickets"]["open_count"] == 1 and v["risk"]["churn"] and v["campaign_contacts"],
    )
    assert page["risk"]["churn"]["score"] == "0.8731"
    for topic, events in invalid.items():
        dead = await read_topic(service.bootstrap, f"{topic}.dlq", expect=len(events))
        assert sorted(r.value for r in dead) == sorted(e.to_json().encode() for e in events)
        headers = [{k: v.decode() for k, v in r.headers} for r in dead]
        assert {h["dlq.reason"] for h in headers} == {"contract"}
        assert {h["dlq.consumer"] for h in headers} == {"customer-projections"}
        assert all(h["dlq.error"] for h in headers)
    dead_scores = await read_topic(service.bootstrap, "churn.score.dlq", expect=2)
    assert all(dict(r.headers)["dlq.error"].decode().startswith("score:") for r in dead_scores)  # the field at fault
