"""One OpenAPI document for the whole system, as a client of the gateway sees it: the gateway's own routes and every
service's, each service's paths only where the gateway routes them to that service.

Merging is pure (`merge`); `Documents` keeps the services' documents, fetched from each `/openapi.json` and asked
again after a while. A service that is down keeps the last copy fetched from it, or else its snapshot from
`contracts/openapi/<service>.json`, so the document is always whole.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from crm_gateway.domain.routing import RouteTable
from crm_kit.settings import find_contracts_dir

log = logging.getLogger(__name__)

GATEWAY = "gateway"
REF_PREFIX = "#/components/schemas/"
API_KEY_HEADER = "X-API-Key"
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from `POST /oauth2/token`, verified at the gateway and by every service",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": API_KEY_HEADER,
        "description": "A partner's or machine client's API key, exchanged at the gateway for a short-lived token",
    },
}
SECURITY = [{"bearerAuth": []}, {"apiKey": []}]
PUBLIC_PREFIXES = ("/health/", "/metrics", "/.well-known/", "/oauth2/token")
"""The gateway's own routes that take no credentials."""
LIVE, CACHED, SNAPSHOT, ABSENT = "live", "cached", "snapshot", "absent"
RETRY_SECONDS = 30.0
"""How soon a document with a service missing its live copy asks again, whatever the refresh interval."""


def routed_paths(document: Mapping[str, Any], service: str, table: RouteTable) -> dict[str, Any]:
    """The service's paths that the gateway sends to it: a path another service (or nobody) answers at the gateway
    is not reachable there, whatever the service documents."""
    kept = {}
    for path, operations in document.get("paths", {}).items():
        route = table.resolve(path)
        if route is not None and route.upstream == service:
            kept[path] = operations
    return kept


def rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    """`node` with every `$ref` to a renamed schema pointing at its new name."""
    if isinstance(node, list):
        return [rewrite_refs(v, renames) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
            name = value.removeprefix(REF_PREFIX)
            out[key] = REF_PREFIX + renames.get(name, name)
        else:
            out[key] = rewrite_refs(value, renames)
    return out


def clashing_names(documents: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Schema names defined differently by two documents (the same definition under the same name is shared)."""
    seen: dict[str, set[str]] = {}
    for document in documents.values():
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            seen.setdefault(name, set()).add(json.dumps(schema, sort_keys=True))
    return {name for name, shapes in seen.items() if len(shapes) > 1}


def _secured(operation: dict[str, Any], path: str, own: bool) -> dict[str, Any]:
    """The operation under the one security scheme: the gateway's public routes take none, every other whatever
    credentials the gateway accepts."""
    out = dict(operation)
    if own and path.startswith(PUBLIC_PREFIXES):
        out["security"] = []
    elif "security" in out and out["security"] != []:
        out["security"] = SECURITY
    return out


def merge(
    gateway: Mapping[str, Any],
    services: Mapping[str, Mapping[str, Any]],
    table: RouteTable,
    *,
    sources: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The gateway's document with the services' merged in: their routed paths (the gateway's own routes win a
    path both name), their schemas (a name two documents define differently becomes `<service>.<name>` in each,
    with its `$ref`s rewritten), their tags, one security scheme. `sources` says where each service's document came
    from (`live`, `cached`, `snapshot`), shown in `info.x-sources`."""
    own_paths = dict(gateway.get("paths", {}))
    documents: dict[str, dict[str, Any]] = {GATEWAY: {**gateway, "paths": own_paths}}
    for service in sorted(services):
        paths = {p: ops for p, ops in routed_paths(services[service], service, table).items() if p not in own_paths}
        documents[service] = {**services[service], "paths": paths}
    clashes = clashing_names(documents)

    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    tags: dict[str, dict[str, Any]] = {}
    for name, document in documents.items():
        own_schemas = document.get("components", {}).get("schemas", {})
        renames = {schema: f"{name}.{schema}" for schema in own_schemas if schema in clashes}
        for schema, definition in own_schemas.items():
            schemas[renames.get(schema, schema)] = rewrite_refs(definition, renames)
        for path, operations in document["paths"].items():
            paths[path] = {
                method: _secured(rewrite_refs(op, renames), path, name == GATEWAY) if isinstance(op, dict) else op
                for method, op in operations.items()
            }
        for tag in document.get("tags", []):
            tags.setdefault(tag["name"], dict(tag))
        for operations in document["paths"].values():
            for op in operations.values():
                for tag in op.get("tags", []) if isinstance(op, dict) else []:
                    tags.setdefault(tag, {"name": tag, "description": f"Served by the {name} service"})

    info = copy.deepcopy(dict(gateway.get("info", {})))
    info["title"] = "Telecom CRM API"
    info["description"] = (
        "Every route of the CRM at its one origin, the gateway: the gateway's own (tokens, keys, administration, the "
        "composed 360 view, health) and each service's, as routed. Send a bearer token or an API key."
    )
    if sources is not None:
        info["x-sources"] = dict(sorted(sources.items()))
    return {
        "openapi": gateway.get("openapi", "3.1.0"),
        "info": info,
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items())), "securitySchemes": SECURITY_SCHEMES},
        "security": SECURITY,
        "tags": list(tags.values()),
    }


def default_snapshots_dir() -> Path | None:
    """The repository's `contracts/openapi/`, when the gateway runs from one."""
    try:
        return find_contracts_dir() / "openapi"
    except FileNotFoundError:
        return None


def read_snapshot(folder: Path | None, service: str) -> dict[str, Any] | None:
    if folder is None:
        return None
    path = folder / f"{service}.json"
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document


class Documents:
    """The services' documents and the merged one, kept `refresh_seconds` (or `RETRY_SECONDS` while a service
    shows an older copy) and then fetched again by the request that finds them old; one request fetches at a
    time."""

    def __init__(
        self, table: RouteTable, snapshots: Path | None, *, refresh_seconds: float, fetch_timeout: float
    ) -> None:
        self.table = table
        self.snapshots = snapshots
        self.refresh_seconds = refresh_seconds
        self.fetch_timeout = fetch_timeout
        self.fetched: dict[str, dict[str, Any]] = {}
        self.sources: dict[str, str] = {}
        self.merged: dict[str, Any] | None = None
        self.expires = 0.0
        self._lock = asyncio.Lock()

    async def document(self, client: httpx.AsyncClient, gateway: Mapping[str, Any]) -> dict[str, Any]:
        if self.merged is not None and time.monotonic() < self.expires:
            return self.merged
        async with self._lock:
            if self.merged is not None and time.monotonic() < self.expires:
                return self.merged  # refreshed by the request this one waited for
            return await self.refresh(client, gateway)

    async def refresh(self, client: httpx.AsyncClient, gateway: Mapping[str, Any]) -> dict[str, Any]:
        upstreams = self.table.upstreams
        answers = await asyncio.gather(*(self._fetch(client, base) for base in upstreams.values()))
        documents: dict[str, dict[str, Any]] = {}
        for service, answer in zip(upstreams, answers, strict=True):
            if answer is not None:
                self.fetched[service] = answer
                documents[service], self.sources[service] = answer, LIVE
            elif service in self.fetched:
                documents[service], self.sources[service] = self.fetched[service], CACHED
            elif (snapshot := read_snapshot(self.snapshots, service)) is not None:
                documents[service], self.sources[service] = snapshot, SNAPSHOT
            else:
                self.sources[service] = ABSENT
        merged = merge(gateway, documents, self.table, sources=self.sources)
        whole = all(source == LIVE for source in self.sources.values())
        self.merged = merged
        self.expires = time.monotonic() + (self.refresh_seconds if whole else min(self.refresh_seconds, RETRY_SECONDS))
        return merged

    async def _fetch(self, client: httpx.AsyncClient, base: str) -> dict[str, Any] | None:
        try:
            r = await client.get(f"{base}/openapi.json", timeout=self.fetch_timeout)
            r.raise_for_status()
            document = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("no OpenAPI document from %s: %s", base, type(exc).__name__)
            return None
        return document if isinstance(document, dict) and "paths" in document else None
