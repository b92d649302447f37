"""ticketing app: TMF621 trouble tickets under SLA clocks, and the consumer that learns key accounts (大客户) from
customer.profile."""

import asyncio
from pathlib import Path

from fastapi import FastAPI

from crm_kit.service import Runtime, create_service_app
from crm_ticketing import events
from crm_ticketing.api import csat, hub, knowledge, queues, reports, tickets
from crm_ticketing.domain import escalation
from crm_ticketing.domain import hub as hub_delivery
from crm_ticketing.domain import reports as report_gauges
from crm_ticketing.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    async def start_jobs(rt: Runtime) -> None:
        """Beside the outbox relay, stopped with it: the SLA scanner (SLA 预警/超时, 升级), the hub deliveries and
        the report gauges."""
        scanner = escalation.run_scanner(rt.db, rt.contracts, settings.sla_scan_seconds)
        rt.tasks.append(asyncio.create_task(scanner, name=f"{rt.name}-sla-scanner"))
        deliveries = hub_delivery.run_deliveries(rt.db, settings)
        rt.tasks.append(asyncio.create_task(deliveries, name=f"{rt.name}-hub-delivery"))
        gauges = report_gauges.run_gauges(rt.db, settings.report_gauge_seconds)
        rt.tasks.append(asyncio.create_task(gauges, name=f"{rt.name}-report-gauges"))

    return create_service_app(
        name="ticketing",
        title="CRM ticketing service",
        description=(
            "Complaints, fault reports and inquiries (投诉/障碍申告/咨询) as TMF621 trouble tickets: their lifecycle, "
            "first-response and resolution SLA clocks on business-hour calendars, and the key-account green channel "
            "(大客户绿色通道) learnt from customer.profile."
        ),
        settings=settings,
        migrations=Path(__file__).parent / "migrations",
        routers=[tickets.router, csat.router, reports.router, queues.router, hub.router, knowledge.router],
        subscriptions=[events.subscription(settings.consumer_group)],
        on_startup=start_jobs,
    )
