"""File imports of BOSS batch feeds (日话单文件): upload, the background worker, the job resource, the CLI.

Real HTTP against the served adapter, a real broker and a real database; files written by the kit's own
generator (`crm_kit.boss_files.write_usage_file`) or by hand where a test needs a particular flaw.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gzip
import hashlib
import io
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import typer

from crm_billing_adapter.app import create_app
from crm_billing_adapter.domain.imports import ImportWorker
from crm_billing_adapter.settings import Settings
from crm_kit.boss_files import USAGE_COLUMNS, import_file, write_usage_file
from crm_kit.db import Database
from crm_kit.events import load_contracts
from crm_kit.settings import KafkaSettings, find_contracts_dir
from crm_kit.signing import DEV_SOURCE
from crm_kit.testing import bearer, boss_push, eventually, read_topic, serve

IMPORTS = "/boss/v1/imports"
USAGE_TOPIC = "billing.usage"
PROBLEM = "urn:telecom-crm:problem:"
FINISHED = ("completed", "failed", "cancelled")
CHUNK = 500
EXAMPLES = find_contracts_dir() / "examples"
OPS = bearer("ops-0001", roles=("billing_ops",))


def example(event_type: str) -> dict[str, Any]:
    folder = EXAMPLES / f"billing.{event_type}.v1"
    data = json.loads(sorted(folder.glob("*.json"))[0].read_text(encoding="utf-8"))
    del data["boss_event_id"]
    return data


@dataclass
class Adapter:
    http: httpx.AsyncClient
    """Calls as billing operations staff (计费运维) unless a test says otherwise."""
    url: str
    settings: Settings

    async def upload(self, content: bytes, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
        params.setdefault("source", DEV_SOURCE)
        return await self.http.post(IMPORTS, params=params, content=content, headers=headers or {})

    async def uploaded(self, path: Path, **params: Any) -> dict[str, Any]:
        """Upload a file that must be taken: its job."""
        r = await self.upload(await asyncio.to_thread(path.read_bytes), file_name=path.name, **params)
        assert r.status_code == 202, r.text
        assert r.headers["location"] == f"{IMPORTS}/{r.json()['id']}"
        return r.json()

    async def job(self, job_id: str) -> dict[str, Any]:
        r = await self.http.get(f"{IMPORTS}/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    async def finished(self, job_id: str) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            job = await self.job(job_id)
            return job if job["status"] in FINISHED else None

        return await eventually(done, timeout=60)

    async def rejected(self, job_id: str, **params: Any) -> httpx.Response:
        headers = params.pop("headers", {})
        r = await self.http.get(f"{IMPORTS}/{job_id}/rejected", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return r

    async def usage_on_topic(self) -> list[tuple[str, dict[str, Any]]]:
        """(key, event) of all of billing.usage once a usage record pushed now has come through: the relay
        publishes in order, so whatever was staged before it is on the topic too. The sentinel is left out."""
        sentinel = f"SENTINEL-{uuid.uuid4().hex[:12]}"
        data = {**example("usage.recorded"), "customer_id": "CSENTINEL"}
        r = await boss_push(self.http, [{"event_id": sentinel, "event_type": "usage.recorded", "data": data}])
        assert r.status_code == 202, r.text

        async def probe() -> list[tuple[str, dict[str, Any]]] | None:
            found = [
                (r.key.decode(), json.loads(r.value)) for r in await read_topic(self.bootstrap, USAGE_TOPIC, expect=1)
            ]
            return found if any(e["data"]["boss_event_id"] == sentinel for _, e in found) else None

        found = await eventually(probe, timeout=30)
        return [(k, e) for k, e in found if e["data"]["boss_event_id"] != sentinel]

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka.bootstrap


Start = Callable[..., contextlib.AbstractAsyncContextManager[Adapter]]


@pytest_asyncio.fixture
async def start(kafka: KafkaSettings, database_url: Callable[[str], Awaitable[str]], tmp_path: Path) -> Start:
    """`async with start(db=..., **settings) as adapter`: the served app, ready, its worker reading 500-line chunks."""

    @contextlib.asynccontextmanager
    async def run(db: str | None = None, **overrides: Any) -> AsyncIterator[Adapter]:
        settings = Settings(
            **{
                "database_url": db or await database_url("billing-adapter"),
                "kafka": kafka,
                "log_json": False,
                "outbox_poll_seconds": 0.1,
                "import_dir": tmp_path / "imports",
                "import_chunk_lines": CHUNK,
                "import_poll_seconds": 0.1,
                **overrides,
            }
        )
        app = create_app(settings)
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30, headers=OPS) as http:

            async def ready() -> bool:
                return (await http.get("/health/ready")).status_code == 200

            await eventually(ready, timeout=20)
            yield Adapter(http, url, settings)

    return run


@pytest_asyncio.fixture
async def adapter(start: Start) -> AsyncIterator[Adapter]:
    async with start() as a:
        yield a


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


def csv_rows(path: Path) -> list[dict[str, str]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:  # type: ignore[operator]
        return list(csv.DictReader(f))


def ndjson_lines(r: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in r.text.splitlines()]


def assert_published_once(found: list[tuple[str, dict[str, Any]]], expected: dict[str, str]) -> None:
    """`expected`: BOSS event id → customer id. Each is on the topic exactly once, keyed by its customer."""
    counts = Counter(e["data"]["boss_event_id"] for _, e in found)
    assert set(counts) == set(expected)
    assert set(counts.values()) == {1}
    for key, event in found:
        assert key == event["subject"] == event["data"]["customer_id"] == expected[event["data"]["boss_event_id"]]
        assert event["type"] == "billing.usage.recorded.v1"


# 1. CSV and NDJSON files end to end


async def test_a_csv_day_file_is_imported_and_every_good_line_published_once(adapter: Adapter, tmp_path: Path):
    made = write_usage_file(tmp_path / "usage-20261119.csv", 1800, "csv", seed=1, bad_every=150)
    rows = csv_rows(made.path)
    assert list(rows[0]) == list(USAGE_COLUMNS)

    job = await adapter.uploaded(made.path)

    assert job["status"] in ("queued", "running")
    assert (job["source"], job["file_name"], job["format"], job["gzip"]) == (DEV_SOURCE, made.path.name, "csv", False)
    assert job["sha256"] == hashlib.sha256(made.path.read_bytes()).hexdigest()
    assert job["size_bytes"] == made.path.stat().st_size
    assert job["created_by"] == "ops-0001"
    assert job["created_at"].endswith("+08:00")
    done = await adapter.finished(job["id"])
    assert done["status"] == "completed", done
    assert done["error"] is None
    assert done["lines_read"] == 1801  # the header and 1,800 rows
    assert (done["accepted"], done["duplicates"], done["rejected"]) == (1788, 0, 12)
    assert done["progress"] == 1.0
    assert done["started_at"].endswith("+08:00") and done["finished_at"].endswith("+08:00")

    bad_ids = {rows[line - 2]["event_id"] for line in made.bad_lines}
    good = {row["event_id"]: row["customer_id"] for row in rows if row["event_id"] not in bad_ids}
    found = await adapter.usage_on_topic()
    assert_published_once(found, good)
    sample = next(e for _, e in found if e["data"]["boss_event_id"] == rows[0]["event_id"])
    assert sample["data"]["voice_minutes"] == int(rows[0]["voice_minutes"])
    assert sample["data"]["roaming"] is (rows[0]["roaming"] == "true")

    rejected = ndjson_lines(await adapter.rejected(job["id"]))
    assert [r["line"] for r in rejected] == made.bad_lines
    for r in rejected:
        assert "data_mb" in r["reason"]
        assert r["field"] == "data.data_mb"
        assert json.loads(r["raw"])["event_id"] == rows[r["line"] - 2]["event_id"]
        assert r["quarantine_id"]

    as_csv = await adapter.rejected(job["id"], headers={"Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [int(t["line"]) for t in table] == made.bad_lines
    assert [t["reason"] for t in table] == [r["reason"] for r in rejected]
    assert (await adapter.rejected(job["id"], format="csv")).text == as_csv.text

    listed = await adapter.http.get(IMPORTS, params={"status": "completed", "source": DEV_SOURCE})
    assert listed.status_code == 200 and listed.headers["x-total-count"] == "1"
    assert [j["id"] for j in listed.json()] == [job["id"]]
    assert (await adapter.http.get(IMPORTS, params={"status": "failed"})).json() == []


async def test_a_gzip_ndjson_file_takes_any_billing_kind_and_quarantines_broken_lines(adapter: Adapter, tmp_path: Path):
    made = write_usage_file(tmp_path / "plain.ndjson", 1200, "ndjson", seed=2)
    activated = {
        "event_id": "FILE-ACT-1",
        "event_type": "subscription.activated",
        "data": example("subscription.activated"),
    }
    text = (
        "\ufeff"  # a UTF-8 byte order mark
        + made.path.read_text(encoding="utf-8")
        + "{not json\n"
        + "\n"
        + json.dumps(activated, ensure_ascii=False)
        + "\n"
    )
    path = tmp_path / "usage.ndjson.gz"
    path.write_bytes(gzip.compress(text.encode()))

    job = await adapter.uploaded(path)

    assert (job["format"], job["gzip"], job["progress"]) == ("ndjson", True, None)
    done = await adapter.finished(job["id"])
    assert done["status"] == "completed", done
    assert done["lines_read"] == 1203
    assert (done["accepted"], done["duplicates"], done["rejected"]) == (1201, 0, 1)
    [broken] = ndjson_lines(await adapter.rejected(job["id"]))
    assert broken["line"] == 1201
    assert "line 1201 is not valid JSON" in broken["reason"]
    assert broken["raw"] == "{not json"
    records = [json.loads(line) for line in text.removeprefix("\ufeff").splitlines()[:1200]]
    usage = {r["event_id"]: r["data"]["customer_id"] for r in records}
    assert_published_once(await adapter.usage_on_topic(), usage)
    subscriptions = await read_topic(adapter.bootstrap, "billing.subscription", expect=1)
    assert [json.loads(r.value)["data"]["boss_event_id"] for r in subscriptions] == ["FILE-ACT-1"]

    # gzip said by Content-Encoding, under a name without .gz
    small = write_usage_file(tmp_path / "small.ndjson", 5, "ndjson", seed=3)
    r = await adapter.upload(
        gzip.compress(small.path.read_bytes()), {"Content-Encoding": "gzip"}, file_name="small.ndjson"
    )
    assert r.status_code == 202, r.text
    assert r.json()["gzip"] is True
    done = await adapter.finished(r.json()["id"])
    assert (done["status"], done["accepted"]) == ("completed", 5)

    # said to be gzip but is not
    r = await adapter.upload(small.path.read_bytes(), {"Content-Encoding": "gzip"}, file_name="other.ndjson")
    assert_problem(r, 400, "malformed-body", field="body")


# 2. bad files and bad lines


async def test_csv_cells_of_the_wrong_type_reject_their_line_naming_the_column(adapter: Adapter):
    rows = [
        ",".join(USAGE_COLUMNS),
        "CSV-1,C1,A1,S1,13812345678,2026-11-20T03:15:00+08:00,2026-11-19,37,4,2150,false,,,0",
        "CSV-2,C1,A1,S1,13812345678,2026-11-20T03:15:00+08:00,2026-11-18,abc,4,2150,false,,,0",
        "CSV-3,C2,A2,S2,13812345678,2026-11-20T03:15:00+08:00,2026-11-19,1,4,2150,maybe,,,0",
        "",
        "CSV-4,C2,A2,S2,13812345678",
        "CSV-5,C3,A3,S3,13812345678,2026-11-20T03:15:00+08:00,2026-11-19,1,0,10,1,1,5,99",
        "CSV-6,C3,A3,S3,13812345678,2026-11-20T03:15:00+08:00,2026-11-18,12.5,0,10,0,,,0",
    ]
    body = b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n"

    r = await adapter.upload(body, {"Content-Type": "text/csv"}, file_name="day.csv")

    assert r.status_code == 202, r.text
    done = await adapter.finished(r.json()["id"])
    assert done["status"] == "completed", done
    assert (done["lines_read"], done["accepted"], done["rejected"]) == (8, 2, 4)
    rejected = {x["line"]: x for x in ndjson_lines(await adapter.rejected(done["id"]))}
    assert sorted(rejected) == [3, 4, 6, 8]
    assert "voice_minutes" in rejected[3]["reason"] and rejected[3]["field"] == "data.voice_minutes"
    assert "roaming" in rejected[4]["reason"] and rejected[4]["field"] == "data.roaming"
    assert "line 6 has 5 values for the header's 14 columns" in rejected[6]["reason"]
    assert rejected[6]["raw"] == "CSV-4,C2,A2,S2,13812345678"
    assert "voice_minutes" in rejected[8]["reason"]
    found = {e["data"]["boss_event_id"]: e["data"] for _, e in await adapter.usage_on_topic()}
    assert set(found) == {"CSV-1", "CSV-5"}
    assert found["CSV-5"]["roaming"] is True
    assert (found["CSV-5"]["roaming_voice_minutes"], found["CSV-5"]["charged_fen"]) == (1, 99)
    assert "roaming_data_mb" not in found["CSV-1"]


async def test_a_csv_header_that_does_not_match_the_contract_fails_the_job(adapter: Adapter):
    header = ",".join(c if c != "voice_minutes" else "voice_mins" for c in USAGE_COLUMNS)
    line = "HDR-1,C1,A1,S1,13812345678,2026-11-20T03:15:00+08:00,2026-11-19,37,4,2150,false,,,0"

    r = await adapter.upload(f"{header}\n{line}\n".encode(), format="csv", file_name="bad-header")

    assert r.status_code == 202, r.text
    done = await adapter.finished(r.json()["id"])
    assert done["status"] == "failed"
    assert "unknown column(s) 'voice_mins'" in done["error"]
    assert "missing column(s) voice_minutes" in done["error"]
    assert (done["accepted"], done["rejected"]) == (0, 0)
    assert done["finished_at"]
    assert (await adapter.rejected(done["id"])).text == ""

    empty_header = await adapter.upload(b"\n" + line.encode(), format="csv", file_name="no-header.csv")
    done = await adapter.finished(empty_header.json()["id"])
    assert done["status"] == "failed" and "no header row" in done["error"]


async def test_the_same_file_again_is_409_naming_its_job_until_that_job_failed_or_was_cancelled(
    start: Start, tmp_path: Path
):
    made = write_usage_file(tmp_path / "day.csv", 50, "csv", seed=4)
    async with start(import_worker=False) as adapter:
        first = await adapter.uploaded(made.path)

        again = await adapter.upload(made.path.read_bytes(), file_name="renamed.csv")

        body = assert_problem(again, 409, "conflict")
        assert body["job_id"] == first["id"] and first["id"] in body["detail"]
        other_source = await adapter.upload(made.path.read_bytes(), source="north", file_name="day.csv")
        assert_problem(other_source, 422, "invalid-input", field="source")
        assert (await adapter.http.get(IMPORTS)).headers["x-total-count"] == "1"
        assert sorted(p.name for p in adapter.settings.import_dir.iterdir()) == [f"{first['id']}.csv"]

        cancelled = await adapter.http.post(f"{IMPORTS}/{first['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert_problem(await adapter.http.post(f"{IMPORTS}/{first['id']}/cancel"), 409, "conflict", field="status")

        retried = await adapter.uploaded(made.path)
        assert retried["id"] != first["id"]


async def test_imports_need_billing_ops_or_admin_and_a_readable_request(adapter: Adapter, tmp_path: Path):
    made = write_usage_file(tmp_path / "day.csv", 3, "csv", seed=5)
    content = made.path.read_bytes()
    params = {"source": DEV_SOURCE, "file_name": "day.csv"}
    async with httpx.AsyncClient(base_url=adapter.url, timeout=30) as anonymous:
        assert_problem(await anonymous.post(IMPORTS, params=params, content=content), 401, "unauthenticated")
        assert_problem(await anonymous.get(IMPORTS), 401, "unauthenticated")
        agent = bearer("agent-0001", roles=("agent", "supervisor"))
        assert_problem(await anonymous.post(IMPORTS, params=params, content=content, headers=agent), 403, "forbidden")
        assert_problem(await anonymous.get(IMPORTS, headers=agent), 403, "forbidden")
        admin = bearer("admin-0001", roles=("admin",))
        r = await anonymous.post(IMPORTS, params=params, content=content, headers=admin)
        assert r.status_code == 202, r.text
        assert r.json()["created_by"] == "admin-0001"
        for path in (f"{IMPORTS}/{r.json()['id']}", f"{IMPORTS}/{r.json()['id']}/rejected"):
            assert_problem(await anonymous.get(path, headers=agent), 403, "forbidden")

    assert_problem(await adapter.upload(content, {"Content-Type": "image/png"}), 415, "unsupported-media-type")
    assert_problem(await adapter.upload(content, file_name="day.txt"), 422, "invalid-input", field="format")
    assert_problem(
        await adapter.upload(content, {"Content-Type": "application/x-ndjson"}, format="csv"), 422, "invalid-input"
    )
    assert_problem(await adapter.upload(b"", file_name="empty.csv"), 422, "invalid-input", field="body")
    assert_problem(await adapter.http.get(f"{IMPORTS}/no-such-job"), 404, "not-found")


async def test_a_file_over_the_size_cap_is_413_and_leaves_nothing_behind(start: Start, tmp_path: Path):
    made = write_usage_file(tmp_path / "day.csv", 40, "csv", seed=6)
    assert made.path.stat().st_size > 2000
    async with start(import_max_bytes=2000, max_body_bytes=1000) as adapter:
        by_length = await adapter.upload(made.path.read_bytes(), file_name="day.csv")
        assert_problem(by_length, 413, "payload-too-large")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap is met while streaming
            data = made.path.read_bytes()
            for i in range(0, len(data), 500):
                yield data[i : i + 500]

        streamed = await adapter.http.post(
            IMPORTS, params={"source": DEV_SOURCE, "file_name": "day.csv"}, content=chunks()
        )
        assert_problem(streamed, 413, "payload-too-large")
        assert list(adapter.settings.import_dir.iterdir()) == []
        assert (await adapter.http.get(IMPORTS)).json() == []

        # the cap is the import's own: a file between the general body limit and it is taken
        small = write_usage_file(tmp_path / "small.csv", 10, "csv", seed=6)
        assert 1000 < small.path.stat().st_size <= 2000
        job = await adapter.uploaded(small.path)
        assert (await adapter.finished(job["id"]))["accepted"] == 10


# 3. the worker: chunks, cancel, crash and resume, one claimer


@contextlib.asynccontextmanager
async def worker_on(database_url: str) -> AsyncIterator[ImportWorker]:
    """An import worker on the adapter's database, driven by the test step by step (as another replica)."""
    db = Database(database_url)
    try:
        yield ImportWorker(db, load_contracts(find_contracts_dir()), chunk_lines=CHUNK)
    finally:
        await db.dispose()


async def test_a_running_import_stops_at_its_next_chunk_when_cancelled(start: Start, tmp_path: Path):
    made = write_usage_file(tmp_path / "day.csv", 1400, "csv", seed=7)
    async with start(import_worker=False) as adapter, worker_on(adapter.settings.database_url) as worker:
        job = await adapter.uploaded(made.path)
        run = await worker.claim()
        assert run is not None and run.job.id == job["id"]
        assert await run.step()
        after_one = await adapter.job(job["id"])
        assert (after_one["status"], after_one["lines_read"], after_one["accepted"]) == (
            "running",
            CHUNK + 1,
            CHUNK,
        )  # header + a chunk
        assert 0 < after_one["progress"] < 1

        r = await adapter.http.post(f"{IMPORTS}/{job['id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"

        assert not await run.step()  # the chunk it read is not counted
        run.close()
        final = await adapter.job(job["id"])
        assert (final["status"], final["lines_read"], final["accepted"]) == ("cancelled", CHUNK + 1, CHUNK)
        assert await worker.claim() is None
        found = await adapter.usage_on_topic()
    assert len(found) == CHUNK


async def test_an_import_resumes_after_a_crash_at_its_first_uncommitted_line(
    start: Start, database_url: Callable[[str], Awaitable[str]], tmp_path: Path
):
    db = await database_url("billing-adapter")
    made = write_usage_file(tmp_path / "day.csv", 2300, "csv", seed=8, bad_every=400)
    async with worker_on(db) as one, worker_on(db) as two:
        async with start(db=db, import_worker=False) as first:
            job = await first.uploaded(made.path)
            claims = await asyncio.gather(one.claim(), two.claim())
            assert sum(c is not None for c in claims) == 1  # two replicas: one of them gets the job
            stalled = next(c for c in claims if c is not None)
            assert await stalled.step() and await stalled.step()
            # its worker goes quiet: the job stays "running" with two chunks committed
            assert await two.claim() is None  # not abandoned yet: its lease has not run out
            crashed = await first.job(job["id"])
            assert (crashed["status"], crashed["lines_read"]) == ("running", 1 + 2 * CHUNK)

        async with start(db=db, import_lease_seconds=0.5) as second:
            done = await second.finished(job["id"])
            assert done["status"] == "completed", done
            assert done["lines_read"] == 2301
            assert (done["accepted"], done["duplicates"], done["rejected"]) == (2295, 0, 5)

            # the quiet worker wakes up: the job is no longer its to write, its next chunk is not counted
            assert not await stalled.step()
            stalled.close()
            assert await second.job(job["id"]) == done

            rows = csv_rows(made.path)
            bad = {rows[line - 2]["event_id"] for line in made.bad_lines}
            good = {r["event_id"]: r["customer_id"] for r in rows if r["event_id"] not in bad}
            assert_published_once(await second.usage_on_topic(), good)
            assert [r["line"] for r in ndjson_lines(await second.rejected(job["id"]))] == made.bad_lines


# 4. the command line


async def test_the_cli_uploads_a_file_and_follows_its_job_to_the_end(adapter: Adapter, tmp_path: Path):
    made = write_usage_file(tmp_path / "usage.csv.gz", 600, "csv", seed=9, bad_every=100)
    token = OPS["Authorization"].removeprefix("Bearer ")

    job = await asyncio.to_thread(import_file, made.path, adapter.url, token, DEV_SOURCE, None, 0.1)

    assert (job["status"], job["gzip"], job["accepted"], job["rejected"]) == ("completed", True, 594, 6)
    # run again: the same file is the same import, followed rather than uploaded twice
    again = await asyncio.to_thread(import_file, made.path, adapter.url, token, DEV_SOURCE, None, 0.1)
    assert again["id"] == job["id"]
    assert (await adapter.http.get(IMPORTS)).headers["x-total-count"] == "1"

    broken = tmp_path / "broken.csv"
    broken.write_text("event_id,what\nX,1\n", encoding="utf-8")
    with pytest.raises(typer.Exit) as failed:
        await asyncio.to_thread(import_file, broken, adapter.url, token, DEV_SOURCE, "csv", 0.1)
    assert failed.value.exit_code == 1
