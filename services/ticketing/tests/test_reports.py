"""The service-quality reports (服务质量报表): backlog by priority and age, SLA attainment, first-contact resolution,
repeat complaints; the same figures as Prometheus gauges, and the resolved/closed events that carry them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from crm_kit.testing import assert_problem, bearer, eventually
from crm_ticketing.domain import reports
from crm_ticketing.domain.sla import SHANGHAI
from crm_ticketing.settings import Settings

REPORTS = "/api/v1/tickets/reports"
SUPERVISOR = bearer("sup-0001", roles=("supervisor",))
MONDAY = datetime(2026, 11, 23, tzinfo=SHANGHAI)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """`day` 0 is Monday 23 November 2026, in Shanghai."""
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute)


def fault(**changes: Any) -> dict[str, Any]:
    """A critical broadband fault: 24×7 calendar, first response within 15 minutes, resolution within 4 hours."""
    return {"ticketType": "trouble", "category": "broadband_fault", "priority": "critical", **changes}


async def scenario(service) -> dict[str, str]:
    """Five faults and four complaints over Monday and Tuesday:
    - A answered in 5 min, resolved in 1 h: both clocks met, first-contact;
    - B answered after 30 min (first response missed), transferred at noon, resolved in 3 h: not first-contact;
    - C answered in 10 min, resolved, reopened, resolved again after 4.5 h of counted time: resolution missed;
    - D never touched (open); E cancelled (neither resolved nor open);
    - customer C2 complains Monday and again Tuesday (a repeat); C3 complained 40 days ago and again Monday (not).
    """
    clock = service.clock
    clock.set(at(-40, 9))
    c3_old = await service.create("C3")
    clock.set(at(0, 10))
    ids = {name: (await service.create(f"C-{name}", **fault()))["id"] for name in "ABCDE"}
    ids["C2a"] = (await service.create("C2"))["id"]
    ids["C3"] = (await service.create("C3"))["id"]
    ids["C3old"] = c3_old["id"]
    clock.set(at(0, 10, 5))
    await service.move(ids["A"], "inProgress")
    clock.set(at(0, 10, 10))
    await service.move(ids["C"], "inProgress")
    await service.move(ids["E"], "cancelled", "客户撤销")
    clock.set(at(0, 10, 30))
    await service.move(ids["B"], "inProgress")
    clock.set(at(0, 11))
    await service.move(ids["A"], "resolved", "光猫重启后恢复")
    await service.move(ids["C"], "resolved", "远程修复")
    clock.set(at(0, 11, 30))
    await service.move(ids["C"], "inProgress", "客户反馈仍不能上网")
    clock.set(at(0, 12))
    r = await service.patch(ids["B"], {"queue": "network"})
    assert r.status_code == 200, r.text
    clock.set(at(0, 13))
    await service.move(ids["B"], "resolved")
    clock.set(at(0, 15))
    await service.move(ids["C"], "resolved", "更换光猫")
    clock.set(at(1, 10))
    ids["C2b"] = (await service.create("C2"))["id"]
    await service.move(ids["A"], "closed", "客户确认")
    clock.set(at(1, 12))
    return ids


async def test_service_quality_counts_attainment_first_contact_and_repeats(service):
    await scenario(service)
    r = await service.http.get(
        f"{REPORTS}/service-quality",
        params={"from": at(0, 0).isoformat(), "to": at(2, 0).isoformat()},
        headers=SUPERVISOR,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "from": "2026-11-23T00:00:00+08:00",
        "to": "2026-11-25T00:00:00+08:00",
        "resolved": 3,
        "firstResponseAttainment": "0.6667",
        "resolutionAttainment": "0.6667",
        "firstContactResolution": "0.3333",
        "complaints": 3,
        "repeatComplaints": 1,
        "repeatComplaintRate": "0.3333",
    }


async def test_a_window_with_nothing_resolved_has_no_ratios_rather_than_zero(service):
    await scenario(service)
    r = await service.http.get(
        f"{REPORTS}/service-quality",
        params={"from": at(3, 0).isoformat(), "to": at(4, 0).isoformat()},
        headers=SUPERVISOR,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["resolved"], body["complaints"]) == (0, 0)
    assert body["resolutionAttainment"] is None and body["repeatComplaintRate"] is None


async def test_the_default_window_is_the_seven_days_to_now(service):
    await scenario(service)
    r = await service.http.get(f"{REPORTS}/service-quality", headers=SUPERVISOR)
    assert r.status_code == 200, r.text
    assert (r.json()["from"], r.json()["to"]) == ("2026-11-17T12:00:00+08:00", "2026-11-24T12:00:00+08:00")
    assert r.json()["resolved"] == 3


async def test_backlog_by_priority_and_age(service):
    ids = await scenario(service)
    r = await service.http.get(f"{REPORTS}/backlog", headers=SUPERVISOR)
    assert r.status_code == 200, r.text
    old = await service.get(ids["C3old"])
    assert r.json() == {
        "asOf": "2026-11-24T12:00:00+08:00",
        "total": 5,
        "byPriority": {"critical": 1, "high": 0, "medium": 4, "low": 0},
        "byAge": {"under_4h": 1, "4h_to_24h": 0, "1d_to_3d": 3, "3d_to_7d": 0, "over_7d": 1},
        "oldestOpenedAt": old["creationDate"],
    }


@pytest.mark.parametrize("report", ["backlog", "service-quality"])
async def test_reports_are_for_supervisors(service, report):
    assert_problem(await service.http.get(f"{REPORTS}/{report}"), 403)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-11-25T00:00:00+08:00", "to": "2026-11-24T00:00:00+08:00"}, "from"),
        ({"from": "2026-11-24T00:00:00"}, "from"),
        ({"to": "yesterday"}, "to"),
    ],
)
async def test_a_bad_window_is_a_problem_naming_it(service, params, field):
    r = await service.http.get(f"{REPORTS}/service-quality", params=params, headers=SUPERVISOR)
    assert_problem(r, 422, field)


def gauges(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("crm_ticketing_")
    }


async def test_gauges_show_the_same_figures(service):
    await scenario(service)
    async with service.database() as db:
        await reports.refresh_gauges(db, at(1, 12))
    shown = gauges((await service.http.get("/metrics")).text)
    assert shown[("crm_ticketing_open_tickets", (("priority", "critical"),))] == 1
    assert shown[("crm_ticketing_open_tickets", (("priority", "medium"),))] == 4
    assert shown[("crm_ticketing_backlog_tickets", (("age", "1d_to_3d"),))] == 3
    assert shown[("crm_ticketing_backlog_tickets", (("age", "over_7d"),))] == 1
    assert shown[("crm_ticketing_oldest_open_ticket_seconds", ())] == pytest.approx(
        (at(1, 12) - at(-40, 9)).total_seconds()
    )
    assert shown[("crm_ticketing_sla_attainment_ratio", (("clock", "resolution"),))] == pytest.approx(2 / 3, abs=1e-4)
    assert shown[("crm_ticketing_first_contact_resolution_ratio", ())] == pytest.approx(1 / 3, abs=1e-4)
    assert shown[("crm_ticketing_repeat_complaint_ratio", ())] == pytest.approx(1 / 3, abs=1e-4)


@pytest_asyncio.fixture
async def often(ticketing_settings: Settings) -> Settings:
    ticketing_settings.report_gauge_seconds = 0.2
    return ticketing_settings


async def test_the_service_refreshes_the_gauges_itself(often, start_ticketing):
    async with start_ticketing() as service:
        for _ in range(3):
            await service.create("C-gauge", **fault())

        async def critical_open() -> float | None:
            shown = gauges((await service.http.get("/metrics")).text)
            value = shown.get(("crm_ticketing_open_tickets", (("priority", "critical"),)))
            return value if value == 3 else None

        assert await eventually(critical_open, timeout=10) == 3


async def test_resolved_and_closed_events_carry_the_quality_facts(service):
    ids = await scenario(service)
    published = await service.ticket_events(expect=24)
    resolved = [(e.data["ticket_id"], e.data) for _, e in published if e.type == "ticketing.ticket.resolved.v1"]
    closed = [e.data for _, e in published if e.type == "ticketing.ticket.closed.v1"]
    facts = [(t, d["sla_met"], d["first_contact"], d["reopened"], d["resolution_seconds"]) for t, d in resolved]
    assert sorted(facts) == sorted(
        [
            (ids["A"], True, True, False, 3600),
            (ids["C"], True, True, False, 3600),
            (ids["B"], True, False, False, 3 * 3600),
            (ids["C"], False, False, True, 5 * 3600),
        ]
    )
    assert [(d["ticket_id"], datetime.fromisoformat(d["resolved_at"]), d["reason"]) for d in closed] == [
        (ids["A"], at(0, 11), "客户确认")
    ]
    for _, event in published:
        service.contracts.validate_event(event)
