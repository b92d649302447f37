"""The ticketing service at a province's yearly volume: 1M tickets in the store, then ticket creation and the lists
an agent console asks for, 32 clients at a time over real HTTP against the service running as it is deployed.

The tickets are written straight into the service's tables after its migrations ran (as a migration from the
operator's old system would), deterministic from a seed: ~200k customers (1% key accounts, in customer_standing),
every category, priority and channel, a year of creation dates, statuses mostly closed or resolved and ~10% still
open (those opened in the last days). Each ticket has its status history (acknowledged first, then every move) and
its two SLA clocks as the service keeps them (models.SlaClockRow: exactly one of running_since/paused_at/stopped_at;
a finished ticket's clocks stopped; running clocks with due_at/warn_at, and warned/breached already marked where
those instants are past, so the SLA scanner finds the backlog it would have left, none); the queues are those the
migrations seed, each with its agents (queue_agent).

The load is closed-loop: every client sends its next request when the last one answered, for a fixed time, after a
warm-up that is not counted. Creates go through the real API (whatever open_ticket does, routing, duplicate checks,
is measured with it); lists are the console's: a customer's tickets, open tickets by priority, a queue's open
tickets, an agent's own, 20 a page in the default order. Every answer must be 2xx; errors are counted and shown.
The list statements the service builds are also run straight on the database, with their query plans printed, so a
slow list can be told apart as its COUNT (X-Total-Count) or its page, and as a missing index.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from sqlalchemy import DateTime, Table, func, make_url, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from crm_kit.broker import EmbeddedBroker, free_port
from crm_kit.db import Database, insert_many, upgrade
from crm_kit.testing import bearer
from crm_ticketing import models
from crm_ticketing.domain import clocks
from crm_ticketing.domain import tickets as domain
from crm_ticketing.domain.escalation import ESCALATION
from crm_ticketing.domain.sla import DEFAULT_CALENDARS, DEFAULT_POLICIES, SlaClock, SlaPolicy, pick_policy
from crm_ticketing.schemas.trouble_ticket import CATEGORIES, PRIORITIES
from tests.bench_customer import GIVEN, SURNAMES, drop_postgres

TICKETS = "/tmf-api/troubleTicket/v4/troubleTicket"
CLIENTS = 32
CREATE_SECONDS = 30.0
LIST_SECONDS = 30.0
WARM_UP_SECONDS = 5.0
PAGE = 20
CUSTOMERS = 200_000
KEY_ACCOUNT_EVERY = 100
"""Every 100th customer is a key account (大客户): 1%."""
AGENTS_PER_QUEUE = 40
CHUNK = 10_000
WORKERS = os.cpu_count() or 1
MIGRATIONS = Path(models.__file__).parent / "migrations"
OPEN = ("acknowledged", "inProgress", "pending", "held")
SEED = 20261125

CATEGORY_WEIGHTS = {
    "billing_dispute": 25,
    "network_coverage": 20,
    "broadband_fault": 15,
    "service_activation": 10,
    "value_added_service": 10,
    "handset_terminal": 8,
    "number_portability": 5,
    "staff_complaint": 7,
}
PRIORITY_WEIGHTS = {"critical": 3, "high": 17, "medium": 55, "low": 25}
CHANNEL_WEIGHTS = {"hotline": 55, "app": 15, "web": 5, "store": 10, "wechat": 10, "email": 2, "regulator": 3}
CHANNEL_NAMES = {
    "hotline": "10086",
    "app": "掌上营业厅",
    "web": "网上营业厅",
    "store": "营业厅",
    "wechat": "微信公众号",
}
STATUS_WEIGHTS = {
    "closed": 70,
    "resolved": 15,
    "cancelled": 3,
    "rejected": 2,
    "acknowledged": 3,
    "inProgress": 4,
    "pending": 2,
    "held": 1,
}
TITLES = {
    "billing_dispute": ("流量费用异常", "本月账单多扣费, 客户称未使用"),
    "network_coverage": ("室内无信号", "小区内手机信号弱, 通话经常中断"),
    "broadband_fault": ("宽带无法上网", "光猫LOS灯红, 宽带断线"),
    "service_activation": ("套餐变更未生效", "已办理5G升档, 次月仍按原套餐计费"),
    "value_added_service": ("增值业务误订", "客户称未订购视频彩铃, 被扣费"),
    "handset_terminal": ("合约机故障", "合约机开机重启, 要求检测"),
    "number_portability": ("携号转网受阻", "申请携出提示存在合约, 客户有异议"),
    "staff_complaint": ("营业员服务态度", "营业厅工作人员态度差, 客户要求道歉"),
}
SEVERITIES = ("critical", "major", "minor")


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(value: int, length: int) -> str:
    digits = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        digits.append(_CROCKFORD[digit])
    return "".join(reversed(digits))


def _share(rng: random.Random, late: float) -> float:
    """How much of an SLA target a move took: within it mostly, past it for a share `late` of the tickets."""
    return rng.uniform(0.8, 1.6) if rng.random() < late else rng.uniform(0.05, 0.8)


def ticket_id(created: datetime, rng: random.Random) -> str:
    """As domain.tickets.new_ticket_id makes them (TT + ms since 1970 + random, Crockford base32), from the seed."""
    return "TT" + _base32(int(created.timestamp() * 1000), 10) + _base32(rng.getrandbits(50), 10)


def customer_id(n: int) -> str:
    return f"C{n:08d}"


def ticket_type(category: str, rng: random.Random) -> str:
    if category in ("network_coverage", "broadband_fault"):
        return "trouble"
    if category in ("billing_dispute", "staff_complaint"):
        return "complaint"
    return "complaint" if rng.random() < 0.6 else "inquiry"


@dataclass
class Rows:
    """Rows of one table for insert_many: its columns and value tuples (datetimes converted on write)."""

    columns: tuple[str, ...]
    values: list[tuple[Any, ...]] = field(default_factory=list)


TICKET_COLUMNS = (
    "id",
    "customer_id",
    "customer_name",
    "customer_referred_type",
    "ticket_type",
    "category",
    "priority",
    "severity",
    "name",
    "description",
    "status",
    "status_change_date",
    "status_change_reason",
    "channel",
    "channel_name",
    "queue",
    "assignee",
    "escalation_level",
    "sla_policy_id",
    "key_account",
    "related_parties",
    "related_entities",
    "attachments",
    "external_identifiers",
    "creation_date",
    "last_update",
    "resolution_date",
    "first_responded_at",
    "csat_score",
    "csat_at",
)
CHANGE_COLUMNS = ("ticket_id", "from_status", "status", "change_date", "change_reason", "changed_by")
CLOCK_COLUMNS = (
    "ticket_id",
    "kind",
    "target_seconds",
    "calendar",
    "started_at",
    "accumulated_us",
    "running_since",
    "paused_at",
    "stopped_at",
    "breached_at",
    "warned_at",
    "due_at",
    "warn_at",
)
_US = timedelta(microseconds=1)


@dataclass
class Clock:
    """One SLA clock as it stands at load time; becomes one sla_clock row."""

    kind: str
    policy: SlaPolicy
    started: datetime
    accumulated: timedelta = timedelta(0)
    running_since: datetime | None = None
    paused_at: datetime | None = None
    stopped_at: datetime | None = None
    breached_at: datetime | None = None
    warned_at: datetime | None = None
    due_at: datetime | None = None
    warn_at: datetime | None = None

    @property
    def target(self) -> timedelta:
        return self.policy.first_response if self.kind == clocks.FIRST_RESPONSE else self.policy.resolution

    def row(self, ticket: str) -> tuple[Any, ...]:
        return (
            ticket,
            self.kind,
            int(self.target.total_seconds()),
            self.policy.calendar,
            self.started,
            self.accumulated // _US,
            self.running_since,
            self.paused_at,
            self.stopped_at,
            self.breached_at,
            self.warned_at,
            self.due_at,
            self.warn_at,
        )


def stopped(kind: str, policy: SlaPolicy, started: datetime, at: datetime) -> Clock:
    """A clock that ran from `started` to `at` without a pause; warned and breached if it got that far."""
    calendar = DEFAULT_CALENDARS[policy.calendar]
    clock = Clock(kind, policy, started, accumulated=calendar.elapsed(started, at), stopped_at=at)
    if clock.accumulated >= clock.target * 0.8:
        clock.warned_at = calendar.add(started, clock.target * 0.8)
    if clock.accumulated >= clock.target:
        clock.breached_at = calendar.add(started, clock.target)
    return clock


def running(kind: str, policy: SlaPolicy, started: datetime, now: datetime) -> Clock:
    """A clock running since `started`, its warning and breach marked if their instants are past by `now` (as the
    SLA scanner would have marked them)."""
    clock = Clock(kind, policy, started, running_since=started)
    sla = SlaClock.start(clock.target, DEFAULT_CALENDARS[policy.calendar], started)
    clock.due_at, clock.warn_at = sla.due_at(now), sla.warns_at(now)
    if clock.warn_at is not None and clock.warn_at <= now:
        clock.warned_at = clock.warn_at
    if clock.due_at is not None and clock.due_at <= now:
        clock.breached_at = clock.due_at
    return clock


def paused(kind: str, policy: SlaPolicy, started: datetime, at: datetime) -> Clock:
    """A clock that ran from `started` and was paused at `at` (pending, held): neither due_at nor warn_at."""
    clock = stopped(kind, policy, started, at)
    clock.stopped_at, clock.paused_at = None, at
    return clock


@dataclass
class Population:
    """The synthetic ticket store: deterministic from the seed, generated a chunk at a time."""

    tickets: int
    queues: dict[str, str]
    """category → the queue it is routed to; the key-account queue under "*key"."""
    now: datetime
    seed: int = SEED
    policies: dict[tuple[str, str, bool], SlaPolicy] = field(default_factory=dict)

    def policy(self, category: str, priority: str, key_account: bool) -> SlaPolicy:
        found = self.policies.get((category, priority, key_account))
        if found is None:
            found = self.policies[category, priority, key_account] = pick_policy(
                DEFAULT_POLICIES, category, priority, key_account
            )
        return found

    def rows(self, start: int, stop: int) -> dict[str, Rows]:
        rng = random.Random(self.seed + start)
        now = self.now
        out = {
            "ticket": Rows(TICKET_COLUMNS),
            "ticket_status_change": Rows(CHANGE_COLUMNS),
            "sla_clock": Rows(CLOCK_COLUMNS),
        }
        add_ticket = out["ticket"].values.append
        add_change = out["ticket_status_change"].values.append
        add_clock = out["sla_clock"].values.append
        for _ in range(start, stop):
            c = rng.randrange(CUSTOMERS)
            key_account = c % KEY_ACCOUNT_EVERY == 0
            category = _pick(rng, CATEGORY_WEIGHTS)
            priority = _pick(rng, PRIORITY_WEIGHTS)
            channel = _pick(rng, CHANNEL_WEIGHTS)
            status = _pick(rng, STATUS_WEIGHTS)
            policy = self.policy(category, priority, key_account)
            calendar = DEFAULT_CALENDARS[policy.calendar]
            queue = self.queues.get("*key" if key_account else category)
            agent = f"{queue or 'agent'}-{rng.randrange(AGENTS_PER_QUEUE):02d}"
            if status in OPEN:  # an open ticket is a recent one, one nobody has touched the most recent
                mean = 4 * 3600 if status == "acknowledged" else 2 * 86400
                created = now - timedelta(seconds=min(rng.expovariate(1 / mean), 30 * 86400))
            else:
                created = now - timedelta(seconds=rng.uniform(3 * 86400, 365 * 86400))
            tid = ticket_id(created, rng)
            history: list[tuple[str | None, str, datetime]] = [(None, "acknowledged", created)]
            first_at = resolved_at = None
            if status != "acknowledged":
                # the first move: within the first-response target mostly, later for some
                first_at = calendar.add(created, policy.first_response * _share(rng, 0.08))
                if first_at >= now:
                    first_at = created + (now - created) * rng.uniform(0.05, 0.5)
            if status == "acknowledged":
                sla = [
                    running(clocks.FIRST_RESPONSE, policy, created, now),
                    running(clocks.RESOLUTION, policy, created, now),
                ]
                assignee = agent if rng.random() < 0.5 else None
            elif status in ("rejected", "cancelled"):
                assert first_at is not None
                history.append(("acknowledged", status, first_at))
                sla = [stopped(kind, policy, created, first_at) for kind in (clocks.FIRST_RESPONSE, clocks.RESOLUTION)]
                assignee = agent
            elif status in ("inProgress", "pending", "held"):
                assert first_at is not None
                history.append(("acknowledged", "inProgress", first_at))
                sla = [stopped(clocks.FIRST_RESPONSE, policy, created, first_at)]
                if status == "inProgress":
                    sla.append(running(clocks.RESOLUTION, policy, created, now))
                else:
                    paused_at = first_at + (now - first_at) * rng.uniform(0.1, 0.9)
                    history.append(("inProgress", status, paused_at))
                    sla.append(paused(clocks.RESOLUTION, policy, created, paused_at))
                assignee = agent
            else:  # resolved, closed
                assert first_at is not None
                resolved_at = max(
                    calendar.add(created, policy.resolution * _share(rng, 0.1)),
                    first_at + timedelta(minutes=rng.uniform(5, 120)),
                )
                if resolved_at >= now:  # a recent ticket that got fixed quickly
                    resolved_at = first_at + (now - first_at) * rng.uniform(0.1, 0.9)
                history.append(("acknowledged", "inProgress", first_at))
                history.append(("inProgress", "resolved", resolved_at))
                if status == "closed":
                    closed_at = min(resolved_at + timedelta(hours=rng.uniform(1, 72)), now - timedelta(seconds=1))
                    history.append(("resolved", "closed", max(closed_at, resolved_at)))
                sla = [
                    stopped(clocks.FIRST_RESPONSE, policy, created, first_at),
                    stopped(clocks.RESOLUTION, policy, created, resolved_at),
                ]
                assignee = agent
            level = sum(1 for clock in sla if clock.breached_at is not None)
            if level:  # each breach escalated the ticket a level, to that level's queue (domain.escalation)
                queue = ESCALATION.get(level, queue)
            last = history[-1]
            csat = rng.random() < 0.3 and status == "closed"
            name, description = TITLES[category]
            organisation = c % 20 == 0
            add_ticket(
                (
                    tid,
                    customer_id(c),
                    rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
                    "Organization" if organisation else "Individual",
                    ticket_type(category, rng),
                    category,
                    priority,
                    rng.choice(SEVERITIES) if category in ("network_coverage", "broadband_fault") else None,
                    name,
                    description,
                    status,
                    last[2],
                    "客户确认已解决" if status in ("resolved", "closed") else None,
                    channel,
                    CHANNEL_NAMES.get(channel),
                    queue,
                    assignee,
                    level,
                    policy.id,
                    key_account,
                    "[]",
                    json.dumps(
                        [{"id": f"S{c:08d}0", "role": "affectedLine", "@referredType": "Subscription"}],
                        ensure_ascii=False,
                    ),
                    "[]",
                    json.dumps([{"id": f"MIIT-{tid[-8:]}", "owner": "MIIT", "externalIdentifierType": "regulatorCase"}])
                    if channel == "regulator"
                    else "[]",
                    created,
                    last[2],
                    resolved_at,
                    first_at,
                    rng.randint(1, 5) if csat else None,
                    last[2] + timedelta(hours=2) if csat else None,
                )
            )
            actor = assignee or "agent-intake"
            for before, after, at in history:
                add_change((tid, before, after, at, None, actor if before else "agent-intake"))
            for clock in sla:
                add_clock(clock.row(tid))
        return out


# --- the bulk load -----------------------------------------------------------------------------------------------


def _defaults(table: Table, columns: tuple[str, ...]) -> dict[str, Any]:
    """Values for the NOT NULL columns a load does not give (a column a later migration added): the column's scalar
    default. A new NOT NULL column without one stops the load with its name, rather than failing on every row."""
    same: dict[str, Any] = {}
    for column in table.columns:
        if column.name in columns or column.nullable or column.server_default is not None:
            continue
        if column.primary_key and column.autoincrement in (True, "auto") and column.name == "seq":
            continue
        if column.default is not None and column.default.is_scalar:
            same[column.name] = column.default.arg
            continue
        raise RuntimeError(f"bench_ticketing does not fill {table.name}.{column.name} (NOT NULL, no default): add it")
    return same


class Writer:
    """insert_many into the service's tables, datetimes put through their column's type for the dialect first."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.bind.dialect
        self.rows = 0

    async def insert(self, table_name: str, rows: Rows) -> None:
        if not rows.values:
            return
        table = models.Base.metadata.tables[table_name]
        processors = [
            table.c[name].type.dialect_impl(self.dialect).bind_processor(self.dialect) for name in rows.columns
        ]
        columns = zip(rows.columns, processors, strict=True)
        convert = [(i, p) for i, (name, p) in enumerate(columns) if p is not None and _is_datetime(table.c[name].type)]
        values = rows.values
        if convert:
            values = []
            for row in rows.values:
                out = list(row)
                for i, process in convert:
                    if out[i] is not None:
                        out[i] = process(out[i])
                values.append(tuple(out))
        await insert_many(self.session, table, rows.columns, values, same=_defaults(table, rows.columns) or None)
        self.rows += len(values)


def _is_datetime(column_type: Any) -> bool:
    return isinstance(getattr(column_type, "impl", column_type), DateTime)


async def _seed_agents(db: Database, now: datetime) -> dict[str, str]:
    """The queues the migrations seeded (category → queue, "*key" → the green channel), each given its agents."""
    queues: dict[str, str] = {}
    if "queue" not in models.Base.metadata.tables:
        return queues
    async with db.sessions.begin() as session:
        found = (await session.execute(text("SELECT id, categories, key_accounts FROM queue"))).all()
        for queue_id, categories, key_accounts in found:
            if isinstance(categories, str):
                categories = json.loads(categories)
            if key_accounts:
                queues["*key"] = queue_id
            for category in categories or ():
                queues.setdefault(category, queue_id)
        if "queue_agent" in models.Base.metadata.tables and found:
            table = models.Base.metadata.tables["queue_agent"]
            rows = Rows(("queue_id", "agent_id", "available", "joined_at"))
            for queue_id, *_ in found:
                for k in range(AGENTS_PER_QUEUE):
                    rows.values.append((queue_id, f"{queue_id}-{k:02d}", True, now - timedelta(days=400)))
            await Writer(session).insert(table.name, rows)
        standing = Rows(("customer_id", "key_account", "key_account_tier", "account_manager", "last_event_at"))
        for c in range(0, CUSTOMERS, KEY_ACCOUNT_EVERY):
            standing.values.append((customer_id(c), True, "gold", f"kam-{c % 40:02d}", now - timedelta(days=30)))
        await Writer(session).insert("customer_standing", standing)
    return queues


async def load(database_url: str, count: int) -> tuple[dict[str, str], int, float]:
    """Migrate, then bulk-load `count` tickets with their history and clocks; (queues, rows written, seconds)."""
    await asyncio.to_thread(upgrade, database_url, MIGRATIONS)
    db = Database(database_url, pool_size=2)
    now = datetime.now(UTC)
    started = time.perf_counter()
    queues = await _seed_agents(db, now)
    population = Population(count, queues, now)
    rows = 0
    generating = 0.0
    for start in range(0, count, CHUNK):
        t0 = time.perf_counter()
        batch = population.rows(start, min(start + CHUNK, count))
        generating += time.perf_counter() - t0
        async with db.sessions.begin() as session:
            writer = Writer(session)
            for table_name, table_rows in batch.items():
                await writer.insert(table_name, table_rows)
        rows += writer.rows
        if (start // CHUNK) % 10 == 9 or start + CHUNK >= count:
            took = time.perf_counter() - started
            done = min(start + CHUNK, count)
            print(
                f"  ticketing load: {done:,}/{count:,} tickets, {rows:,} rows, {rows / took:,.0f} rows/s "
                f"({generating:.0f} s of {took:.0f} s making rows)",
                flush=True,
            )
    # What autovacuum does to a bulk-loaded PostgreSQL table soon after: the visibility map lets the counts over
    # the (assignee|queue|status, …) indexes read the index alone instead of every row's heap page.
    async with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            await conn.execute(text("ANALYZE"))
            await conn.commit()
        else:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
    await db.dispose()
    return queues, rows, time.perf_counter() - started


async def create_postgres(server_url: str) -> str:
    """A fresh database on `server_url`'s server; its URL."""
    name = f"crm_bench_ticketing_{os.getpid()}"
    admin = await asyncpg.connect(make_url(server_url).set(drivername="postgresql").render_as_string(False))
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


# --- the load ----------------------------------------------------------------------------------------------------

Request = tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]
"""(kind, method, query, JSON body)."""


@dataclass
class Outcome:
    """What a closed-loop run saw: latencies of the 2xx answers by kind, the errors by kind and status."""

    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    samples: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def ok(self) -> list[float]:
        return [x for values in self.latencies.values() for x in values]

    def error_text(self) -> str:
        if not self.errors:
            return "0 errors"
        parts = [f"{n:,} × {status} on {kind}" for (kind, status), n in self.errors.most_common()]
        return f"{sum(self.errors.values()):,} ERRORS ({', '.join(parts)})"


async def closed_loop(
    replicas: list[aiohttp.ClientSession], make: Callable[[random.Random], Request], clients: int, seconds: float
) -> Outcome:
    """`clients` callers, each sending its next request as the last is answered, for `seconds`; spread over the
    replicas as a Service spreads connections."""
    outcome = Outcome()
    deadline = time.perf_counter() + seconds

    async def caller(k: int) -> None:
        client = replicas[k % len(replicas)]
        rng = random.Random(SEED + k * 7919 + int(seconds * 1000))
        while time.perf_counter() < deadline:
            kind, method, params, body = make(rng)
            t0 = time.perf_counter()
            try:
                async with client.request(method, TICKETS, params=params, json=body) as r:
                    answer = await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                answer, status = str(exc).encode(), 0
            took = time.perf_counter() - t0
            if 200 <= status < 300:
                outcome.latencies[kind].append(took)
            else:
                key = (kind, str(status) if status else "connection error")
                outcome.errors[key] += 1
                outcome.samples.setdefault(key, answer[:300].decode(errors="replace"))

    started = time.perf_counter()
    await asyncio.gather(*(caller(k) for k in range(clients)))
    outcome.seconds = time.perf_counter() - started
    return outcome


def quantiles(samples: list[float]) -> str:
    if len(samples) < 2:
        return f"{len(samples)} sample(s)"
    cuts = statistics.quantiles(samples, n=100)
    return f"p50 {statistics.median(samples) * 1000:.1f} ms, p95 {cuts[94] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms"


def create_body(rng: random.Random, queues: dict[str, str]) -> Request:
    """A ticket as the desks file them: any category, priority and channel, an existing customer mostly (a key
    account now and then), a note, the affected line; an agent taking it at once sometimes."""
    c = rng.randrange(CUSTOMERS + CUSTOMERS // 10)  # one in eleven: a customer with no ticket yet
    category = _pick(rng, CATEGORY_WEIGHTS)
    channel = _pick(rng, CHANNEL_WEIGHTS)
    name, description = TITLES[category]
    party: list[dict[str, Any]] = [
        {
            "id": customer_id(c),
            "role": "customer",
            "@referredType": "Individual",
            "name": rng.choice(SURNAMES) + rng.choice(GIVEN),
        }
    ]
    if rng.random() < 0.2:
        queue = queues.get(category, "agent")
        agent = f"{queue}-{rng.randrange(AGENTS_PER_QUEUE):02d}"
        party.append({"id": agent, "role": "agent", "@referredType": "Individual"})
    body: dict[str, Any] = {
        "description": f"{description} (工单 {rng.randrange(10**6):06d})",
        "ticketType": ticket_type(category, rng),
        "priority": _pick(rng, PRIORITY_WEIGHTS),
        "name": name,
        "category": category,
        "channel": {"id": channel, **({"name": CHANNEL_NAMES[channel]} if channel in CHANNEL_NAMES else {})},
        "relatedParty": party,
        "relatedEntity": [
            {"id": f"S{c:08d}0", "role": "affectedLine", "@referredType": "Subscription", "name": "138****0042"}
        ],
        "note": [{"text": "客户来电反映, 已记录"}],
    }
    if category in ("network_coverage", "broadband_fault"):
        body["severity"] = rng.choice(SEVERITIES)
    if channel == "regulator":
        body["externalIdentifier"] = [
            {"id": f"MIIT-2026-{rng.randrange(10**6):06d}", "owner": "MIIT", "externalIdentifierType": "regulatorCase"}
        ]
    return "create", "POST", None, body


LIST_KINDS = ("customer", "open by priority", "queue's open", "agent's open")


def list_query(kind: str, rng: random.Random, queues: dict[str, str]) -> dict[str, Any]:
    """The console's lists, 20 a page in the default order (newest first)."""
    names = sorted({*queues.values(), *ESCALATION.values()})
    if kind == "customer":
        return {"relatedParty.id": customer_id(rng.randrange(CUSTOMERS)), "limit": PAGE}
    if kind == "open by priority":
        return {"status": "acknowledged,inProgress", "priority": rng.choice(PRIORITIES), "limit": PAGE}
    if kind == "queue's open":
        return {"queue": rng.choice(names), "status": ",".join(OPEN), "limit": PAGE}
    queue = rng.choice([queues[c] for c in CATEGORIES if c in queues] or ["agent"])
    return {"assignee": f"{queue}-{rng.randrange(AGENTS_PER_QUEUE):02d}", "status": ",".join(OPEN), "limit": PAGE}


def list_request(queues: dict[str, str]) -> Callable[[random.Random], Request]:
    def make(rng: random.Random) -> Request:
        kind = rng.choice(LIST_KINDS)
        return kind, "GET", list_query(kind, rng, queues), None

    return make


# --- the list statements on the database itself ------------------------------------------------------------------


def _statements(kind: str, rng: random.Random, queues: dict[str, str]) -> tuple[Any, Any]:
    """The COUNT and the page statement the service runs for a list (domain.tickets.list_tickets, an agent: every
    ticket visible), from the same TicketFilter the API builds."""
    q = list_query(kind, rng, queues)
    where = domain.TicketFilter(
        status=tuple(q["status"].split(",")) if "status" in q else (),
        priority=(q["priority"],) if "priority" in q else (),
        customer_id=q.get("relatedParty.id"),
        queue=q.get("queue"),
        assignee=q.get("assignee"),
    ).clauses()
    query = select(models.Ticket.id).where(*where)
    count = select(func.count()).select_from(query.subquery())
    page = query.order_by(*domain.order_by(None)).offset(0).limit(PAGE)
    return count, page


def _agent_loads(queues: dict[str, str]) -> Any:
    """What opening a ticket in a least-loaded queue reads to pick its agent: the open tickets of each of the
    queue's agents (domain.queues.agent_loads, restated here: the statement is built inside that function)."""
    agents = [f"{queues.get('billing_dispute', 'agent')}-{k:02d}" for k in range(AGENTS_PER_QUEUE)]
    ticket = models.Ticket
    return (
        select(ticket.assignee, func.count())
        .where(ticket.assignee.in_(agents), ticket.status.in_(OPEN))
        .group_by(ticket.assignee)
    )


def _full_scan(line: str) -> bool:
    """A plan line that reads the whole table: SQLite's SCAN without an index, PostgreSQL's Seq Scan."""
    return (line.startswith("SCAN") and "INDEX" not in line) or "Seq Scan" in line


async def explain(database_url: str, queues: dict[str, str], results: dict[str, str]) -> list[str]:
    """Each list's COUNT and page run straight on the database (median of 5, warm), with its plan; printed, and a
    line of warnings for any that scans the table or takes long."""
    db = Database(database_url, pool_size=1)
    sqlite = db.dialect == "sqlite"
    warnings: list[str] = []
    rng = random.Random(3)
    try:
        async with db.engine.connect() as conn:
            checks = [(kind, ("COUNT", "page"), _statements(kind, rng, queues)) for kind in LIST_KINDS]
            checks.append(("create", ("least-loaded agent pick",), (_agent_loads(queues),)))
            for kind, labels, statements in checks:
                timings = {}
                for label, statement in zip(labels, statements, strict=True):
                    sql = str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
                    runs = []
                    for _ in range(5):
                        t0 = time.perf_counter()
                        await conn.exec_driver_sql(sql)
                        runs.append(time.perf_counter() - t0)
                    timings[label] = statistics.median(runs) * 1000
                    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
                    plan_rows = (await conn.exec_driver_sql(prefix + sql)).all()
                    plan = [str(row[-1]) for row in plan_rows]
                    print(f"\n  [{kind}] {label} {timings[label]:.1f} ms\n    {sql}\n    " + "\n    ".join(plan))
                    scans = [line.strip() for line in plan if _full_scan(line)]
                    if scans or timings[label] > 20:
                        warnings.append(f"{kind} {label} {timings[label]:.0f} ms: {'; '.join(scans) or plan[0]}")
                if kind == "create":
                    pick = "Create: the least-loaded agent pick (open tickets of a queue's 40 agents), database alone"
                    results[pick] = f"{timings[labels[0]]:.1f} ms"
                else:
                    results[f"List '{kind}' in the database alone: COUNT (X-Total-Count), page of {PAGE}"] = (
                        f"{timings['COUNT']:.1f} ms, {timings['page']:.1f} ms"
                    )
    finally:
        await db.dispose()
    return warnings


# --- the service -------------------------------------------------------------------------------------------------


def start_replicas(env: dict[str, str], ports: list[int]) -> list[subprocess.Popen[bytes]]:
    """One uvicorn process per core, each a replica on its own port (as bench_customer.start_replicas, for the same
    reason), each with its consumers, outbox relay and SLA scanner."""
    return [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "crm_ticketing.app:create_app", "--factory"),
                *("--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"),
            ],
            env=env,
        )
        for port in ports
    ]


class Results(dict[str, str]):
    """The figures, each named with its database and printed as it is measured."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def __setitem__(self, key: str, value: str) -> None:
        key = f"{key} [{self.label}]"
        print(f"  {key}: {value}", flush=True)
        super().__setitem__(key, value)


def _read_through(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(1 << 22):
            pass


async def measure(
    folder: Path,
    count: int,
    postgres: str | None = None,
    *,
    create_seconds: float = CREATE_SECONDS,
    list_seconds: float = LIST_SECONDS,
) -> dict[str, str]:
    """Every figure at `count` tickets on a SQLite file, or on a fresh database of the `postgres` server."""
    label = "PostgreSQL" if postgres else "SQLite"
    database_file = None if postgres else folder / "ticketing-bench.db"
    database_url = await create_postgres(postgres) if postgres else f"sqlite+aiosqlite:///{database_file}"
    results = Results(label)
    try:
        queues, rows, seconds = await load(database_url, count)
        results[f"Bulk load of {count:,} tickets ({rows:,} rows: tickets, status history, SLA clocks)"] = (
            f"{rows / seconds:,.0f} rows/s, {count / seconds:,.0f} tickets/s ({seconds:.0f} s)"
        )
        warnings = await explain(database_url, queues, results)
        results["List statements that scan the table or take over 20 ms"] = "; ".join(warnings) or "none"
        await _load(database_url, database_file, queues, count, results, create_seconds, list_seconds)
    finally:
        if postgres:
            await drop_postgres(database_url)
    return dict(results)


async def _load(
    database_url: str,
    database_file: Path | None,
    queues: dict[str, str],
    count: int,
    results: Results,
    create_seconds: float,
    list_seconds: float,
) -> None:
    ports = [free_port() for _ in range(WORKERS)]
    with EmbeddedBroker() as broker:
        env = {
            **os.environ,
            "CRM_KAFKA_BOOTSTRAP": broker.bootstrap,
            "CRM_TICKETING_DATABASE_URL": database_url,
            "CRM_LOG_LEVEL": "WARNING",
        }
        servers = start_replicas(env, ports)
        try:
            async with contextlib.AsyncExitStack() as stack:
                replicas = [
                    await stack.enter_async_context(
                        aiohttp.ClientSession(
                            base_url=f"http://127.0.0.1:{port}",
                            timeout=aiohttp.ClientTimeout(total=60),
                            headers=bearer("bench-agent", roles=("agent",), ttl=timedelta(hours=4)),
                            connector=aiohttp.TCPConnector(limit=64),
                        )
                    )
                    for port in ports
                ]
                for client, server in zip(replicas, servers, strict=True):
                    while True:
                        if server.poll() is not None:
                            raise RuntimeError(f"a ticketing replica exited with {server.returncode}")
                        with contextlib.suppress(aiohttp.ClientConnectionError):
                            async with client.get("/health/ready") as r:
                                if r.status == 200:
                                    break
                        await asyncio.sleep(0.5)
                # What a service that has been running has: its pages in the OS cache, its pools filled, its
                # statements compiled. Not measured.
                if database_file is not None:
                    await asyncio.to_thread(_read_through, database_file)
                lists = list_request(queues)
                await closed_loop(replicas, lists, CLIENTS, WARM_UP_SECONDS)
                await closed_loop(replicas, lambda rng: create_body(rng, queues), CLIENTS, WARM_UP_SECONDS / 2)

                created = await closed_loop(replicas, lambda rng: create_body(rng, queues), CLIENTS, create_seconds)
                ok = created.ok
                results[f"Create a ticket (POST troubleTicket), {CLIENTS} clients, {count:,} tickets in the store"] = (
                    f"{quantiles(ok)} ({len(ok):,} in {created.seconds:.0f} s, {len(ok) / created.seconds:,.0f}/s; "
                    f"{created.error_text()})"
                )
                listed = await closed_loop(replicas, lists, CLIENTS, list_seconds)
                ok = listed.ok
                results[f"List tickets (console filters, mixed, {PAGE} a page), {CLIENTS} clients"] = (
                    f"{quantiles(ok)} ({len(ok):,} in {listed.seconds:.0f} s, {len(ok) / listed.seconds:,.0f}/s; "
                    f"{listed.error_text()})"
                )
                for kind in LIST_KINDS:
                    results[f"  of which '{kind}'"] = (
                        f"{quantiles(listed.latencies[kind])} ({len(listed.latencies[kind]):,})"
                    )
                for outcome in (created, listed):
                    for (kind, status), sample in outcome.samples.items():
                        print(f"  first {status} on {kind}: {sample}", flush=True)
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(30)


SETUP = (
    "- setup: embedded Tansu broker (memory); the tickets written straight into the service's tables after its "
    "migrations (then ANALYZE; VACUUM ANALYZE on PostgreSQL, as autovacuum would); the service as one uvicorn "
    "process per core (replicas on their own ports, each with its consumers, outbox relay and SLA scanner), the "
    "aiohttp load generator in the bench process on the same cores; closed loop, "
    f"{CLIENTS} clients, after a warm-up that is not counted; p50/p95/p99 of the 2xx answers, errors counted apart"
)


def main() -> None:
    """Just this bench, printed and not written to BENCHMARKS.md (`python -m tests.bench --only ticketing` writes)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--postgres")
    parser.add_argument("--seconds", type=float, default=10, help="for the creates and for the lists")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        measured = asyncio.run(
            measure(Path(folder), args.tickets, args.postgres, create_seconds=args.seconds, list_seconds=args.seconds)
        )
    print("\n".join(f"| {k} | {v} |" for k, v in measured.items()))


if __name__ == "__main__":
    main()
