"""The customer service at provincial scale: 1M synthetic customers, then search, the 360 view, a segment rule
and the consumer's projection rate, measured over real HTTP against the service running in its own process.

The population is written straight into the service's tables (a bulk load, as a migration from the operator's
old CRM would), deterministic from a seed: individual and organisation customers, accounts, 1-2 lines each,
three months of bills, metrics and tiers, a churn score, timeline entries, some tickets and campaign contacts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from sqlalchemy import Table, create_engine, func, make_url, select, text

from crm_customer.models import (
    BillingAccount,
    CampaignContactView,
    Customer,
    CustomerMetrics,
    Invoice,
    RiskScore,
    Subscription,
    TicketView,
    TimelineEntry,
)
from crm_kit.broker import EmbeddedBroker, free_port
from crm_kit.db import Database, inbox_table, upgrade
from crm_kit.events import new_event
from crm_kit.testing import bearer, publish

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国文辉力斌宇浩凯鹏飞晨欣怡佳雨婷子轩梓涵"
REGIONS = ["GZ", "SZ", "FS", "DG", "ZH", "ST", "HZ", "JM", "ZJ", "MM", "ZQ", "QY", "SG", "MZ", "SW", "HY", "YJ"]
PLANS = [("4G-58", 5800), ("5G-129", 12900), ("5G-199", 19900), ("5G-299", 29900), ("KID-19", 1900)]
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
CHUNK = 20_000
SEARCH_REQUESTS = 2_000
VIEW_REQUESTS = 5_000
VIEW_CLIENTS = 32
SEARCH_CLIENTS = 8
PROJECTION_EVENTS = 20_000
WORKERS = os.cpu_count() or 1
MIGRATIONS = Path(sys.modules["crm_customer.models"].__file__ or "").parent / "migrations"
TABLES: list[Any] = [
    Customer,
    BillingAccount,
    Subscription,
    Invoice,
    CustomerMetrics,
    RiskScore,
    TimelineEntry,
    TicketView,
    CampaignContactView,
]


def id_card(n: int, rng: random.Random) -> str:
    """A well-formed 18-digit resident ID (区划码 + birth date + sequence + check digit)."""
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 365 * 55))
    body = f"4401{n % 100:02d}{born:%Y%m%d}{n % 1000:03d}"
    return body + ID_CHECK[sum(int(c) * w for c, w in zip(body, ID_WEIGHTS, strict=True)) % 11]


def msisdn(n: int) -> str:
    return f"1{(38, 39, 58, 59, 88, 87, 36, 35)[n % 8]}{n:08d}"


@dataclass
class Population:
    customers: int
    seed: int = 20261123

    def rows(self, start: int, stop: int, now: datetime) -> dict[Table, list[dict[str, Any]]]:
        """The rows of customers [start, stop): every table's rows for that slice."""
        rng = random.Random(self.seed + start)
        out: dict[Table, list[dict[str, Any]]] = {model.__table__: [] for model in TABLES}
        add = {model.__tablename__: out[model.__table__].append for model in TABLES}
        for n in range(start, stop):
            cid, aid = f"C{n:08d}", f"A{n:08d}"
            organisation = n % 20 == 0
            name = (
                f"{rng.choice(REGIONS)}市{rng.choice(SURNAMES)}{rng.choice(GIVEN)}科技有限公司"
                if organisation
                else rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.6 else "")
            )
            created = now - timedelta(days=rng.randrange(1, 3650))
            key = n % 500 == 0
            add["customer"](
                {
                    "id": cid,
                    "name": name,
                    "name_key": name.lower(),
                    "customer_type": "organization" if organisation else "individual",
                    "id_card_no": None if organisation else id_card(n, rng),
                    "registration_no": f"91440101{n:09d}X" if organisation else None,
                    "region": rng.choice(REGIONS),
                    "status": "active",
                    "source": "boss",
                    "key_account": key,
                    "key_account_tier": "gold" if key else None,
                    "account_manager": f"kam-{n % 40:02d}" if key else None,
                    "created_at": created,
                    "updated_at": created,
                }
            )
            add["billing_account"](
                {"id": aid, "customer_id": cid, "created_at": created, "account_type": "individual", "status": "active"}
            )
            lines = 2 if n % 4 == 0 else 1
            fee_total = 0
            for k in range(lines):
                plan, fee = rng.choice(PLANS)
                fee_total += fee
                add["subscription"](
                    {
                        "id": f"S{n:08d}{k}",
                        "customer_id": cid,
                        "account_id": aid,
                        "msisdn": msisdn(n * 2 + k),
                        "status": "active",
                        "plan_code": plan,
                        "plan_name": plan,
                        "monthly_fee_fen": fee,
                        "payment_mode": "postpaid",
                        "activated_at": created,
                        "last_event_at": created,
                        "updated_at": created,
                    }
                )
            bills = []
            for m in range(3):
                period = (now.replace(day=1) - timedelta(days=28 * (m + 1))).strftime("%Y-%m")
                amount = fee_total + rng.randrange(0, 8000)
                bills.append(amount)
                add["invoice"](
                    {
                        "id": f"INV{n:08d}{m}",
                        "customer_id": cid,
                        "account_id": aid,
                        "billing_period": period,
                        "amount_due_fen": amount,
                        "due_date": date.fromisoformat(f"{period}-20"),
                        "issued_at": now - timedelta(days=30 * (m + 1)),
                        "last_event_at": now - timedelta(days=30 * (m + 1)),
                        "updated_at": now,
                    }
                )
            arpu = sum(bills) // 3
            days = rng.randrange(0, 31)
            churn = Decimal(rng.randrange(0, 10000)) / 10000
            add["customer_metrics"](
                {
                    "customer_id": cid,
                    "arpu_fen": arpu,
                    "prev_arpu_fen": arpu + rng.randrange(-3000, 3000),
                    "outstanding_fen": 0,
                    "overdue_invoices": 1 if n % 37 == 0 else 0,
                    "active_lines": lines,
                    "total_lines": lines,
                    "first_activated_at": created,
                    "voice_minutes_30d": rng.randrange(0, 900),
                    "sms_30d": rng.randrange(0, 60),
                    "data_mb_30d": rng.randrange(0, 60_000),
                    "days_active_30d": days,
                    "open_tickets": 1 if n % 20 == 3 else 0,
                    "churn_score": churn,
                    "value_tier": "high" if arpu >= 15000 else "mid" if arpu >= 6000 else "low",
                    "activity_tier": "dormant" if days == 0 else "low" if days < 10 else "mid" if days < 20 else "high",
                    "lifecycle_stage": "at_risk" if churn >= Decimal("0.6") else "stable",
                    "updated_at": now,
                }
            )
            add["risk_score"](
                {
                    "customer_id": cid,
                    "model_kind": "churn",
                    "score": churn,
                    "risk_band": "high" if churn >= Decimal("0.6") else "medium" if churn >= Decimal("0.3") else "low",
                    "reasons": [
                        {"feature": "arpu_trend", "description": "ARPU down 3 months", "contribution": 0.21},
                        {"feature": "complaints_90d", "description": "2 complaints in 90 days", "contribution": 0.12},
                        {"feature": "contract_end", "description": "contract ends in 30 days", "contribution": 0.08},
                    ],
                    "model_version": "churn-lgbm-2026.11",
                    "scored_at": now - timedelta(days=1),
                }
            )
            for m in range(3):
                add["timeline_entry"](
                    {
                        "customer_id": cid,
                        "occurred_at": now - timedelta(days=30 * (m + 1)),
                        "kind": "billing",
                        "type": "billing.invoice.issued.v1",
                        "summary": f"账单 {bills[m] / 100:.2f} 元",
                        "source_event_id": f"bench-{n}-{m}",
                        "recorded_at": now,
                    }
                )
            if n % 20 == 3:
                add["ticket_view"](
                    {
                        "ticket_id": f"T{n:08d}",
                        "customer_id": cid,
                        "ticket_type": "complaint",
                        "category": "network",
                        "title": "信号差",
                        "priority": "medium",
                        "state": "inProgress",
                        "opened_at": now - timedelta(days=2),
                        "last_event_at": now - timedelta(days=2),
                    }
                )
            if n % 10 == 7:
                add["campaign_contact_view"](
                    {
                        "contact_id": f"K{n:08d}",
                        "customer_id": cid,
                        "campaign_id": "CMP-2026-11",
                        "campaign_name": "5G升档",
                        "channel": "sms",
                        "status": "sent",
                        "contacted_at": now - timedelta(days=5),
                        "last_event_at": now - timedelta(days=5),
                    }
                )
        return out


def load(path: Path, customers: int) -> tuple[int, float]:
    """Migrate a fresh SQLite file and bulk-load the population; (rows written, seconds)."""
    upgrade(f"sqlite+aiosqlite:///{path}", MIGRATIONS)
    engine = create_engine(f"sqlite:///{path}")
    now = datetime.now(UTC)
    population = Population(customers)
    rows = 0
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA synchronous=OFF")
        for start in range(0, customers, CHUNK):
            for table, batch in population.rows(start, min(start + CHUNK, customers), now).items():
                if batch:
                    conn.execute(table.insert(), batch)
                    rows += len(batch)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return rows, time.perf_counter() - started


async def create_postgres(server_url: str, name: str) -> str:
    """A fresh, empty database `name` on `server_url`'s server; its URL."""
    admin = await asyncpg.connect(_libpq(server_url))
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def load_postgres(server_url: str, customers: int) -> tuple[str, int, float]:
    """A fresh PostgreSQL database on `server_url`'s server, migrated and loaded with COPY; (its URL, rows, s)."""
    url = await create_postgres(server_url, f"crm_bench_{os.getpid()}")
    await asyncio.to_thread(upgrade, url, MIGRATIONS)
    conn = await asyncpg.connect(_libpq(url))
    now = datetime.now(UTC)
    population = Population(customers)
    rows = 0
    started = time.perf_counter()
    for start in range(0, customers, CHUNK):
        for table, batch in population.rows(start, min(start + CHUNK, customers), now).items():
            if batch:
                columns = list(batch[0])
                records = [tuple(copyable(row[c]) for c in columns) for row in batch]
                await conn.copy_records_to_table(table.name, records=records, columns=columns)
                rows += len(batch)
    await conn.execute("ANALYZE")
    await conn.close()
    return url, rows, time.perf_counter() - started


async def drop_postgres(url: str) -> None:
    admin = await asyncpg.connect(_libpq(make_url(url).set(database="postgres").render_as_string(False)))
    await admin.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    await admin.close()


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def copyable(value: Any) -> Any:
    """COPY takes JSON columns as text."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else value


def quantiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100)
    return f"p50 {statistics.median(samples) * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms"


Request = tuple[str, dict[str, Any]]
"""A GET: its path and query."""


async def timed_load(
    replicas: list[aiohttp.ClientSession], requests: list[Request], clients: int
) -> tuple[list[float], float]:
    """Run `requests` with `clients` concurrent callers, spread over the replicas as a Kubernetes Service spreads
    connections; latencies of each and the total seconds. aiohttp rather than httpx: the load generator shares
    the two cores with the service, and httpx spends several times the CPU per request that aiohttp does."""
    queue = iter(requests)
    latencies: list[float] = []

    async def caller(k: int) -> None:
        client = replicas[k % len(replicas)]
        for path, params in queue:
            t0 = time.perf_counter()
            async with client.get(path, params=params) as r:
                body = await r.read()
            latencies.append(time.perf_counter() - t0)
            assert r.status == 200, body[:300]

    started = time.perf_counter()
    await asyncio.gather(*(caller(k) for k in range(clients)))
    return latencies, time.perf_counter() - started


def search_requests(customers: int, rng: random.Random) -> Iterator[Request]:
    url = "/api/v1/customers/search"
    for i in range(SEARCH_REQUESTS):
        n = rng.randrange(customers)
        kind = i % 5
        if kind == 0:
            params = {"q": msisdn(n * 2), "by": "phone", "match": "exact"}
        elif kind == 1:
            params = {"q": msisdn(n * 2)[:8], "by": "phone", "match": "prefix"}
        elif kind == 2:
            params = {"q": rng.choice(SURNAMES) + rng.choice(GIVEN), "by": "name", "match": "prefix"}
        elif kind == 3:
            params = {"q": f"A{n:08d}", "by": "account", "match": "exact"}
        else:
            params = {"q": msisdn(n * 2)[:7], "by": "auto"}
        yield url, {**params, "limit": 20}


async def projection_rate(bootstrap: str, database_url: str, customers: int) -> tuple[int, float]:
    """Publish billing.usage.recorded events for existing customers; seconds until they are applied, read from the
    consumers' inbox (every worker's consumer records there what it applied, in the same transaction)."""
    db = Database(database_url)

    async def consumed() -> int:
        async with db.sessions() as session:
            found = await session.scalar(select(func.count()).where(inbox_table.c.type == "billing.usage.recorded.v1"))
            return int(found or 0)

    before = await consumed()
    rng = random.Random(7)
    records = []
    for i in range(PROJECTION_EVENTS):
        n = rng.randrange(customers)
        data = {
            "boss_event_id": f"BOSS-EVT:BENCH:{i:07d}",
            "customer_id": f"C{n:08d}",
            "account_id": f"A{n:08d}",
            "subscription_id": f"S{n:08d}0",
            "msisdn": msisdn(n * 2),
            "occurred_at": "2026-11-20T03:15:00+08:00",
            "usage_date": (date(2026, 11, 19) - timedelta(days=i % 20)).isoformat(),
            "voice_minutes": i % 90,
            "sms_count": i % 7,
            "data_mb": i % 3000,
            "roaming": False,
            "charged_fen": 0,
        }
        event = new_event("billing.usage.recorded.v1", source="/bench/boss", subject=data["customer_id"], data=data)
        records.append((data["customer_id"], event.to_json().encode()))
    started = time.perf_counter()
    await publish(bootstrap, "billing.usage", records)
    while await consumed() - before < PROJECTION_EVENTS:
        await asyncio.sleep(0.5)
    took = time.perf_counter() - started
    await db.dispose()
    return PROJECTION_EVENTS, took


class Results(dict[str, str]):
    """The figures, each named with its database and printed as it is measured (a long run shows its progress)."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def __setitem__(self, key: str, value: str) -> None:
        key = f"{key} [{self.label}]"
        print(f"  {key}: {value}", flush=True)
        super().__setitem__(key, value)


async def warm_up(replicas: list[aiohttp.ClientSession], customers: int, database_file: Path | None) -> None:
    """What a service that has been running has: the database's pages in the OS cache (the bulk load leaves them
    on disk), its connection pool filled, its statements compiled. None of this is measured."""
    if database_file is not None:
        await asyncio.to_thread(_read_through, database_file)
    rng = random.Random(5)
    views: list[Request] = [(f"/api/v1/customers/C{rng.randrange(customers):08d}/view360", {}) for _ in range(3000)]
    await timed_load(replicas, views + list(search_requests(customers, rng))[:500], VIEW_CLIENTS)


def _read_through(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(1 << 22):
            pass


def start_replicas(env: dict[str, str], ports: list[int]) -> list[subprocess.Popen[bytes]]:
    """The customer service as deployed: one process per core, each a replica on its own port with its own
    consumers in the group and its own outbox relay. Not `uvicorn --workers`: its workers share one listening
    socket, the kernel hands most connections to one of them, and one core idles while the other queues."""
    return [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "crm_customer.app:create_app", "--factory"),
                *("--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"),
            ],
            env=env,
        )
        for port in ports
    ]


async def measure(folder: Path, customers: int, postgres: str | None = None) -> dict[str, str]:
    """Every figure at `customers` on SQLite, or on a fresh database of the `postgres` server when given."""
    if postgres:
        database_url, rows, seconds = await load_postgres(postgres, customers)
    else:
        database_url = f"sqlite+aiosqlite:///{folder / 'customer-1m.db'}"
        rows, seconds = await asyncio.to_thread(load, folder / "customer-1m.db", customers)
    label, database_file = ("PostgreSQL", None) if postgres else ("SQLite", folder / "customer-1m.db")
    try:
        return await _measure(database_url, database_file, customers, rows, seconds, label)
    finally:
        if postgres:
            await drop_postgres(database_url)


async def _measure(
    database_url: str, database_file: Path | None, customers: int, rows: int, seconds: float, label: str
) -> dict[str, str]:
    results = Results(label)
    results[f"Bulk load of {customers:,} customers ({rows:,} rows)"] = f"{rows / seconds:,.0f} rows/s ({seconds:.0f} s)"
    ports = [free_port() for _ in range(WORKERS)]
    with EmbeddedBroker() as broker:
        env = {
            **os.environ,
            "CRM_KAFKA_BOOTSTRAP": broker.bootstrap,
            "CRM_CUSTOMER_DATABASE_URL": database_url,
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
                            headers=bearer("bench-analyst", roles=("agent", "marketer"), ttl=timedelta(hours=4)),
                            connector=aiohttp.TCPConnector(limit=64),
                        )
                    )
                    for port in ports
                ]
                for client in replicas:
                    while True:
                        try:
                            async with client.get("/health/ready") as r:
                                if r.status == 200:
                                    break
                        except aiohttp.ClientConnectionError:
                            pass
                        await asyncio.sleep(0.5)
                client = replicas[0]
                await warm_up(replicas, customers, database_file)
                rng = random.Random(11)
                for clients in (1, SEARCH_CLIENTS):
                    searches = list(search_requests(customers, rng))
                    latencies, took = await timed_load(replicas, searches, clients)
                    results[f"Search (phone/name/account, exact and prefix), {clients} client(s)"] = (
                        f"{quantiles(latencies)} ({len(latencies)} requests, {len(latencies) / took:,.0f}/s)"
                    )
                for clients in (1, VIEW_CLIENTS):
                    picked = [rng.randrange(customers) for _ in range(VIEW_REQUESTS)]
                    views: list[Request] = [(f"/api/v1/customers/C{n:08d}/view360", {}) for n in picked]
                    latencies, took = await timed_load(replicas, views, clients)
                    results[f"360° view, {clients} client(s)"] = (
                        f"{quantiles(latencies)} ({len(latencies)} requests, {len(latencies) / took:,.0f}/s)"
                    )
                rule = {
                    "all": [
                        {"field": "arpu_fen", "op": "gte", "value": 12900},
                        {"field": "region", "op": "in", "value": ["GZ", "SZ", "FS"]},
                        {"field": "days_active_30d", "op": "gte", "value": 10},
                    ]
                }
                timings = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    async with client.post("/api/v1/segments/preview", json={"rule": rule}) as r:
                        preview = await r.json()
                    timings.append(time.perf_counter() - t0)
                    assert r.status == 200, preview
                results[f"Segment preview, 3-clause rule over {customers:,} customers"] = (
                    f"{min(timings):.2f} s best, {statistics.median(timings):.2f} s median "
                    f"({preview['count']:,} members)"
                )
                events, took = await projection_rate(broker.bootstrap, env["CRM_CUSTOMER_DATABASE_URL"], customers)
                results[f"Consumer projecting billing.usage events onto {customers:,} customers"] = (
                    f"{events / took:,.0f} events/s ({events:,} events in {took:.1f} s)"
                )
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(30)
    return results
