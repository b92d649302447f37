"""The BOSS feed at full speed: simulator → gateway → billing-adapter → Kafka, beside a bare aiokafka producer.

Each side runs as it is deployed for a heavy feed, on the embedded broker and a SQLite file: the gateway under
uvicorn, the adapter under uvicorn with one worker per core and its outbox relay (`crm relay`) in a process of its
own (on SQLite one relay per database: one in each worker would send the same rows twice). The simulator's records
are made before the clock starts and pushed, signed, as 5,000-record NDJSON batches by a few concurrent pushers,
after two warm-up batches that are not counted; the rate counts an event only once Kafka has acknowledged it (the
adapter's outbox is empty). The bare producer then sends the very CloudEvents the adapter published (read back from
Kafka), keyed by customer, to the same broker in the same run, from a fresh process of its own: the same bytes,
without the HTTP, checks, ledger and outbox in front; once with the collector settings the relay and the services
run with (like for like), once with the interpreter's defaults.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from crm_kit import simulator
from crm_kit.broker import EmbeddedBroker, ensure_topics, free_port
from crm_kit.events import load_contracts
from crm_kit.service import tune_interpreter_for_requests
from crm_kit.settings import find_contracts_dir
from crm_kit.signing import DEV_SECRET, DEV_SOURCE

PUSHERS = 4
WARM_UP_BATCHES = 2
"""Pushed and published before the clock starts, not counted: every process past its imports and first
statements (the relay's start overlaps the first pushes otherwise), as in a feed that has been running."""


ADAPTER_WORKERS = os.cpu_count() or 1


def _serve(module: str, port: int, env: dict[str, str], workers: int = 1) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", f"{module}:create_app", "--factory", "--workers", str(workers)),
            *("--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"),
        ],
        env=env,
    )


def _relay(env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = ("relay", "--service", "billing-adapter", "--database-url", env["CRM_BILLING_ADAPTER_DATABASE_URL"])
    return subprocess.Popen([sys.executable, "-m", "crm_kit.cli", *command], env=env)


async def _up(url: str, timeout: float = 60) -> None:
    """`url` answers 200 (`/health/ready` of the adapter; the gateway's `/health/live`: its readiness asks the
    customer service too, which this feed does not need)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError(f"{url} did not become ready")


def _unpublished(database: Path) -> int:
    """Events the adapter has accepted but not yet had acknowledged by Kafka (acks=all): its outbox backlog."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0])


async def _records_in(
    bootstrap: str, topics: list[str], expect: int, timeout: float = 120
) -> list[tuple[str, bytes, bytes]]:
    """Every record in the topics, read back as (topic, key, value) (the embedded broker's end offsets
    undercount large batches)."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    seen: list[tuple[str, bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < expect and time.monotonic() < deadline:
            got = await consumer.getmany(timeout_ms=1000, max_records=10000)
            seen += [(r.topic, r.key or b"", r.value or b"") for records in got.values() for r in records]
        return seen
    finally:
        await consumer.stop()


def _peak_rss_mib(pid: int) -> float:
    """The process's high-water resident memory (VmHWM) and its children's (uvicorn's workers), read while they
    still run."""
    peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return peak + sum(_peak_rss_mib(int(child)) for child in children)


def _bare_rate(bootstrap: str, events: list[tuple[str, bytes, bytes]], folder: Path, *, tuned: bool) -> float:
    """`_bare_producer` in a fresh interpreter, as the relay runs in its own, so that nothing this process did
    before (the first slice runs services in it, which tunes its collector) changes the baseline; `tuned`: with
    the collector settings the relay and every service process run with (`tune_interpreter_for_requests`)."""
    feed = folder / "bare-feed.pickle"
    feed.write_bytes(pickle.dumps(events, protocol=pickle.HIGHEST_PROTOCOL))
    try:
        command = [sys.executable, "-m", "tests.bench_boss", "bare", bootstrap, str(feed)]
        if tuned:
            command.append("--tuned")
        return float(subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()[-1])
    finally:
        feed.unlink()


def measure_apart(folder: Path, records: int) -> dict[str, str]:
    """`measure` in a fresh interpreter, for the reason the bare producer runs in one: the simulator's pushers
    stand for the BOSS, a system of its own, and must not run in a process that has just run every service of
    the first slice (measured: 15% fewer events/s when they did)."""
    command = [sys.executable, "-m", "tests.bench_boss", "feed", str(folder), str(records)]
    output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    """`python -m tests.bench_boss feed FOLDER RECORDS`: `measure`, its results as JSON on the last line.
    `python -m tests.bench_boss bare BOOTSTRAP FEED [--tuned]`: the bare producer's events/s."""
    command, *args = sys.argv[1:]
    if command == "feed":
        print(json.dumps(asyncio.run(measure(Path(args[0]), int(args[1]))), ensure_ascii=False))
        return
    bootstrap, feed, *options = args
    if "--tuned" in options:
        tune_interpreter_for_requests()
    events = pickle.loads(Path(feed).read_bytes())  # noqa: S301 - the file this bench has just written
    print(asyncio.run(_bare_producer(bootstrap, events)))


async def _bare_producer(bootstrap: str, events: list[tuple[str, bytes, bytes]]) -> float:
    """What aiokafka does on its own: one `send()` per event, keyed, acks=all, then wait for every ack."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        started = time.perf_counter()
        for start in range(0, len(events), 5000):
            sent = [await producer.send(topic, value, key=key) for topic, key, value in events[start : start + 5000]]
            await asyncio.gather(*sent)
        return len(events) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def measure(folder: Path, records: int) -> dict[str, str]:
    results: dict[str, str] = {}
    # About 11 records a customer a month (daily usage of each line, invoices, payments, ...).
    population = simulator.Population(customers=max(records // 60, 100), months=2, seed=7)
    batches: list[simulator.Batch] = []
    total = 0
    for batch in simulator.ndjson_batches(simulator.records(population)):
        if total >= records:
            break
        batches.append(batch)
        if len(batches) > WARM_UP_BATCHES:
            total += batch.records
    warm_up, batches = batches[:WARM_UP_BATCHES], batches[WARM_UP_BATCHES:]
    contracts = load_contracts(find_contracts_dir())
    topics = sorted(t for t in contracts.topics if t.startswith("billing."))
    with EmbeddedBroker() as broker:
        await ensure_topics(broker.bootstrap, contracts)
        adapter_port, gateway_port = free_port(), free_port()
        env = {
            **os.environ,
            "CRM_KAFKA_BOOTSTRAP": broker.bootstrap,
            "CRM_LOG_LEVEL": "WARNING",
            "CRM_BILLING_ADAPTER_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'boss-bench-adapter.db'}",
            "CRM_BILLING_ADAPTER_IMPORT_WORKER": "false",
            "CRM_GATEWAY_BILLING_ADAPTER_URL": f"http://127.0.0.1:{adapter_port}",
        }
        adapter = _serve(
            "crm_billing_adapter.app",
            adapter_port,
            {**env, "CRM_BILLING_ADAPTER_OUTBOX_RELAY": "false"},
            workers=ADAPTER_WORKERS,
        )
        gateway = _serve("crm_gateway.app", gateway_port, env)
        processes = [gateway, adapter]
        try:
            gateway_url = f"http://127.0.0.1:{gateway_port}"
            await _up(f"http://127.0.0.1:{adapter_port}/health/ready")
            relay = _relay(env)  # once the adapter has made its tables
            processes.append(relay)
            await _up(f"{gateway_url}/health/live")
            database = folder / "boss-bench-adapter.db"
            warmed = await simulator.push(
                gateway_url, warm_up, source=DEV_SOURCE, secret=DEV_SECRET, concurrency=PUSHERS, progress=False
            )
            while _unpublished(database) > 0:
                await asyncio.sleep(0.05)
            started = time.perf_counter()
            summary = await simulator.push(
                gateway_url, batches, source=DEV_SOURCE, secret=DEV_SECRET, concurrency=PUSHERS, progress=False
            )
            accepted_at = time.perf_counter() - started
            while _unpublished(database) > 0:
                await asyncio.sleep(0.05)
            published_at = time.perf_counter() - started
            rss = _peak_rss_mib(adapter.pid) + _peak_rss_mib(relay.pid)
        finally:
            for process in processes:
                process.terminate()
                process.wait(30)
        published = await _records_in(broker.bootstrap, topics, warmed.accepted + summary.accepted)
        in_kafka = len(published) - warmed.accepted
        # The very events the adapter published (its CloudEvents, keyed by customer), sent again by aiokafka alone.
        bare = await asyncio.to_thread(_bare_rate, broker.bootstrap, published, folder, tuned=False)
        bare_tuned = await asyncio.to_thread(_bare_rate, broker.bootstrap, published, folder, tuned=True)
    rate = summary.accepted / published_at
    results[f"BOSS feed: simulator → gateway → adapter → Kafka ({total:,} records, {len(batches)} NDJSON batches)"] = (
        f"{rate:,.0f} events/s into Kafka ({published_at:.1f} s; all accepted by the API after {accepted_at:.1f} s; "
        f"{summary.accepted:,} accepted, {summary.duplicates:,} duplicates, {summary.rejected:,} rejected; "
        f"{in_kafka:,} read back from Kafka)"
    )
    results[
        "Bare aiokafka producer, the same CloudEvents, same broker, same run, in a process of its own with the "
        "collector settings the relay and the services run with (gc.freeze, thresholds)"
    ] = f"{bare_tuned:,.0f} events/s (adapter path at {rate / bare_tuned:.0%} of it)"
    results["The same bare producer with the interpreter's default collector settings"] = (
        f"{bare:,.0f} events/s (adapter path at {rate / bare:.0%} of it)"
    )
    results[f"billing-adapter peak RSS during the feed ({ADAPTER_WORKERS} API workers and the relay, together)"] = (
        f"{rss:,.0f} MiB"
    )
    return results


if __name__ == "__main__":
    main()
