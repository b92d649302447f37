"""`crm-dev`: the developer's commands. `crm-dev run` is what `make run` starts.

It starts the embedded broker, every service and the gateway on loopback with SQLite files
under `var/`, waits until all are ready, loads the demo population through the gateway, prints
the URLs, and on Ctrl-C stops everything it started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import httpx
import typer
from pydantic_settings import BaseSettings, SettingsConfigDict

from crm_kit.auth import issue_token
from crm_kit.broker import EmbeddedBroker, port_open
from crm_kit.dlq import replay_dead_letters
from crm_kit.presentation import SHANGHAI
from crm_kit.settings import AuthSettings, KafkaSettings
from crm_kit.signing import DEV_SECRET, DEV_SOURCE
from crm_kit.simulator import Population, ndjson_batches, push, records

cli = typer.Typer(help="Telecom CRM developer commands.", no_args_is_help=True, add_completion=False)


class DevStackSettings(BaseSettings):
    """Ports and places for the local stack (`CRM_DEV_*`)."""

    model_config = SettingsConfigDict(env_prefix="CRM_DEV_", extra="ignore")

    var_dir: Path = Path("var")
    kafka_port: int = 9092
    gateway_port: int = 8000
    customer_port: int = 8001
    billing_adapter_port: int = 8002
    ticketing_port: int = 8003
    churn_port: int = 8004
    campaign_port: int = 8005
    demo_customers: int = 50
    ready_timeout_seconds: float = 90.0


@dataclass(frozen=True)
class App:
    name: str
    factory: str
    port: int
    env: dict[str, str]


def stack(s: DevStackSettings) -> list[App]:
    var = s.var_dir.resolve()

    def sqlite(name: str) -> str:
        return f"sqlite+aiosqlite:///{var / f'{name}.db'}"

    # the services verify the gateway's RS256 tokens against its JWKS, and the dev shared-secret token too
    jwks = {"CRM_AUTH_JWKS_URL": f"http://127.0.0.1:{s.gateway_port}/.well-known/jwks.json"}

    return [
        App(
            "customer",
            "crm_customer.app:create_app",
            s.customer_port,
            {"CRM_CUSTOMER_DATABASE_URL": sqlite("customer"), **jwks},
        ),
        App(
            "billing-adapter",
            "crm_billing_adapter.app:create_app",
            s.billing_adapter_port,
            {"CRM_BILLING_ADAPTER_DATABASE_URL": sqlite("billing-adapter"), **jwks},
        ),
        App(
            "ticketing",
            "crm_ticketing.app:create_app",
            s.ticketing_port,
            {"CRM_TICKETING_DATABASE_URL": sqlite("ticketing"), **jwks},
        ),
        App(
            "churn",
            "crm_churn.app:create_app",
            s.churn_port,
            {"CRM_CHURN_DATABASE_URL": sqlite("churn"), **jwks},
        ),
        App(
            "campaign",
            "crm_campaign.app:create_app",
            s.campaign_port,
            {"CRM_CAMPAIGN_DATABASE_URL": sqlite("campaign"), **jwks},
        ),
        App(
            "gateway",
            "crm_gateway.app:create_app",
            s.gateway_port,
            {
                "CRM_GATEWAY_CUSTOMER_URL": f"http://127.0.0.1:{s.customer_port}",
                "CRM_GATEWAY_BILLING_ADAPTER_URL": f"http://127.0.0.1:{s.billing_adapter_port}",
                "CRM_GATEWAY_TICKETING_URL": f"http://127.0.0.1:{s.ticketing_port}",
                "CRM_GATEWAY_CHURN_URL": f"http://127.0.0.1:{s.churn_port}",
                "CRM_GATEWAY_CAMPAIGN_URL": f"http://127.0.0.1:{s.campaign_port}",
                "CRM_GATEWAY_DATABASE_URL": sqlite("gateway"),
            },
        ),
    ]


def _spawn(app: App, bootstrap: str, logs: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CRM_KAFKA_BOOTSTRAP": bootstrap, **app.env}
    log = (logs / f"{app.name}.log").open("ab")
    return subprocess.Popen(  # noqa: S603 - our own interpreter running uvicorn
        [
            sys.executable,
            "-m",
            "uvicorn",
            app.factory,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(app.port),
            "--no-access-log",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_ready(apps: list[App], procs: dict[str, subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = {a.name: a for a in apps}
    while pending:
        for name, app in list(pending.items()):
            if procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited with code {procs[name].returncode}; see var/log/{name}.log")
            try:
                if httpx.get(f"http://127.0.0.1:{app.port}/health/ready", timeout=2).status_code == 200:
                    del pending[name]
                    typer.echo(f"  ✓ {name} ready on http://127.0.0.1:{app.port}")
            except httpx.HTTPError:
                pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after {timeout:.0f}s: {', '.join(pending)}")
        time.sleep(0.3)


def _stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for p in procs.values():
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in procs.values():
        try:
            p.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


DEMO_MONTHS = 2


def demo_population(customers: int, today: date | None = None) -> Population:
    """The demo customers' last two full months, so the 360 view shows recent bills and usage; the same records
    all month long (re-pushing them is harmless: the adapter answers duplicate)."""
    this_month = (today or datetime.now(SHANGHAI).date()).replace(day=1)
    first = this_month
    for _ in range(DEMO_MONTHS):
        first = (first - timedelta(days=1)).replace(day=1)
    return Population(
        customers=customers, months=DEMO_MONTHS, start=datetime.combine(first, datetime.min.time(), SHANGHAI)
    )


def load_demo(gateway: str, customers: int) -> tuple[int, int]:
    """Push the simulated population through the gateway, signed as the dev BOSS source; returns (accepted,
    duplicates)."""
    batches = ndjson_batches(records(demo_population(customers)))
    summary = asyncio.run(push(gateway, batches, source=DEV_SOURCE, secret=DEV_SECRET, progress=False))
    return summary.accepted, summary.duplicates


@cli.command()
def run(demo: bool = typer.Option(True, help="Load the demo population through the gateway")) -> None:
    """Start broker, services and gateway on loopback; Ctrl-C stops them all."""
    s = DevStackSettings()
    logs = s.var_dir / "log"
    logs.mkdir(parents=True, exist_ok=True)
    busy = [
        p
        for p in (
            s.kafka_port,
            s.gateway_port,
            s.customer_port,
            s.billing_adapter_port,
            s.ticketing_port,
            s.churn_port,
            s.campaign_port,
        )
        if port_open("127.0.0.1", p)
    ]
    if busy:
        typer.echo(f"Ports already in use: {busy}. Is another `make run` going? Set CRM_DEV_*_PORT to move.", err=True)
        raise typer.Exit(1)
    broker = EmbeddedBroker(port=s.kafka_port).start()
    typer.echo(f"  ✓ broker (Tansu, in memory) on {broker.bootstrap}")
    apps = stack(s)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    # Ctrl-C too, explicitly: a process started in the background by a script inherits SIGINT ignored.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for app in apps:
            procs[app.name] = _spawn(app, broker.bootstrap, logs)
        _wait_ready(apps, procs, s.ready_timeout_seconds)
        gateway = f"http://127.0.0.1:{s.gateway_port}"
        if demo:
            accepted, duplicates = load_demo(gateway, s.demo_customers)
            typer.echo(
                f"  ✓ demo population: {s.demo_customers} customers, {accepted} BOSS events accepted, "
                f"{duplicates} already loaded"
            )
        typer.echo(
            f"\nTelecom CRM is up.\n"
            f"  gateway        {gateway}   (API docs: {gateway}/docs)\n"
            f"  customers      {gateway}/tmf-api/customerManagement/v4/customer?limit=10\n"
            f"  BOSS push      POST {gateway}/boss/v1/events\n"
            f"  quarantine     {gateway}/boss/v1/quarantine\n"
            f"  tickets        {gateway}/tmf-api/troubleTicket/v4/troubleTicket?limit=10\n"
            f"  customer svc   http://127.0.0.1:{s.customer_port}/docs\n"
            f"  billing svc    http://127.0.0.1:{s.billing_adapter_port}/docs\n"
            f"  ticketing svc  http://127.0.0.1:{s.ticketing_port}/docs\n"
            f"  churn svc      http://127.0.0.1:{s.churn_port}/docs   (train: uv run crm train)\n"
            f"  campaign svc   http://127.0.0.1:{s.campaign_port}/docs\n"
            f"  metrics        http://127.0.0.1:<port>/metrics    logs: {logs}/\n"
            f"  credentials    a 12-hour dev token (agent, supervisor; pii:read) — or mint one: uv run crm-dev token\n"
            f"                 Authorization: Bearer {dev_token()}\n"
            f"  console users  uv run crm-gateway user add <name> --role admin, then POST {gateway}/oauth2/token\n"
            f"Ctrl-C stops everything."
        )
        while not stopping:
            for name, p in procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {p.returncode}; see {logs}/{name}.log")
            time.sleep(0.5)
    except KeyboardInterrupt:
        typer.echo("\nstopping…")
    except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
        typer.echo(f"\n{exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        _stop(procs)
        broker.stop()
        typer.echo("stopped: broker, " + ", ".join(procs))


@cli.command()
def demo(gateway: str = "http://127.0.0.1:8000", customers: int = 50) -> None:
    """Push the demo population to a running gateway (idempotent)."""
    accepted, duplicates = load_demo(gateway, customers)
    typer.echo(f"{accepted} accepted, {duplicates} duplicates")


def dev_token(
    subject: str = "dev-supervisor",
    roles: tuple[str, ...] = ("agent", "supervisor"),
    scopes: tuple[str, ...] = ("pii:read",),
) -> str:
    return issue_token(AuthSettings(), subject, roles=roles, scopes=scopes, ttl=timedelta(hours=12), name=subject)


@cli.command()
def token(
    subject: str = typer.Option("dev-supervisor", help="The user id the token names"),
    role: Annotated[list[str] | None, typer.Option(help="A role (repeat); default agent, supervisor")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="A permission (repeat for several); default pii:read")] = None,
) -> None:
    """Print a 12-hour access token signed with the local (dev) key, for curl and the API docs."""
    typer.echo(dev_token(subject, tuple(role or ("agent", "supervisor")), tuple(scope or ("pii:read",))))


@cli.command("dlq-replay")
def dlq_replay(
    topic: str = typer.Argument(help="The topic whose .dlq to replay, e.g. billing.subscription"),
) -> None:
    """Put dead-lettered records back on their topic after a fix (safe to repeat: consumers de-duplicate)."""
    replayed = asyncio.run(replay_dead_letters(KafkaSettings(), topic))
    typer.echo(f"replayed {replayed.count} records from {topic}.dlq to {topic}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
