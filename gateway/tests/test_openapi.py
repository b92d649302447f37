"""One OpenAPI document for the system: merging (routed paths only, clashing schemas renamed with their `$ref`s, one
security scheme) on small documents, and the gateway's `/openapi.json` staying whole while a service is down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from crm_gateway.app import create_app
from crm_gateway.domain.openapi import (
    CACHED,
    LIVE,
    SECURITY,
    SNAPSHOT,
    Documents,
    merge,
    rewrite_refs,
    routed_paths,
)
from crm_gateway.domain.routing import Route, RouteTable
from crm_gateway.settings import Settings
from crm_kit.broker import free_port
from crm_kit.testing import serve

TABLE = RouteTable(
    [
        Route("/api/v1/customers", "customer", "http://customer", 1.0),
        Route("/campaign/v1/", "campaign", "http://campaign", 1.0),
    ]
)


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def answering(schema: str) -> dict[str, Any]:
    return {"responses": {"200": {"content": {"application/json": {"schema": ref(schema)}}}}}


PROBLEM = {"type": "object", "properties": {"detail": {"type": "string"}}}
GATEWAY = {
    "openapi": "3.1.0",
    "info": {"title": "Telecom CRM gateway", "version": "1.0.0"},
    "paths": {
        "/health/live": {"get": {"tags": ["operations"], "responses": {"200": {}}}},
        "/api/v1/customers/{customer_id}/360": {"get": {"tags": ["360 view"], **answering("View360")}},
    },
    "components": {"schemas": {"View360": {"type": "object"}, "Problem": PROBLEM}},
}
CUSTOMER = {
    "openapi": "3.1.0",
    "info": {"title": "customer", "version": "1"},
    "paths": {
        "/api/v1/customers/{customer_id}": {"get": {"tags": ["Customers"], **answering("Customer")}},
        "/api/v1/customers/{customer_id}/360": {"get": {"summary": "not the gateway's", "responses": {}}},
        "/api/v1/segments/preview": {"post": answering("PreviewOut")},
        "/health/live": {"get": {"responses": {"200": {}}}},
    },
    "components": {
        "schemas": {
            "Customer": {"type": "object", "properties": {"preview": ref("PreviewOut")}},
            "PreviewOut": {"type": "object", "properties": {"count": {"type": "integer"}}},
            "Problem": PROBLEM,
        }
    },
    "tags": [{"name": "Customers", "description": "TMF629 customers"}],
}
CAMPAIGN = {
    "openapi": "3.1.0",
    "info": {"title": "campaign", "version": "1"},
    "paths": {
        "/campaign/v1/campaigns/{id}/audience/preview": {"post": {"tags": ["Campaigns"], **answering("PreviewOut")}}
    },
    "components": {
        "schemas": {
            "PreviewOut": {"type": "object", "properties": {"treatment": {"type": "integer"}}},
            "Problem": PROBLEM,
        }
    },
}


def test_only_the_paths_the_gateway_routes_to_the_service_are_kept() -> None:
    assert sorted(routed_paths(CUSTOMER, "customer", TABLE)) == [
        "/api/v1/customers/{customer_id}",
        "/api/v1/customers/{customer_id}/360",
    ]
    assert routed_paths(CAMPAIGN, "customer", TABLE) == {}, "campaign paths are the campaign service's"


def test_refs_are_rewritten_wherever_they_are() -> None:
    node = {"a": [ref("X"), {"b": ref("Y")}], "$ref": "#/components/schemas/X", "other": "#/components/schemas/X"}
    assert rewrite_refs(node, {"X": "s.X"}) == {
        "a": [ref("s.X"), {"b": ref("Y")}],
        "$ref": "#/components/schemas/s.X",
        "other": "#/components/schemas/X",
    }


def test_merging_renames_clashing_schemas_and_keeps_routed_paths() -> None:
    merged = merge(GATEWAY, {"customer": CUSTOMER, "campaign": CAMPAIGN}, TABLE, sources={"customer": LIVE})
    assert sorted(merged["paths"]) == [
        "/api/v1/customers/{customer_id}",
        "/api/v1/customers/{customer_id}/360",
        "/campaign/v1/campaigns/{id}/audience/preview",
        "/health/live",
    ], "unrouted paths (segments, the services' health) are not the gateway's to offer"
    assert "summary" not in merged["paths"]["/api/v1/customers/{customer_id}/360"]["get"], "the gateway's own wins"

    schemas = merged["components"]["schemas"]
    assert sorted(schemas) == ["Customer", "Problem", "View360", "campaign.PreviewOut", "customer.PreviewOut"]
    assert schemas["customer.PreviewOut"] == CUSTOMER["components"]["schemas"]["PreviewOut"]
    assert schemas["campaign.PreviewOut"] == CAMPAIGN["components"]["schemas"]["PreviewOut"]
    assert schemas["Customer"]["properties"]["preview"] == ref("customer.PreviewOut"), "refs inside schemas too"
    preview = merged["paths"]["/campaign/v1/campaigns/{id}/audience/preview"]["post"]
    assert preview["responses"]["200"]["content"]["application/json"]["schema"] == ref("campaign.PreviewOut")
    assert schemas["Problem"] == PROBLEM, "one definition shared by all keeps its name"
    assert CUSTOMER["components"]["schemas"]["Customer"]["properties"]["preview"] == ref("PreviewOut"), "inputs kept"

    assert merged["security"] == SECURITY
    assert sorted(merged["components"]["securitySchemes"]) == ["apiKey", "bearerAuth"]
    assert merged["paths"]["/health/live"]["get"]["security"] == [], "the gateway's health takes no credentials"
    tags = {t["name"]: t for t in merged["tags"]}
    assert tags["Customers"]["description"] == "TMF629 customers"
    assert {"360 view", "operations", "Campaigns"} <= set(tags)
    assert merged["info"]["x-sources"] == {"customer": LIVE}


def service(prefix: str, name: str) -> FastAPI:
    """A stand-in whose own OpenAPI document has one routed path and one the gateway does not route."""
    app = FastAPI(title=name)

    @app.get(f"{prefix}/things/{{thing_id}}", tags=[f"{name} things"])
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @app.get(f"/internal/{name}")
    async def internal() -> dict[str, str]:
        return {}

    return app


async def test_the_gateways_document_stays_whole_with_a_service_down(tmp_path: Path) -> None:
    prefixes = {
        "customer": "/api/v1/customers",
        "billing-adapter": "/boss/v1",
        "ticketing": "/tmf-api/troubleTicket/v4",
        "campaign": "/campaign/v1",
    }
    async with (
        serve(service(prefixes["customer"], "customer")) as customer,
        serve(service(prefixes["billing-adapter"], "billing-adapter")) as billing,
        serve(service(prefixes["ticketing"], "ticketing")) as ticketing,
        serve(service(prefixes["campaign"], "campaign")) as campaign,
    ):
        settings = Settings(
            log_json=False,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
            customer_url=customer,
            billing_adapter_url=billing,
            ticketing_url=ticketing,
            campaign_url=campaign,
            churn_url=f"http://127.0.0.1:{free_port()}",
        )
        async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=15) as client:
            r = await client.get("/openapi.json")
            page = await client.get("/docs")
    assert r.status_code == 200, r.text
    document = r.json()
    assert document["info"]["x-sources"] == {
        "billing-adapter": LIVE,
        "campaign": LIVE,
        "churn": SNAPSHOT,
        "customer": LIVE,
        "ticketing": LIVE,
    }
    paths = document["paths"]
    assert "/churn/v1/customers/{customer_id}/score" in paths, "the churn service's paths from its snapshot"
    for name, prefix in prefixes.items():
        assert f"{prefix}/things/{{thing_id}}" in paths, f"{name}'s own document, fetched"
        assert f"/internal/{name}" not in paths
    assert "/api/v1/customers/{customer_id}/360" in paths, "the gateway's own routes"
    assert "/oauth2/token" in paths
    assert "/{path}" not in paths, "the proxy's catch-all is no route of anyone's"
    assert page.status_code == 200
    assert "/openapi.json" in page.text and "swagger-ui" in page.text


async def test_a_service_back_replaces_its_snapshot_and_a_service_gone_keeps_its_last_copy(tmp_path: Path) -> None:
    (tmp_path / "campaign.json").write_text(json.dumps(CAMPAIGN), encoding="utf-8")
    port = free_port()
    table = RouteTable([Route("/campaign/v1/", "campaign", f"http://127.0.0.1:{port}", 1.0)])
    documents = Documents(table, tmp_path, refresh_seconds=0.001, fetch_timeout=2.0)
    async with httpx.AsyncClient() as client:
        first = await documents.document(client, GATEWAY)
        assert first["info"]["x-sources"] == {"campaign": SNAPSHOT}
        assert "/campaign/v1/campaigns/{id}/audience/preview" in first["paths"]
        async with serve(service("/campaign/v1", "campaign"), port=port):
            back = await documents.document(client, GATEWAY)
        gone = await documents.document(client, GATEWAY)
    assert back["info"]["x-sources"] == {"campaign": LIVE}
    assert "/campaign/v1/things/{thing_id}" in back["paths"]
    assert "/campaign/v1/campaigns/{id}/audience/preview" not in back["paths"], "the live document replaces it"
    assert gone["info"]["x-sources"] == {"campaign": CACHED}
    assert gone["paths"] == back["paths"], "the last copy fetched, newer than the snapshot"
