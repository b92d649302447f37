"""BOSS records as the operator's billing system would push them, for the journeys."""

from __future__ import annotations

from typing import Any


def activation(
    n: int, *, customer: str | None = None, occurred_at: str = "2026-11-20T09:30:00+08:00"
) -> dict[str, Any]:
    cid = customer or f"C{n:06d}"
    return {
        "event_id": f"BOSS-ACT-{n:06d}",
        "event_type": "subscription.activated",
        "data": {
            "customer_id": cid,
            "account_id": f"A{n:06d}",
            "subscription_id": f"S{n:06d}",
            "msisdn": f"138{n:08d}",
            "occurred_at": occurred_at,
            "customer": {
                "name": f"客户{n}",
                "type": "individual",
                "region": "GD-SZ",
                "id_card_no": "11010119900307123X",
            },
            "plan": {"code": "5G-ULT-129", "name": "5G畅享套餐129元", "monthly_fee_fen": 12900},
            "payment_mode": "postpaid",
        },
    }


def line_event(n: int, kind: str, seq: int, occurred_at: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"BOSS-{kind.upper()}-{n:06d}-{seq}",
        "event_type": f"subscription.{kind}",
        "data": {
            "customer_id": f"C{n:06d}",
            "account_id": f"A{n:06d}",
            "subscription_id": f"S{n:06d}",
            "msisdn": f"138{n:08d}",
            "occurred_at": occurred_at,
            **extra,
        },
    }
