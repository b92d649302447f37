"""Control groups (对照组): a random but reproducible holdout per campaign, so uplift can be measured against customers
the campaign never touched.

Membership is a hash of the campaign's holdout key and the customer, not a stored random draw: any service (or a rerun
next month) gets the same split without coordination. The key is the campaign's own id, so each campaign draws its own
holdout and no customer is always left out; campaigns that name the same key share one standing control group."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from decimal import Decimal

DEFAULT_HOLDOUT = Decimal("0.10")

_SCALE = 2**64


def _ratio(share: Decimal) -> tuple[int, int]:
    """The share as an exact fraction, so the cut-off has no float rounding at the edges."""
    if not share.is_finite() or not 0 <= share < 1:
        raise ValueError(f"control share must be at least 0 and below 1, got {share}")
    return share.as_integer_ratio()


def _draw(key: str, customer_id: str) -> int:
    """A uniform integer in [0, 2**64) fixed by holdout key and customer."""
    digest = hashlib.sha256(f"{key}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _below(draw: int, numerator: int, denominator: int) -> bool:
    return draw * denominator < numerator * _SCALE


def in_control(key: str, customer_id: str, share: Decimal) -> bool:
    """Whether the customer is held out of the campaign; share 0 means the campaign has no control group.

    Raising the share only adds customers to the control group, never swaps them, so a campaign can grow its holdout
    without disturbing who was already held out."""
    numerator, denominator = _ratio(share)
    return _below(_draw(key, customer_id), numerator, denominator)


def assign(key: str, customer_ids: Iterable[str], share: Decimal) -> tuple[list[str], list[str]]:
    """(treatment, control) in input order; a customer listed twice is counted once, so nobody lands in both."""
    numerator, denominator = _ratio(share)
    treatment: list[str] = []
    control: list[str] = []
    seen: set[str] = set()
    for customer_id in customer_ids:
        if customer_id in seen:
            continue
        seen.add(customer_id)
        group = control if _below(_draw(key, customer_id), numerator, denominator) else treatment
        group.append(customer_id)
    return treatment, control
