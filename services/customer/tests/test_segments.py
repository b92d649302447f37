"""Segments (客户分群) through the served API, on a population learnt from the BOSS: the rule language and its
errors, previews, rule segments (create, members, evaluate, change, archive) with their membership events, the
built-in tiers moving with billing events (tier_changed on customer.segment), and who may do what."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from crm_customer.domain import metrics
from crm_kit.events import CloudEvent
from crm_kit.testing import bearer, eventually, read_topic

BASE = "/api/v1/segments"
SEGMENT_TOPIC = "customer.segment"
TIER_CHANGED = "customer.segment.tier_changed.v1"
MEMBERSHIP_CHANGED = "customer.segment.membership_changed.v1"
INVOICE = "billing.invoice.issued.v1"
MARKETER = bearer("mkt-01", roles=("marketer",))
ANALYST = bearer("ana-01", roles=("analyst",))


def invoice(boss, cid: str, period: str, fen: int):
    year, month = (int(p) for p in period.split("-"))
    issued = f"{year + month // 12}-{month % 12 + 1:02d}-01T02:00:00+08:00"
    return boss.billing_example(
        INVOICE,
        "individual_monthly",
        customer_id=cid,
        account_id=f"A{cid[1:]}",
        invoice_id=f"INV-{period.replace('-', '')}-{cid}",
        billing_period=period,
        occurred_at=issued,
        issued_at=issued,
        due_date=f"{year + month // 12}-{month % 12 + 1:02d}-20",
        amount_due_fen=fen,
        items=[{"code": "MONTHLY_FEE", "description": "月租", "amount_fen": fen}],
    )


POPULATION = [
    # id, name, region, plan fee (fen): each gets one invoice of that amount
    ("C8001", "张伟", "BJ", 19_900),
    ("C8002", "王芳", "BJ", 12_900),
    ("C8003", "李娜", "GD-SZ", 5_900),
    ("C8004", "刘洋", "GD-SZ", 29_900),
    ("C8005", "陈静", "SH", 3_900),
]


async def population(service, boss) -> None:
    """Five customers activated by the BOSS, each billed once; ready when the last bill is applied."""
    for n, (cid, name, region, _) in enumerate(POPULATION):
        await boss.send(
            boss.activated(cid, f"S{cid[1:]}", f"1390000{n:04d}", "2026-06-01T09:30:00+08:00", name=name, region=region)
        )
    for cid, *_ in POPULATION:
        await service.wait_for(cid)
    await boss.send_billing(*(invoice(boss, cid, "2026-10", fee) for cid, _, _, fee in POPULATION))

    async def billed() -> bool:
        r = await service.http.post(
            f"{BASE}/preview", json={"rule": {"field": "arpu_fen", "op": "gt", "value": 0}}, headers=MARKETER
        )
        return r.status_code == 200 and r.json()["count"] == len(POPULATION)

    await eventually(billed, timeout=15)


async def preview(service, rule: Any) -> Any:
    return await service.http.post(f"{BASE}/preview", json={"rule": rule}, headers=MARKETER)


async def segment_events(service, expect: int, of_type: str) -> list[CloudEvent]:
    """Events of `of_type` on customer.segment (valid, keyed by their customer), once `expect` of them are there."""

    async def probe() -> list[CloudEvent] | None:
        records = await read_topic(service.bootstrap, SEGMENT_TOPIC, expect=expect, timeout=2)
        found = []
        for record in records:
            event = CloudEvent.model_validate_json(record.value or b"")
            assert (record.key or b"").decode() == event.subject == event.data["customer_id"]
            if event.type == of_type:
                found.append(event)
        return found if len(found) >= expect else None

    return await eventually(probe, timeout=15)


def assert_problem(r: Any, status: int, field: str | None) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json().get("field") == field, r.json()


LEAF = {"field": "region", "op": "eq", "value": "BJ"}


def nested(depth: int) -> dict[str, Any]:
    rule: dict[str, Any] = LEAF
    for _ in range(depth - 1):
        rule = {"not": rule}
    return rule


BAD_RULES = [
    ({"all": [LEAF, {"field": "shoe_size", "op": "eq", "value": 42}]}, "rule.all[1].field"),
    ({"all": [LEAF, LEAF, {"field": "arpu_fen", "op": "about", "value": 1}]}, "rule.all[2].op"),
    ({"field": "arpu_fen", "op": "gte", "value": "100"}, "rule.value"),
    ({"field": "arpu_fen", "op": "gte", "value": True}, "rule.value"),
    ({"field": "arpu_fen", "op": "gte", "value": 99.5}, "rule.value"),
    ({"field": "key_account", "op": "eq", "value": 1}, "rule.value"),
    ({"field": "churn_score", "op": "gte", "value": "0.6"}, "rule.value"),
    ({"field": "region", "op": "eq", "value": 11}, "rule.value"),
    ({"field": "created_at", "op": "gte", "value": "2026-11-01T00:00:00"}, "rule.value"),
    ({"field": "value_tier", "op": "eq", "value": "platinum"}, "rule.value"),
    ({"field": "region", "op": "gt", "value": "BJ"}, "rule.op"),
    ({"any": [LEAF, {"field": "arpu_fen", "op": "in", "value": [1, "2"]}]}, "rule.any[1].value[1]"),
    ({"field": "arpu_fen", "op": "in", "value": []}, "rule.value"),
    ({"field": "arpu_fen", "op": "between", "value": [10]}, "rule.value"),
    ({"field": "arpu_fen", "op": "between", "value": [10, 5]}, "rule.value"),
    ({"field": "arpu_fen", "op": "is_null", "value": "yes"}, "rule.value"),
    ({"field": "arpu_fen", "op": "eq", "value": None}, "rule.value"),
    ({"field": "arpu_fen", "op": "eq"}, "rule.value"),
    ({"field": "arpu_fen", "op": "eq", "value": 1, "weight": 2}, "rule.weight"),
    ({"all": []}, "rule.all"),
    ({"any": {"field": "region"}}, "rule.any"),
    ({"all": [LEAF], "any": [LEAF]}, "rule.any"),
    ({"not": [LEAF]}, "rule.not"),
    (nested(9), "rule" + ".not" * 8),
    ({"any": [LEAF] * 51}, "rule.any[50]"),
]


async def test_a_bad_rule_is_refused_naming_where_in_the_rule_and_the_limits_are_accepted(service):
    for rule, field in BAD_RULES:
        assert_problem(await preview(service, rule), 422, field)
    assert (await preview(service, nested(8))).status_code == 200
    assert (await preview(service, {"any": [LEAF] * 50})).status_code == 200


async def test_preview_counts_and_samples_with_masked_names(service, boss):
    await population(service, boss)

    r = await preview(service, {"field": "region", "op": "eq", "value": "BJ"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "count": 2,
        "sample": [{"customer_id": "C8001", "name": "张*"}, {"customer_id": "C8002", "name": "王*"}],
    }

    async def count(rule: Any) -> int:
        found = await preview(service, rule)
        assert found.status_code == 200, found.text
        return found.json()["count"]  # type: ignore[no-any-return]

    assert await count({"field": "arpu_fen", "op": "gte", "value": 12_900}) == 3
    assert await count({"field": "arpu_fen", "op": "between", "value": [5_900, 12_900]}) == 2
    assert (
        await count(
            {
                "all": [
                    {"field": "region", "op": "in", "value": ["BJ", "GD-SZ"]},
                    {"not": {"field": "value_tier", "op": "eq", "value": "high"}},
                ]
            }
        )
        == 2
    )
    assert await count({"field": "value_tier", "op": "eq", "value": "high"}) == 2  # ≥ 150 yuan, the defaults
    assert await count({"field": "lifecycle_stage", "op": "eq", "value": "stable"}) == 5  # 175 days in network
    assert await count({"field": "tenure_days", "op": "gte", "value": 90}) == 5
    assert await count({"field": "tenure_days", "op": "lt", "value": 90}) == 0
    assert await count({"field": "activity_tier", "op": "eq", "value": "dormant"}) == 5
    assert await count({"field": "churn_score", "op": "is_null", "value": True}) == 5
    assert await count({"field": "key_account", "op": "eq", "value": True}) == 0
    assert await count({"field": "created_at", "op": "gte", "value": "2020-01-01T00:00:00+08:00"}) == 5


async def test_billing_events_move_the_value_tier_and_publish_tier_changed(service, boss):
    cid = "C8101"
    await boss.send(boss.activated(cid, "S8101", "13900008101", "2026-06-01T09:30:00+08:00"))
    first = await segment_events(service, 2, TIER_CHANGED)
    assert {(e.data["dimension"], e.data["from"], e.data["to"]) for e in first} == {
        ("activity", None, "dormant"),
        ("lifecycle", None, "stable"),
    }

    await boss.send_billing(invoice(boss, cid, "2026-08", 5_000))
    [low] = [e for e in await segment_events(service, 3, TIER_CHANGED) if e.data["dimension"] == "value"]
    assert (low.data["from"], low.data["to"]) == (None, "low")

    await boss.send_billing(invoice(boss, cid, "2026-09", 20_000), invoice(boss, cid, "2026-10", 30_000))
    value = [e for e in await segment_events(service, 5, TIER_CHANGED) if e.data["dimension"] == "value"]
    # ARPU 125 yuan after September's bill, 183.33 after October's
    assert [(e.data["from"], e.data["to"]) for e in value] == [(None, "low"), ("low", "mid"), ("mid", "high")]
    for event in value:
        boss.contracts.validate_event(event)
        assert event.source == "/crm/customer"

    high = await service.http.get(f"{BASE}/value-high/members")
    assert high.status_code == 200
    assert high.json() == [{"customer_id": cid, "name": "张*", "since": None}]
    assert high.headers["X-Total-Count"] == "1"
    r = await service.http.get(f"{BASE}/value-high")
    assert r.json()["member_count"] == 1
    assert r.json()["rule"] == {"field": "value_tier", "op": "eq", "value": "high"}


async def test_a_rule_segment_is_evaluated_on_creation_and_diffed_on_re_evaluation(service, boss):
    await population(service, boss)
    created = await service.http.post(
        BASE,
        json={
            "name": "北京高价值",
            "description": "BJ, ARPU ≥ 100 yuan",
            "rule": {
                "all": [
                    {"field": "region", "op": "eq", "value": "BJ"},
                    {"field": "arpu_fen", "op": "gte", "value": 10_000},
                ]
            },
        },
        headers=MARKETER,
    )
    assert created.status_code == 201, created.text
    segment = created.json()
    sid = segment["id"]
    assert segment["member_count"] == 2
    assert segment["kind"] == "rule" and segment["status"] == "active" and segment["created_by"] == "mkt-01"
    assert segment["evaluated_at"].endswith("+08:00")
    joined = await segment_events(service, 2, MEMBERSHIP_CHANGED)
    assert sorted(e.data["customer_id"] for e in joined) == ["C8001", "C8002"]
    assert {(e.data["segment_id"], e.data["segment_name"], e.data["change"]) for e in joined} == {
        (sid, "北京高价值", "joined")
    }

    # a newcomer in Beijing with a big bill; C8002's next bills are small
    await boss.send(boss.activated("C8006", "S8006", "13900008006", "2026-06-01T09:30:00+08:00", region="BJ"))
    await boss.send_billing(
        invoice(boss, "C8006", "2026-10", 15_000),
        invoice(boss, "C8002", "2026-11", 100),
        invoice(boss, "C8002", "2026-12", 100),
    )

    async def settled() -> bool:
        """The rule now selects C8001 and C8006 (every bill and line applied)."""
        sample = (await preview(service, segment["rule"])).json()["sample"]
        return [c["customer_id"] for c in sample] == ["C8001", "C8006"]

    await eventually(settled, timeout=15)
    r = await service.http.post(f"{BASE}/{sid}/evaluate", headers=ANALYST)
    assert r.status_code == 200, r.text
    assert (r.json()["joined"], r.json()["left"], r.json()["segment"]["member_count"]) == (1, 1, 2)
    changes = await segment_events(service, 4, MEMBERSHIP_CHANGED)
    assert sorted((e.data["customer_id"], e.data["change"]) for e in changes) == [
        ("C8001", "joined"),
        ("C8002", "joined"),
        ("C8002", "left"),
        ("C8006", "joined"),
    ]
    for event in changes:
        boss.contracts.validate_event(event)

    again = await service.http.post(f"{BASE}/{sid}/evaluate", headers=ANALYST)
    assert (again.json()["joined"], again.json()["left"]) == (0, 0)

    members = await service.http.get(f"{BASE}/{sid}/members")
    assert [m["customer_id"] for m in members.json()] == ["C8001", "C8006"]
    assert all(m["since"].endswith("+08:00") for m in members.json())


async def test_changing_the_rule_re_evaluates_and_archiving_lets_everyone_leave(service, boss):
    await population(service, boss)
    sid = (
        await service.http.post(
            BASE, json={"name": "深圳", "rule": {"field": "region", "op": "eq", "value": "GD-SZ"}}, headers=MARKETER
        )
    ).json()["id"]
    patched = await service.http.patch(
        f"{BASE}/{sid}",
        json={"name": "深圳+上海", "rule": {"field": "region", "op": "in", "value": ["GD-SZ", "SH"]}},
        headers=MARKETER,
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["joined"], patched.json()["left"]) == (1, 0)
    assert patched.json()["segment"]["name"] == "深圳+上海"
    assert patched.json()["segment"]["member_count"] == 3

    bad = await service.http.patch(f"{BASE}/{sid}", json={"rule": {"all": []}}, headers=MARKETER)
    assert_problem(bad, 422, "rule.all")

    archived = await service.http.delete(f"{BASE}/{sid}", headers=MARKETER)
    assert archived.status_code == 200
    assert (archived.json()["left"], archived.json()["segment"]["status"]) == (3, "archived")
    events = await segment_events(service, 6, MEMBERSHIP_CHANGED)
    assert sorted(e.data["customer_id"] for e in events if e.data["change"] == "left") == ["C8003", "C8004", "C8005"]
    assert {e.data["segment_name"] for e in events if e.data["change"] == "left"} == {"深圳+上海"}
    assert_problem(await service.http.post(f"{BASE}/{sid}/evaluate", headers=MARKETER), 409, "segment_id")

    listed = await service.http.get(BASE, params={"status": "archived"})
    assert [s["id"] for s in listed.json()] == [sid]


async def test_members_are_paginated(service, boss):
    await population(service, boss)
    sid = (
        await service.http.post(
            BASE, json={"name": "all billed", "rule": {"field": "arpu_fen", "op": "gt", "value": 0}}, headers=MARKETER
        )
    ).json()["id"]
    pages = []
    for offset in (0, 2, 4):
        r = await service.http.get(f"{BASE}/{sid}/members", params={"offset": offset, "limit": 2})
        assert r.status_code == 200
        assert r.headers["X-Total-Count"] == "5"
        pages.append([m["customer_id"] for m in r.json()])
        assert r.headers["X-Result-Count"] == str(len(pages[-1]))
    assert pages == [["C8001", "C8002"], ["C8003", "C8004"], ["C8005"]]
    assert_problem(await service.http.get(f"{BASE}/{sid}/members", params={"limit": 1001}), 422, "limit")
    assert_problem(await service.http.get(f"{BASE}/SEG-NOPE/members"), 404, "segment_id")


async def test_segments_list_the_built_in_tiers_which_are_read_only(service, boss):
    await population(service, boss)
    r = await service.http.get(BASE)
    assert r.status_code == 200
    by_id = {s["id"]: s for s in r.json()}
    assert {"value-high", "value-mid", "value-low", "activity-dormant", "lifecycle-at_risk"} <= set(by_id)
    assert (by_id["value-high"]["member_count"], by_id["value-mid"]["member_count"]) == (2, 1)
    assert by_id["value-low"]["member_count"] == 2
    assert by_id["activity-dormant"]["member_count"] == 5
    assert by_id["lifecycle-at_risk"]["kind"] == "builtin"
    assert r.headers["X-Total-Count"] == str(len(r.json()))
    assert_problem(await service.http.post(f"{BASE}/value-high/evaluate", headers=MARKETER), 409, "segment_id")
    assert_problem(
        await service.http.patch(f"{BASE}/value-high", json={"name": "x"}, headers=MARKETER), 409, "segment_id"
    )
    taken = await service.http.post(BASE, json={"name": "value high", "rule": LEAF}, headers=MARKETER)
    assert_problem(taken, 409, "name")


async def test_tier_recompute_sets_percentile_cutoffs_only_over_enough_customers(service, boss):
    await population(service, boss)
    assert_problem(await service.http.post(f"{BASE}/tiers/recompute", headers=MARKETER), 403, None)
    r = await service.http.post(f"{BASE}/tiers/recompute", headers=ANALYST)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["cutoffs"]["population"] == 5
    assert body["cutoffs"]["from_population"] is False
    assert body["cutoffs"]["value_high_min"] == {"fen": 15_000, "yuan": "150.00"}
    assert (body["retiered"], body["remaining"]) == (0, 0)


async def test_roles_agents_read_segments_but_only_marketers_and_analysts_write(service):
    assert (await service.http.get(BASE)).status_code == 200
    rule = {"name": "x", "rule": LEAF}
    assert_problem(await service.http.post(BASE, json=rule), 403, None)
    assert_problem(await service.http.post(f"{BASE}/preview", json={"rule": LEAF}), 403, None)
    partner = bearer("p-1", roles=("partner",))
    assert_problem(await service.http.get(BASE, headers=partner), 403, None)
    assert (await service.http.post(BASE, json=rule, headers=bearer("sup", roles=("supervisor",)))).status_code == 201


async def test_erased_and_merged_customers_leave_a_segment_on_its_next_evaluation(service, boss):
    await population(service, boss)
    created = await service.http.post(
        BASE, json={"name": "有账单", "rule": {"field": "arpu_fen", "op": "gt", "value": 0}}, headers=MARKETER
    )
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    assert created.json()["member_count"] == 5
    supervisor = bearer("sup-1", roles=("supervisor",))
    erased = await service.http.post(
        "/api/v1/privacy/customers/C8003/erasure", json={"reason": "customer_request"}, headers=supervisor
    )
    assert erased.status_code == 201, erased.text
    merged = await service.http.post(
        "/api/v1/privacy/customers/C8001/merge",
        json={"duplicate_id": "C8002", "reason": "同一证件"},
        headers=supervisor,
    )
    assert merged.status_code == 200, merged.text

    r = await service.http.post(f"{BASE}/{sid}/evaluate", headers=ANALYST)
    assert r.status_code == 200, r.text
    assert (r.json()["joined"], r.json()["left"], r.json()["segment"]["member_count"]) == (0, 1, 3)
    members = (await service.http.get(f"{BASE}/{sid}/members")).json()
    assert [m["customer_id"] for m in members] == ["C8001", "C8004", "C8005"]

    changes = await segment_events(service, 6, MEMBERSHIP_CHANGED)
    assert sorted((e.data["customer_id"], e.data["change"]) for e in changes) == sorted(
        [*((cid, "joined") for cid, *_ in POPULATION), ("C8003", "left")]
    )
    assert len({e.id for e in changes}) == len(changes)
    for event in changes:
        boss.contracts.validate_event(event)
        assert event.data["segment_id"] == sid and event.data["segment_name"] == "有账单"


async def test_customers_per_built_in_tier_are_gauges_for_the_ops_dashboards(customer_settings, start_customer, boss):
    customer_settings.segment_gauge_seconds = 0.2
    async with start_customer() as service:
        await population(service, boss)

        async def counted() -> dict[tuple[str, str], float] | None:
            scraped = (await service.http.get("/metrics")).text
            families = text_string_to_metric_families(scraped)
            gauge = next(f for f in families if f.name == "crm_customer_segment_customers")
            counts = {(s.labels["dimension"], s.labels["tier"]): s.value for s in gauge.samples}
            return counts if counts.get(("value", "high")) == 2 else None

        counts = await eventually(counted, timeout=10, interval=0.1)
    assert (counts[("value", "mid")], counts[("value", "low")], counts[("activity", "dormant")]) == (1, 2, 5)
    assert set(counts) == {(d, t) for d, tiers in metrics.TIERS.items() for t in tiers}
