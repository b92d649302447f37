"""Authorisation at the gateway: the tables of `domain/access.py` against every route the system serves and every
role its services admit (read from their access modules, not imported: the gateway never imports a service), and
the check as callers meet it through a running gateway: 403 problem+json naming the scope, reaching no service."""

from __future__ import annotations

import json
import re

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from crm_gateway.domain import access
from crm_gateway.domain.limits import LimitSettings
from crm_gateway.domain.openapi import default_snapshots_dir
from crm_gateway.domain.routing import RouteTable
from crm_gateway.settings import Settings
from crm_kit.auth import ROLES, Principal
from crm_kit.errors import Forbidden
from crm_kit.testing import assert_problem, bearer, boss_push, serve

from .conftest import running_gateway

SERVICES = ("customer", "billing-adapter", "ticketing", "churn", "campaign", "gateway")
PUBLIC = {
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/metrics"),
    ("GET", "/.well-known/jwks.json"),
    ("POST", "/oauth2/token"),
}

# Who each service admits, as its own access module says (copied by hand: a change there is a change here).
# customer: crm_customer/api/access.py, segments.py, key_accounts.py
C_READERS = {"agent", "supervisor", "admin", "marketer", "analyst", "key_account_manager"}
C_WRITERS = {"agent", "supervisor", "admin"}
PRIVACY_OFFICERS = {"supervisor", "admin"}
SEGMENT_WRITERS = {"marketer", "analyst", "supervisor", "admin"}
TIER_OPERATORS = {"analyst", "supervisor", "admin"}
DECIDERS = {"supervisor", "admin"}
# ticketing: crm_ticketing/api/access.py, knowledge.py
T_READERS = {"agent", "supervisor", "admin", "key_account_manager"}
T_WRITERS = {"agent", "supervisor", "admin"}
T_ADMINS = {"admin"}
SUPERVISORS = {"supervisor", "admin"}
AUTHORS = {"supervisor", "admin"}
ANY_CALLER = ROLES - {"boss", "channel"}
"""The knowledge base serves its public answers to any verified caller; the gateway narrows that to the people of
the operator and partners: the machine clients (the BOSS feed, the channel gateways) have no use for it, and a
self-service app is granted `knowledge:read` explicitly."""
# churn: crm_churn/api/access.py
SCORE_READERS = {"agent", "supervisor", "key_account_manager", "marketer", "analyst", "admin"}
MODEL_KEEPERS = {"analyst", "admin"}
# campaign: crm_campaign/api/access.py
RUNNERS = {"marketer", "retention", "admin"}
CAMPAIGN_READERS = RUNNERS | {"analyst", "supervisor"}
CONTACT_READERS = CAMPAIGN_READERS | {"agent"}
CHANNEL_GATEWAYS = {"channel", "admin"}
# billing adapter: crm_billing_adapter/api/access.py
BILLING_OPS = {"billing_ops", "admin"}

ADMITTED: dict[tuple[str, str], set[str]] = {
    # customer
    ("POST", "/api/v1/accounts"): C_WRITERS,
    ("GET", "/api/v1/accounts/{account_id}"): C_READERS,
    ("PATCH", "/api/v1/accounts/{account_id}"): C_WRITERS,
    ("GET", "/api/v1/accounts/{account_id}/hierarchy"): C_READERS,
    ("GET", "/api/v1/customers/search"): C_READERS,
    ("GET", "/api/v1/customers/{customer_id}/accounts"): C_READERS,
    ("GET", "/api/v1/customers/{customer_id}/billing-summary"): C_READERS,
    ("GET", "/api/v1/customers/{customer_id}/campaign-contacts"): C_READERS,
    ("GET", "/api/v1/customers/{customer_id}/consents"): C_READERS,
    ("GET", "/api/v1/customers/{customer_id}/consents/history"): C_READERS,
    ("PUT", "/api/v1/customers/{customer_id}/consents/{channel}/{purpose}"): C_WRITERS,
    ("PUT", "/api/v1/customers/{customer_id}/do-not-disturb"): C_WRITERS,
    ("GET", "/api/v1/customers/{customer_id}/risk-scores"): C_READERS,
    ("GET", "/api/v1/customers/{customer_id}/tickets"): C_READERS,
    ("GET", "/api/v1/customers/{customer_id}/timeline"): C_READERS,
    ("GET", "/api/v1/customers/{customer_id}/usage-summary"): C_READERS,
    ("GET", "/api/v1/customers/{customer_id}/view360"): C_READERS,
    ("GET", "/api/v1/key-accounts"): DECIDERS,
    ("GET", "/api/v1/key-accounts/portfolio"): DECIDERS | {"key_account_manager"},
    ("PUT", "/api/v1/key-accounts/{customer_id}"): DECIDERS,
    ("DELETE", "/api/v1/key-accounts/{customer_id}"): DECIDERS,
    ("GET", "/api/v1/key-accounts/{customer_id}/history"): C_READERS,
    ("POST", "/api/v1/key-accounts/{customer_id}/reassign"): DECIDERS,
    ("GET", "/api/v1/privacy/audit"): PRIVACY_OFFICERS,
    ("POST", "/api/v1/privacy/customers/{customer_id}/erasure"): PRIVACY_OFFICERS,
    ("GET", "/api/v1/privacy/customers/{customer_id}/export"): PRIVACY_OFFICERS,
    ("POST", "/api/v1/privacy/customers/{customer_id}/merge"): PRIVACY_OFFICERS,
    ("GET", "/api/v1/segments"): C_READERS,
    ("POST", "/api/v1/segments"): SEGMENT_WRITERS,
    ("POST", "/api/v1/segments/preview"): SEGMENT_WRITERS,
    ("POST", "/api/v1/segments/tiers/recompute"): TIER_OPERATORS,
    ("GET", "/api/v1/segments/{segment_id}"): C_READERS,
    ("PATCH", "/api/v1/segments/{segment_id}"): SEGMENT_WRITERS,
    ("DELETE", "/api/v1/segments/{segment_id}"): SEGMENT_WRITERS,
    ("POST", "/api/v1/segments/{segment_id}/evaluate"): SEGMENT_WRITERS,
    ("GET", "/api/v1/segments/{segment_id}/members"): C_READERS,
    ("GET", "/tmf-api/customerManagement/v4/customer"): C_READERS,
    ("POST", "/tmf-api/customerManagement/v4/customer"): C_WRITERS,
    ("GET", "/tmf-api/customerManagement/v4/customer/{customer_id}"): C_READERS,
    ("PATCH", "/tmf-api/customerManagement/v4/customer/{customer_id}"): C_WRITERS,
    # billing adapter: a push is admitted on its signature alone, never on a role
    ("POST", "/boss/v1/events"): set(),
    ("POST", "/boss/v1/imports"): BILLING_OPS,
    ("GET", "/boss/v1/imports"): BILLING_OPS,
    ("GET", "/boss/v1/imports/{job_id}"): BILLING_OPS,
    ("POST", "/boss/v1/imports/{job_id}/cancel"): BILLING_OPS,
    ("GET", "/boss/v1/imports/{job_id}/rejected"): BILLING_OPS,
    ("GET", "/boss/v1/quarantine"): BILLING_OPS,
    ("POST", "/boss/v1/quarantine/replay"): BILLING_OPS,
    ("GET", "/boss/v1/quarantine/summary"): BILLING_OPS,
    ("GET", "/boss/v1/quarantine/{quarantine_id}"): BILLING_OPS,
    ("POST", "/boss/v1/quarantine/{quarantine_id}/discard"): BILLING_OPS,
    ("PUT", "/boss/v1/quarantine/{quarantine_id}/fix"): BILLING_OPS,
    ("POST", "/boss/v1/quarantine/{quarantine_id}/replay"): BILLING_OPS,
    # ticketing
    ("GET", "/api/v1/knowledge/answers"): ANY_CALLER,
    ("GET", "/api/v1/knowledge/articles"): T_READERS,
    ("POST", "/api/v1/knowledge/articles"): AUTHORS,
    ("GET", "/api/v1/knowledge/articles/{article_id}"): ANY_CALLER,
    ("PATCH", "/api/v1/knowledge/articles/{article_id}"): AUTHORS,
    ("DELETE", "/api/v1/knowledge/articles/{article_id}"): T_ADMINS,
    ("POST", "/api/v1/knowledge/articles/{article_id}/feedback"): ANY_CALLER,
    ("GET", "/api/v1/queues"): T_WRITERS,
    ("GET", "/api/v1/queues/{queue_id}"): T_WRITERS,
    ("PUT", "/api/v1/queues/{queue_id}"): SUPERVISORS,
    ("PUT", "/api/v1/queues/{queue_id}/agents/{agent_id}"): SUPERVISORS,
    ("DELETE", "/api/v1/queues/{queue_id}/agents/{agent_id}"): SUPERVISORS,
    ("POST", "/api/v1/queues/{queue_id}/next"): T_WRITERS,
    ("GET", "/api/v1/tickets/reports/backlog"): SUPERVISORS,
    ("GET", "/api/v1/tickets/reports/service-quality"): SUPERVISORS,
    ("GET", "/api/v1/tickets/satisfaction"): SUPERVISORS,
    ("GET", "/api/v1/tickets/{ticket_id}/suggested-articles"): T_READERS,
    ("POST", "/tmf-api/troubleTicket/v4/hub"): T_ADMINS,
    ("GET", "/tmf-api/troubleTicket/v4/hub/{listener_id}"): T_ADMINS,
    ("DELETE", "/tmf-api/troubleTicket/v4/hub/{listener_id}"): T_ADMINS,
    ("GET", "/tmf-api/troubleTicket/v4/troubleTicket"): T_READERS,
    ("POST", "/tmf-api/troubleTicket/v4/troubleTicket"): T_WRITERS,
    ("GET", "/tmf-api/troubleTicket/v4/troubleTicket/{ticket_id}"): T_READERS,
    ("PATCH", "/tmf-api/troubleTicket/v4/troubleTicket/{ticket_id}"): T_WRITERS,
    ("DELETE", "/tmf-api/troubleTicket/v4/troubleTicket/{ticket_id}"): T_ADMINS,
    ("POST", "/tmf-api/troubleTicket/v4/troubleTicket/{ticket_id}/satisfaction"): T_WRITERS,
    # churn
    ("GET", "/churn/v1/customers/{customer_id}/score"): SCORE_READERS,
    ("GET", "/churn/v1/scores"): SCORE_READERS,
    ("GET", "/churn/v1/models"): MODEL_KEEPERS,
    ("POST", "/churn/v1/models/{kind}/rollback"): MODEL_KEEPERS,
    ("GET", "/churn/v1/models/{version}"): MODEL_KEEPERS,
    ("GET", "/churn/v1/models/{version}/report"): MODEL_KEEPERS,
    ("GET", "/churn/v1/scoring-runs"): MODEL_KEEPERS,
    ("POST", "/churn/v1/scoring-runs"): MODEL_KEEPERS,
    ("GET", "/churn/v1/scoring-runs/{run_id}"): MODEL_KEEPERS,
    # campaign
    ("GET", "/campaign/v1/campaigns"): CAMPAIGN_READERS,
    ("POST", "/campaign/v1/campaigns"): RUNNERS,
    ("GET", "/campaign/v1/campaigns/{campaign_id}"): CAMPAIGN_READERS,
    ("POST", "/campaign/v1/campaigns/{campaign_id}/audience/preview"): RUNNERS,
    ("POST", "/campaign/v1/campaigns/{campaign_id}/cancel"): RUNNERS,
    ("POST", "/campaign/v1/campaigns/{campaign_id}/complete"): RUNNERS,
    ("GET", "/campaign/v1/campaigns/{campaign_id}/contacts"): CAMPAIGN_READERS,
    ("POST", "/campaign/v1/campaigns/{campaign_id}/dispatch"): RUNNERS,
    ("POST", "/campaign/v1/campaigns/{campaign_id}/launch"): RUNNERS,
    ("GET", "/campaign/v1/campaigns/{campaign_id}/report"): CAMPAIGN_READERS,
    ("GET", "/campaign/v1/campaigns/{campaign_id}/report.html"): CAMPAIGN_READERS,
    ("POST", "/campaign/v1/campaigns/{campaign_id}/schedule"): RUNNERS,
    ("GET", "/campaign/v1/customers/{customer_id}/contacts"): CONTACT_READERS,
    ("POST", "/campaign/v1/deliveries"): CHANNEL_GATEWAYS,
    # the gateway: its 360 view answers what the customer part does; its admin API (api/admin.py) is the admin's
    ("GET", "/api/v1/customers/{customer_id}/360"): C_READERS,
    **{
        (method, path): {"admin"}
        for method, path in (
            ("GET", "/gateway/v1/api-keys"),
            ("DELETE", "/gateway/v1/api-keys/{key_id}"),
            ("GET", "/gateway/v1/clients"),
            ("POST", "/gateway/v1/clients"),
            ("GET", "/gateway/v1/clients/{client_id}"),
            ("PATCH", "/gateway/v1/clients/{client_id}"),
            ("POST", "/gateway/v1/clients/{client_id}/api-keys"),
            ("POST", "/gateway/v1/clients/{client_id}/secret"),
            ("GET", "/gateway/v1/signing-keys"),
            ("POST", "/gateway/v1/signing-keys/rotate"),
            ("GET", "/gateway/v1/users"),
            ("POST", "/gateway/v1/users"),
            ("GET", "/gateway/v1/users/{username}"),
            ("PATCH", "/gateway/v1/users/{username}"),
            ("PUT", "/gateway/v1/users/{username}/password"),
        )
    },
}


def concrete(path: str) -> str:
    """A path template with every parameter filled in."""
    return re.sub(r"\{[^}]+\}", "X1", path)


def operations() -> set[tuple[str, str]]:
    """Every operation of the system as its OpenAPI snapshots (`contracts/openapi/`) describe it."""
    folder = default_snapshots_dir()
    assert folder is not None, "the tests run from the repository"
    found = set()
    for service in SERVICES:
        document = json.loads((folder / f"{service}.json").read_text(encoding="utf-8"))
        for path, item in document["paths"].items():
            found |= {(m.upper(), path) for m in item if m in ("get", "post", "put", "patch", "delete")}
    return found - PUBLIC


def may(roles: tuple[str, ...], method: str, path: str, scopes: tuple[str, ...] = ()) -> bool:
    try:
        access.authorise(Principal("someone", frozenset(roles), frozenset(scopes)), method, path)
    except Forbidden:
        return False
    return True


# --- the tables ------------------------------------------------------------------------------------------------------


def test_every_operation_of_the_system_and_every_route_prefix_has_a_rule():
    missing = [(m, p) for m, p in sorted(operations()) if access.required_scope(m, concrete(p)) is None]
    assert missing == [], "a route with no rule is refused to everyone"
    prefixes = [route.prefix.rstrip("/") for route in RouteTable.from_settings(Settings()).routes]
    for prefix in prefixes:
        assert any(rule.pattern.startswith(prefix) or prefix.startswith(rule.pattern) for rule in access.RULES), prefix
    for rule in access.RULES:
        assert rule.pattern == "/gateway/v1" or any(rule.pattern.startswith(p) for p in prefixes), "a rule of no route"


def test_the_list_of_what_the_services_admit_covers_every_operation():
    """A route added to a service (and its snapshot) must be added here, with who it admits, before this passes."""
    assert set(ADMITTED) == operations()


@pytest.mark.parametrize(("method", "path"), sorted(ADMITTED))
def test_every_role_a_service_admits_holds_the_scope_of_its_route(method: str, path: str):
    scope = access.required_scope(method, concrete(path))
    refused = sorted(r for r in ADMITTED[(method, path)] if scope not in access.scopes_of([r]))
    assert refused == [], f"{method} {path} needs {scope}, which these roles the service admits lack"


def test_every_role_of_the_kit_is_decided_and_every_scope_opens_a_route():
    assert set(access.ROLE_SCOPES) == ROLES
    assert {rule.scope for rule in access.RULES} == access.SCOPES
    assert access.ROLE_SCOPES["admin"] == access.SCOPES
    for role, scopes in access.ROLE_SCOPES.items():
        assert scopes <= access.SCOPES, role
    assert not any(access.GATEWAY_ADMIN in s for r, s in access.ROLE_SCOPES.items() if r != "admin")


@pytest.mark.parametrize(
    ("roles", "method", "path", "allowed"),
    [
        (("analyst",), "POST", "/tmf-api/troubleTicket/v4/troubleTicket", False),
        (("analyst",), "GET", "/churn/v1/models/v3/report", True),
        (("agent",), "POST", "/churn/v1/scoring-runs", False),
        (("agent",), "HEAD", "/tmf-api/troubleTicket/v4/troubleTicket/T1", True),
        (("agent",), "OPTIONS", "/tmf-api/troubleTicket/v4/troubleTicket/T1", False),
        (("marketer",), "POST", "/campaign/v1/campaigns/CMP1/launch", True),
        (("marketer",), "GET", "/boss/v1/quarantine", False),
        (("marketer",), "POST", "/api/v1/segments/preview", True),
        (("marketer",), "PUT", "/api/v1/customers/C1/do-not-disturb", False),
        (("partner",), "GET", "/gateway/v1/users", False),
        (("partner",), "GET", "/api/v1/customers/C1/360", True),
        (("partner",), "GET", "/churn/v1/scores", False),
        (("key_account_manager",), "PATCH", "/tmf-api/troubleTicket/v4/troubleTicket/T1", False),
        (("supervisor",), "POST", "/tmf-api/troubleTicket/v4/hub", False),
        (("agent",), "POST", "/api/v1/knowledge/articles/7/feedback", True),
        (("agent",), "POST", "/api/v1/knowledge/articles", False),
        (("channel",), "POST", "/campaign/v1/deliveries", True),
        (("channel",), "GET", "/api/v1/knowledge/answers", False),
        (("boss",), "POST", "/boss/v1/events", True),
        (("boss",), "POST", "/boss/v1/imports/J1/cancel", False),
        (("billing_ops",), "POST", "/boss/v1/imports", True),
        (("billing_ops",), "GET", "/api/v1/customers/C1", False),
        (("agent",), "GET", "/api/v1/tickets/T1/../../privacy/audit", False),
        (("admin",), "POST", "/api/v1/tickets", False),
    ],
)
def test_what_a_role_may_reach(roles: tuple[str, ...], method: str, path: str, allowed: bool):
    assert may(roles, method, path) is allowed


def test_a_scope_in_the_token_opens_its_route_without_a_role():
    assert not may((), "GET", "/api/v1/knowledge/answers")
    assert may((), "GET", "/api/v1/knowledge/answers", scopes=("knowledge:read",))
    assert not may((), "POST", "/api/v1/knowledge/articles", scopes=("knowledge:read",))
    assert may(("partner",), "GET", "/boss/v1/quarantine", scopes=("boss:operate",))


# --- through a running gateway ---------------------------------------------------------------------------------------


def recording_upstream(calls: list[str]) -> FastAPI:
    """Every service at once: records what reached it and answers 200."""
    app = FastAPI(openapi_url=None)

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def anything(request: Request, path: str) -> JSONResponse:
        calls.append(f"{request.method} {request.url.path}")
        return JSONResponse({"reached": request.url.path})

    return app


UPSTREAMS = ("customer", "billing_adapter", "ticketing", "churn", "campaign")
TICKETS = "/tmf-api/troubleTicket/v4/troubleTicket"


async def test_the_gateway_refuses_without_the_scope_and_nothing_reaches_a_service():
    calls: list[str] = []
    async with (
        serve(recording_upstream(calls)) as upstream,
        running_gateway(**{f"{name}_url": upstream for name in UPSTREAMS}) as gw,
    ):
        analyst, marketer = bearer("ana-1", roles=("analyst",)), bearer("mkt-1", roles=("marketer",))
        body = assert_problem(await gw.http.post(TICKETS, json={}, headers=analyst), 403, slug="forbidden")
        assert body["scope"] == "tickets:write" and "tickets:write" in body["detail"]
        body = assert_problem(await gw.http.get("/boss/v1/quarantine", headers=marketer), 403)
        assert body["scope"] == "boss:operate"
        channel = bearer("sms-platform", roles=("channel",))
        assert_problem(await gw.http.get("/api/v1/customers/C1/360", headers=channel), 403)
        assert_problem(await gw.http.get("/api/v1/knowledge/answers?q=5G", headers=bearer("app", roles=())), 403)
        partner = bearer("dealer-app", roles=("partner",), partner_id="P-1")
        assert_problem(await gw.http.get("/gateway/v1/users", headers=partner), 403)
        assert calls == [], "no refused request reached a service"

        assert (await gw.http.post("/campaign/v1/campaigns", json={}, headers=marketer)).status_code == 200
        assert (await gw.http.post("/campaign/v1/deliveries", json={}, headers=channel)).status_code == 200
        assert (await gw.http.get(f"{TICKETS}/T1", headers=analyst)).status_code == 403
        self_service = bearer("app-selfservice", roles=(), scopes=("knowledge:read",))
        assert (await gw.http.get("/api/v1/knowledge/answers?q=5G", headers=self_service)).status_code == 200
        assert calls == ["POST /campaign/v1/campaigns", "POST /campaign/v1/deliveries", "GET /api/v1/knowledge/answers"]


async def test_a_signed_boss_push_needs_no_scope_and_an_unsigned_one_does():
    calls: list[str] = []
    async with (
        serve(recording_upstream(calls)) as upstream,
        running_gateway(billing_adapter_url=upstream) as gw,
    ):
        agent = bearer("agent-1", roles=("agent",))
        assert_problem(await gw.http.post("/boss/v1/events", content=b"{}", headers=agent), 403)
        assert calls == []
        assert (await boss_push(gw.http, [])).status_code == 200
        assert calls == ["POST /boss/v1/events"], "the adapter judges the signature"


async def test_a_refused_request_does_not_spend_the_callers_rate_limit():
    calls: list[str] = []
    limits = LimitSettings(default_rate_per_second=0.001, default_burst=2, routes=[])
    async with (
        serve(recording_upstream(calls)) as upstream,
        running_gateway(limits=limits, **{f"{name}_url": upstream for name in UPSTREAMS}) as gw,
    ):
        analyst = bearer("ana-1", roles=("analyst",))
        for _ in range(3):
            refused = await gw.http.post(TICKETS, json={}, headers=analyst)
            assert_problem(refused, 403)
            assert "RateLimit-Remaining" not in refused.headers
        answers = [await gw.http.get("/churn/v1/scores", headers=analyst) for _ in range(3)]
        assert [r.status_code for r in answers] == [200, 200, 429]
