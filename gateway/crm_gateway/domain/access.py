"""Authorisation at the edge: which scope each route needs, and which scopes each role brings. Plain code, no HTTP.

The gateway's check is coarse on purpose: one scope per API family and direction (read, or change), decided before
anything is forwarded, so a caller with no business in a family never reaches its service at all. The services
still verify the token themselves and apply the fine-grained rules they own (which roles of a family may do which
operation, a key-account manager's portfolio, the personal-data masking behind `pii:read`). So the table below is a
*superset* of what the services allow: every role a service admits on a route holds that route's scope here;
some roles hold a scope for a family where their service then refuses a particular operation.

A caller's scopes are those of its roles together with the scopes its token names: a client can be granted one
explicitly (a self-service app gets `knowledge:read` with no role at all). A route no rule names is refused, so
a new route cannot slip through unguarded: add its rule here when the service gains it.

The scopes, what each opens, and who holds it (admin holds every one), in the operator's terms:

- `customers:read`: customers, accounts, segments, key accounts, the 360 views. Everyone who serves or studies
  customers: agents, key-account managers (their portfolio, as the customer service decides), supervisors,
  marketers and analysts (segments, the base), partners (their own customers, the service decides which).
- `customers:write`: customers, accounts, consents and do-not-disturb, key-account designations. Agents, who talk
  to the customer, and supervisors (who alone designate key accounts, as the service decides).
- `segments:write`: previewing, building, changing and evaluating rule segments, tier recomputes. Marketers and
  analysts build the audiences; supervisors too.
- `privacy`: the audit of unmasked reads, a customer's export, erasure and merge. Supervisors: the DPO's delegates.
- `tickets:read`: trouble tickets, queues, the satisfaction and service-quality reports, suggested articles.
  Agents, key-account managers (their customers' tickets), supervisors (the reports are theirs).
- `tickets:write`: opening and working tickets, the callback survey, pulling from and staffing queues. Agents and
  supervisors (only admin deletes a ticket, as the service decides).
- `tickets:hub`: TMF621 listeners, every ticket event sent to a callback. Admin only: a listener exports the
  ticket stream.
- `knowledge:read`: knowledge search, articles, self-service answers, "was this helpful". Every person at the
  operator and partners; a self-service app by explicit grant. Not the machine clients (the BOSS feed, the
  channel gateways), although the ticketing service would answer them its public articles.
- `knowledge:write`: writing, retiring and deleting articles. Supervisors: the team's agreed answers (统一口径).
- `churn:read`: a customer's churn and bad-debt risk, the high-risk list. The front line and the teams who act on
  it: agents, key-account managers, supervisors, marketers, analysts.
- `churn:operate`: the model registry, its reports and rollback, scoring runs. Analysts: the models are theirs.
- `campaigns:read`: campaigns, their contacts and reports, a customer's campaign contacts. Those who run
  campaigns, analysts and supervisors; agents, to see what a customer was offered.
- `campaigns:run`: creating, scheduling, launching, dispatching and ending campaigns. Marketers and the retention
  team (维系).
- `deliveries:report`: delivery receipts (状态报告). The channel gateways (SMS platform, call centre).
- `boss:feed`: BOSS pushes and file uploads sent with a token instead of the BOSS's HMAC signature. The BOSS's
  own client; billing operations, who upload the BOSS's files by hand.
- `boss:operate`: the quarantine (fix, replay, discard) and import jobs (status, cancel, rejected lines). Billing
  operations (计费运维): the quarantine holds raw BOSS payloads.
- `gateway:admin`: the gateway's admin API (users, clients, API keys, signing keys). Admin only.

A push or file the BOSS signs is let through without a token (the billing adapter checks the signature), so no
scope applies to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from crm_kit.auth import Principal
from crm_kit.errors import Forbidden

READ = frozenset({"GET", "HEAD"})
WRITE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ANY = READ | WRITE
POST = frozenset({"POST"})

CUSTOMERS_READ = "customers:read"
CUSTOMERS_WRITE = "customers:write"
SEGMENTS_WRITE = "segments:write"
PRIVACY = "privacy"
TICKETS_READ = "tickets:read"
TICKETS_WRITE = "tickets:write"
TICKETS_HUB = "tickets:hub"
KNOWLEDGE_READ = "knowledge:read"
KNOWLEDGE_WRITE = "knowledge:write"
CHURN_READ = "churn:read"
CHURN_OPERATE = "churn:operate"
CAMPAIGNS_READ = "campaigns:read"
CAMPAIGNS_RUN = "campaigns:run"
DELIVERIES_REPORT = "deliveries:report"
BOSS_FEED = "boss:feed"
BOSS_OPERATE = "boss:operate"
GATEWAY_ADMIN = "gateway:admin"

SCOPES = frozenset(
    {
        CUSTOMERS_READ,
        CUSTOMERS_WRITE,
        SEGMENTS_WRITE,
        PRIVACY,
        TICKETS_READ,
        TICKETS_WRITE,
        TICKETS_HUB,
        KNOWLEDGE_READ,
        KNOWLEDGE_WRITE,
        CHURN_READ,
        CHURN_OPERATE,
        CAMPAIGNS_READ,
        CAMPAIGNS_RUN,
        DELIVERIES_REPORT,
        BOSS_FEED,
        BOSS_OPERATE,
        GATEWAY_ADMIN,
    }
)


@dataclass(frozen=True)
class Rule:
    """`pattern` is a path prefix in whole segments; `*` stands for any one segment (an id)."""

    pattern: str
    methods: frozenset[str]
    scope: str

    @cached_property
    def wanted(self) -> list[str]:
        return self.pattern.strip("/").split("/")

    def matches(self, method: str, segments: list[str]) -> bool:
        return (
            method in self.methods
            and len(segments) >= len(self.wanted)
            and all(w == s or (w == "*" and s) for w, s in zip(self.wanted, segments, strict=False))
        )


RULES = (
    # billing adapter: the BOSS's door, and the quarantine and import jobs behind it
    Rule("/boss/v1/events", POST, BOSS_FEED),
    Rule("/boss/v1/imports/*", ANY, BOSS_OPERATE),
    Rule("/boss/v1/imports", POST, BOSS_FEED),
    Rule("/boss/v1", ANY, BOSS_OPERATE),
    # customer
    Rule("/tmf-api/customerManagement/v4", READ, CUSTOMERS_READ),
    Rule("/tmf-api/customerManagement/v4", WRITE, CUSTOMERS_WRITE),
    Rule("/api/v1/customers", READ, CUSTOMERS_READ),  # with the gateway's own 360 view
    Rule("/api/v1/customers", WRITE, CUSTOMERS_WRITE),
    Rule("/api/v1/accounts", READ, CUSTOMERS_READ),
    Rule("/api/v1/accounts", WRITE, CUSTOMERS_WRITE),
    Rule("/api/v1/key-accounts", READ, CUSTOMERS_READ),
    Rule("/api/v1/key-accounts", WRITE, CUSTOMERS_WRITE),
    Rule("/api/v1/segments", READ, CUSTOMERS_READ),
    Rule("/api/v1/segments", WRITE, SEGMENTS_WRITE),
    Rule("/api/v1/privacy", ANY, PRIVACY),
    # ticketing
    Rule("/tmf-api/troubleTicket/v4/hub", ANY, TICKETS_HUB),
    Rule("/tmf-api/troubleTicket/v4", READ, TICKETS_READ),
    Rule("/tmf-api/troubleTicket/v4", WRITE, TICKETS_WRITE),
    Rule("/api/v1/tickets", READ, TICKETS_READ),
    Rule("/api/v1/queues", READ, TICKETS_READ),
    Rule("/api/v1/queues", WRITE, TICKETS_WRITE),
    Rule("/api/v1/knowledge/articles/*/feedback", POST, KNOWLEDGE_READ),
    Rule("/api/v1/knowledge", READ, KNOWLEDGE_READ),
    Rule("/api/v1/knowledge", WRITE, KNOWLEDGE_WRITE),
    # churn
    Rule("/churn/v1/customers", READ, CHURN_READ),
    Rule("/churn/v1/scores", READ, CHURN_READ),
    Rule("/churn/v1/models", ANY, CHURN_OPERATE),
    Rule("/churn/v1/scoring-runs", ANY, CHURN_OPERATE),
    # campaign
    Rule("/campaign/v1/campaigns", READ, CAMPAIGNS_READ),
    Rule("/campaign/v1/campaigns", WRITE, CAMPAIGNS_RUN),
    Rule("/campaign/v1/customers", READ, CAMPAIGNS_READ),
    Rule("/campaign/v1/deliveries", POST, DELIVERIES_REPORT),
    # the gateway's own admin API: api/admin.py admits role admin itself, without admit(); here for the whole table
    Rule("/gateway/v1", ANY, GATEWAY_ADMIN),
)
"""First match wins, so a specific rule sits before the general one of its family."""

_FRONT_LINE = frozenset({CUSTOMERS_READ, KNOWLEDGE_READ, CHURN_READ})

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "agent": _FRONT_LINE | {CUSTOMERS_WRITE, TICKETS_READ, TICKETS_WRITE, CAMPAIGNS_READ},
    "key_account_manager": _FRONT_LINE | {TICKETS_READ},
    "supervisor": _FRONT_LINE
    | {CUSTOMERS_WRITE, SEGMENTS_WRITE, PRIVACY, TICKETS_READ, TICKETS_WRITE, KNOWLEDGE_WRITE, CAMPAIGNS_READ},
    "marketer": _FRONT_LINE | {SEGMENTS_WRITE, CAMPAIGNS_READ, CAMPAIGNS_RUN},
    "retention": frozenset({KNOWLEDGE_READ, CAMPAIGNS_READ, CAMPAIGNS_RUN}),
    "analyst": _FRONT_LINE | {SEGMENTS_WRITE, CHURN_OPERATE, CAMPAIGNS_READ},
    "billing_ops": frozenset({KNOWLEDGE_READ, BOSS_FEED, BOSS_OPERATE}),
    "admin": SCOPES,
    "partner": frozenset({CUSTOMERS_READ, KNOWLEDGE_READ}),
    "boss": frozenset({BOSS_FEED}),
    "channel": frozenset({DELIVERIES_REPORT}),
}
"""The table of the module's docstring. Every role of the kit is named, even with little, so a role added to the
kit is a decision to make here (the tests see to it)."""


def required_scope(method: str, path: str) -> str | None:
    """The scope `method path` needs; None when no rule names it (refused). A `.` or `..` segment matches no
    rule, so `/a/b/../c` cannot borrow the rule of `/a/b`."""
    segments = path.strip("/").split("/")
    if "." in segments or ".." in segments:
        return None
    return next((rule.scope for rule in RULES if rule.matches(method.upper(), segments)), None)


def scopes_of(roles: Iterable[str], granted: Iterable[str] = ()) -> frozenset[str]:
    """What a caller may reach: its roles' scopes and those its token grants explicitly."""
    return frozenset(granted).union(*(ROLE_SCOPES.get(role, frozenset()) for role in roles))


def authorise(principal: Principal, method: str, path: str) -> None:
    """Forbidden (403) naming the scope needed when the caller holds none that opens `method path`."""
    scope = required_scope(method, path)
    if scope is None:
        raise Forbidden(f"No access rule lets {method} {path} through the gateway", field="path")
    if scope not in scopes_of(principal.roles, principal.scopes):
        raise Forbidden(f"{method} {path} needs the scope {scope}", scope=scope)
