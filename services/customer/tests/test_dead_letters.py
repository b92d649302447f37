"""A record that breaks its contract goes to `billing.subscription.dlq` with the error; the consumer moves on."""

from __future__ import annotations

import json

from crm_kit.events import new_event
from crm_kit.testing import read_topic

DLQ = "billing.subscription.dlq"


def _headers(record) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers or []}


async def test_records_breaking_their_contract_are_dead_lettered_and_the_next_one_is_applied(service, boss):
    cid = "C400"
    not_json = b'{"specversion": "1.0", "id": '
    no_envelope = json.dumps({"customer_id": cid, "status": "active"}).encode()
    invalid_data = boss.event(
        "suspended", boss.example("billing.subscription.suspended.v1/invalid", "reason_in_chinese")["data"]
    )
    invalid_data.data["customer_id"] = invalid_data.subject = cid
    not_for_us = new_event(  # a type this consumer has no handler for (say, a newer one): skipped, not an error
        "billing.subscription.transferred.v1", source="/crm/billing-adapter/boss", subject=cid, data={"x": 1}
    )
    valid = boss.activated(cid, "S400", "13800000400", "2026-11-20T09:30:00+08:00")
    dead_before = await service.metric("crm_customer_dlq_total", topic="billing.subscription", reason="contract")

    await boss.send_raw(
        cid,
        not_json,
        no_envelope,
        invalid_data.to_json().encode(),
        not_for_us.to_json().encode(),
        valid.to_json().encode(),
    )

    customer = await service.wait_for(cid)  # behind the bad records on the same partition, and still applied
    assert customer["status"] == "active"
    dead = await read_topic(service.bootstrap, DLQ, expect=3)
    assert [r.value for r in dead] == [not_json, no_envelope, invalid_data.to_json().encode()]
    assert {r.key for r in dead} == {cid.encode()}
    headers = [_headers(r) for r in dead]
    for h in headers:
        assert h["dlq.reason"] == "contract"
        assert h["dlq.topic"] == "billing.subscription"
        assert h["dlq.consumer"] == "customer"
        assert h["dlq.error"]
        assert h["dlq.failed_at"]
    assert len({(h["dlq.partition"], h["dlq.offset"]) for h in headers}) == 3
    assert "id" in headers[1]["dlq.error"]  # the envelope misses its id (and type, source, …)
    assert headers[2]["dlq.error"].startswith("reason:")  # the field at fault
    assert "欠费" in headers[2]["dlq.error"]
    dead_after = await service.metric("crm_customer_dlq_total", topic="billing.subscription", reason="contract")
    assert dead_after == dead_before + 3


async def test_every_contract_example_is_accepted_and_every_invalid_one_dead_lettered(service, boss):
    """What the producer's contract calls valid, this consumer applies; what it calls invalid, it refuses."""
    folder = boss.contracts_dir / "examples"
    valid, invalid = [], []
    for event_type in boss.contracts.event_types:
        if not event_type.startswith("billing.subscription."):
            continue
        kind = event_type.split(".")[2]
        for path in sorted((folder / event_type).glob("*.json")):
            valid.append(boss.event(kind, json.loads(path.read_text(encoding="utf-8"))))
        for path in sorted((folder / event_type / "invalid").glob("*.json")):
            invalid.append(boss.event(kind, json.loads(path.read_text(encoding="utf-8"))["data"]))
    assert len(valid) >= 6
    assert invalid
    valid.sort(key=lambda e: e.time)  # one story per customer, in the order it happened
    applied = await service.consumed(outcome="applied")

    await boss.send(*invalid, *valid)

    await service.wait_consumed(applied + len(valid), outcome="applied")
    dead = await read_topic(service.bootstrap, DLQ, expect=len(invalid))
    assert sorted(r.value for r in dead) == sorted(e.to_json().encode() for e in invalid)
    assert all(_headers(r)["dlq.reason"] == "contract" for r in dead)
    # the examples tell one story per customer; its end is what the service now shows
    individual = await service.customer("C110000012345")
    organization = await service.customer("C440300098765")
    ported = await service.customer("C310000055555")
    assert individual is not None
    assert organization is not None
    assert ported is not None
    assert individual["status"] == "active"  # suspended for arrears on 5 Jan, resumed on 6 Jan
    assert individual["subscription"][0]["plan"]["code"] == "5G-ULT-199"
    assert organization["status"] == "inactive"  # terminated on 31 Mar 2027
    assert ported["subscription"][0]["status"] == "ported_out"
