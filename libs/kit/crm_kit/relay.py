"""`crm relay`: a service's outbox relay as a process of its own (外发中继).

A service publishes its outbox from inside its own process by default. Where the feed is heavy (the billing
adapter takes tens of thousands of BOSS records a second), the API process spends a third of its core on
publishing; run with `CRM_<SERVICE>_OUTBOX_RELAY=false` and one `crm relay` beside it, each gets a core.
One relay per SQLite database; on PostgreSQL relays may run side by side (rows are claimed with SKIP LOCKED).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Annotated

import typer
from prometheus_client import start_http_server

from crm_kit.bus import Bus
from crm_kit.db import Database
from crm_kit.observability import configure_logging, service_metrics
from crm_kit.outbox import OutboxRelay
from crm_kit.service import tune_interpreter_for_requests
from crm_kit.settings import KafkaSettings

log = logging.getLogger(__name__)


def relay(
    database_url: Annotated[str, typer.Option(envvar="CRM_RELAY_DATABASE_URL", help="the service's database")],
    service: Annotated[str, typer.Option(help="the service whose outbox it is (names its metrics)")],
    batch_size: Annotated[int, typer.Option(help="rows a round")] = 5000,
    poll_seconds: Annotated[
        float, typer.Option(help="how often an idle relay looks for rows (it cannot hear another process commit)")
    ] = 0.05,
    metrics_port: Annotated[int | None, typer.Option(help="serve Prometheus metrics on this port")] = None,
    log_level: Annotated[str, typer.Option(envvar="CRM_LOG_LEVEL")] = "INFO",
) -> None:
    """Publish a service's outbox to Kafka (`CRM_KAFKA_*`) until stopped (SIGTERM or Ctrl-C)."""
    configure_logging(f"{service}-relay", log_level, True)
    if metrics_port is not None:
        start_http_server(metrics_port)
    asyncio.run(_run(database_url, service, batch_size, poll_seconds))


async def _run(database_url: str, service: str, batch_size: int, poll_seconds: float) -> None:
    db = Database(database_url)
    bus = Bus(KafkaSettings(), client_id=f"{service}-relay")
    outbox = OutboxRelay(db, bus, service_metrics(service), batch_size=batch_size, poll_seconds=poll_seconds)
    tune_interpreter_for_requests()  # a round allocates thousands of short-lived objects, as a request does
    task = asyncio.create_task(outbox.run(), name=f"{service}-outbox-relay")
    loop = asyncio.get_running_loop()
    for stop in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(stop, lambda: asyncio.ensure_future(outbox.stop(task)))
    log.info("%s outbox relay started", service)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await outbox.close()
        await bus.close()
        await db.dispose()
        log.info("%s outbox relay stopped", service)
