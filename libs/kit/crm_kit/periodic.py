"""`repeat`: a service's periodic job (a scanner, a gauge refresh, a delivery round) run until cancelled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def repeat(job: Callable[[], Awaitable[object]], every: float, *, what: str, wait_first: bool = False) -> None:
    """Run `job` every `every` seconds until cancelled (first after a wait when `wait_first`); a failed round is
    logged and the next one tries again, so one bad row or a database blip does not stop the job for good."""
    if wait_first:
        await asyncio.sleep(every)
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; trying again in %s s", what, every)
        await asyncio.sleep(every)
