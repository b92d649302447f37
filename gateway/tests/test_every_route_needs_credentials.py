"""No route is reachable without credentials: every operation of the system's OpenAPI document (the gateway's own
and every service's, as the gateway serves it) is asked without a token, with a forged one, with an expired one and
with one for another audience, and each is refused at the edge with 401 problem+json, reaching no service; only
the routes meant to be public answer."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from crm_kit.auth import issue_token
from crm_kit.errors import PROBLEM_JSON
from crm_kit.settings import AuthSettings
from crm_kit.testing import serve

from .conftest import running_gateway

PUBLIC = {
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/metrics"),
    ("GET", "/.well-known/jwks.json"),
    ("POST", "/oauth2/token"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
}
METHODS = ("get", "post", "put", "patch", "delete")


def counting_upstream(calls: list[str]) -> FastAPI:
    """Every service at once: records what reached it (and has no OpenAPI document of its own, so the gateway
    serves the services' snapshots)."""
    app = FastAPI(openapi_url=None)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def anything(request: Request, path: str) -> JSONResponse:
        if path != "openapi.json":  # the gateway asking for the document it merges
            calls.append(f"{request.method} {request.url.path}")
        return JSONResponse({"status": "reached"}, status_code=200 if path.startswith("health") else 404)

    return app


def concrete(path: str) -> str:
    """A path template with every parameter filled in."""
    return re.sub(r"\{[^}]+\}", "X1", path)


def credentials() -> dict[str, dict[str, str]]:
    settings = AuthSettings()
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    forged = jwt.encode(
        {
            "sub": "mallory",
            "roles": ["admin"],
            "iss": settings.issuer,
            "aud": settings.audience,
            "iat": int(long_ago.timestamp()),
            "exp": int(long_ago.timestamp()) + 10**6,
        },
        "not-the-secret",
    )
    return {
        "none": {},
        "not bearer": {"Authorization": "Basic YWRtaW46YWRtaW4="},
        "forged": {"Authorization": f"Bearer {forged}"},
        "expired": {"Authorization": f"Bearer {issue_token(settings, 'ann', roles=['admin'], now=long_ago)}"},
        "other audience": {
            "Authorization": f"Bearer {issue_token(AuthSettings(audience='another-system'), 'ann', roles=['admin'])}"
        },
        "unknown api key": {"X-API-Key": "KEY-NOSUCH.secret"},
    }


@pytest.mark.timeout(300)
async def test_every_operation_of_the_system_refuses_a_caller_without_valid_credentials() -> None:
    calls: list[str] = []
    async with (
        serve(counting_upstream(calls)) as upstream,
        running_gateway(
            **{f"{name}_url": upstream for name in ("customer", "billing_adapter", "ticketing", "churn", "campaign")}
        ) as gw,
    ):
        document = (await gw.http.get("/openapi.json")).json()
        assert set(document["info"]["x-sources"].values()) == {"snapshot"}, "every service from its snapshot"
        operations = [
            (method.upper(), path) for path, item in document["paths"].items() for method in METHODS if method in item
        ]
        assert len(operations) > 100, "the whole system: every service's routes and the gateway's own"
        for prefix in (
            "/tmf-api/customerManagement/",
            "/tmf-api/troubleTicket/",
            "/boss/v1/",
            "/churn/v1/",
            "/campaign/v1/",
            "/gateway/v1/",
            "/api/v1/customers/{customer_id}/360",
        ):
            assert any(path.startswith(prefix) for _, path in operations), f"no {prefix} operation in the document"

        guarded = [(m, p) for m, p in operations if (m, p) not in PUBLIC]
        for name, headers in credentials().items():
            for method, path in guarded:
                r = await gw.http.request(method, concrete(path), headers=headers, json={} if method != "GET" else None)
                assert r.status_code == 401, f"{name}: {method} {path} answered {r.status_code}"
                assert r.headers["content-type"] == PROBLEM_JSON, f"{method} {path}"
                assert r.headers["WWW-Authenticate"].startswith("Bearer"), f"{method} {path}"
        assert calls == [], "no request without valid credentials reached a service"

        for method, path in sorted(PUBLIC & set(operations)):
            if path == "/oauth2/token":
                continue  # answers for itself: a form without credentials is its own 400/401
            r = await gw.http.request(method, path)
            assert r.status_code == 200, f"{method} {path} is public: {r.status_code}"


async def test_a_boss_push_passes_unauthenticated_only_with_its_signature_header() -> None:
    calls: list[str] = []
    async with serve(counting_upstream(calls)) as upstream, running_gateway(billing_adapter_url=upstream) as gw:
        unsigned = await gw.http.post("/boss/v1/events", content=b"{}")
        assert unsigned.status_code == 401 and calls == []
        quarantine = await gw.http.get("/boss/v1/quarantine", headers={"X-Boss-Signature": "sha256=00"})
        assert quarantine.status_code == 401, "the signature opens the push and file routes, nothing else"
        signed = await gw.http.post("/boss/v1/events", content=b"{}", headers={"X-Boss-Signature": "sha256=00"})
        assert signed.status_code == 404 and calls == ["POST /boss/v1/events"], "the adapter judges the signature"
