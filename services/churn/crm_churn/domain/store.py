"""The feature store's vocabulary: the kinds of fact it keeps, what each column of a fact means for it, and the
calendar it buckets usage by. Ingestion (`events`) writes these; `domain.features` reads them."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from crm_kit.presentation import SHANGHAI


class FactKind(StrEnum):
    """`amount_fen`, `quantity`, `detail` and `ref` of each kind, where it has them."""

    LINE_ACTIVATED = "line_activated"  # amount: plan fee; detail: prepaid/postpaid; ref: subscription
    LINE_TERMINATED = "line_terminated"  # detail: reason (customer_request, arrears…); ref: subscription
    LINE_PORTED_OUT = "line_ported_out"  # detail: recipient operator (携号转网); ref: subscription
    LINE_SUSPENDED = "line_suspended"  # detail: reason (arrears: 欠费停机); ref: subscription
    LINE_RESUMED = "line_resumed"  # ref: subscription
    PLAN_CHANGED = "plan_changed"  # amount: new plan fee; quantity: old plan fee; ref: subscription
    SIM_SWAPPED = "sim_swapped"  # ref: subscription
    ADDON_ORDERED = "addon_ordered"  # amount: price (叠加包); detail: kind (data_pack…); ref: subscription
    INVOICE_ISSUED = "invoice_issued"  # amount: due; ref: invoice
    PAYMENT_RECEIVED = "payment_received"  # amount; ref: invoice (none for a prepayment)
    PAYMENT_FAILED = "payment_failed"  # amount; detail: reason; ref: invoice
    PAYMENT_REFUNDED = "payment_refunded"  # amount
    PAYMENT_OVERDUE = "payment_overdue"  # amount: overdue; quantity: days overdue; ref: invoice
    RECHARGED = "recharged"  # amount (充值); ref: subscription
    COLLECTION_STATUS = "collection_status"  # detail: the new status (催缴 stage)
    CREDIT_LIMIT = "credit_limit"  # amount: the new limit
    TICKET_OPENED = "ticket_opened"  # detail: category; quantity: 1 for a complaint (投诉), else 0; ref: ticket
    TICKET_REOPENED = "ticket_reopened"  # ref: ticket
    TICKET_RESOLVED = "ticket_resolved"  # ref: ticket
    TICKET_CLOSED = "ticket_closed"  # ref: ticket (closed or cancelled: no longer open)
    TICKET_SLA_BREACHED = "ticket_sla_breached"  # detail: the clock (response/resolution); ref: ticket
    CSAT = "csat"  # quantity: the score 1..5; ref: ticket
    CONTACT_SENT = "contact_sent"  # detail: channel; ref: campaign
    CONTACT_RESPONDED = "contact_responded"  # detail: the response (accepted, declined…); ref: campaign


LINE_CLOSED = (FactKind.LINE_TERMINATED, FactKind.LINE_PORTED_OUT)
NETWORK_CATEGORIES = ("network", "network_coverage", "network_quality", "signal", "data_speed", "roaming")
"""Ticket categories that are network complaints (网络投诉) — the ones that foretell churn most."""
COLLECTION_STAGES = ("normal", "reminded", "soft_suspended", "hard_suspended", "with_agency", "written_off")
"""催缴 stages in order: the feature is the stage's position."""


def local_day(moment: datetime) -> date:
    """The Asia/Shanghai calendar day of `moment`: usage and snapshots are by the operator's day."""
    return moment.astimezone(SHANGHAI).date()
