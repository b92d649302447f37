"""Admission of a BOSS push (接入校验), decided before anything in it is read: is it signed by a source we know,
with that source's secret, within the replay window; and can we keep it while the broker is away?

A push refused here was never ours: nothing of it is quarantined, the BOSS keeps it and sends it again. Each
refusal is logged and counted (`crm_billing_adapter_push_refused_total{reason}`), so a BOSS with a wrong secret
or a drifting clock, or a stranger knocking, shows on the dashboards.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from crm_billing_adapter.observability import PUSH_REFUSED
from crm_billing_adapter.settings import Settings
from crm_kit.errors import CrmError, ServiceUnavailable
from crm_kit.outbox import backlog_estimate
from crm_kit.signing import DEV_SECRET, SOURCE_HEADER, SignatureError, verify

log = logging.getLogger(__name__)

MAX_SHOWN = 64
"""Characters of a caller's header repeated in an answer or a log line."""


class PushNotSigned(CrmError):
    """401: not signed by a known source with its own secret within the window (签名校验失败)."""

    status = 401
    slug = "bad-signature"
    title = "The push is not signed by a known BOSS source"
    headers: ClassVar[dict[str, str] | None] = {"WWW-Authenticate": 'HMAC-SHA256 realm="boss"'}


class BacklogFull(ServiceUnavailable):
    """503: the events waiting for the broker are at their bound (积压上限); the BOSS retries later."""

    slug = "backlog-full"
    title = "Too many events are waiting for the broker"


def _refused(reason: str, source: str | None, detail: str, header: str) -> PushNotSigned:
    PUSH_REFUSED.labels(reason).inc()
    log.warning(
        "BOSS push refused: source %r, %s: %s",
        source,
        reason,
        detail,
        extra={"boss_source": source, "reason": reason},
    )
    return PushNotSigned(detail, field=header, reason=reason)


def authenticate(
    settings: Settings,
    source: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float | None = None,
) -> str:
    """The source of a push signed over its body as sent with that source's secret, within the window;
    PushNotSigned naming the header at fault otherwise."""
    if not source:
        raise _refused(
            "missing_source", None, f"{SOURCE_HEADER} is required: the BOSS source the push comes from", SOURCE_HEADER
        )
    secret = settings.source_secrets.get(source)
    if secret is None:
        shown = source[:MAX_SHOWN]
        raise _refused("unknown_source", shown, f"{SOURCE_HEADER} {shown!r} is not a known BOSS source", SOURCE_HEADER)
    try:
        verify(
            secret.get_secret_value(),
            timestamp,
            signature,
            body,
            now=now,
            window_seconds=settings.signature_window_seconds,
        )
    except SignatureError as exc:
        raise _refused(exc.reason, source, str(exc), exc.header) from exc
    return source


async def ensure_room(session: AsyncSession, settings: Settings, incoming: int) -> None:
    """BacklogFull (503, Retry-After) when the events waiting for the broker plus this batch would pass the bound:
    better the BOSS keeps a batch and sends it again than we take in more than we can keep."""
    backlog = await backlog_estimate(session)
    if backlog + incoming <= settings.max_outbox_backlog:
        return
    PUSH_REFUSED.labels("backlog_full").inc()
    log.warning(
        "BOSS push refused: %d events wait for the broker, %d more would pass the bound of %d",
        backlog,
        incoming,
        settings.max_outbox_backlog,
        extra={"reason": "backlog_full"},
    )
    raise BacklogFull(
        f"About {backlog} events are waiting for the broker; {incoming} more would pass the bound of "
        f"{settings.max_outbox_backlog}. Nothing of this push was taken in; send it again after "
        f"{settings.retry_after_seconds} s",
        retry_after_seconds=settings.retry_after_seconds,
        backlog=backlog,
    )


def warn_of_dev_secret(settings: Settings) -> None:
    """At start: a source still on the development secret can be pushed to by anyone who read the source code."""
    dev = sorted(s for s, secret in settings.source_secrets.items() if secret.get_secret_value() == DEV_SECRET)
    if dev:
        log.warning(
            "BOSS source(s) %s sign with the development secret; set CRM_BILLING_ADAPTER_SOURCE_SECRETS in production",
            ", ".join(dev),
        )
