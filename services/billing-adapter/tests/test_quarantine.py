"""The quarantine (隔离区) as billing operations staff work it: list, summarise, fix, replay, discard.

Real HTTP against the served adapter, a real broker and a real database. Records reach the quarantine the way
they do in production: signed BOSS pushes that the adapter rejects (and, for file-import rows, the ingest a
file import runs).
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest_asyncio
from fastapi import FastAPI

from crm_billing_adapter.app import create_app
from crm_billing_adapter.domain import ingest
from crm_billing_adapter.events import event_id_for
from crm_billing_adapter.settings import Settings
from crm_kit.settings import KafkaSettings, find_contracts_dir
from crm_kit.signing import DEV_SECRET, DEV_SOURCE
from crm_kit.testing import bearer, boss_push, eventually, read_topic, serve

TOPIC = "billing.subscription"
QUARANTINE = "/boss/v1/quarantine"
PROBLEM = "urn:telecom-crm:problem:"
NORTH = "boss-north"
SECRETS = {DEV_SOURCE: DEV_SECRET, NORTH: "north-secret-for-tests"}
EXAMPLES = find_contracts_dir() / "examples"
OPS = "ops-0001"


def _example(kind: str) -> dict[str, Any]:
    folder = EXAMPLES / f"billing.subscription.{kind}.v1"
    return json.loads(sorted(folder.glob("*.json"))[0].read_text(encoding="utf-8"))


def record(kind: str, event_id: str, owner: str = "C000001", **data: Any) -> dict[str, Any]:
    """A BOSS record built from the contract's own example, for customer `owner`; `data` overrides fields."""
    body = copy.deepcopy(_example(kind))
    del body["boss_event_id"]  # the adapter takes it from the record's event_id
    body.update({"customer_id": owner, "account_id": f"A{owner}", "subscription_id": f"S{owner}", **data})
    return {"event_id": event_id, "event_type": f"subscription.{kind}", "data": body}


def ops() -> dict[str, str]:
    return bearer(OPS, roles=("billing_ops",))


@dataclass
class Adapter:
    http: httpx.AsyncClient
    """Calls as a billing operations user (计费运维) unless a test says otherwise."""
    url: str
    app: FastAPI
    bootstrap: str

    async def push(self, records: list[Any] | bytes, source: str = DEV_SOURCE) -> httpx.Response:
        """A signed BOSS push: how every record in these tests reaches the adapter."""
        return await boss_push(self.http, records, source=source, secret=SECRETS[source])

    async def quarantined(self, records: list[Any]) -> list[str]:
        """Push records that must all be rejected; their quarantine ids, in order."""
        r = await self.push(records)
        assert r.status_code == 422, r.text
        outcomes = r.json()["results"]
        assert [o["status"] for o in outcomes] == ["rejected"] * len(records), outcomes
        return [o["quarantine_id"] for o in outcomes]

    async def entry(self, qid: str) -> dict[str, Any]:
        r = await self.http.get(f"{QUARANTINE}/{qid}")
        assert r.status_code == 200, r.text
        return r.json()

    async def fix(self, qid: str, fixed: Any) -> httpx.Response:
        return await self.http.put(f"{QUARANTINE}/{qid}/fix", json=fixed)

    async def replay(self, qid: str) -> httpx.Response:
        return await self.http.post(f"{QUARANTINE}/{qid}/replay")

    async def discard(self, qid: str, note: str | None) -> httpx.Response:
        return await self.http.post(f"{QUARANTINE}/{qid}/discard", json={} if note is None else {"note": note})

    async def listed(self, **params: Any) -> list[dict[str, Any]]:
        r = await self.http.get(QUARANTINE, params=params)
        assert r.status_code == 200, r.text
        assert r.headers["x-total-count"] == str(len(r.json()))
        return r.json()


@pytest_asyncio.fixture
async def adapter(kafka: KafkaSettings, database_url: Callable[[str], Awaitable[str]]) -> AsyncIterator[Adapter]:
    settings = Settings(
        database_url=await database_url("billing-adapter"),
        kafka=kafka,
        log_json=False,
        outbox_poll_seconds=0.1,
        source_secrets=SECRETS,
    )
    app = create_app(settings)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30, headers=ops()) as http:

        async def ready() -> bool:
            return (await http.get("/health/ready")).status_code == 200

        await eventually(ready, timeout=20)
        yield Adapter(http, url, app, kafka.bootstrap)


def assert_problem(r: httpx.Response, status: int, slug: str, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert (body["type"], body["status"]) == (PROBLEM + slug, status)
    assert body["detail"]
    assert body["request_id"] == r.headers["x-request-id"]
    if field is not None:
        assert body.get("field") == field, body
    return body


async def on_topic(adapter: Adapter) -> list[dict[str, Any]]:
    """Every event on billing.subscription once a sentinel pushed now has come through (the relay publishes
    in order, so anything staged before it is there too); sentinels are left out."""
    sentinel = f"SENTINEL-{uuid.uuid4().hex[:12]}"
    assert (await adapter.push([record("resumed", sentinel, "CSENTINEL")])).status_code == 202

    async def probe() -> list[dict[str, Any]] | None:
        found = [json.loads(r.value) for r in await read_topic(adapter.bootstrap, TOPIC, expect=1)]
        return found if any(e["data"]["boss_event_id"] == sentinel for e in found) else None

    found = await eventually(probe, timeout=15)
    return [e for e in found if not e["data"]["boss_event_id"].startswith("SENTINEL-")]


def shanghai_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert text.endswith("+08:00"), text
    return moment


# 1. who may


async def test_every_quarantine_route_needs_billing_ops_or_admin(adapter: Adapter):
    [qid] = await adapter.quarantined([record("resumed", "BOSS-AUTH-1", msisdn="1")])
    good = record("resumed", "BOSS-AUTH-1")
    routes = [
        ("GET", QUARANTINE, None),
        ("GET", f"{QUARANTINE}/summary", None),
        ("GET", f"{QUARANTINE}/{qid}", None),
        ("PUT", f"{QUARANTINE}/{qid}/fix", good),
        ("POST", f"{QUARANTINE}/{qid}/replay", None),
        ("POST", f"{QUARANTINE}/replay", {"ids": [qid]}),
        ("POST", f"{QUARANTINE}/{qid}/discard", {"note": "not mine to decide"}),
    ]
    async with httpx.AsyncClient(base_url=adapter.url, timeout=30) as anonymous:
        for method, path, body in routes:
            none = await anonymous.request(method, path, json=body)
            assert_problem(none, 401, "unauthenticated")
            assert none.headers["www-authenticate"].startswith("Bearer")
            forged = await anonymous.request(method, path, json=body, headers={"Authorization": "Bearer not-a-jwt"})
            assert_problem(forged, 401, "unauthenticated")
            for role in ("agent", "supervisor", "boss"):
                other = await anonymous.request(method, path, json=body, headers=bearer("someone", roles=(role,)))
                assert_problem(other, 403, "forbidden")

    # nothing a refused caller sent was applied
    entry = await adapter.entry(qid)
    assert (entry["status"], entry["fixed_raw"], entry["resolved_by"]) == ("open", None, None)
    assert await on_topic(adapter) == []

    assert (await adapter.http.get(QUARANTINE)).status_code == 200  # billing_ops
    admin = bearer("admin-01", roles=("admin",))
    seen = await adapter.http.get(f"{QUARANTINE}/{qid}", headers=admin)
    assert (seen.status_code, seen.json()) == (200, entry)
    given_up = await adapter.http.post(f"{QUARANTINE}/{qid}/discard", json={"note": "test line"}, headers=admin)
    assert (given_up.status_code, given_up.json()["resolved_by"]) == (200, "admin-01")


# 2. finding what went wrong


async def test_the_list_filters_by_status_id_type_source_job_reason_and_time(adapter: Adapter):
    first = await adapter.quarantined(
        [record("resumed", "BOSS-L-1", msisdn="1"), record("suspended", "BOSS-L-2", reason="holiday")]
    )
    later = await adapter.quarantined([record("resumed", "BOSS-L-3", msisdn="12")])
    r = await adapter.push([record("resumed", "BOSS-N-1", occurred_at="yesterday")], source=NORTH)
    assert r.status_code == 422, r.text
    [north] = [o["quarantine_id"] for o in r.json()["results"]]
    # a bad line of a file import, quarantined as the import's ingest does it
    runtime = adapter.app.state.runtime
    job = str(uuid.uuid4())
    async with runtime.db.sessions.begin() as session:
        result = await ingest.ingest(
            session,
            runtime.contracts,
            ingest.Origin(DEV_SOURCE, job_id=job, line_numbers=[7]),
            [record("terminated", "BOSS-F-7", msisdn="x")],
        )
    [from_file] = [o.quarantine_id for o in result.outcomes]
    assert (await adapter.discard(later[0], "re-sent by the BOSS")).status_code == 200

    everything = await adapter.listed()
    assert [q["id"] for q in everything] == [from_file, north, *later, *reversed(first)], "newest first"
    assert all(shanghai_time(q["received_at"]) for q in everything)

    assert [q["id"] for q in await adapter.listed(status="discarded")] == later
    assert {q["id"] for q in await adapter.listed(status="open")} == {*first, north, from_file}
    assert [q["id"] for q in await adapter.listed(event_id="BOSS-L-2")] == [first[1]]
    assert {q["id"] for q in await adapter.listed(event_type="subscription.resumed")} == {first[0], *later, north}
    assert [q["id"] for q in await adapter.listed(event_type="billing.subscription.suspended.v1")] == [first[1]]
    assert [q["id"] for q in await adapter.listed(source=NORTH)] == [north]
    [kept] = await adapter.listed(job_id=job)
    assert (kept["id"], kept["job_id"], kept["line_no"]) == (from_file, job, 7)
    by_reason = await adapter.listed(q="OCCURRED_AT")  # any case
    assert [q["id"] for q in by_reason] == [north]
    assert await adapter.listed(q="100%_sure") == []  # % and _ are plain characters

    # times as the list shows them (Asia/Shanghai) go back in as they are
    boundary = (await adapter.entry(later[0]))["received_at"]
    assert {q["id"] for q in await adapter.listed(received_from=boundary)} == {*later, north, from_file}
    assert {q["id"] for q in await adapter.listed(received_to=boundary)} == set(first)
    assert [q["id"] for q in await adapter.listed(received_from=boundary, status="open", source=DEV_SOURCE)] == [
        from_file
    ]

    page = await adapter.http.get(QUARANTINE, params={"status": "open", "limit": 2, "offset": 1})
    assert page.headers["x-total-count"] == "4"
    assert [q["id"] for q in page.json()] == [north, first[1]]
    naive = await adapter.http.get(QUARANTINE, params={"received_from": "2027-01-05T10:00:00"})
    assert_problem(naive, 422, "invalid-input", field="received_from")


async def test_the_summary_counts_open_records_by_field_at_fault_and_by_event_type(adapter: Adapter):
    empty = await adapter.http.get(f"{QUARANTINE}/summary")
    assert empty.json() == {"open": 0, "oldest_open_at": None, "by_field": [], "by_event_type": []}

    ids = await adapter.quarantined(
        [
            record("resumed", "BOSS-S-1", msisdn="1"),
            record("suspended", "BOSS-S-2", msisdn="2"),
            record("resumed", "BOSS-S-3", msisdn="3"),
            {**record("resumed", "BOSS-S-4"), "event_type": "subscription.teleported"},
            record("resumed", "BOSS-S-5", msisdn="5"),
        ]
    )
    assert (await adapter.push(b"not json")).status_code == 400
    assert (await adapter.discard(ids[4], "test record")).status_code == 200

    r = await adapter.http.get(f"{QUARANTINE}/summary")
    assert r.status_code == 200, r.text
    summary = r.json()
    assert summary["open"] == 5
    oldest = (await adapter.entry(ids[0]))["received_at"]
    assert summary["oldest_open_at"] == oldest
    shanghai_time(summary["oldest_open_at"])
    assert [(c["field"], c["count"]) for c in summary["by_field"]] == [
        ("data.msisdn", 3),
        ("body", 1),
        ("event_type", 1),
    ]
    assert summary["by_field"][0]["example"].startswith("data.msisdn")
    assert "teleported" in summary["by_field"][2]["example"]
    assert [(t["event_type"], t["count"]) for t in summary["by_event_type"]] == [
        ("billing.subscription.resumed.v1", 2),
        (None, 2),
        ("billing.subscription.suspended.v1", 1),
    ]
    north = await adapter.http.get(f"{QUARANTINE}/summary", params={"source": NORTH})
    assert north.json()["open"] == 0


# 3. fix and replay


async def test_a_fix_that_fails_its_contract_is_refused_by_field_and_nothing_is_stored(adapter: Adapter):
    [qid] = await adapter.quarantined([record("activated", "BOSS-FX-1", msisdn="1")])

    fee = record("activated", "BOSS-FX-1")
    fee["data"]["plan"]["monthly_fee_fen"] = 129.5
    assert_problem(await adapter.fix(qid, fee), 422, "invalid-input", field="data.plan.monthly_fee_fen")
    whole_fen = record("activated", "BOSS-FX-1")
    raw = json.dumps(whole_fen).replace('"monthly_fee_fen": 12900', '"monthly_fee_fen": 12900.0')
    written = await adapter.http.put(
        f"{QUARANTINE}/{qid}/fix", content=raw, headers={"content-type": "application/json"}
    )
    assert_problem(written, 422, "invalid-input", field="data.plan.monthly_fee_fen")  # money is whole fen
    still_bad = await adapter.fix(qid, record("activated", "BOSS-FX-1", msisdn="2"))
    assert_problem(still_bad, 422, "invalid-input", field="data.msisdn")
    assert_problem(
        await adapter.fix(qid, {**record("activated", "BOSS-FX-1"), "event_type": "x"}),
        422,
        "invalid-input",
        field="event_type",
    )
    assert_problem(await adapter.fix(qid, [record("activated", "BOSS-FX-1")]), 422, "invalid-input", field="record")
    other_id = await adapter.fix(qid, record("activated", "BOSS-FX-2"))
    assert "BOSS-FX-1" in assert_problem(other_id, 422, "invalid-input", field="event_id")["detail"]
    not_json = await adapter.http.put(
        f"{QUARANTINE}/{qid}/fix", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert_problem(not_json, 400, "malformed-body", field="body")
    csv = await adapter.http.put(f"{QUARANTINE}/{qid}/fix", content=b"a,b", headers={"content-type": "text/csv"})
    assert_problem(csv, 415, "unsupported-media-type", field="Content-Type")
    assert_problem(await adapter.fix(str(uuid.uuid4()), whole_fen), 404, "not-found", field="quarantine_id")

    entry = await adapter.entry(qid)
    assert (entry["status"], entry["fixed_raw"]) == ("open", None)
    assert entry["reason"].startswith("data.msisdn")


async def test_a_fixed_record_replays_once_onto_the_topic_and_is_resolved(adapter: Adapter):
    bad = record("activated", "BOSS-RP-1", "C777", msisdn="1")
    [qid] = await adapter.quarantined([bad])
    fixed = record("activated", "BOSS-RP-1", "C777", msisdn="13900001111")

    r = await adapter.fix(qid, fixed)
    assert r.status_code == 200, r.text
    entry = r.json()
    assert entry["status"] == "open"
    assert json.loads(entry["fixed_raw"]) == fixed
    assert json.loads(entry["raw"]) == bad, "what the BOSS sent is kept as it was"
    assert await on_topic(adapter) == [], "a fix alone publishes nothing"

    r = await adapter.replay(qid)
    assert r.status_code == 200, r.text
    answer = r.json()
    event_id = event_id_for(DEV_SOURCE, "BOSS-RP-1")
    assert answer["outcome"] == "accepted"
    assert event_id in answer["detail"]
    resolved = answer["entry"]
    assert (resolved["status"], resolved["replayed_event_id"], resolved["resolved_by"]) == ("replayed", event_id, OPS)
    shanghai_time(resolved["resolved_at"])
    assert resolved == await adapter.entry(qid)

    published = await on_topic(adapter)
    assert len(published) == 1
    [event] = published
    assert event["id"] == event_id
    assert event["type"] == "billing.subscription.activated.v1"
    assert event["data"] == {**fixed["data"], "boss_event_id": "BOSS-RP-1"}

    again = await adapter.replay(qid)
    assert_problem(again, 409, "conflict", field="status")
    assert_problem(await adapter.fix(qid, fixed), 409, "conflict", field="status")
    assert_problem(await adapter.discard(qid, "too late"), 409, "conflict", field="status")
    assert len(await on_topic(adapter)) == 1, "replayed once, published once"
    assert await adapter.listed(status="open") == []


async def test_a_replay_still_rejected_keeps_the_record_open_with_the_new_reason_then_a_duplicate_resolves_it(
    adapter: Adapter,
):
    [qid] = await adapter.quarantined([record("suspended", "BOSS-DUP-1", "C888", msisdn="1")])
    # meanwhile the BOSS re-sends the record, corrected at the source
    corrected = record("suspended", "BOSS-DUP-1", "C888", msisdn="13700002222")
    assert (await adapter.push([corrected])).status_code == 202
    # an operator's own fix passes the contract but is not what was accepted under that BOSS id
    assert (await adapter.fix(qid, record("suspended", "BOSS-DUP-1", "C888", msisdn="13700003333"))).status_code == 200

    r = await adapter.replay(qid)
    body = assert_problem(r, 422, "replay-rejected", field="event_id")
    assert "different content" in body["detail"]
    assert body["entry"]["status"] == "open"
    entry = await adapter.entry(qid)
    assert (entry["status"], entry["field"], entry["resolved_at"]) == ("open", "event_id", None)
    assert "different content" in entry["reason"], "the reason is today's, not the first one"

    assert (await adapter.fix(qid, corrected)).status_code == 200
    r = await adapter.replay(qid)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["outcome"] == "duplicate"
    assert "already accepted" in answer["detail"]
    assert answer["entry"]["status"] == "replayed"
    assert answer["entry"]["replayed_event_id"] == event_id_for(DEV_SOURCE, "BOSS-DUP-1")
    assert "already accepted" in answer["entry"]["resolution_note"]

    published = await on_topic(adapter)
    assert [e["data"]["msisdn"] for e in published] == ["13700002222"], "the duplicate published nothing"


async def test_a_body_that_was_never_json_replays_only_after_a_fix(adapter: Adapter):
    r = await adapter.push(b'{"records": [{"event_id": "BOSS-NJ-1", ')
    qid = assert_problem(r, 400, "malformed-body")["quarantine_id"]

    assert_problem(await adapter.replay(qid), 409, "conflict", field="raw")
    assert (await adapter.entry(qid))["status"] == "open"

    assert (await adapter.fix(qid, record("resumed", "BOSS-NJ-1", "C999"))).status_code == 200
    r = await adapter.replay(qid)
    assert r.status_code == 200, r.text
    assert r.json()["entry"]["boss_event_id"] == "BOSS-NJ-1"
    assert [e["data"]["boss_event_id"] for e in await on_topic(adapter)] == ["BOSS-NJ-1"]


# 4. giving up


async def test_discard_needs_a_note_and_resolves_the_record_for_good(adapter: Adapter):
    [qid] = await adapter.quarantined([record("resumed", "BOSS-DS-1", msisdn="1")])

    assert_problem(await adapter.discard(qid, None), 422, "invalid-input", field="note")
    assert_problem(await adapter.discard(qid, "   "), 422, "invalid-input", field="note")
    extra = await adapter.http.post(f"{QUARANTINE}/{qid}/discard", json={"note": "x", "force": True})
    assert_problem(extra, 422, "invalid-input", field="force")
    assert (await adapter.entry(qid))["status"] == "open"

    r = await adapter.discard(qid, " 测试号码，BOSS 侧已作废 ")
    assert r.status_code == 200, r.text
    entry = r.json()
    assert (entry["status"], entry["resolved_by"], entry["resolution_note"]) == (
        "discarded",
        OPS,
        "测试号码，BOSS 侧已作废",
    )
    shanghai_time(entry["resolved_at"])
    assert entry["replayed_event_id"] is None

    assert_problem(await adapter.discard(qid, "again"), 409, "conflict", field="status")
    assert_problem(await adapter.replay(qid), 409, "conflict", field="status")
    assert_problem(await adapter.fix(qid, record("resumed", "BOSS-DS-1")), 409, "conflict", field="status")
    assert_problem(await adapter.discard(str(uuid.uuid4()), "nothing"), 404, "not-found", field="quarantine_id")


# 5. many at once


async def test_a_bulk_replay_by_ids_answers_each_record(adapter: Adapter):
    fixable, still_bad, given_up = await adapter.quarantined(
        [
            record("resumed", "BOSS-B-1", "C501", msisdn="1"),
            record("resumed", "BOSS-B-2", "C502", msisdn="2"),
            record("resumed", "BOSS-B-3", "C503", msisdn="3"),
        ]
    )
    not_json = assert_problem(await adapter.push(b"[{"), 400, "malformed-body")["quarantine_id"]
    assert (await adapter.fix(fixable, record("resumed", "BOSS-B-1", "C501"))).status_code == 200
    assert (await adapter.discard(given_up, "duplicate of BOSS-B-9")).status_code == 200
    unknown = str(uuid.uuid4())

    r = await adapter.http.post(
        f"{QUARANTINE}/replay", json={"ids": [fixable, still_bad, given_up, not_json, unknown, fixable]}
    )
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert (receipt["accepted"], receipt["duplicates"], receipt["rejected"], receipt["skipped"]) == (1, 0, 1, 3)
    assert receipt["remaining"] == 0
    results = receipt["results"]
    assert [(o["id"], o["status"]) for o in results] == [
        (fixable, "accepted"),
        (still_bad, "rejected"),
        (given_up, "skipped"),
        (not_json, "skipped"),
        (unknown, "skipped"),
    ]
    assert results[0]["replayed_event_id"] == event_id_for(DEV_SOURCE, "BOSS-B-1")
    assert (results[1]["field"], results[1]["reason"].startswith("data.msisdn")) == ("data.msisdn", True)
    assert "discarded" in results[2]["reason"]
    assert "not JSON" in results[3]["reason"]
    assert "no such" in results[4]["reason"]

    assert (await adapter.entry(fixable))["status"] == "replayed"
    assert (await adapter.entry(still_bad))["status"] == "open"
    assert (await adapter.entry(given_up))["status"] == "discarded"
    assert [e["data"]["boss_event_id"] for e in await on_topic(adapter)] == ["BOSS-B-1"]

    bulk = f"{QUARANTINE}/replay"
    assert_problem(await adapter.http.post(bulk, json={}), 422, "invalid-input")
    assert_problem(await adapter.http.post(bulk, json={"ids": [fixable], "job_id": "j"}), 422, "invalid-input")
    assert_problem(await adapter.http.post(bulk, json={"ids": []}), 422, "invalid-input", field="ids")
    too_many = {"ids": [str(uuid.uuid4()) for _ in range(1001)]}
    assert_problem(await adapter.http.post(bulk, json=too_many), 422, "invalid-input", field="ids")


async def test_a_bulk_replay_by_event_type_or_file_import_replays_the_open_records_oldest_first(adapter: Adapter):
    broken, fixable = await adapter.quarantined(
        [record("suspended", "BOSS-T-1", "C601", msisdn="1"), record("suspended", "BOSS-T-2", "C602", msisdn="2")]
    )
    [other_type] = await adapter.quarantined([record("resumed", "BOSS-T-3", msisdn="3")])
    assert (await adapter.fix(fixable, record("suspended", "BOSS-T-2", "C602"))).status_code == 200

    r = await adapter.http.post(f"{QUARANTINE}/replay", json={"event_type": "subscription.suspended"})
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert [(o["id"], o["status"]) for o in receipt["results"]] == [(broken, "rejected"), (fixable, "accepted")]
    assert receipt["remaining"] == 0
    assert (await adapter.entry(other_type))["status"] == "open", "outside the filter"

    # bad lines of a file import, quarantined as the import's ingest does it
    runtime = adapter.app.state.runtime
    job = str(uuid.uuid4())
    lines = [record("resumed", "BOSS-F-3", "C603", msisdn="1"), record("resumed", "BOSS-F-4", "C604", msisdn="1")]
    async with runtime.db.sessions.begin() as session:
        result = await ingest.ingest(session, runtime.contracts, ingest.Origin(DEV_SOURCE, job, [3, 4]), lines)
    line_3, line_4 = (o.quarantine_id for o in result.outcomes)
    assert (await adapter.fix(line_4, record("resumed", "BOSS-F-4", "C604"))).status_code == 200
    r = await adapter.http.post(f"{QUARANTINE}/replay", json={"job_id": job})
    assert [(o["id"], o["status"]) for o in r.json()["results"]] == [(line_3, "rejected"), (line_4, "accepted")]

    published = await on_topic(adapter)
    assert sorted(e["data"]["boss_event_id"] for e in published) == ["BOSS-F-4", "BOSS-T-2"]
