"""The composed 360 view: one customer as the services that own each part of them see it, read concurrently.

Every part is asked of its owner with the caller's own credentials, so each service applies its own role and
object-level checks (a key-account manager's portfolio, masking of personal data) and the gateway adds none. A part
that is slow, down or refused is reported missing with the reason; only the customer part is indispensable: without
it there is no customer to compose around (and no word on whether the caller may see them at all).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from crm_kit.db import utcnow
from crm_kit.errors import PROBLEM_BASE
from crm_kit.presentation import shanghai

PRESENT, MISSING = "present", "missing"
TIMEOUT, UNAVAILABLE, UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, REJECTED, INVALID_ANSWER = (
    "timeout",
    "unavailable",
    "unauthenticated",
    "forbidden",
    "not-found",
    "rejected",
    "invalid-answer",
)
REASONS = (TIMEOUT, UNAVAILABLE, UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, REJECTED, INVALID_ANSWER)
"""Why a part is missing: no answer in time; no connection or a 5xx; 401; 403; 404 (the owner does not know the
customer); another 4xx; an answer that is not the JSON asked for."""

CUSTOMER_PARTS = ("profile", "accounts", "lines", "tiers", "segments", "usage_30d")
"""What the view takes from the customer service's own view360: the rest of that page is projections of other
services' events, which the view reads from their owners instead."""
DROPPED_SCORE_FIELDS = ("features",)
"""The model's inputs: dozens of numbers for the churn service's own pages, not for a customer's overview."""
PASSED_RESPONSE_HEADERS = ("x-pii-masked",)
"""The customer service's word on why numbers came back masked, passed on to the caller."""
TIME_SUFFIXES = ("_at", "Date", "_date")


@dataclass(frozen=True)
class Upstreams:
    customer: str
    ticketing: str
    churn: str
    campaign: str


@dataclass(frozen=True)
class Part:
    """One part of the view: where it lives and what of the answer it keeps."""

    name: str
    upstream: str
    path: str
    params: Mapping[str, str | int]
    shape: Callable[[httpx.Response], Any]


@dataclass
class Outcome:
    upstream: str
    response: httpx.Response | None = None
    reason: str | None = None
    detail: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def as_part(self, shape: Callable[[httpx.Response], Any]) -> dict[str, Any]:
        if self.response is not None and self.reason is None:
            try:
                return {"status": PRESENT, "source": self.upstream, "data": shape(self.response)}
            except (ValueError, KeyError, TypeError) as exc:
                self.reason, self.detail = INVALID_ANSWER, f"The {self.upstream} service answered {exc!r:.200}"
        return {
            "status": MISSING,
            "source": self.upstream,
            "reason": self.reason,
            "detail": self.detail,
            "upstream_status": self.response.status_code if self.response is not None else None,
        }


class CustomerUnavailable(Exception):
    """The customer part failed: the whole answer is a problem with this status (and the upstream's problem body,
    when it answered one: its 404 or 403 says it better than the gateway could)."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        extra: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail, self.extra = status, slug, title, detail, extra
        self.headers = headers or {}


def to_shanghai(value: Any) -> Any:
    """Every time in a part as the services show theirs: China Standard Time with its offset. A member named like a
    time (`…_at`, `…Date`) holding an instant with an offset is converted; dates and anything else stay."""
    if isinstance(value, list):
        return [to_shanghai(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        if isinstance(v, str) and key.endswith(TIME_SUFFIXES):
            out[key] = _instant_in_shanghai(v)
        else:
            out[key] = to_shanghai(v)
    return out


def _instant_in_shanghai(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        return text
    return shanghai(moment) or text


def _json(r: httpx.Response) -> Any:
    return json.loads(r.content)


def _page(r: httpx.Response) -> dict[str, Any]:
    items = _json(r)
    if not isinstance(items, list):
        raise TypeError("not a list")
    return {"total": int(r.headers.get("X-Total-Count", len(items))), "items": to_shanghai(items)}


def _customer(r: httpx.Response) -> dict[str, Any]:
    view = _json(r)
    return to_shanghai({key: view[key] for key in CUSTOMER_PARTS if key in view})


def _billing(r: httpx.Response) -> dict[str, Any]:
    """The customer service's billing summary (kept from `billing.*`), with the latest billed month as the last
    invoice: the summary's spend trend holds each month's invoices, oldest first."""
    summary = to_shanghai(_json(r))
    trend = summary.get("spend_trend") or []
    return {**summary, "last_invoice": trend[-1] if trend else None}


def _score(r: httpx.Response) -> dict[str, Any]:
    score = _json(r)
    return to_shanghai({k: v for k, v in score.items() if k not in DROPPED_SCORE_FIELDS})


def parts(customer_id: str, upstreams: Upstreams, items: int) -> list[Part]:
    """Customer first: it decides whether there is a view at all."""
    return [
        Part(
            "customer",
            "customer",
            f"{upstreams.customer}/api/v1/customers/{customer_id}/view360",
            {"timeline_limit": 1},
            _customer,
        ),
        Part(
            "billing", "customer", f"{upstreams.customer}/api/v1/customers/{customer_id}/billing-summary", {}, _billing
        ),
        Part(
            "tickets",
            "ticketing",
            f"{upstreams.ticketing}/tmf-api/troubleTicket/v4/troubleTicket",
            {"customerId": customer_id, "sort": "-creationDate", "limit": items},
            _page,
        ),
        *(
            Part(name, "churn", f"{upstreams.churn}/churn/v1/customers/{customer_id}/score", {"kind": kind}, _score)
            for name, kind in (("churn_score", "churn"), ("bad_debt_score", "bad_debt"))
        ),
        Part(
            "campaign_contacts",
            "campaign",
            f"{upstreams.campaign}/campaign/v1/customers/{customer_id}/contacts",
            {"limit": items},
            _page,
        ),
    ]


async def fetch(
    client: httpx.AsyncClient, part: Part, headers: list[tuple[str, str]], timeout: float, connect_timeout: float
) -> Outcome:
    """The part's answer, or why there is none. The timeout holds for the whole exchange, not each read."""
    out = Outcome(part.upstream)
    try:
        async with asyncio.timeout(timeout):
            r = await client.get(
                part.path,
                params=part.params,
                headers=headers,
                timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
            )
    except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        out.reason, out.detail = UNAVAILABLE, f"The {part.upstream} service is unavailable ({type(exc).__name__})"
        return out
    except (TimeoutError, httpx.TimeoutException):
        out.reason, out.detail = TIMEOUT, f"The {part.upstream} service did not answer within {timeout}s"
        return out
    except httpx.TransportError as exc:
        out.reason, out.detail = UNAVAILABLE, f"The {part.upstream} service is unavailable ({type(exc).__name__})"
        return out
    out.response = r
    out.headers = {k: v for k, v in r.headers.items() if k.lower() in PASSED_RESPONSE_HEADERS}
    if r.is_success:
        return out
    problem = _problem_of(r)
    out.detail = str(problem.get("detail") or f"The {part.upstream} service answered {r.status_code}")
    out.reason = (
        UNAVAILABLE
        if r.status_code >= 500
        else {401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND}.get(r.status_code, REJECTED)
    )
    return out


def _problem_of(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _refusal(outcome: Outcome) -> CustomerUnavailable:
    """The whole answer when the customer part failed: the customer service's own 4xx problem (its 404 for a
    customer outside a portfolio, its 403 for a role), a 503 when it is down, a 504 when it is slow."""
    r = outcome.response
    if outcome.reason == INVALID_ANSWER:
        return CustomerUnavailable(
            502,
            "upstream-invalid",
            "A service behind the gateway answered nonsense",
            outcome.detail,
            {"upstream": "customer"},
        )
    if outcome.reason == TIMEOUT:
        return CustomerUnavailable(
            504,
            "upstream-timeout",
            "A service behind the gateway did not answer in time",
            outcome.detail,
            {"upstream": "customer"},
        )
    if r is None or r.status_code >= 500:
        return CustomerUnavailable(
            503,
            "upstream-unavailable",
            "A service behind the gateway is unavailable",
            outcome.detail,
            {"upstream": "customer"},
        )
    body = _problem_of(r)
    kind = str(body.get("type", ""))
    slug = kind.removeprefix(PROBLEM_BASE) if kind.startswith(PROBLEM_BASE) else f"http-{r.status_code}"
    kept = {k: v for k, v in body.items() if k not in ("type", "title", "status", "detail", "instance", "request_id")}
    challenge = {"WWW-Authenticate": r.headers["WWW-Authenticate"]} if "WWW-Authenticate" in r.headers else None
    return CustomerUnavailable(r.status_code, slug, str(body.get("title") or slug), outcome.detail, kept, challenge)


async def compose_360(
    client: httpx.AsyncClient,
    upstreams: Upstreams,
    customer_id: str,
    headers: Iterable[tuple[str, str]],
    *,
    part_timeout: float,
    connect_timeout: float,
    items: int = 20,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The view and the response headers to pass on; raises `CustomerUnavailable` when the customer part fails
    (the other parts, asked at the same time, are then abandoned)."""
    sent = list(headers)
    wanted = parts(customer_id, upstreams, items)
    tasks = [asyncio.create_task(fetch(client, p, sent, part_timeout, connect_timeout)) for p in wanted]
    try:
        customer = await tasks[0]
        if customer.reason is not None:
            raise _refusal(customer)
        outcomes = [customer, *await asyncio.gather(*tasks[1:])]
    finally:
        for task in tasks:
            task.cancel()
    answered = {p.name: o.as_part(p.shape) for p, o in zip(wanted, outcomes, strict=True)}
    if answered["customer"]["status"] == MISSING:
        raise _refusal(customer)
    view: dict[str, Any] = {"customer_id": customer_id, "composed_at": shanghai(utcnow())}
    missing = [name for name, part in answered.items() if part["status"] == MISSING]
    view |= {"complete": not missing, "missing": missing, **answered}
    return view, customer.headers
