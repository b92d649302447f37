"""OpenAPI snapshots in contracts/openapi/: `make openapi` writes them, a test compares them.

An API change that is not reflected in its snapshot fails the suite, so every change to a
service's contract is a deliberate, reviewed diff.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from crm_billing_adapter.app import create_app as billing_adapter_app
from crm_campaign.app import create_app as campaign_app
from crm_churn.app import create_app as churn_app
from crm_customer.app import create_app as customer_app
from crm_gateway.app import create_app as gateway_app
from crm_ticketing.app import create_app as ticketing_app

SNAPSHOTS = Path(__file__).resolve().parent.parent / "contracts" / "openapi"
APPS: dict[str, Callable[[], FastAPI]] = {
    "customer": customer_app,
    "billing-adapter": billing_adapter_app,
    "ticketing": ticketing_app,
    "churn": churn_app,
    "campaign": campaign_app,
    "gateway": gateway_app,
}


def render(name: str) -> str:
    spec: dict[str, Any] = APPS[name]().openapi()
    return json.dumps(spec, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def snapshot_path(name: str) -> Path:
    return SNAPSHOTS / f"{name}.json"


def main() -> None:
    SNAPSHOTS.mkdir(parents=True, exist_ok=True)
    for name in APPS:
        snapshot_path(name).write_text(render(name), encoding="utf-8")
        print(f"wrote {snapshot_path(name).relative_to(SNAPSHOTS.parent.parent)}")


if __name__ == "__main__":
    main()
