"""`make run`'s stack (crm-dev run) as a user meets it: up, usable through the gateway, gone after Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from crm_kit.broker import free_port, port_open
from crm_kit.signing import DEV_SECRET, DEV_SOURCE, signed_push
from crm_kit.testing import bearer
from tests.boss import activation

ROOT = Path(__file__).resolve().parent.parent


def test_the_dev_stack_serves_a_pushed_customer_and_stops_cleanly_on_ctrl_c(tmp_path):
    services = ("KAFKA", "GATEWAY", "CUSTOMER", "BILLING_ADAPTER", "TICKETING", "CHURN", "CAMPAIGN")
    ports = {name: free_port() for name in services}
    env = {
        **os.environ,
        "CRM_DEV_VAR_DIR": str(tmp_path),
        "CRM_DEV_DEMO_CUSTOMERS": "20",
        **{f"CRM_DEV_{k}_PORT": str(v) for k, v in ports.items()},
    }
    log = (tmp_path / "stack.out").open("wb")
    stack = subprocess.Popen(
        [sys.executable, "-m", "crm_kit.devstack", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while b"Telecom CRM is up" not in (tmp_path / "stack.out").read_bytes():
            assert stack.poll() is None, (tmp_path / "stack.out").read_text()
            assert time.monotonic() < deadline, (tmp_path / "stack.out").read_text()
            time.sleep(0.3)
        output = (tmp_path / "stack.out").read_text()
        assert "demo population: 20 customers" in output
        gateway = httpx.Client(base_url=f"http://127.0.0.1:{ports['GATEWAY']}", timeout=10, headers=bearer())
        loaded = time.monotonic()
        while gateway.get("/tmf-api/customerManagement/v4/customer").headers["x-total-count"] != "20":
            assert time.monotonic() - loaded < 30, "the demo customers did not reach the customer service"
            time.sleep(0.2)

        # The demo's months of usage and bills are still being applied: the 5 seconds are for an idle system.
        idle_readings = 0
        while idle_readings < 2:  # two readings a second apart: the relay's gauge is sampled once a second
            assert time.monotonic() - loaded < 180, "the customer service did not catch up with the demo load"
            time.sleep(1)
            idle_readings = idle_readings + 1 if _idle(ports) else 0

        pushed_at = time.monotonic()
        body, headers = signed_push([activation(424242)], DEV_SOURCE, DEV_SECRET)  # as the demo load signs
        assert gateway.post("/boss/v1/events", content=body, headers=headers).status_code == 202
        while gateway.get("/tmf-api/customerManagement/v4/customer/C424242").status_code != 200:
            assert time.monotonic() - pushed_at < 5, "customer not readable within 5 seconds"
            time.sleep(0.1)
        tickets = gateway.get("/tmf-api/troubleTicket/v4/troubleTicket")
        assert (tickets.status_code, tickets.json()) == (200, []), "the ticketing service answers through the gateway"
        scores = gateway.get("/churn/v1/scores")
        assert (scores.status_code, scores.json()) == (200, []), "the churn service answers through the gateway"
        campaigns = gateway.get("/campaign/v1/campaigns", headers=bearer(roles=("marketer",)))
        assert (campaigns.status_code, campaigns.json()) == (200, []), "the campaign service answers too"
    finally:
        stack.send_signal(signal.SIGINT)
        stack.wait(30)
    assert stack.returncode == 0, (tmp_path / "stack.out").read_text()
    stopped = "stopped: broker, customer, billing-adapter, ticketing, churn, campaign, gateway"
    assert stopped in (tmp_path / "stack.out").read_text()
    assert not any(port_open("127.0.0.1", p) for p in ports.values()), "a process of the stack outlived Ctrl-C"
    assert (tmp_path / "customer.db").is_file()
    assert (tmp_path / "ticketing.db").is_file()
    assert (tmp_path / "churn.db").is_file()
    assert (tmp_path / "campaign.db").is_file()


def _idle(ports: dict[str, int]) -> bool:
    """Nothing left in the adapter's outbox and nothing the customer service has still to apply."""
    backlog = _samples(ports["BILLING_ADAPTER"], "crm_billing_adapter_outbox_backlog")
    lag = _samples(ports["CUSTOMER"], "crm_customer_consumer_lag")
    return bool(backlog) and bool(lag) and sum(backlog) == 0 and sum(lag) == 0


def _samples(port: int, family_name: str) -> list[float]:
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    return [
        sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == family_name
        for sample in family.samples
    ]
