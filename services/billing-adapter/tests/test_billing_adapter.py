"""billing-adapter service tests: real HTTP against the served app, a real broker, a real database.

Every test pushes BOSS records to `POST /boss/v1/events` and checks what the BOSS is told, what lands
on `billing.subscription`, and what is kept in quarantine. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gzip
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest_asyncio

from crm_billing_adapter.app import create_app
from crm_billing_adapter.events import BOSS_NAMESPACE
from crm_billing_adapter.settings import Settings
from crm_kit.broker import EmbeddedBroker
from crm_kit.settings import KafkaSettings, find_contracts_dir
from crm_kit.testing import bearer, boss_push, eventually, read_topic, serve

TOPIC = "billing.subscription"
EVENTS = "/boss/v1/events"
QUARANTINE = "/boss/v1/quarantine"
PROBLEM = "urn:telecom-crm:problem:"
KINDS = ("activated", "plan_changed", "suspended", "resumed", "terminated", "ported_out")
EXAMPLES = find_contracts_dir() / "examples"


def _example(kind: str) -> dict[str, Any]:
    folder = EXAMPLES / f"billing.subscription.{kind}.v1"
    return json.loads(sorted(folder.glob("*.json"))[0].read_text(encoding="utf-8"))


DATA = {kind: _example(kind) for kind in KINDS}


def record(kind: str, event_id: str, owner: str = "C000001", **data: Any) -> dict[str, Any]:
    """A BOSS record built from the contract's own example, for customer `owner`; `data` overrides fields."""
    body = copy.deepcopy(DATA[kind])
    del body["boss_event_id"]  # the adapter takes it from the record's event_id
    body.update({"customer_id": owner, "account_id": f"A{owner}", "subscription_id": f"S{owner}", **data})
    return {"event_id": event_id, "event_type": f"subscription.{kind}", "data": body}


def lifecycle(customer: str, prefix: str) -> list[dict[str, Any]]:
    """One line's whole life, in BOSS order."""
    return [
        record("activated", f"{prefix}-1", customer),
        record("plan_changed", f"{prefix}-2", customer),
        record("suspended", f"{prefix}-3", customer),
        record("resumed", f"{prefix}-4", customer),
        record("terminated", f"{prefix}-5", customer),
    ]


@dataclass
class Adapter:
    http: httpx.AsyncClient
    bootstrap: str
    settings: Settings

    async def push(
        self, records: list[Any] | None = None, *, content: bytes | None = None, **headers: str
    ) -> httpx.Response:
        """A push signed with the dev source's secret over the bytes sent; `headers` add to it (content-type, …)."""
        return await boss_push(self.http, content if content is not None else records or [], headers=headers)

    async def quarantined(self, qid: str) -> dict[str, Any]:
        r = await self.http.get(f"{QUARANTINE}/{qid}")
        assert r.status_code == 200, r.text
        return r.json()


Start = Callable[..., contextlib.AbstractAsyncContextManager[Adapter]]


@pytest_asyncio.fixture
async def start(kafka: KafkaSettings, database_url: Callable[[str], Awaitable[str]]) -> Start:
    """`async with start(db=..., **settings) as adapter`: the served app, ready (DB up, topics provisioned)."""

    @contextlib.asynccontextmanager
    async def run(db: str | None = None, **overrides: Any) -> AsyncIterator[Adapter]:
        settings = Settings(
            database_url=db or await database_url("billing-adapter"),
            kafka=kafka,
            log_json=False,
            outbox_poll_seconds=0.1,
            **overrides,
        )
        app = create_app(settings)
        # As an administrator: the quarantine routes need a billing-ops role; pushes are signed instead.
        admin = bearer("admin-0001", roles=("admin",))
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30, headers=admin) as http:

            async def ready() -> bool:
                r = await http.get("/health/ready")
                return r.status_code == 200

            await eventually(ready, timeout=20)
            yield Adapter(http, kafka.bootstrap, settings)

    return run


@pytest_asyncio.fixture
async def adapter(start: Start) -> AsyncIterator[Adapter]:
    async with start() as a:
        yield a


@dataclass
class Published:
    key: str
    partition: int
    offset: int
    event: dict[str, Any]


async def published(adapter: Adapter, expect: int) -> list[Published]:
    raw = await read_topic(adapter.bootstrap, TOPIC, expect=expect)
    return [Published(r.key.decode(), r.partition, r.offset, json.loads(r.value)) for r in raw]


async def published_settled(adapter: Adapter, expect: int) -> list[Published]:
    """All of the topic once a sentinel pushed now has come through: the relay publishes in order,
    so anything staged earlier is on the topic too. The sentinel itself is left out."""
    sentinel = f"SENTINEL-{uuid.uuid4().hex[:12]}"
    r = await adapter.push([record("resumed", sentinel, "CSENTINEL")])
    assert r.status_code == 202, r.text

    async def probe() -> list[Published] | None:
        found = await published(adapter, expect + 1)
        return found if any(p.event["data"]["boss_event_id"] == sentinel for p in found) else None

    found = await eventually(probe, timeout=15)
    return [p for p in found if p.event["data"]["boss_event_id"] != sentinel]


def assert_problem(r: httpx.Response, status: int, slug: str, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == PROBLEM + slug
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert body["request_id"] == r.headers["x-request-id"]
    if field is not None:
        assert body.get("field") == field, body
    assert "Traceback" not in r.text
    return body


def statuses(receipt: dict[str, Any]) -> list[str]:
    return [o["status"] for o in receipt["results"]]


def _exactly(text: str) -> Any:
    """JSON with every number kept as written: 129.0 is not 129, and neither is the string "129.0"."""
    return json.loads(text, parse_float=lambda t: ("number", t), parse_int=lambda t: ("number", t))


def same_json(raw: str, value: Any) -> bool:
    """The quarantined raw text holds the record as pushed."""
    return _exactly(raw) == _exactly(json.dumps(value))


# 1. a valid batch


async def test_a_valid_batch_of_every_kind_is_accepted_and_published_as_cloudevents(adapter: Adapter):
    batch = [
        *lifecycle("C100", "BOSS-A"),
        record("activated", "BOSS-B-1", "C200"),
        record("ported_out", "BOSS-B-2", "C200"),
    ]
    # the record's event_id wins over a boss_event_id the data happens to carry
    batch[1]["data"]["boss_event_id"] = "SOMETHING-ELSE"

    r = await adapter.push(batch)

    assert r.status_code == 202, r.text
    receipt = r.json()
    assert (receipt["accepted"], receipt["duplicates"], receipt["rejected"]) == (7, 0, 0)
    assert [(o["index"], o["status"], o["event_id"]) for o in receipt["results"]] == [
        (i, "accepted", rec["event_id"]) for i, rec in enumerate(batch)
    ]

    found = await published(adapter, 7)
    assert len(found) == 7
    by_boss_id = {p.event["data"]["boss_event_id"]: p for p in found}
    assert set(by_boss_id) == {rec["event_id"] for rec in batch}
    for rec in batch:
        p = by_boss_id[rec["event_id"]]
        customer = rec["data"]["customer_id"]
        e = p.event
        assert e["specversion"] == "1.0"
        assert e["type"] == f"billing.{rec['event_type']}.v1"
        assert e["subject"] == customer
        assert p.key == customer
        assert e["source"].startswith("/crm/billing-adapter")
        assert e["datacontenttype"] == "application/json"
        assert datetime.fromisoformat(e["time"]) == datetime.fromisoformat(rec["data"]["occurred_at"])
        assert e["data"] == {**rec["data"], "boss_event_id": rec["event_id"]}
        uuid.UUID(e["id"])
    assert len({p.event["id"] for p in found}) == 7

    # one customer's events share a partition and keep the BOSS order
    for customer, prefix, n in (("C100", "BOSS-A", 5), ("C200", "BOSS-B", 2)):
        mine = sorted((p for p in found if p.key == customer), key=lambda p: p.offset)
        assert len({p.partition for p in mine}) == 1
        assert [p.event["data"]["boss_event_id"] for p in mine] == [f"{prefix}-{i}" for i in range(1, n + 1)]


async def test_one_record_of_every_billing_kind_in_the_contracts_is_published_on_its_topic(adapter: Adapter):
    """Subscriptions, usage, invoices, payments, recharges, accounts: whatever `contracts/` defines for the BOSS."""
    kinds = sorted(p.name.removeprefix("billing.").removesuffix(".v1") for p in EXAMPLES.glob("billing.*"))
    assert {k.split(".")[0] for k in kinds} == {"subscription", "usage", "invoice", "payment", "account"}
    batch = []
    for n, kind in enumerate(kinds):
        example = EXAMPLES / f"billing.{kind}.v1"
        data = json.loads(sorted(example.glob("*.json"))[0].read_text(encoding="utf-8"))
        batch.append({"event_id": f"BOSS-KIND-{n}", "event_type": kind, "data": data})

    r = await adapter.push(batch)
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == len(kinds)

    for entity in {k.split(".")[0] for k in kinds}:
        mine = [rec for rec in batch if rec["event_type"].startswith(f"{entity}.")]
        found = await read_topic(adapter.bootstrap, f"billing.{entity}", expect=len(mine))
        events = [json.loads(f.value) for f in found]
        assert sorted(e["type"] for e in events) == sorted(f"billing.{rec['event_type']}.v1" for rec in mine)
        for f, event in zip(found, events, strict=True):
            assert f.key.decode() == event["subject"] == event["data"]["customer_id"]


async def test_with_its_relay_off_the_adapter_leaves_publishing_to_a_crm_relay_process(start: Start):
    """The heavy-feed deployment: API workers with `outbox_relay` off and one `crm relay` beside them."""
    batch = [record("activated", "BOSS-RLY-1", "C310"), record("suspended", "BOSS-RLY-2", "C310")]

    async def mine(timeout: float) -> list[str]:
        found = await read_topic(adapter.bootstrap, TOPIC, expect=10_000, timeout=timeout)
        return sorted(e["data"]["boss_event_id"] for e in map(json.loads, (r.value for r in found)))

    async with start(outbox_relay=False) as adapter:
        assert (await adapter.push(batch)).status_code == 202
        await asyncio.sleep(1)  # an in-process relay would have published by now
        assert [i for i in await mine(timeout=1) if i.startswith("BOSS-RLY")] == []
        env = {**os.environ, "CRM_KAFKA_BOOTSTRAP": adapter.bootstrap, "CRM_LOG_LEVEL": "WARNING"}
        command = ("relay", "--service", "billing-adapter", "--database-url", adapter.settings.database_url)
        relay = await asyncio.create_subprocess_exec(sys.executable, "-m", "crm_kit.cli", *command, env=env)
        try:

            async def published_by_relay() -> bool:
                return [i for i in await mine(timeout=1) if i.startswith("BOSS-RLY")] == ["BOSS-RLY-1", "BOSS-RLY-2"]

            await eventually(published_by_relay, timeout=30)
        finally:
            relay.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(relay.wait(), 15) == 0


async def test_event_ids_are_deterministic_so_a_replay_on_a_fresh_database_carries_the_same_ids(
    start: Start, database_url: Callable[[str], Awaitable[str]]
):
    batch = [record("activated", "BOSS-DET-1", "C300"), record("suspended", "BOSS-DET-2", "C300")]
    async with start(db=await database_url("billing-adapter-a")) as first:
        assert (await first.push(batch)).status_code == 202
        before = await published(first, 2)
    # the ingestion log is lost (a rebuilt adapter): the BOSS replays, consumers must see the same ids
    async with start(db=await database_url("billing-adapter-b")) as second:
        r = await second.push(batch)
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 2
        after = await published(second, 4)
    assert len(before) == 2 and len(after) == 4
    ids = {p.event["data"]["boss_event_id"]: set() for p in after}
    for p in after:
        ids[p.event["data"]["boss_event_id"]].add(p.event["id"])
    assert all(len(v) == 1 for v in ids.values()), ids
    assert {p.event["id"] for p in before} == {p.event["id"] for p in after}
    # RFC 4122 name-based (v5) ids of "<source>/<BOSS id>": the ids every earlier version of the adapter issued
    source = before[0].event["source"].rsplit("/", 1)[1]
    assert {p.event["id"] for p in before} == {
        str(uuid.uuid5(BOSS_NAMESPACE, f"{source}/BOSS-DET-{n}")) for n in (1, 2)
    }


async def test_timestamps_in_any_rfc3339_spelling_the_contract_allows_are_accepted(adapter: Adapter):
    lower = record("resumed", "BOSS-TS-1", "C310", occurred_at="2027-01-06t02:17:43z")
    fraction = record("resumed", "BOSS-TS-2", "C310", occurred_at="2027-01-06T10:17:43.123456789+08:00")

    r = await adapter.push([lower, fraction])

    assert r.status_code == 202, r.text
    found = {p.event["data"]["boss_event_id"]: p.event for p in await published(adapter, 2)}
    assert datetime.fromisoformat(found["BOSS-TS-1"]["time"]) == datetime.fromisoformat("2027-01-06T02:17:43+00:00")
    assert found["BOSS-TS-1"]["data"]["occurred_at"] == "2027-01-06t02:17:43z"
    assert datetime.fromisoformat(found["BOSS-TS-2"]["time"]).replace(microsecond=0) == datetime.fromisoformat(
        "2027-01-06T02:17:43+00:00"
    )


# 2. de-duplication


async def test_the_same_batch_pushed_twice_is_published_once(adapter: Adapter):
    batch = [*lifecycle("C400", "BOSS-DUP")[:3], record("ported_out", "BOSS-DUP-X", "C401")]
    first = await adapter.push(batch)
    assert first.status_code == 202, first.text
    assert first.json()["accepted"] == 4

    second = await adapter.push(batch)

    assert second.status_code == 202, second.text
    receipt = second.json()
    assert (receipt["accepted"], receipt["duplicates"], receipt["rejected"]) == (0, 4, 0)
    assert statuses(receipt) == ["duplicate"] * 4
    assert [o["event_id"] for o in receipt["results"]] == [rec["event_id"] for rec in batch]
    found = await published_settled(adapter, 4)
    assert sorted(p.event["data"]["boss_event_id"] for p in found) == sorted(rec["event_id"] for rec in batch)


async def test_an_event_id_repeated_within_one_batch_is_published_once(adapter: Adapter):
    a, b = record("activated", "BOSS-IN-1", "C500"), record("suspended", "BOSS-IN-2", "C500")

    r = await adapter.push([a, b, copy.deepcopy(a)])

    assert r.status_code == 202, r.text
    assert statuses(r.json()) == ["accepted", "accepted", "duplicate"]
    assert (r.json()["accepted"], r.json()["duplicates"]) == (2, 1)
    found = await published_settled(adapter, 2)
    assert sorted(p.event["data"]["boss_event_id"] for p in found) == ["BOSS-IN-1", "BOSS-IN-2"]


async def test_an_event_id_reused_with_different_content_is_rejected_and_quarantined(adapter: Adapter):
    original = record("activated", "BOSS-CF-1", "C600")
    assert (await adapter.push([original])).status_code == 202
    changed = record("activated", "BOSS-CF-1", "C600", payment_mode="prepaid")

    r = await adapter.push([changed])

    body = assert_problem(r, 422, "records-rejected", field="records[0].event_id")
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, 0, 1)
    outcome = body["results"][0]
    assert outcome["status"] == "rejected" and outcome["event_id"] == "BOSS-CF-1"
    assert "different content" in outcome["reason"]
    kept = await adapter.quarantined(outcome["quarantine_id"])
    assert kept["boss_event_id"] == "BOSS-CF-1"
    assert kept["event_type"] == "billing.subscription.activated.v1"
    assert kept["status"] == "open"
    assert same_json(kept["raw"], changed)

    # the changed copy twice in one batch: both conflict with what was accepted, neither is a "duplicate"
    twice = await adapter.push([changed, copy.deepcopy(changed)])
    body = assert_problem(twice, 422, "records-rejected")
    assert statuses(body) == ["rejected", "rejected"]
    assert all(o["quarantine_id"] for o in body["results"])

    # within one batch: the first is accepted, a different record under the same id is not
    fresh, clash = record("suspended", "BOSS-CF-2", "C600"), record("suspended", "BOSS-CF-2", "C600", reason="fraud")
    mixed = await adapter.push([fresh, clash])
    body = assert_problem(mixed, 422, "records-rejected", field="records[1].event_id")
    assert statuses(body) == ["accepted", "rejected"]
    assert same_json((await adapter.quarantined(body["results"][1]["quarantine_id"]))["raw"], clash)

    found = await published_settled(adapter, 2)
    assert sorted((p.event["data"]["boss_event_id"], p.event["data"].get("payment_mode")) for p in found) == [
        ("BOSS-CF-1", "postpaid"),
        ("BOSS-CF-2", None),
    ]
    assert next(p for p in found if p.event["data"]["boss_event_id"] == "BOSS-CF-2").event["data"]["reason"] == (
        "arrears"
    )


async def test_the_same_batch_pushed_concurrently_is_accepted_once(adapter: Adapter):
    batch = [record("resumed", f"BOSS-CC-{i}", f"C65{i % 3}") for i in range(20)]

    answers = await asyncio.gather(*(adapter.push(batch) for _ in range(4)))

    assert [a.status_code for a in answers] == [202] * 4, [a.text for a in answers]
    assert sum(a.json()["accepted"] for a in answers) == 20
    assert sum(a.json()["duplicates"] for a in answers) == 60
    for i in range(20):  # each record accepted by exactly one of the pushes
        assert sorted(a.json()["results"][i]["status"] for a in answers) == ["accepted"] + ["duplicate"] * 3
    found = await published_settled(adapter, 20)
    assert sorted(p.event["data"]["boss_event_id"] for p in found) == sorted(rec["event_id"] for rec in batch)


# 3. across restarts


async def test_idempotent_across_restarts(start: Start, database_url: Callable[[str], Awaitable[str]]):
    db = await database_url("billing-adapter")
    batch = lifecycle("C700", "BOSS-RS")
    async with start(db=db) as before:
        r = await before.push(batch)
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 5

    async with start(db=db) as after:
        r = await after.push(batch)
        assert r.status_code == 202, r.text
        assert (r.json()["accepted"], r.json()["duplicates"]) == (0, 5)
        found = await published_settled(after, 5)
    assert sorted(p.event["data"]["boss_event_id"] for p in found) == sorted(rec["event_id"] for rec in batch)


# 4. bad input


BAD_RECORDS: list[tuple[str, Any, str, str]] = [
    # (what, record, field at fault, words in the reason)
    (
        "unknown event_type",
        {**record("resumed", "BOSS-BAD-1"), "event_type": "subscription.exploded"},
        "records[0].event_type",
        "unknown event_type",
    ),
    (
        "missing event_id",
        {k: v for k, v in record("resumed", "x").items() if k != "event_id"},
        "records[0].event_id",
        "",
    ),
    ("event_id with a space", record("resumed", "BOSS BAD"), "records[0].event_id", "event_id"),
    ("event_id with a trailing newline", record("resumed", "BOSS-BAD-NL\n"), "records[0].event_id", "event_id"),
    (
        "missing data",
        {k: v for k, v in record("resumed", "BOSS-BAD-2").items() if k != "data"},
        "records[0].data",
        "data",
    ),
    ("data not an object", {**record("resumed", "BOSS-BAD-3"), "data": [1, 2]}, "records[0].data", "data"),
    ("record not an object", ["BOSS-BAD-4", "subscription.resumed"], "records[0]", "object"),
    (
        "missing msisdn",
        {**record("resumed", "BOSS-BAD-5"), "data": {k: v for k, v in DATA["resumed"].items() if k != "msisdn"}},
        "records[0].data.msisdn",
        "required",
    ),
    (
        "missing nested plan.code",
        record("plan_changed", "BOSS-BAD-6", plan={"name": "5G畅享套餐199元", "monthly_fee_fen": 19900}),
        "records[0].data.plan.code",
        "required",
    ),
    (
        "customer_id of the wrong type",
        record("resumed", "BOSS-BAD-7", customer_id=12345),
        "records[0].data.customer_id",
        "",
    ),
    (
        "fee as a string",
        record("plan_changed", "BOSS-BAD-8", plan={"code": "X", "name": "X", "monthly_fee_fen": "19900"}),
        "records[0].data.plan.monthly_fee_fen",
        "integer",
    ),
    (
        "fee with decimals",
        record("plan_changed", "BOSS-BAD-9", plan={"code": "X", "name": "X", "monthly_fee_fen": 129.5}),
        "records[0].data.plan.monthly_fee_fen",
        "integer",
    ),
    (
        "fee as 129.0 (yuan with a decimal point, not fen)",
        record("plan_changed", "BOSS-BAD-10", plan={"code": "X", "name": "X", "monthly_fee_fen": 129.0}),
        "records[0].data.plan.monthly_fee_fen",
        "integer",
    ),
    ("msisdn of 10 digits", record("resumed", "BOSS-BAD-11", msisdn="1381234567"), "records[0].data.msisdn", ""),
    (
        "local time",
        record("resumed", "BOSS-BAD-12", occurred_at="2027-01-06T10:17:43"),
        "records[0].data.occurred_at",
        "",
    ),
    (
        "no such day",
        record("resumed", "BOSS-BAD-13", occurred_at="2027-02-30T10:00:00+08:00"),
        "records[0].data.occurred_at",
        "",
    ),
    ("unknown reason", record("suspended", "BOSS-BAD-14", reason="停机"), "records[0].data.reason", ""),
    ("unexpected field", record("resumed", "BOSS-BAD-15", note="hi"), "records[0].data.note", "not allowed"),
    (
        "unexpected field with a name longer than quarantine.field holds (VARCHAR 256)",
        record("resumed", "BOSS-BAD-17", **{"x" * 400: 1}),
        ("records[0].data." + "x" * 400)[:256],
        "not allowed",
    ),
    (
        "unpaired surrogate (not Unicode text)",
        record("activated", "BOSS-BAD-16", customer={"name": "\ud800", "type": "individual", "region": "BJ"}),
        "records[0].data.customer.name",
        "Unicode",
    ),
]


async def test_each_bad_record_is_rejected_with_the_field_at_fault_and_quarantined_raw(adapter: Adapter):
    for what, bad, field, words in BAD_RECORDS:
        r = await adapter.push(content=json.dumps({"records": [bad]}).encode())

        body = assert_problem(r, 422, "records-rejected", field=field)
        assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, 0, 1), what
        outcome = body["results"][0]
        assert outcome["status"] == "rejected", what
        assert outcome["field"] == field, what
        assert words in outcome["reason"], (what, outcome["reason"])
        assert outcome["reason"] in body["detail"], what
        kept = await adapter.quarantined(outcome["quarantine_id"])
        assert (kept["reason"], kept["field"], kept["status"]) == (outcome["reason"], field, "open"), what
        assert same_json(kept["raw"], bad), (what, kept["raw"])

    assert await published_settled(adapter, 0) == []


async def test_a_mixed_batch_accepts_the_valid_records_and_quarantines_the_rest(adapter: Adapter):
    batch = [
        record("activated", "BOSS-MIX-1", "C800"),
        record("plan_changed", "BOSS-MIX-2", "C800", plan={"code": "X", "name": "X", "monthly_fee_fen": 129.0}),
        record("suspended", "BOSS-MIX-3", "C800"),
        {**record("resumed", "BOSS-MIX-4", "C801"), "event_type": "subscription.exploded"},
        record("ported_out", "BOSS-MIX-5", "C801"),
        record("resumed", "BOSS-MIX-6", "C801", msisdn="1381234567"),
    ]

    r = await adapter.push(content=json.dumps({"records": batch}).encode())

    body = assert_problem(r, 422, "records-rejected", field="records[1].data.plan.monthly_fee_fen")
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (3, 0, 3)
    assert statuses(body) == ["accepted", "rejected", "accepted", "rejected", "accepted", "rejected"]
    assert "3 of 6" in body["detail"]

    found = await published_settled(adapter, 3)
    assert sorted(p.event["data"]["boss_event_id"] for p in found) == ["BOSS-MIX-1", "BOSS-MIX-3", "BOSS-MIX-5"]

    listed = await adapter.http.get(QUARANTINE)
    assert listed.status_code == 200
    assert listed.headers["x-total-count"] == "3"
    assert {q["boss_event_id"] for q in listed.json()} == {"BOSS-MIX-2", "BOSS-MIX-4", "BOSS-MIX-6"}
    for i in (1, 3, 5):
        outcome = body["results"][i]
        by_id = await adapter.http.get(QUARANTINE, params={"event_id": batch[i]["event_id"]})
        assert [q["id"] for q in by_id.json()] == [outcome["quarantine_id"]]
        kept = by_id.json()[0]
        assert kept["reason"] == outcome["reason"] and kept["field"] == outcome["field"]
        assert kept["source"] == "boss"
        assert same_json(kept["raw"], batch[i])
        assert kept == await adapter.quarantined(outcome["quarantine_id"])


UNREADABLE_BODIES = {
    "nested too deep": b"[" * 100_000 + b"]" * 100_000,
    "5000-digit number": b'{"records": [{"event_id": "BOSS-NUM-1", "n": ' + b"9" * 5000 + b"}]}",
    "NaN is not JSON": b'{"records": [{"event_id": "BOSS-NAN-1", "n": NaN}]}',
    "not UTF-8": b'{"records": [{"event_id": "BOSS-\xff"}]}',
    "binary with NUL": b'{"records": [\x00\x01\x02',
}


async def test_a_body_that_is_not_json_is_400_and_quarantined_whole(adapter: Adapter):
    text = '{"records": [{"event_id": "BOSS-MAL-1", "event_type": "subscription.resumed", "data": {'

    r = await adapter.push(content=text.encode())

    body = assert_problem(r, 400, "malformed-body", field="body")
    kept = await adapter.quarantined(body["quarantine_id"])
    assert kept["raw"] == text
    assert kept["field"] == "body"
    assert "JSON" in kept["reason"]

    # JSON, but not a batch: refused, and kept too
    r = await adapter.push(content=b'{"event_id": "BOSS-NB-1"}')
    body = assert_problem(r, 422, "invalid-input", field="records")
    assert (await adapter.quarantined(body["quarantine_id"]))["raw"] == '{"event_id": "BOSS-NB-1"}'

    # what Python's json cannot read is bad input too: 400, never a 500
    for what, content in UNREADABLE_BODIES.items():
        r = await adapter.push(content=content)

        body = assert_problem(r, 400, "malformed-body", field="body")
        kept = await adapter.quarantined(body["quarantine_id"])
        assert kept["field"] == "body", what
        assert kept["raw"][:12] == content[:12].decode("utf-8", "backslashreplace"), what
    assert await published_settled(adapter, 0) == []


async def test_a_body_over_the_size_limit_is_413_and_an_unsupported_media_type_415(adapter: Adapter):
    big = b'{"records": [' + b" " * (10 * 1024 * 1024) + b"]}"

    r = await adapter.push(content=big)
    assert_problem(r, 413, "payload-too-large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while streaming
        for _ in range(10):
            yield b" " * (1024 * 1024)

    r = await adapter.http.post(EVENTS, content=chunks(), headers={"content-type": "application/json"})
    assert_problem(r, 413, "payload-too-large")

    content = json.dumps({"records": [record("resumed", "BOSS-MT-1")]}).encode()

    assert_problem(
        await adapter.push(content=content, **{"content-type": "text/plain"}),
        415,
        "unsupported-media-type",
        field="Content-Type",
    )
    assert_problem(
        await adapter.push(content=content, **{"content-type": "application/xml"}),
        415,
        "unsupported-media-type",
        field="Content-Type",
    )
    assert_problem(
        await adapter.push(content=content, **{"content-type": "application/json; charset=gbk"}),
        415,
        "unsupported-media-type",
        field="Content-Type",
    )
    assert_problem(
        await adapter.push(content=content, **{"content-encoding": "br"}),
        415,
        "unsupported-media-type",
        field="Content-Encoding",
    )
    ok = await adapter.push(content=content, **{"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 202, ok.text


async def test_a_batch_over_5000_records_is_413_and_5000_are_accepted(adapter: Adapter):
    base = record("resumed", "BOSS-BIG", "C900")

    def batch(n: int, prefix: str) -> list[dict[str, Any]]:
        return [{**base, "event_id": f"{prefix}-{i}"} for i in range(n)]

    r = await adapter.push(batch(5001, "BOSS-OVER"))

    assert_problem(r, 413, "payload-too-large", field="records")
    assert "5001" in r.json()["detail"]
    assert (await adapter.http.get(QUARANTINE)).headers["x-total-count"] == "0"

    r = await adapter.push(batch(5000, "BOSS-LIMIT"))
    assert r.status_code == 202, r.text[:500]
    assert r.json()["accepted"] == 5000


# 5. NDJSON and gzip


def ndjson(*lines: Any) -> bytes:
    return b"".join(
        (line if isinstance(line, bytes) else json.dumps(line, ensure_ascii=False).encode()) + b"\n" for line in lines
    )


async def test_ndjson_with_a_broken_line_quarantines_that_line_only(adapter: Adapter):
    good = [record("activated", "BOSS-ND-1", "C1000"), record("suspended", "BOSS-ND-2", "C1000")]
    # a name with U+2028 is one JSON line (newline-delimited means "\n" only)
    good.append(
        record("activated", "BOSS-ND-3", "C1001", customer={"name": "甲\u2028乙", "type": "individual", "region": "BJ"})
    )
    broken = b'{"event_id": "BOSS-ND-X", "event_type": "subscription.resumed", "data": {'
    content = ndjson(good[0], broken, good[1], b"", good[2])

    r = await adapter.push(content=content, **{"content-type": "application/x-ndjson"})

    body = assert_problem(r, 422, "records-rejected", field="records[1]")
    assert statuses(body) == ["accepted", "rejected", "accepted", "accepted"]
    assert "line 2" in body["results"][1]["reason"]
    kept = await adapter.quarantined(body["results"][1]["quarantine_id"])
    assert kept["raw"] == broken.decode()
    found = await published_settled(adapter, 3)
    assert sorted(p.event["data"]["boss_event_id"] for p in found) == ["BOSS-ND-1", "BOSS-ND-2", "BOSS-ND-3"]
    name = next(p for p in found if p.event["data"]["boss_event_id"] == "BOSS-ND-3").event["data"]["customer"]["name"]
    assert name == "甲\u2028乙"


async def test_an_ndjson_line_that_is_not_utf8_is_quarantined_not_mangled(adapter: Adapter):
    gbk = json.dumps(
        record("activated", "BOSS-GBK-1", "C1100", customer={"name": "张伟", "type": "individual", "region": "BJ"}),
        ensure_ascii=False,
    ).encode("gbk")
    nul = b'{"event_id": "BOSS-NUL-1"\x00}'
    ok = record("resumed", "BOSS-GBK-2", "C1100")

    r = await adapter.push(content=ndjson(gbk, nul, ok), **{"content-type": "application/x-ndjson; charset=utf-8"})

    body = assert_problem(r, 422, "records-rejected", field="records[0]")
    assert statuses(body) == ["rejected", "rejected", "accepted"]
    assert "not UTF-8" in body["results"][0]["reason"]
    for outcome, boss_id in zip(body["results"][:2], ("BOSS-GBK-1", "BOSS-NUL-1"), strict=True):
        assert boss_id in (await adapter.quarantined(outcome["quarantine_id"]))["raw"]
    found = await published_settled(adapter, 1)
    assert [p.event["data"]["boss_event_id"] for p in found] == ["BOSS-GBK-2"]


async def test_gzip_bodies_are_accepted(adapter: Adapter):
    json_batch = [record("activated", "BOSS-GZ-1", "C1200")]
    r = await adapter.push(
        content=gzip.compress(json.dumps({"records": json_batch}).encode()), **{"content-encoding": "gzip"}
    )
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 1

    lines = [record("suspended", "BOSS-GZ-2", "C1200"), record("resumed", "BOSS-GZ-3", "C1200")]
    r = await adapter.push(
        content=gzip.compress(ndjson(*lines)), **{"content-type": "application/x-ndjson", "content-encoding": "GZIP"}
    )
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 2

    # a gzip file of several members (what `cat a.gz b.gz` makes) is all of them, not the first only
    members = gzip.compress(ndjson(record("plan_changed", "BOSS-GZ-4", "C1201"))) + gzip.compress(
        ndjson(record("terminated", "BOSS-GZ-5", "C1201"))
    )
    r = await adapter.push(content=members, **{"content-type": "application/x-ndjson", "content-encoding": "gzip"})
    assert r.status_code == 202, r.text
    assert statuses(r.json()) == ["accepted", "accepted"]

    found = await published_settled(adapter, 5)
    assert sorted(p.event["data"]["boss_event_id"] for p in found) == [f"BOSS-GZ-{i}" for i in range(1, 6)]


async def test_a_gzip_bomb_is_413_and_a_broken_gzip_400(start: Start):
    async with start(max_decompressed_bytes=64 * 1024) as adapter:
        bomb = gzip.compress(b'{"records": [' + b" " * (5 * 1024 * 1024) + b"]}")
        assert len(bomb) < 64 * 1024

        r = await adapter.push(content=bomb, **{"content-encoding": "gzip"})

        assert_problem(r, 413, "payload-too-large", field="body")
        # a bomb of many members: the ceiling is for the whole body
        members = gzip.compress(b" " * 40_000) * 3
        assert_problem(await adapter.push(content=members, **{"content-encoding": "gzip"}), 413, "payload-too-large")
        # under the ceiling is fine
        fits = gzip.compress(json.dumps({"records": [record("resumed", "BOSS-FIT-1")]}).encode())
        assert (await adapter.push(content=fits, **{"content-encoding": "gzip"})).status_code == 202

        # a stream cut short, or not gzip at all: 400, kept
        whole = gzip.compress(ndjson(*(record("resumed", f"BOSS-TR-{i}", "C1300") for i in range(50))))
        cut_short = await adapter.push(
            content=whole[: len(whole) // 2], **{"content-type": "application/x-ndjson", "content-encoding": "gzip"}
        )
        body = assert_problem(cut_short, 400, "malformed-body", field="body")
        assert (await adapter.quarantined(body["quarantine_id"]))["raw"]
        garbage = await adapter.push(content=b"\x00\x01not gzip at all\xff", **{"content-encoding": "gzip"})
        body = assert_problem(garbage, 400, "malformed-body", field="body")
        assert (await adapter.quarantined(body["quarantine_id"]))["raw"]

        found = await published_settled(adapter, 1)
        assert [p.event["data"]["boss_event_id"] for p in found] == ["BOSS-FIT-1"]


# 6. the quarantine list


async def test_the_quarantine_list_filters_and_pages(adapter: Adapter):
    bad = [record("resumed", f"BOSS-Q-{i}", msisdn="1") for i in range(5)]
    r = await adapter.push(bad)
    assert r.status_code == 422
    assert (await adapter.push(content=b"not json")).status_code == 400

    everything = await adapter.http.get(QUARANTINE)
    assert everything.status_code == 200
    assert everything.headers["x-total-count"] == "6"
    assert everything.headers["x-result-count"] == "6"
    rows = everything.json()
    assert rows[0]["field"] == "body", "newest first"
    assert [r["received_at"] for r in rows] == sorted((r["received_at"] for r in rows), reverse=True)

    one = await adapter.http.get(QUARANTINE, params={"event_id": "BOSS-Q-3"})
    assert one.headers["x-total-count"] == "1"
    assert [q["boss_event_id"] for q in one.json()] == ["BOSS-Q-3"]
    none = await adapter.http.get(QUARANTINE, params={"event_id": "BOSS-Q-99"})
    assert (none.json(), none.headers["x-total-count"]) == ([], "0")

    assert (await adapter.http.get(QUARANTINE, params={"status": "open"})).headers["x-total-count"] == "6"
    discarded = await adapter.http.get(QUARANTINE, params={"status": "discarded"})
    assert (discarded.json(), discarded.headers["x-total-count"]) == ([], "0")
    assert_problem(await adapter.http.get(QUARANTINE, params={"status": "lost"}), 422, "invalid-input", field="status")

    pages = []
    for offset in (0, 2, 4, 6):
        page = await adapter.http.get(QUARANTINE, params={"offset": offset, "limit": 2})
        assert page.status_code == 200
        assert page.headers["x-total-count"] == "6"
        assert page.headers["x-result-count"] == str(len(page.json()))
        pages.extend(q["id"] for q in page.json())
    assert pages == [q["id"] for q in rows]

    assert_problem(await adapter.http.get(QUARANTINE, params={"limit": 1001}), 422, "invalid-input", field="limit")
    assert_problem(await adapter.http.get(QUARANTINE, params={"limit": 0}), 422, "invalid-input", field="limit")
    assert_problem(await adapter.http.get(QUARANTINE, params={"offset": -1}), 422, "invalid-input", field="offset")
    assert (await adapter.http.get(QUARANTINE, params={"limit": 1000})).status_code == 200

    missing = await adapter.http.get(f"{QUARANTINE}/{uuid.uuid4()}")
    assert_problem(missing, 404, "not-found", field="quarantine_id")
    assert_problem(await adapter.http.get(f"{QUARANTINE}/{'x' * 300}"), 404, "not-found", field="quarantine_id")


# 7. operations


def _requests_total(metrics: str, method: str, route: str, status: str) -> float:
    prefix = f'crm_billing_adapter_http_requests_total{{method="{method}",route="{route}",status="{status}"}} '
    return sum(float(line.removeprefix(prefix)) for line in metrics.splitlines() if line.startswith(prefix))


async def test_health_and_metrics(adapter: Adapter, broker: EmbeddedBroker):
    live = await adapter.http.get("/health/live")
    assert (live.status_code, live.json()["status"]) == (200, "up")
    ready = await adapter.http.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "up", "broker": "up", "topics": "up"}

    before = (await adapter.http.get("/metrics")).text
    assert (await adapter.push([record("resumed", "BOSS-MET-1")])).status_code == 202
    metrics = await adapter.http.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE crm_billing_adapter_http_requests_total counter" in metrics.text
    grew = _requests_total(metrics.text, "POST", EVENTS, "202") - _requests_total(before, "POST", EVENTS, "202")
    assert grew == 1
    assert "crm_billing_adapter_outbox_backlog" in metrics.text

    # the broker crashes (a hard kill: it is this test's own broker process)
    assert broker.process is not None
    broker.process.kill()
    broker.process.wait()
    down = await adapter.http.get("/health/ready")
    assert down.status_code == 503
    assert down.headers["content-type"] == "application/problem+json"
    body = down.json()
    assert body["type"] == PROBLEM + "not-ready"
    assert body["checks"]["broker"] == "down"
    assert body["checks"]["database"] == "up"

    broker.start()  # back on the same port
    back = await eventually(lambda: _ready(adapter), timeout=20)
    assert back.json()["checks"] == {"database": "up", "broker": "up", "topics": "up"}


async def _ready(adapter: Adapter) -> httpx.Response | None:
    r = await adapter.http.get("/health/ready")
    return r if r.status_code == 200 else None
