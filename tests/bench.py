"""`make bench`: measure the BOSS feed, the first slice and the customer service at 1M customers; write
BENCHMARKS.md, and the same figures with their commit and machine to `bench/results/<date>.json`.

- End to end: one pushed activation until the customer is readable through the gateway (p50/p95), and how fast
  the customer service applies 20,000 activations.
- The BOSS feed at full speed beside a bare Kafka producer (`tests/bench_boss.py`).
- The customer service at 1M customers (`tests/bench_customer.py`).
- The ticketing service at 1M tickets (`tests/bench_ticketing.py`), in a section of its own.
- The churn service: feature store, training at 1M subscribers × 12 months, batch and online scoring
  (`tests/bench_churn.py`), in a section of its own.
- The campaign service: a retention campaign's audience build and dispatch over 1M customers, and attribution of
  the BOSS's plan changes and recharges with those assignments in the table (`tests/bench_campaign.py`), in a
  section of its own.
- The gateway's overhead: a proxied read beside the same read direct to the service (`tests/bench_gateway.py`), in
  a section of its own.
Runs on the embedded broker and SQLite files in a temporary folder (and PostgreSQL when asked), on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from crm_billing_adapter.app import create_app as billing_adapter_app
from crm_billing_adapter.settings import Settings as BillingAdapterSettings
from crm_customer.app import create_app as customer_app
from crm_customer.settings import Settings as CustomerSettings
from crm_gateway.app import create_app as gateway_app
from crm_gateway.settings import Settings as GatewaySettings
from crm_kit.broker import EmbeddedBroker
from crm_kit.settings import KafkaSettings
from crm_kit.testing import bearer, boss_push, serve
from tests import bench_boss, bench_campaign, bench_churn, bench_customer, bench_gateway, bench_ticketing
from tests.boss import activation

BATCHES = 4
BATCH = 5000
LATENCY_SAMPLES = 40
CUSTOMERS = "/tmf-api/customerManagement/v4/customer"


async def bench(folder: Path) -> dict[str, str]:
    results: dict[str, str] = {}
    with EmbeddedBroker() as broker:
        kafka = KafkaSettings(bootstrap=broker.bootstrap)
        adapter_db = f"sqlite+aiosqlite:///{folder / 'billing-adapter.db'}"
        adapter = BillingAdapterSettings(database_url=adapter_db, kafka=kafka, log_level="WARNING")
        customer = CustomerSettings(
            database_url=f"sqlite+aiosqlite:///{folder / 'customer.db'}", kafka=kafka, log_level="WARNING"
        )
        async with serve(billing_adapter_app(adapter)) as adapter_url, serve(customer_app(customer)) as customer_url:
            gw = GatewaySettings(customer_url=customer_url, billing_adapter_url=adapter_url, log_level="WARNING")
            async with (
                serve(gateway_app(gw)) as gateway_url,
                httpx.AsyncClient(base_url=gateway_url, timeout=120, headers=bearer()) as client,
            ):
                while (await client.get("/health/ready")).status_code != 200:
                    await asyncio.sleep(0.2)
                latencies = []
                for n in range(LATENCY_SAMPLES):
                    t0 = time.perf_counter()
                    await boss_push(client, [activation(n + 1)])
                    while (await client.get(f"{CUSTOMERS}/C{n + 1:06d}")).status_code != 200:
                        await asyncio.sleep(0.005)
                    latencies.append(time.perf_counter() - t0)
                q = statistics.quantiles(latencies, n=20)
                results["Push → customer readable through the gateway (one activation, idle system)"] = (
                    f"p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {q[18] * 1000:.0f} ms, "
                    f"max {max(latencies) * 1000:.0f} ms ({LATENCY_SAMPLES} samples)"
                )

                batches = [[activation(1_000_000 + b * BATCH + i) for i in range(BATCH)] for b in range(BATCHES)]
                total = BATCHES * BATCH
                started = time.perf_counter()
                for batch in batches:
                    r = await boss_push(client, batch)
                    assert r.status_code == 202 and r.json()["accepted"] == BATCH, r.text[:300]
                expected = str(total + LATENCY_SAMPLES)
                while (await client.get(CUSTOMERS, params={"limit": 1})).headers["x-total-count"] != expected:
                    await asyncio.sleep(0.2)
                applied = time.perf_counter() - started
                results["Customer service applying those activations (consumer caught up)"] = (
                    f"{total / applied:,.0f} events/s ({applied:.1f} s after the first push)"
                )
    return results


def cpu_reference() -> float:
    """Seconds for a fixed piece of pure-Python work on one core, best of five: how fast this machine is today."""
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        sum(i * i for i in range(10_000_000))
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000, help="size of the synthetic population")
    parser.add_argument("--postgres", help="also measure on a fresh database of this PostgreSQL server (asyncpg URL)")
    parser.add_argument("--boss-records", type=int, default=300_000, help="records of the simulated BOSS feed")
    parser.add_argument("--tickets", type=int, default=1_000_000, help="tickets in the ticketing service's store")
    parser.add_argument("--subscribers", type=int, default=1_000_000, help="subscribers the churn model trains on")
    parser.add_argument(
        "--churn-simulated", type=int, default=10_000, help="customers the churn service's store is filled with"
    )
    parser.add_argument(
        "--attribution-events",
        type=int,
        default=100_000,
        help="billing events the campaign service attributes, with --customers customers assigned",
    )
    parser.add_argument(
        "--only",
        choices=SECTIONS,
        help="measure one section (core: first slice, BOSS feed, customer service); BENCHMARKS.md keeps the others",
    )
    args = parser.parse_args()
    speed = cpu_reference()
    sections = dict.fromkeys(SECTIONS, "")
    measured: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as folder:
        if args.only in (None, "core"):
            results = asyncio.run(bench(Path(folder)))
            results.update(bench_boss.measure_apart(Path(folder), args.boss_records))
            results.update(asyncio.run(bench_customer.measure(Path(folder), args.customers)))
            if args.postgres:
                results.update(asyncio.run(bench_customer.measure(Path(folder), args.customers, args.postgres)))
            sections["core"], measured["core"] = core_section(results, speed), results
        if args.only in (None, "ticketing"):
            tickets = asyncio.run(bench_ticketing.measure(Path(folder), args.tickets))
            if args.postgres:
                tickets.update(asyncio.run(bench_ticketing.measure(Path(folder), args.tickets, args.postgres)))
            sections["ticketing"], measured["ticketing"] = ticketing_section(tickets, speed), tickets
        if args.only in (None, "churn"):
            churn = asyncio.run(
                bench_churn.measure(Path(folder), args.subscribers, args.churn_simulated, args.postgres)
            )
            measured["churn"] = churn
            sections["churn"] = section(
                CHURN_HEADING,
                "Goal: training time and peak memory at 1M subscribers × 12 months; batch scoring ≥ 50% of a bare "
                "`Booster.predict` on the same matrix; online score p99 < 20 ms (`tests/bench_churn.py`).",
                bench_churn.SETUP,
                churn,
                speed,
            )
        if args.only in (None, "campaign"):
            campaign = asyncio.run(bench_campaign.measure(Path(folder), args.customers, args.attribution_events))
            if args.postgres:
                campaign.update(
                    asyncio.run(
                        bench_campaign.measure(Path(folder), args.customers, args.attribution_events, args.postgres)
                    )
                )
            measured["campaign"] = campaign
            sections["campaign"] = section(
                CAMPAIGN_HEADING,
                "Goal: audience build + dispatch for 1M customers in under 60 s on 2 cores; attribution throughput "
                "(`tests/bench_campaign.py`).",
                bench_campaign.SETUP,
                campaign,
                speed,
            )
        if args.only in (None, "gateway"):
            gateway = asyncio.run(bench_gateway.measure(Path(folder)))
            if args.postgres:
                gateway.update(asyncio.run(bench_gateway.measure(Path(folder), args.postgres)))
            measured["gateway"] = gateway
            sections["gateway"] = section(
                GATEWAY_HEADING,
                "Goal: a read through the gateway adds < 2 ms at p50 and keeps ≥ 70% of the throughput of the same "
                "read direct to the service (`tests/bench_gateway.py`).",
                bench_gateway.SETUP,
                gateway,
                speed,
            )
    text = write_sections(Path("BENCHMARKS.md"), sections)
    print(text)
    print(f"and {write_results(RESULTS, measured, speed)}")


SECTIONS = ("core", "ticketing", "churn", "campaign", "gateway")
TICKETING_HEADING = "## Ticketing"
CHURN_HEADING = "## Churn"
CAMPAIGN_HEADING = "## Campaign"
GATEWAY_HEADING = "## Gateway"
HEADINGS = {
    "ticketing": TICKETING_HEADING,
    "churn": CHURN_HEADING,
    "campaign": CAMPAIGN_HEADING,
    "gateway": GATEWAY_HEADING,
}


def machine(speed: float) -> str:
    return (
        f"- when: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n"
        f"- machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; "
        f"CPU reference {speed:.2f} s (lower is faster: the same virtual machine has measured 40% apart on two days, "
        "so compare runs by it)"
    )


RESULTS = Path("bench/results")


def write_results(folder: Path, measured: dict[str, dict[str, str]], speed: float) -> Path:
    """`bench/results/<date>.json`: the figures of this run with the commit and machine they were measured on, for
    comparing runs by script. A section measured again the same day replaces its earlier figures; the others stay."""
    now = datetime.now(UTC)
    path = folder / f"{now:%Y-%m-%d}.json"
    kept = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"sections": {}}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=False).stdout
    for name, results in measured.items():
        kept["sections"][name] = {
            "measured_at": now.isoformat(timespec="seconds"),
            "commit": commit or None,
            "uncommitted_changes": bool(dirty.strip()),
            "machine": {
                "cores": os.cpu_count(),
                "arch": platform.machine(),
                "python": platform.python_version(),
                "cpu_reference_seconds": round(speed, 3),
            },
            "results": results,
        }
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(kept, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_sections(path: Path, sections: dict[str, str]) -> str:
    """BENCHMARKS.md with the sections measured now, the others as the last run that measured them left them: each
    section runs from its heading to the next one's; the core section is what comes before the first."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    starts = sorted((at, name) for name, heading in HEADINGS.items() if (at := old.find(f"\n{heading}\n")) >= 0)
    ends = [at for at, _ in starts[1:]] + [len(old)]
    kept = {"core": old[: starts[0][0]] if starts else old}
    kept.update({name: old[at:end] for (at, name), end in zip(starts, ends, strict=True)})
    text = "\n\n".join(filter(None, (sections[name] or kept.get(name, "").strip() for name in SECTIONS)))
    path.write_text(text + "\n", encoding="utf-8")
    return text


def ticketing_section(results: dict[str, str], speed: float) -> str:
    return section(
        TICKETING_HEADING,
        "Goal: ticket create p99 and list p99 at 32 clients, 1M tickets (`tests/bench_ticketing.py`).",
        bench_ticketing.SETUP,
        results,
        speed,
    )


def section(heading: str, goal: str, setup: str, results: dict[str, str], speed: float) -> str:
    lines = [
        heading,
        "",
        goal,
        "",
        machine(speed),
        setup,
        "",
        "| measure | result |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in results.items()],
    ]
    return "\n".join(lines)


def core_section(results: dict[str, str], speed: float) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`tests/bench.py`); figures are from the last run, not asserted by any test.",
        "",
        machine(speed),
        "- setup: embedded Tansu broker (memory), SQLite files; the first-slice rows run every service in one",
        "  process; the 1M-customer rows run the customer service as one uvicorn process per core (replicas on",
        "  their own ports, the load generator's clients spread over them as a Service would) after a warm-up,",
        "  the aiohttp load generator in the bench process on the same cores; the BOSS feed rows run the gateway",
        "  under uvicorn, the adapter under uvicorn with one worker per core and its outbox relay as a process of",
        "  its own (`crm relay`), and the simulator's pushers in a process of their own",
        "",
        "| measure | result |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in results.items()],
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
