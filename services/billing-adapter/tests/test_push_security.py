"""Who may push, and how much we take in while the broker is away: signed pushes (接口签名) and back-pressure.

Real HTTP against the served adapter, a real broker (stopped and started again for back-pressure), a real
database. A push refused here is refused whole: not quarantined, not published, but logged and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from crm_billing_adapter.app import create_app
from crm_billing_adapter.domain import admission
from crm_billing_adapter.settings import Settings
from crm_kit import outbox
from crm_kit.broker import EmbeddedBroker, ensure_topics
from crm_kit.events import load_contracts
from crm_kit.settings import KafkaSettings, find_contracts_dir
from crm_kit.signing import DEV_SECRET, DEV_SOURCE, signed_headers, signed_push
from crm_kit.testing import bearer, boss_push, eventually, read_topic, serve

TOPIC = "billing.subscription"
EVENTS = "/boss/v1/events"
QUARANTINE = "/boss/v1/quarantine"
PROBLEM = "urn:telecom-crm:problem:"
REFUSED = "crm_billing_adapter_push_refused_total"
RECORDS = "crm_billing_adapter_records_total"
RESUMED = json.loads(
    (find_contracts_dir() / "examples" / "billing.subscription.resumed.v1" / "after_payment.json").read_text("utf-8")
)


def record(event_id: str, customer: str = "C7000") -> dict[str, Any]:
    """A valid BOSS record (a line resumed, 复机) for `customer`, from the contract's example."""
    data = copy.deepcopy(RESUMED)
    del data["boss_event_id"]
    data.update(customer_id=customer, account_id=f"A{customer}", subscription_id=f"S{customer}")
    return {"event_id": event_id, "event_type": "subscription.resumed", "data": data}


def records(prefix: str, n: int) -> list[dict[str, Any]]:
    return [record(f"{prefix}-{i}") for i in range(n)]


@dataclass
class Adapter:
    http: httpx.AsyncClient
    bootstrap: str

    async def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels match (0 when there are none yet)."""
        text = (await self.http.get("/metrics")).text
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    async def quarantined(self) -> int:
        r = await self.http.get(QUARANTINE, headers=bearer("admin-0001", roles=("admin",)))
        assert r.status_code == 200, r.text
        return int(r.headers["x-total-count"])

    async def published(self, expect: int, timeout: float = 10) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in await read_topic(self.bootstrap, TOPIC, expect=expect, timeout=timeout)]

    async def published_settled(self, expect: int) -> list[dict[str, Any]]:
        """Everything on the topic once a sentinel pushed now is there (the relay publishes in order), without it."""
        sentinel = f"SENTINEL-{uuid.uuid4().hex[:12]}"
        r = await boss_push(self.http, [record(sentinel, "CSENTINEL")])
        assert r.status_code == 202, r.text

        async def probe() -> list[dict[str, Any]] | None:
            found = await self.published(expect + 1)
            return found if any(e["data"]["boss_event_id"] == sentinel for e in found) else None

        found = await eventually(probe, timeout=30)
        return [e for e in found if e["data"]["boss_event_id"] != sentinel]


Start = Callable[..., contextlib.AbstractAsyncContextManager[Adapter]]


@pytest_asyncio.fixture
async def start(kafka: KafkaSettings, database_url: Callable[[str], Awaitable[str]]) -> Start:
    """`async with start(**settings) as adapter`: the served app, ready (DB up, topics provisioned)."""

    @contextlib.asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[Adapter]:
        given: dict[str, Any] = {
            "database_url": await database_url("billing-adapter"),
            "kafka": kafka,
            "log_json": False,
            "outbox_poll_seconds": 0.1,
            **overrides,
        }
        async with serve(create_app(Settings(**given))) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:

            async def ready() -> bool:
                return (await http.get("/health/ready")).status_code == 200

            await eventually(ready, timeout=20)
            yield Adapter(http, kafka.bootstrap)

    return run


@pytest_asyncio.fixture
async def adapter(start: Start) -> AsyncIterator[Adapter]:
    async with start() as a:
        yield a


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def warnings(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == logging.WARNING]


@contextlib.contextmanager
def collected(logger_name: str) -> Iterator[Collected]:
    """What one logger logs, whatever the service does to the root handlers."""
    handler = Collected()
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def admission_log() -> contextlib.AbstractContextManager[Collected]:
    return collected(admission.__name__)


def assert_refused(r: httpx.Response, reason: str, field: str) -> dict[str, Any]:
    """401 problem+json naming the header at fault and why, with the scheme to authenticate with."""
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"] == 'HMAC-SHA256 realm="boss"'
    body = r.json()
    assert body["type"] == PROBLEM + "bad-signature"
    assert (body["status"], body["reason"], body["field"]) == (401, reason, field)
    assert body["detail"] and body["request_id"] == r.headers["x-request-id"]
    assert "quarantine_id" not in body
    return body


async def post(adapter: Adapter, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await adapter.http.post(EVENTS, content=body, headers={"Content-Type": "application/json", **headers})


# 1. signatures


async def test_an_unsigned_push_is_refused_whole_not_kept_not_published_and_logged_and_counted(adapter: Adapter):
    body = json.dumps({"records": records("BOSS-UNSIGNED", 3)}).encode()
    before = {reason: await adapter.metric(REFUSED, reason=reason) for reason in ("missing_source", "missing_header")}

    with admission_log() as logged:
        nothing = await post(adapter, body, {})
        source_only = await post(adapter, body, {"X-Boss-Source": DEV_SOURCE})
        no_signature = await post(
            adapter, body, {"X-Boss-Source": DEV_SOURCE, "X-Boss-Timestamp": str(int(time.time()))}
        )

    assert_refused(nothing, "missing_source", "X-Boss-Source")
    assert (
        "X-Boss-Signature is missing" not in assert_refused(source_only, "missing_header", "X-Boss-Timestamp")["detail"]
    )
    assert "X-Boss-Signature is missing" in assert_refused(no_signature, "missing_header", "X-Boss-Signature")["detail"]
    warnings = logged.warnings()
    assert len(warnings) == 3
    assert "missing_source" in warnings[0]
    assert all("'boss'" in w and "missing_header" in w for w in warnings[1:]), warnings
    assert await adapter.metric(REFUSED, reason="missing_source") == before["missing_source"] + 1
    assert await adapter.metric(REFUSED, reason="missing_header") == before["missing_header"] + 2
    assert await adapter.quarantined() == 0
    assert await adapter.published_settled(0) == []


async def test_a_wrong_secret_an_unknown_source_a_bad_timestamp_or_a_tampered_body_is_refused(adapter: Adapter):
    body = json.dumps({"records": records("BOSS-BAD", 2)}).encode()
    before = await adapter.metric(REFUSED, reason="bad_signature")

    with admission_log() as logged:
        wrong_secret = await post(adapter, body, signed_headers(DEV_SOURCE, "not-the-secret", body))
        unknown = await post(adapter, body, signed_headers("boss-elsewhere", DEV_SECRET, body))
        signed = signed_headers(DEV_SOURCE, DEV_SECRET, body)
        tampered_body = body.replace(b"BOSS-BAD-1", b"BOSS-BAD-9")
        tampered = await post(adapter, tampered_body, signed)
        other_scheme = await post(adapter, body, {**signed, "X-Boss-Signature": "md5=" + "0" * 32})
        not_seconds = await post(adapter, body, {**signed, "X-Boss-Timestamp": "2027-01-06T10:00:00Z"})

    assert_refused(wrong_secret, "bad_signature", "X-Boss-Signature")
    assert "'boss-elsewhere'" in assert_refused(unknown, "unknown_source", "X-Boss-Source")["detail"]
    assert_refused(tampered, "bad_signature", "X-Boss-Signature")
    assert_refused(other_scheme, "bad_signature", "X-Boss-Signature")
    assert_refused(not_seconds, "bad_timestamp", "X-Boss-Timestamp")
    assert any("'boss-elsewhere'" in w and "unknown_source" in w for w in logged.warnings())
    assert await adapter.metric(REFUSED, reason="bad_signature") == before + 3

    # the untouched push goes through
    ok = await post(adapter, body, signed)
    assert ok.status_code == 202, ok.text
    found = await adapter.published_settled(2)
    assert sorted(e["data"]["boss_event_id"] for e in found) == ["BOSS-BAD-0", "BOSS-BAD-1"]
    assert await adapter.quarantined() == 0


async def test_a_timestamp_outside_the_five_minute_window_is_refused_either_way(adapter: Adapter):
    body = json.dumps({"records": records("BOSS-TS", 1)}).encode()
    now = time.time()

    stale = await post(adapter, body, signed_headers(DEV_SOURCE, DEV_SECRET, body, now=now - 360))
    ahead = await post(adapter, body, signed_headers(DEV_SOURCE, DEV_SECRET, body, now=now + 360))

    assert " old" in assert_refused(stale, "stale_timestamp", "X-Boss-Timestamp")["detail"]
    assert "ahead" in assert_refused(ahead, "stale_timestamp", "X-Boss-Timestamp")["detail"]
    # four minutes of clock drift is within the window
    drifted = await post(adapter, body, signed_headers(DEV_SOURCE, DEV_SECRET, body, now=now - 240))
    assert drifted.status_code == 202, drifted.text


async def test_a_valid_push_replayed_within_the_window_is_all_duplicates_and_published_once(adapter: Adapter):
    batch = records("BOSS-REPLAY", 3)
    body, headers = signed_push(batch, DEV_SOURCE, DEV_SECRET)

    first = await post(adapter, body, headers)
    replayed = await post(adapter, body, headers)  # the same request, captured and sent again

    assert first.status_code == 202, first.text
    assert replayed.status_code == 202, replayed.text
    assert [o["status"] for o in replayed.json()["results"]] == ["duplicate"] * 3
    found = await adapter.published_settled(3)
    assert sorted(e["data"]["boss_event_id"] for e in found) == [r["event_id"] for r in batch]


async def test_a_gzip_push_is_signed_over_the_gzip_bytes_as_sent(adapter: Adapter):
    batch = records("BOSS-GZ", 2)

    ok = await boss_push(adapter.http, batch, gzip=True)

    assert ok.status_code == 202, ok.text
    assert ok.json()["accepted"] == 2
    # signed over the inflated JSON but sent as gzip: not what was signed
    plain, headers = signed_push(records("BOSS-GZX", 1), DEV_SOURCE, DEV_SECRET)
    compressed, _ = signed_push(plain, DEV_SOURCE, DEV_SECRET, gzip=True)
    refused = await post(adapter, compressed, {**headers, "Content-Encoding": "gzip"})
    assert_refused(refused, "bad_signature", "X-Boss-Signature")
    found = await adapter.published_settled(2)
    assert sorted(e["data"]["boss_event_id"] for e in found) == ["BOSS-GZ-0", "BOSS-GZ-1"]


async def test_each_source_pushes_with_its_own_secret_and_its_records_are_its_own(start: Start):
    secrets = {"boss-north": "north-secret-1", "boss-south": "south-secret-2"}
    with admission_log() as logged:
        async with start(source_secrets=secrets) as adapter:
            north = await boss_push(adapter.http, [record("BOSS-1")], source="boss-north", secret=secrets["boss-north"])
            south = await boss_push(adapter.http, [record("BOSS-1")], source="boss-south", secret=secrets["boss-south"])
            crossed = await boss_push(
                adapter.http, [record("BOSS-2")], source="boss-north", secret=secrets["boss-south"]
            )
            dev = await boss_push(adapter.http, [record("BOSS-3")])  # the dev source is not configured here

            assert [north.status_code, south.status_code] == [202, 202], (north.text, south.text)
            # the same BOSS event id from two sources is two records, not a duplicate
            assert north.json()["accepted"] == south.json()["accepted"] == 1
            assert_refused(crossed, "bad_signature", "X-Boss-Signature")
            assert_refused(dev, "unknown_source", "X-Boss-Source")
            found = await adapter.published(2)
    assert sorted(e["source"] for e in found) == ["/crm/billing-adapter/boss-north", "/crm/billing-adapter/boss-south"]
    assert len({e["id"] for e in found}) == 2
    assert not any("development secret" in w for w in logged.warnings())


async def test_the_development_secret_is_warned_of_at_start(start: Start):
    with admission_log() as logged:
        async with start():
            pass
    assert any("source(s) boss sign with the development secret" in w for w in logged.warnings()), logged.warnings()


# 2. back-pressure


async def test_with_the_broker_down_pushes_are_kept_up_to_the_backlog_bound_then_refused_with_503_and_retry_after(
    start: Start, broker: EmbeddedBroker, kafka: KafkaSettings
):
    # a short request timeout: the relay gives up on a dead broker, and drops its producer, within a second
    quick = kafka.model_copy(update={"request_timeout_ms": 1000})
    async with start(max_outbox_backlog=10, retry_after_seconds=7, kafka=quick) as adapter:
        refused_before = await adapter.metric(REFUSED, reason="backlog_full")
        accepted_before = await adapter.metric(RECORDS, kind="subscription.resumed", outcome="accepted", channel="push")
        assert broker.process is not None
        with collected(outbox.__name__) as relay_log:
            broker.process.kill()  # a crash
            broker.process.wait()
            broker.stop()

            first = await boss_push(adapter.http, records("BOSS-BP-A", 6))
            second = await boss_push(adapter.http, records("BOSS-BP-B", 4))  # 6 waiting + 4 = the bound: still taken
            with admission_log() as logged:
                third = await boss_push(adapter.http, records("BOSS-BP-C", 1))

            assert (first.status_code, second.status_code) == (202, 202), (first.text, second.text)
            assert third.status_code == 503, third.text
            assert third.headers["content-type"] == "application/problem+json"
            assert third.headers["retry-after"] == "7"
            problem = third.json()
            assert problem["type"] == PROBLEM + "backlog-full"
            assert (problem["status"], problem["retry_after_seconds"], problem["backlog"]) == (503, 7, 10)
            assert problem["request_id"] == third.headers["x-request-id"]
            assert any("10 events wait for the broker" in w and "bound of 10" in w for w in logged.warnings())
            assert await adapter.metric(REFUSED, reason="backlog_full") == refused_before + 1
            assert await adapter.quarantined() == 0

            # The embedded broker's log is in memory: the one that comes back is empty, and takes a produce to a
            # topic it does not have yet without keeping it. So it comes back, with its topics, while the relay
            # waits out its back-off: three failures leave it asleep for 1.6 s.
            async def relay_backing_off() -> bool:
                return sum("outbox relay failed" in w for w in relay_log.warnings()) >= 3

            await eventually(relay_backing_off, timeout=30)
        await asyncio.to_thread(broker.start)
        await ensure_topics(broker.bootstrap, load_contracts(find_contracts_dir()))

        async def kept_ones_published() -> bool:
            return len(await adapter.published(10, timeout=2)) >= 10

        await eventually(kept_ones_published, timeout=30)
        again = await boss_push(adapter.http, records("BOSS-BP-C", 1))
        assert again.status_code == 202, again.text
        found = await adapter.published_settled(11)

        metrics = await adapter.http.get("/metrics")
        assert f'{REFUSED}{{reason="backlog_full"}}' in metrics.text
        accepted = await adapter.metric(RECORDS, kind="subscription.resumed", outcome="accepted", channel="push")
        assert accepted - accepted_before == 12  # the ten, the one sent again, the sentinel
    taken = [r["event_id"] for r in records("BOSS-BP-A", 6) + records("BOSS-BP-B", 4) + records("BOSS-BP-C", 1)]
    assert sorted(e["data"]["boss_event_id"] for e in found) == sorted(taken), (
        "every record taken in is published, once; the refused one only when it was sent again"
    )
    assert len({e["id"] for e in found}) == 11
