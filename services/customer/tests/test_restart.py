"""The consumer group keeps its place: a service restarted on the same database applies what it missed
while it was down, and nothing twice."""

from __future__ import annotations


async def test_a_restarted_service_catches_up_on_what_was_published_while_it_was_down(start_customer, boss):
    async with start_customer() as service:
        await boss.send(boss.activated("C701", "S701", "13800000701", "2026-11-20T09:30:00+08:00"))
        await service.wait_for("C701")
        assert len(await service.profile_events(expect=2)) == 2  # published before the stop: created, updated

    # down: the BOSS keeps going
    await boss.send(
        boss.activated("C702", "S702", "13800000702", "2026-11-21T09:30:00+08:00", name="李娜"),
        boss.line("suspended", "C701", "S701", "13800000701", "2027-01-05T02:00:00+08:00", reason="arrears"),
        boss.line(
            "plan_changed",
            "C702",
            "S702",
            "13800000702",
            "2026-12-01T00:00:00+08:00",
            from_plan_code="5G-ULT-129",
            plan=boss.PLAN_199,
        ),
    )

    async with start_customer() as service:
        second = await service.wait_for("C702", lambda c: c["subscription"][0]["plan"]["code"] == "5G-ULT-199")
        first = await service.wait_for("C701", lambda c: c["status"] == "suspended")
        published = await service.profile_events(expect=5)

    assert second["name"] == "李娜"
    assert second["status"] == "active"
    assert first["subscription"][0]["statusReason"] == "arrears"
    created = sorted(key for key, e in published if e.type == "customer.profile.created.v1")
    assert created == ["C701", "C702"]  # each customer created once, across both runs
    statuses = [e.data["status"] for key, e in published if key == "C701" and e.type == "customer.profile.updated.v1"]
    assert statuses == ["active", "suspended"]
