"""The campaign service at a province's scale: a retention campaign over 1M customers, from the audience to the
last contact, then the BOSS's plan changes and recharges attributed with 1M assignments in the table.

The service's own view of the customers is written straight into its tables after its migrations ran (as the
projection would hold it after a while of customer.*, churn.score and ticketing.ticket events), deterministic
from a seed: 1M customers with region, type, value and activity tiers, churn band and score; ~90% consent to
marketing texts, ~4% refused them, the rest were never asked; ~30% consent to app push; ~3% on do-not-disturb;
~1% with an open complaint; two earlier waves of a programme contacted ~15% of them this week (~10% twice, so
the weekly cap of two bites), and a higher-priority campaign still running holds ~1% in its treatment group.

The service runs in a process of its own (uvicorn) on the embedded broker, its clock fixed at 10:00 in Shanghai
today (outside quiet hours, so the run is the same whenever the bench runs), its campaign calendar idle and its
dispatch unthrottled (the throttle protects a channel gateway; this measures the service). Through its HTTP
API: a retention campaign whose rule selects every active customer with a churn band is created, previewed,
scheduled, launched and dispatched, each step timed; the contact events are read back from campaign.contact.
Then plan changes (to the offer's plan and to others) and recharges, half for customers of the campaign, half for
customers of none, are published on billing.subscription and billing.payment as the billing adapter's relay
would, and timed until the consumer has taken them all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as wall
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import Table, create_engine, make_url, text

from crm_campaign import models
from crm_campaign.api.access import clock
from crm_campaign.app import create_app
from crm_campaign.settings import Settings
from crm_kit.broker import EmbeddedBroker, free_port
from crm_kit.db import upgrade
from crm_kit.events import new_event
from crm_kit.presentation import SHANGHAI
from crm_kit.settings import KafkaSettings
from crm_kit.testing import bearer, taken
from tests.bench_customer import REGIONS, Results, copyable, create_postgres, drop_postgres, msisdn

CAMPAIGNS = "/campaign/v1/campaigns"
MIGRATIONS = Path(models.__file__).parent / "migrations"
CHUNK = 20_000
SEED = 20261125
PLAN = "5G-RET-199"
RECHARGE_FEN = 10_000
BILLING_TOPICS = ("billing.subscription", "billing.payment")
EARLIER_WAVES = ("CMP-BENCH-WAVE1", "CMP-BENCH-WAVE2")
RIVAL = "CMP-BENCH-VIP"
SETUP = (
    "- setup: embedded Tansu broker (memory); the campaign service's view of the customers written straight into "
    "its tables after its migrations (then ANALYZE): ~90% consent to marketing texts, ~4% refused them, ~30% "
    "consent to app push, ~3% on do-not-disturb, ~1% with an open complaint, ~10% sent two marketing texts this "
    "week by earlier waves (the weekly cap), ~1% in the treatment group of a running campaign of higher priority; "
    "the campaign's rule selects every active customer with a churn band, 10% held out as its control group, "
    "channels sms then push; the service under uvicorn in a process of its own, its clock fixed at 10:00 Shanghai "
    "(outside quiet hours), its calendar idle, dispatch unthrottled and in batches of 1,000 (its default), the "
    "outbox relay and the consumer in the same process; the bench drives it over HTTP from a process of its own "
    "on the same cores\n"
    "- where the time goes (profiled): a dispatch batch is two reads (the due customers with every fact the "
    "policy needs, each a key look-up per customer, and their recent contacts), the policy judged in Python, and "
    "bulk writes of ~2.6 rows a customer judged (the contact; for the ~80% sent, an outbound message and an outbox "
    "event), each with its indexes (and on "
    "PostgreSQL a foreign-key check, about half of an insert's cost there); the next batch is read and judged "
    "while one is written. On SQLite the service is one process under one interpreter lock: Python's share per "
    "contact (facts, policy, the event's JSON) leads, then SQLite's index writes, and the relay publishing the "
    "events in the same process takes its share of the same core. On PostgreSQL the server's work (the key "
    "look-ups, the checked inserts) and Python's overlap. The launch is the audience's read, a SHA-256 draw per "
    "customer and the assignment rows. Attribution costs one indexed read for a billing event of a customer in "
    "no campaign and up to four statements for a take-up; each statement's round trip through SQLAlchemy and "
    "the driver costs far more than the SQL (a bare SELECT 1 on aiosqlite ~280 µs, the look-up itself in SQLite "
    "~6 µs). On PostgreSQL the consumer kit's de-duplication read leads: a partition's batch of event ids `IN (...)` "
    "within the one consumer's inbox is planned as a scan of that consumer's whole inbox (with fresh statistics "
    "too), so attribution slows as the inbox grows; SQLite looks each id up by the key"
)
AUDIENCE = {
    "rule": {
        "all": [
            {"field": "status", "op": "eq", "value": "active"},
            {"field": "churn_band", "op": "in", "value": ["high", "medium", "low"]},
        ]
    }
}
OFFERS = [
    {
        "code": "RET-199",
        "name": "5G畅享199 保号礼 首月半价",
        "kind": "plan_upgrade",
        "cost_fen": 9_950,
        "expected_value_fen": 84_000,
        "plan_code": PLAN,
    },
    {
        "code": "TOPUP-100",
        "name": "充100送20",
        "kind": "discount",
        "cost_fen": 2_000,
        "expected_value_fen": 10_000,
        "min_recharge_fen": RECHARGE_FEN,
    },
]


def bench_now() -> datetime:
    """10:00 today in Shanghai, as UTC: the service's clock for the whole run."""
    today = datetime.now(SHANGHAI).date()
    return datetime.combine(today, wall(10), SHANGHAI).astimezone(UTC)


def customer_id(n: int) -> str:
    return f"C{n:08d}"


@dataclass
class Population:
    """The campaign service's view of `customers` customers as of `now`, slice by slice."""

    customers: int
    now: datetime
    seed: int = SEED

    def campaigns(self) -> list[dict[str, Any]]:
        """Two completed waves of an earlier programme and a higher-priority campaign still running."""
        base = {
            "description": None,
            "objective": "upsell",
            "channels": ["sms"],
            "audience": {},
            "trigger": None,
            "holdout_share": Decimal("0"),
            "response_window_days": 30,
            "created_by": "bench",
            "cancel_reason": None,
        }
        rows = []
        for k, cid in enumerate(EARLIER_WAVES):
            at = self.now - timedelta(days=5 - 2 * k)
            rows.append(
                {
                    **base,
                    "id": cid,
                    "name": f"5G升档 第{k + 1}波",
                    "status": "completed",
                    "holdout_key": cid,
                    "priority": 50,
                    "starts_at": at,
                    "ends_at": at + timedelta(days=1),
                    "created_at": at - timedelta(days=1),
                    "updated_at": at + timedelta(days=1),
                    "scheduled_at": at - timedelta(days=1),
                    "launched_at": at,
                    "finished_at": at + timedelta(days=1),
                }
            )
        start = self.now - timedelta(days=10)
        rows.append(
            {
                **base,
                "id": RIVAL,
                "name": "大客户专享 年终回馈",
                "status": "running",
                "holdout_key": RIVAL,
                "priority": 90,
                "starts_at": start,
                "ends_at": self.now + timedelta(days=30),
                "created_at": start,
                "updated_at": start,
                "scheduled_at": start,
                "launched_at": start,
                "finished_at": None,
            }
        )
        return rows

    def rows(self, start: int, stop: int) -> dict[Table, list[dict[str, Any]]]:
        """The rows of customers [start, stop) in every table they have rows in."""
        rng = random.Random(self.seed + start)
        tables = (models.Customer, models.Consent, models.Complaint, models.Assignment, models.Contact)
        out: dict[Table, list[dict[str, Any]]] = {m.__table__: [] for m in tables}
        customer, consent, complaint, assignment, contact = (out[m.__table__].append for m in tables)
        now = self.now
        for n in range(start, stop):
            cid = customer_id(n)
            churn = Decimal(rng.randrange(0, 10_000)) / 10_000
            dnd = rng.random() < 0.03
            customer(
                {
                    "customer_id": cid,
                    "customer_type": "organization" if n % 20 == 0 else "individual",
                    "region": rng.choice(REGIONS),
                    "status": "active" if rng.random() < 0.99 else "suspended",
                    "active_lines": 2 if n % 4 == 0 else 1,
                    "value_tier": rng.choices(("high", "mid", "low"), (15, 45, 40))[0],
                    "activity_tier": rng.choice(("high", "mid", "low", "dormant")),
                    "lifecycle_stage": "at_risk" if churn >= Decimal("0.6") else "stable",
                    "churn_score": churn,
                    "churn_band": "high" if churn >= Decimal("0.6") else "medium" if churn >= Decimal("0.3") else "low",
                    "bad_debt_score": Decimal(rng.randrange(0, 10_000)) / 10_000,
                    "bad_debt_band": "low",
                    "dnd_enabled": dnd,
                    "dnd_until": now + timedelta(days=rng.randrange(1, 90)) if dnd and rng.random() < 0.5 else None,
                    "erased_at": None,
                    "merged_into": None,
                    "updated_at": now - timedelta(days=rng.randrange(1, 30)),
                }
            )
            recorded = now - timedelta(days=rng.randrange(30, 900))
            draw = rng.random()
            if draw < 0.96:
                granted = draw < 0.90
                consent(
                    {
                        "customer_id": cid,
                        "channel": "sms",
                        "purpose": "marketing",
                        "granted": granted,
                        "recorded_at": recorded,
                    }
                )
            if rng.random() < 0.30:
                consent(
                    {
                        "customer_id": cid,
                        "channel": "push",
                        "purpose": "marketing",
                        "granted": True,
                        "recorded_at": recorded,
                    }
                )
            if rng.random() < 0.01:
                complaint(
                    {"ticket_id": f"TT{n:08d}", "customer_id": cid, "open": True, "updated_at": now - timedelta(days=2)}
                )
            waves = EARLIER_WAVES[: 2 if n % 20 < 2 else 1 if n % 20 < 3 else 0]
            for k, wave in enumerate(waves):
                sent = now - timedelta(days=5 - 2 * k)
                contact(
                    {
                        "id": f"CT-{wave[-5:]}-{n:08d}",
                        "campaign_id": wave,
                        "customer_id": cid,
                        "offer_id": None,
                        "purpose": "marketing",
                        "channel": "sms",
                        "status": "sent",
                        "reason": None,
                        "not_before": None,
                        "planned_at": sent,
                        "sent_at": sent,
                    }
                )
            if n % 100 == 50:
                at = now - timedelta(days=10)
                assignment({"campaign_id": RIVAL, "customer_id": cid, "group": "treatment", "assigned_at": at})
                contact(
                    {
                        "id": f"CT-VIP-{n:08d}",
                        "campaign_id": RIVAL,
                        "customer_id": cid,
                        "offer_id": None,
                        "purpose": "marketing",
                        "channel": "sms",
                        "status": "sent",
                        "reason": None,
                        "not_before": None,
                        "planned_at": at,
                        "sent_at": at,
                    }
                )
        return out


def load_sqlite(path: Path, population: Population) -> tuple[int, float]:
    """Migrate a fresh SQLite file and bulk-load the population; (rows written, seconds)."""
    upgrade(f"sqlite+aiosqlite:///{path}", MIGRATIONS)
    engine = create_engine(f"sqlite:///{path}")
    rows = 0
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA synchronous=OFF")
        conn.execute(models.Campaign.__table__.insert(), population.campaigns())
        for start in range(0, population.customers, CHUNK):
            for table, batch in population.rows(start, min(start + CHUNK, population.customers)).items():
                if batch:
                    conn.execute(table.insert(), batch)
                    rows += len(batch)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return rows, time.perf_counter() - started


async def load_postgres(server_url: str, population: Population) -> tuple[str, int, float]:
    """A fresh database on `server_url`'s server, migrated and loaded with COPY; (its URL, rows, seconds)."""
    url = await create_postgres(server_url, f"crm_bench_campaign_{os.getpid()}")
    await asyncio.to_thread(upgrade, url, MIGRATIONS)
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
    rows = 0
    started = time.perf_counter()
    try:
        await _copy(conn, models.Campaign.__table__, population.campaigns())
        for start in range(0, population.customers, CHUNK):
            for table, batch in population.rows(start, min(start + CHUNK, population.customers)).items():
                rows += await _copy(conn, table, batch)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return url, rows, time.perf_counter() - started


async def _copy(conn: asyncpg.Connection, table: Table, batch: list[dict[str, Any]]) -> int:
    if batch:
        columns = list(batch[0])
        records = [tuple(copyable(row[c]) for c in columns) for row in batch]
        await conn.copy_records_to_table(table.name, records=records, columns=columns)
    return len(batch)


def _serve(settings: Settings, port: int, now: datetime) -> None:
    """In a process of its own: the service under uvicorn, its API's clock fixed at `now`."""
    app = create_app(settings)

    async def fixed() -> datetime:
        return now

    app.dependency_overrides[clock] = fixed
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _pending(database_url: str) -> int:
    """Contact events staged and not yet published: the service's outbox backlog."""
    if database_url.startswith("sqlite"):
        path = make_url(database_url).database
        return await asyncio.to_thread(_sqlite_pending, str(path))
    conn = await asyncpg.connect(make_url(database_url).set(drivername="postgresql").render_as_string(False))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
    finally:
        await conn.close()


def _sqlite_pending(path: str) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0])


async def _count_records(bootstrap: str, topic: str, expect: int, timeout: float = 300) -> int:
    """Records on `topic` read back from the start (the embedded broker's end offsets undercount big batches)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < expect and time.monotonic() < deadline:
            got = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            seen += sum(len(records) for records in got.values())
        return seen
    finally:
        await consumer.stop()


def billing_events(population: Population, count: int) -> Iterator[tuple[str, str, bytes]]:
    """(topic, key, CloudEvent JSON): plan changes and recharges a day and more after the launch, half by customers
    of the population (nearly all in the campaign, in treatment or control), half by customers of no campaign;
    some take an offer up (the offered plan, a recharge of at least its amount), most do not."""
    rng = random.Random(SEED)
    for i in range(count):
        n = rng.randrange(population.customers)
        cid = customer_id(n if i % 2 == 0 else population.customers + n)
        at = (population.now + timedelta(days=1, seconds=i)).astimezone(SHANGHAI).isoformat()
        common = {
            "boss_event_id": f"BOSS-EVT:BENCH:{i:08d}",
            "customer_id": cid,
            "account_id": "A" + cid[1:],
            "subscription_id": "S" + cid[1:],
            "msisdn": msisdn(n),
            "occurred_at": at,
        }
        if i % 4 < 2:
            event_type, topic = "billing.subscription.plan_changed.v1", "billing.subscription"
            plan = PLAN if rng.random() < 0.3 else "5G-129"
            data = {
                **common,
                "from_plan_code": "4G-58",
                "plan": {"code": plan, "name": plan, "monthly_fee_fen": 19_900},
            }
        else:
            event_type, topic = "billing.payment.recharged.v1", "billing.payment"
            amount = RECHARGE_FEN if rng.random() < 0.3 else 3_000
            data = {
                **common,
                "recharge_id": f"RCG-BENCH-{i:08d}",
                "amount_fen": amount,
                "channel": "alipay",
                "balance_after_fen": amount,
                "recharged_at": at,
            }
        event = new_event(event_type, source="/crm/billing-adapter/bench", subject=cid, data=data)
        yield topic, cid, event.to_json().encode()


async def _publish(bootstrap: str, records: list[tuple[str, str, bytes]]) -> None:
    """As the billing adapter's relay would: acks=all, batched sends, keyed by customer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key.encode()) for topic, key, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def measure(folder: Path, customers: int, attribution_events: int, postgres: str | None = None) -> dict[str, str]:
    """Every figure on a SQLite file, or on a fresh database of the `postgres` server when given."""
    population = Population(customers, bench_now())
    if postgres:
        database_url, rows, seconds = await load_postgres(postgres, population)
    else:
        path = folder / "campaign.db"
        database_url = f"sqlite+aiosqlite:///{path}"
        rows, seconds = await asyncio.to_thread(load_sqlite, path, population)
    results = Results("PostgreSQL" if postgres else "SQLite")
    results[f"Load of {customers:,} customers into the service's view ({rows:,} rows)"] = (
        f"{rows / seconds:,.0f} rows/s ({seconds:.0f} s)"
    )
    try:
        with EmbeddedBroker() as broker:
            settings = Settings(
                database_url=database_url,
                kafka=KafkaSettings(bootstrap=broker.bootstrap),
                log_level="WARNING",
                dispatch_seconds=3600,  # the calendar ticks once, at start, with nothing to do
                dispatch_rate_per_second=None,
            )
            await _campaign(results, settings, population, attribution_events)
    finally:
        if postgres:
            await drop_postgres(database_url)
    return results


async def _campaign(results: Results, settings: Settings, population: Population, attribution_events: int) -> None:
    port = free_port()
    service = multiprocessing.get_context("spawn").Process(target=_serve, args=(settings, port, population.now))
    service.start()
    assert service.pid is not None
    headers = bearer("bench-marketer", roles=("marketer",), ttl=timedelta(hours=4))
    timeout = aiohttp.ClientTimeout(total=3600)
    try:
        async with (
            aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=timeout) as http,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as metrics,
        ):
            await _ready(http)
            cid = await _audience_and_dispatch(results, http, settings, population)
            results["Service peak RSS after launch and dispatch"] = f"{_peak_rss_mib(service.pid):,.0f} MiB"
            await _attribution(results, http, metrics, settings, population, cid, attribution_events)
            results["Service peak RSS at the end"] = f"{_peak_rss_mib(service.pid):,.0f} MiB"
    finally:
        service.terminate()
        service.join(60)


async def _ready(http: aiohttp.ClientSession, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with http.get("/health/ready") as r:
                if r.status == 200:
                    return
        await asyncio.sleep(0.5)
    raise RuntimeError("the campaign service did not become ready")


async def _post(http: aiohttp.ClientSession, path: str, body: dict[str, Any] | None = None) -> tuple[Any, float]:
    started = time.perf_counter()
    async with http.post(path, json=body) as r:
        answer = await r.json()
    took = time.perf_counter() - started
    if r.status >= 300:
        raise RuntimeError(f"POST {path}: {r.status} {answer}")
    return answer, took


def _counts(answer: dict[str, Any]) -> str:
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in sorted(answer["suppressed"].items(), key=lambda x: -x[1]))
    suppressed = sum(answer["suppressed"].values())
    return f"{answer['sent']:,} sent, {answer['deferred']:,} deferred, {suppressed:,} suppressed" + (
        f" ({reasons})" if reasons else ""
    )


async def _audience_and_dispatch(
    results: Results, http: aiohttp.ClientSession, settings: Settings, population: Population
) -> str:
    """Create, preview, schedule, launch and dispatch the campaign, each step timed; the campaign's id."""
    now = population.now
    draft = {
        "name": "存量维系 年终 全量",
        "objective": "retention",
        "channels": ["sms", "push"],
        "audience": AUDIENCE,
        "offers": OFFERS,
        "priority": 50,
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(days=30)).isoformat(),
    }
    created, _ = await _post(http, CAMPAIGNS, draft)
    cid = created["id"]
    preview, previewed = await _post(http, f"{CAMPAIGNS}/{cid}/audience/preview")
    results["Audience preview (count, treatment/control split by hash, sample)"] = (
        f"{previewed:.1f} s ({preview['count']:,} customers: {preview['treatment']:,} treatment, "
        f"{preview['control']:,} control)"
    )
    _, scheduled = await _post(http, f"{CAMPAIGNS}/{cid}/schedule")
    results["Schedule (its checks, the audience counted)"] = f"{scheduled:.1f} s"
    launched, took = await _post(http, f"{CAMPAIGNS}/{cid}/launch")
    assigned = launched["treatment"] + launched["control"]
    results["Launch (audience selected, split by hash, assignments written)"] = (
        f"{took:.1f} s ({assigned:,} assignments, {assigned / took:,.0f}/s)"
    )
    started = time.perf_counter()
    done, dispatched = await _post(http, f"{CAMPAIGNS}/{cid}/dispatch")
    judged = done["sent"] + done["deferred"] + sum(done["suppressed"].values())
    rows = judged + 2 * done["sent"]
    async with http.get(f"{CAMPAIGNS}/{cid}/contacts") as r:
        channels = ", ".join(f"{channel} {n:,}" for channel, n in (await r.json())["sent"].items())
    results["Dispatch, unthrottled: the policy judged, contacts, outbound messages and events written"] = (
        f"{dispatched:.1f} s ({judged:,} contacts, {judged / dispatched:,.0f}/s; {rows:,} rows, "
        f"{rows / dispatched:,.0f} rows/s): {_counts(done)}; sent by {channels}"
    )
    total = previewed + scheduled + took + dispatched
    results[f"Audience build + dispatch for {population.customers:,} customers (goal < 60 s on 2 cores)"] = (
        f"{total:.1f} s: preview {previewed:.1f} + schedule {scheduled:.1f} + launch {took:.1f} + dispatch "
        f"{dispatched:.1f}"
    )
    while await _pending(settings.database_url):
        await asyncio.sleep(0.5)
    relayed = time.perf_counter() - started
    on_topic = await _count_records(settings.kafka.bootstrap, "campaign.contact", done["sent"])
    results["Contact events published by the outbox relay (same process)"] = (
        f"all {done['sent']:,} on campaign.contact {relayed:.1f} s after dispatch began "
        f"({done['sent'] / relayed:,.0f}/s); {on_topic:,} read back"
    )
    again, took = await _post(http, f"{CAMPAIGNS}/{cid}/dispatch")
    results["Second dispatch run (nobody due: one pass over the treatment group)"] = f"{took:.2f} s ({_counts(again)})"
    return cid


async def _attribution(
    results: Results,
    http: aiohttp.ClientSession,
    metrics: httpx.AsyncClient,
    settings: Settings,
    population: Population,
    cid: str,
    count: int,
) -> None:
    """Billing events on their topics as the adapter's relay puts them; timed until the consumer took them all."""
    records = list(billing_events(population, count))
    before = await taken(metrics, "campaign", BILLING_TOPICS)
    started = time.perf_counter()
    await _publish(settings.kafka.bootstrap, records)
    published = time.perf_counter() - started
    while await taken(metrics, "campaign", BILLING_TOPICS) < before + count:
        await asyncio.sleep(0.2)
    took = time.perf_counter() - started
    report_started = time.perf_counter()
    async with http.get(f"{CAMPAIGNS}/{cid}/report") as r:
        report = await r.json()
    reported = time.perf_counter() - report_started
    assigned = report["treatment"]["customers"] + report["control"]["customers"]
    results[
        f"Attribution: {count:,} plan changes and recharges (half by the campaign's customers) through the consumer, "
        f"{assigned:,} assignments in the table"
    ] = (
        f"{count / took:,.0f} events/s ({took:.1f} s; published in {published:.1f} s); responses: "
        f"{report['treatment']['responded']:,} treatment, {report['control']['responded']:,} control"
    )
    results[f"Campaign report over {assigned:,} assignments"] = f"{reported:.2f} s"


def main() -> None:
    """Just this bench, printed and not written to BENCHMARKS.md (`python -m tests.bench --only campaign` writes)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--attribution-events", type=int, default=20_000)
    parser.add_argument("--postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        measured = asyncio.run(measure(Path(folder), args.customers, args.attribution_events, args.postgres))
    print("\n".join(f"| {k} | {v} |" for k, v in measured.items()))


if __name__ == "__main__":
    main()
