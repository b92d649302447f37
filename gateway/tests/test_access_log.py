"""The gateway's access log and its RED metrics per route and client: each request logged once with its request
id, caller, route, status and latency; counted by a bounded client label (a partner, or the caller's roles)."""

from __future__ import annotations

import logging

from crm_kit.testing import bearer

from .conftest import running_gateway


class Kept(logging.Handler):
    """The access log's records as emitted (the gateway replaces the root handlers when it starts)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_each_request_is_logged_once_with_its_caller_and_counted_per_client() -> None:
    partner = bearer("partner-app", roles=("partner",), partner_id="P-001")
    kept = Kept()
    access = logging.getLogger("crm_gateway.access")
    async with running_gateway() as gw:
        access.addHandler(kept)
        try:
            r = await gw.http.get("/api/v1/customers/C1", headers={**partner, "X-Request-ID": "req-partner-1"})
            assert r.status_code == 200
            refused = await gw.http.get("/api/v1/customers/C1")
            assert refused.status_code == 401
        finally:
            access.removeHandler(kept)
        metrics = (await gw.http.get("/metrics")).text

    lines = [rec for rec in kept.records if rec.path == "/api/v1/customers/C1"]
    assert len(lines) == 2, "one line per request"
    served, anonymous = lines
    assert (served.caller, served.client, served.status, served.method) == ("partner-app", "partner:P-001", 200, "GET")
    assert served.route == "/api/v1/customers* → customer" and served.latency_ms > 0
    assert served.correlation_id == "req-partner-1", "the line carries the request's id"
    assert (anonymous.caller, anonymous.client, anonymous.status) == (None, "anonymous", 401)

    route = "/api/v1/customers* → customer"
    assert (
        f'crm_gateway_client_requests_total{{client="partner:P-001",method="GET",route="{route}",status="200"}}'
        in metrics
    )
    assert 'crm_gateway_client_request_seconds_count{client="partner:P-001"' in metrics
