"""The gateway's overhead (issue 8): the same read of one customer, direct to the customer service and through the
gateway, side by side in one run; goal: the gateway adds < 2 ms at p50 and keeps ≥ 70% of the direct throughput.

The customer service runs under uvicorn in a process of its own on a few thousand customers (bench_customer's
population, bulk-loaded), the gateway under uvicorn in another in front of it, with its own SQLite identity store.
The bench process drives both over real HTTP with aiohttp, closed loop: the same token, the same customer ids, in
alternating rounds (direct, through the gateway with the token, through the gateway with an API key, then again),
so every path sees the same machine state. One client shows what the gateway adds to a request; 32 show what it
costs in throughput when the two cores are busy. Every answer must be 200; anything else is counted apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import aiohttp

from crm_kit.broker import EmbeddedBroker, free_port
from crm_kit.testing import bearer
from tests.bench_customer import Results, drop_postgres, load, load_postgres

CUSTOMERS = 5_000
CLIENT_COUNTS = (1, 32)
ROUNDS = 6
ROUND_SECONDS = 5.0
"""Short rounds, many, the paths alternating: this virtual machine's speed drifts by a fifth within a minute (one
path's two 10 s rounds have measured 106/s and 132/s), more than the gateway adds, so every path must be spread
over the same drift."""
WARM_UP_SECONDS = 5.0
SEED = 20261126
READ = "/tmf-api/customerManagement/v4/customer/C{:08d}"
BENCH_RATE = 1_000_000
"""The bench client's rate limit and burst at the gateway: its defaults (50/s, burst 100) would throttle it."""
PARTNER = "bench-partner"
PATHS = ("direct to the service", "through the gateway (bearer token)", "through the gateway (API key)")
PROCESSES = ("service", "gateway", "load generator")


@dataclass
class Outcome:
    """What one path saw over its rounds: the latencies of the 200s, the errors by status, each round's rate."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    rates: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)
    cpu: list[float] = field(default_factory=lambda: [0.0] * len(PROCESSES))
    """CPU seconds each process spent over the rounds."""

    def quantile(self, q: int) -> float:
        """The q-th percentile in ms."""
        return (
            statistics.median(self.latencies) if q == 50 else statistics.quantiles(self.latencies, n=100)[q - 1]
        ) * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def text(self) -> str:
        errors = f"{sum(self.errors.values()):,} ERRORS ({', '.join(f'{n:,} × {s}' for s, n in self.errors.items())})"
        each = [
            f"{name} {used / len(self.latencies) * 1000:.2f} ms" for name, used in zip(PROCESSES, self.cpu, strict=True)
        ]
        return (
            f"p50 {self.quantile(50):.1f} ms, p95 {self.quantile(95):.1f} ms, p99 {self.quantile(99):.1f} ms "
            f"({len(self.latencies):,} in {self.seconds:.0f} s, {self.rate:,.0f}/s; rounds "
            f"{', '.join(f'{r:,.0f}/s' for r in self.rates)}; {errors if self.errors else '0 errors'}); "
            f"CPU a request: {', '.join(each)}"
        )


async def closed_loop(
    client: aiohttp.ClientSession, customers: int, clients: int, seconds: float, outcome: Outcome
) -> None:
    """`clients` callers, each reading its next customer as the last is answered, for `seconds`. Caller k draws
    its ids from the same seed on every path, so the paths read the same customers."""
    deadline = time.perf_counter() + seconds
    done = len(outcome.latencies)

    async def caller(k: int) -> None:
        rng = random.Random(SEED + k)
        while time.perf_counter() < deadline:
            path = READ.format(rng.randrange(customers))
            t0 = time.perf_counter()
            try:
                async with client.get(path) as r:
                    answer, status = await r.read(), str(r.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                answer, status = str(exc).encode(), "connection error"
            took = time.perf_counter() - t0
            if status == "200":
                outcome.latencies.append(took)
            else:
                outcome.errors[status] += 1
                outcome.samples.setdefault(status, answer[:300].decode(errors="replace"))

    started = time.perf_counter()
    await asyncio.gather(*(caller(k) for k in range(clients)))
    took = time.perf_counter() - started
    outcome.seconds += took
    outcome.rates.append((len(outcome.latencies) - done) / took)


def start(app: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", app, "--factory"),
            *("--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"),
        ],
        env=env,
    )


async def until_up(client: aiohttp.ClientSession, path: str, server: subprocess.Popen[bytes], name: str) -> None:
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"the {name} exited with {server.returncode}")
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with client.get(path) as r:
                if r.status == 200:
                    return
        await asyncio.sleep(0.3)


def api_key(env: dict[str, str]) -> str:
    """A client of role agent and an API key for it, made with the gateway's CLI as an operator would."""
    cli = (sys.executable, "-m", "crm_gateway.cli")
    subprocess.run([*cli, "client", "add", PARTNER, "--role", "agent"], env=env, check=True, capture_output=True)
    issued = subprocess.run([*cli, "api-key", "issue", PARTNER], env=env, check=True, capture_output=True, text=True)
    return issued.stdout.strip()


async def measure(
    folder: Path, postgres: str | None = None, *, customers: int = CUSTOMERS, seconds: float = ROUND_SECONDS
) -> dict[str, str]:
    """Every figure on a SQLite file, or on a fresh database of the `postgres` server when given."""
    label = "PostgreSQL" if postgres else "SQLite"
    database_file = folder / "customer-gateway-bench.db"
    if postgres:
        database_url, _, _ = await load_postgres(postgres, customers)
    else:
        database_url = f"sqlite+aiosqlite:///{database_file}"
        await asyncio.to_thread(load, database_file, customers)
    try:
        return await _measure(folder, database_url, None if postgres else database_file, label, customers, seconds)
    finally:
        if postgres:
            await drop_postgres(database_url)


async def _measure(
    folder: Path, database_url: str, database_file: Path | None, label: str, customers: int, seconds: float
) -> dict[str, str]:
    results = Results(label)
    service_port, gateway_port = free_port(), free_port()
    gateway_env = {
        **os.environ,
        "CRM_GATEWAY_CUSTOMER_URL": f"http://127.0.0.1:{service_port}",
        "CRM_GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{folder / f'gateway-bench-{label.lower()}.db'}",
        "CRM_GATEWAY_LIMITS__DEFAULT_RATE_PER_SECOND": str(BENCH_RATE),
        "CRM_GATEWAY_LIMITS__DEFAULT_BURST": str(BENCH_RATE),
        "CRM_GATEWAY_LOG_LEVEL": "WARNING",
    }
    key = await asyncio.to_thread(api_key, gateway_env)
    with EmbeddedBroker() as broker:
        service_env = {
            **os.environ,
            "CRM_KAFKA_BOOTSTRAP": broker.bootstrap,
            "CRM_CUSTOMER_DATABASE_URL": database_url,
            "CRM_CUSTOMER_LOG_LEVEL": "WARNING",
            # the tokens the gateway mints for API keys are RS256, verified against its keys
            "CRM_AUTH_JWKS_URL": f"http://127.0.0.1:{gateway_port}/.well-known/jwks.json",
        }
        servers = [
            start("crm_customer.app:create_app", service_port, service_env),
            start("crm_gateway.app:create_app", gateway_port, gateway_env),
        ]
        try:
            async with contextlib.AsyncExitStack() as stack:
                token = bearer("bench-agent", roles=("agent",), ttl=timedelta(hours=4))
                sessions = [
                    await stack.enter_async_context(
                        aiohttp.ClientSession(
                            base_url=f"http://127.0.0.1:{port}",
                            timeout=aiohttp.ClientTimeout(total=60),
                            headers=headers,
                            connector=aiohttp.TCPConnector(limit=64),
                        )
                    )
                    for port, headers in (
                        (service_port, token),
                        (gateway_port, token),
                        (gateway_port, {"X-API-Key": key}),
                    )
                ]
                await until_up(sessions[0], "/health/ready", servers[0], "customer service")
                await until_up(sessions[1], "/health/live", servers[1], "gateway")  # its readiness asks every upstream
                if database_file is not None:
                    await asyncio.to_thread(_read_through, database_file)
                for session in sessions:  # pools filled, statements compiled, tokens verified: not measured
                    warm = Outcome()
                    await closed_loop(session, customers, max(CLIENT_COUNTS), WARM_UP_SECONDS, warm)
                    assert not warm.errors, warm.samples
                load_before = os.getloadavg()[0]
                for clients in CLIENT_COUNTS:
                    outcomes = [Outcome() for _ in PATHS]
                    for _ in range(ROUNDS):
                        for session, outcome in zip(sessions, outcomes, strict=True):
                            before = cpu_seconds(servers)
                            await closed_loop(session, customers, clients, seconds, outcome)
                            after = cpu_seconds(servers)
                            outcome.cpu = [used + a - b for used, a, b in zip(outcome.cpu, after, before, strict=True)]
                    report(results, clients, customers, *outcomes)
                results["Load average (1 min) before and after the rounds"] = (
                    f"{load_before:.1f}, {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (the bench's own three "
                    "processes make up to 3; more is other work on the machine)"
                )
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(30)
    return dict(results)


def report(
    results: Results, clients: int, customers: int, direct: Outcome, gateway: Outcome, with_key: Outcome
) -> None:
    what = f"Read one customer (TMF629 GET customer/{{id}}, {customers:,} customers), {clients} client(s)"
    for name, outcome in zip(PATHS, (direct, gateway, with_key), strict=True):
        results[f"{what}, {name}"] = outcome.text()
        for status, sample in outcome.samples.items():
            print(f"  first {status} {name}: {sample}", flush=True)
    p50, p99 = gateway.quantile(50) - direct.quantile(50), gateway.quantile(99) - direct.quantile(99)
    share = gateway.rate / direct.rate
    latency_goal = (
        f"{'met' if p50 < 2 else 'missed'}: goal < 2 ms"
        if clients == 1
        else "with the cores full a request's time is mostly its wait in line, clients ÷ throughput, so the "
        "throughput goal judges this run"
    )
    results[f"Gateway overhead, {clients} client(s)"] = (
        f"p50 {p50:+.1f} ms ({latency_goal}), p99 {p99:+.1f} ms; throughput "
        f"{share:.0%} of direct ({'met' if share >= 0.7 else 'missed'}: goal ≥ 70%)"
    )
    results[f"API key instead of the token through the gateway, {clients} client(s)"] = (
        f"p50 {with_key.quantile(50) - gateway.quantile(50):+.1f} ms, "
        f"p99 {with_key.quantile(99) - gateway.quantile(99):+.1f} ms; throughput {with_key.rate / gateway.rate:.0%} "
        "of the token's"
    )


def cpu_seconds(servers: list[subprocess.Popen[bytes]]) -> list[float]:
    """CPU (user and system, every thread) each server process and the bench process have used so far."""
    used = []
    for server in servers:
        stat = Path(f"/proc/{server.pid}/stat").read_text()
        utime, stime = stat[stat.rindex(")") + 2 :].split()[11:13]
        used.append((int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK"))
    return [*used, time.process_time()]


def _read_through(path: Path) -> None:
    """The database's pages in the OS cache, as a service that has been running has them."""
    with path.open("rb") as f:
        while f.read(1 << 22):
            pass


SETUP = (
    f"- setup: {CUSTOMERS:,} customers bulk-loaded (bench_customer's population) into the customer service's "
    "database; the service under uvicorn in a process of its own (embedded Tansu broker, its consumers and relay "
    "idle), the gateway under uvicorn in another in front of it (its identity store a SQLite file; the bench "
    f"client's rate limit raised to {BENCH_RATE:,}/s, burst {BENCH_RATE:,}, by `CRM_GATEWAY_LIMITS__DEFAULT_RATE_PER_"
    "SECOND` and `CRM_GATEWAY_LIMITS__DEFAULT_BURST`, where the defaults of 50/s would refuse it; log level WARNING "
    "as in every bench, so no access-log line a request); the aiohttp load generator in the bench process on the "
    "same two cores. The read: TMF629 GET customer/{id} as an agent (masked, no audit), the same shared-secret "
    "bearer token and the same ids on every path; the API key made with `crm-gateway client add` and `api-key "
    "issue`, exchanged at the edge for an RS256 token of its client (minted once, verified by the service against "
    "the gateway's JWKS once; the key itself checked against the identity store every 5 s). "
    "Closed loop after a warm-up that is not counted, "
    f"{ROUNDS} rounds of {ROUND_SECONDS:.0f} s per path alternating direct, gateway with the token, gateway with "
    "the key; one client shows the latency the gateway adds, 32 what it costs in throughput with the cores full "
    "(there the p50 difference is mostly queueing); p50/p95/p99 of the 200s, errors counted apart; overhead = "
    "gateway − direct at the same percentile; CPU a request = each process's user+system CPU over the rounds "
    "(/proc) over the answers\n"
    "- where the time goes (py-spy, samples of the gateway's thread holding the GIL, in front of a stand-in "
    "service that answers at once): FastAPI's routing and the ASGI middleware (request id, RED metrics, access "
    "log, body limit, error handling) take most of it; the upstream call 15% (aiohttp's pool behind the gateway's "
    "own httpx transport); the edge (the cached token check, the rate-limit bucket) 5%. An API key costs about "
    "what a token does: the gateway trusts a key it checked for `api_key_cache_seconds` (5 s) instead of reading "
    "the identity store a request. Before this, httpcore's pool (a socket poll per pooled connection on every "
    "request and close, anyio locks, a failed `import sniffio` per lock) and streaming each answer back made the "
    "gateway spend 2.5 ms of CPU a read at 1 client and 5 ms at 32 (p50 +2.6/+3.2 ms, 56–75% of direct)"
)


def main() -> None:
    """Just this bench, printed and not written to BENCHMARKS.md (`python -m tests.bench --only gateway` writes)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument("--postgres")
    parser.add_argument("--seconds", type=float, default=ROUND_SECONDS, help="of each round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        measured = asyncio.run(measure(Path(folder), args.postgres, customers=args.customers, seconds=args.seconds))
    print("\n".join(f"| {k} | {v} |" for k, v in measured.items()))


if __name__ == "__main__":
    main()
