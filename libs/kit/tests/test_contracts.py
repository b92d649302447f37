"""The contracts in `contracts/`, both ways: schemas, topic list and examples agree, and violations say where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from crm_kit.events import (
    CloudEvent,
    Contracts,
    ContractViolation,
    event_json,
    load_contracts,
    new_event,
    parse_event,
    parse_rfc3339,
    topic_of,
)
from crm_kit.settings import find_contracts_dir

CONTRACTS = find_contracts_dir()
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
SCHEMAS = sorted((CONTRACTS / "events").glob("*.json"))
SPEC = yaml.safe_load((CONTRACTS / "topics.yaml").read_text(encoding="utf-8"))
LISTED = sorted(t for topic in SPEC["topics"].values() for t in topic["events"])
VALID_EXAMPLES = sorted(p for p in (CONTRACTS / "examples").glob("*/*.json"))
INVALID_EXAMPLES = sorted((CONTRACTS / "examples").glob("*/invalid/*.json"))


def _id(path: Path) -> str:
    return str(path.relative_to(CONTRACTS))


@pytest.fixture(scope="module")
def contracts() -> Contracts:
    return Contracts.load(CONTRACTS)


def test_the_contracts_folder_is_not_empty():
    assert SCHEMAS, "no schema in contracts/events"
    assert LISTED, "no event type in contracts/topics.yaml"
    assert VALID_EXAMPLES and INVALID_EXAMPLES


@pytest.mark.parametrize("path", SCHEMAS, ids=_id)
def test_every_schema_is_valid_draft_2020_12(path: Path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema.get("$schema") == DRAFT_2020_12
    Draft202012Validator.check_schema(schema)
    assert schema.get("type") == "object", "an event's data is an object"
    assert schema.get("additionalProperties") is False, "unknown fields must be refused, not silently carried"
    assert schema.get("$id", "").endswith(f"/{path.name}"), "the $id names the file"


def test_every_listed_event_type_has_a_schema():
    schemas = {p.stem for p in SCHEMAS}
    assert [t for t in LISTED if t not in schemas] == []


def test_every_schema_is_listed_in_topics_yaml_under_its_own_topic():
    assert sorted(p.stem for p in SCHEMAS if p.stem not in LISTED) == []
    for name, topic in SPEC["topics"].items():
        for event_type in topic["events"]:
            assert topic_of(event_type) == name, f"{event_type} is listed under {name}"
    assert len(LISTED) == len(set(LISTED)), "an event type is listed twice"


def test_every_topic_is_fully_described():
    for name, topic in SPEC["topics"].items():
        assert not name.endswith(".dlq"), "dead-letter topics are implied, not listed"
        assert topic["key"] == "customer_id", name
        assert isinstance(topic["partitions"], int) and topic["partitions"] >= 1, name
        assert topic["producer"] and isinstance(topic["consumers"], list), name
        assert topic["retention"], name


def test_the_loaded_contracts_know_every_type_and_topic(contracts: Contracts):
    assert contracts.event_types == sorted(p.stem for p in SCHEMAS)
    assert sorted(contracts.topics) == sorted(SPEC["topics"])
    assert all(t.dlq == f"{t.name}.dlq" for t in contracts.topics.values())


@pytest.mark.parametrize("event_type", LISTED)
def test_every_event_type_has_a_valid_example(event_type: str):
    examples = [p for p in VALID_EXAMPLES if p.parent.name == event_type]
    assert examples, f"no example for {event_type}"


def test_every_example_folder_is_a_known_event_type():
    folders = {p.name for p in (CONTRACTS / "examples").iterdir() if p.is_dir()}
    assert folders - {p.stem for p in SCHEMAS} == set()


@pytest.mark.parametrize("path", VALID_EXAMPLES, ids=_id)
def test_every_valid_example_validates(contracts: Contracts, path: Path):
    data = json.loads(path.read_text(encoding="utf-8"))
    assert contracts.violations(path.parent.name, data) == []


@pytest.mark.parametrize("path", INVALID_EXAMPLES, ids=_id)
def test_every_invalid_example_fails_where_its_why_says(contracts: Contracts, path: Path):
    example = json.loads(path.read_text(encoding="utf-8"))
    assert set(example) == {"why", "data"}
    event_type = path.parent.parent.name
    found = contracts.violations(event_type, example["data"])
    assert found, f"invalid example passes: {example['why']}"
    fields = [v.field for v in found]
    assert all(fields), f"a violation without a field: {found}"
    # The field at fault is the one the example's explanation talks about.
    assert any(f.split(".")[-1] in example["why"] for f in fields), (fields, example["why"])
    with pytest.raises(ContractViolation):
        contracts.validate(event_type, example["data"])


def _activation() -> dict:
    return json.loads(
        (CONTRACTS / "examples" / "billing.subscription.activated.v1" / "individual_postpaid.json").read_text("utf-8")
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(msisdn="1381234567"), "msisdn"),
        (lambda d: d.pop("msisdn"), "msisdn"),
        (lambda d: d["customer"].pop("name"), "customer.name"),
        (lambda d: d["customer"].update(type="enterprise"), "customer.type"),
        (lambda d: d["plan"].update(monthly_fee_fen=129.9), "plan.monthly_fee_fen"),
        (lambda d: d.update(occurred_at="2026-11-20T09:30:00"), "occurred_at"),
        (lambda d: d.update(nickname="小张"), "nickname"),
        (lambda d: d["customer"].update(vip=True), "customer.vip"),
    ],
    ids=["wrong", "missing", "nested-missing", "nested-enum", "decimal-fen", "no-offset", "extra", "nested-extra"],
)
def test_violations_name_the_field_as_the_caller_wrote_it(contracts: Contracts, change, field: str):
    data = _activation()
    change(data)
    found = contracts.violations("billing.subscription.activated.v1", data)
    assert {v.field for v in found} == {field}, found
    with pytest.raises(ContractViolation) as caught:
        contracts.validate("billing.subscription.activated.v1", data)
    assert str(caught.value).startswith(f"{field}: ")


def test_an_unknown_event_type_is_a_violation_of_the_type(contracts: Contracts):
    assert [v.field for v in contracts.violations("billing.subscription.cloned.v1", {})] == ["type"]
    event = CloudEvent(
        id="e1", source="test", type="nowhere.thing.happened.v1", time="2026-11-20T09:30:00+08:00", data={}
    )
    with pytest.raises(ContractViolation) as caught:
        contracts.validate_event(event)
    assert caught.value.violations[0].field == "type"


def test_load_contracts_is_cached_per_folder():
    assert load_contracts(CONTRACTS) is load_contracts(CONTRACTS)


def test_parse_event_reads_a_structured_cloudevent():
    raw = json.dumps(
        {
            "specversion": "1.0",
            "id": "evt-1",
            "source": "billing-adapter",
            "type": "billing.subscription.activated.v1",
            "subject": "C110000012345",
            "time": "2026-11-20T09:30:00+08:00",
            "data": _activation(),
            "correlationid": "req-1",
        }
    ).encode()
    event = parse_event(raw)
    assert event.topic == "billing.subscription"
    assert event.time.utcoffset() is not None
    assert event.correlationid == "req-1"
    assert json.loads(event.to_json())["data"] == _activation()


@pytest.mark.parametrize(
    ("envelope", "field"),
    [
        ({"id": "", "time": "2026-11-20T09:30:00+08:00"}, "id"),
        ({"id": "e1", "time": "2026-11-20T09:30:00"}, "time"),
        ({"id": "e1", "time": "2026-11-20T09:30:00Z", "type": "Billing.Activated"}, "type"),
        ({"id": "e1", "time": "2026-11-20T09:30:00Z", "specversion": "0.3"}, "specversion"),
        ({"id": "e1", "time": "2026-11-20T09:30:00Z", "data": "not an object"}, "data"),
    ],
    ids=["empty-id", "naive-time", "bad-type", "old-spec", "data-not-object"],
)
def test_parse_event_refuses_a_broken_envelope_naming_the_field(envelope: dict, field: str):
    base = {"source": "x", "type": "customer.profile.created.v1", "data": {}}
    with pytest.raises(ContractViolation) as caught:
        parse_event(json.dumps(base | envelope).encode())
    assert caught.value.event_type == "envelope"
    assert [v.field for v in caught.value.violations] == [field]


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'{"id": 1'])
def test_parse_event_refuses_bytes_that_are_not_an_event(raw: bytes):
    with pytest.raises(ContractViolation):
        parse_event(raw)


def test_a_pattern_ends_at_the_end_of_the_string_as_json_schema_means_it():
    contracts = load_contracts(find_contracts_dir())
    data = json.loads(
        (find_contracts_dir() / "examples/billing.subscription.activated.v1/individual_postpaid.json").read_text()
    )
    assert contracts.violations("billing.subscription.activated.v1", data) == []
    for where, value in (("msisdn", data["msisdn"] + "\n"), ("customer_id", data["customer_id"] + "\n")):
        broken = {**data, where: value}
        assert [v.field for v in contracts.violations("billing.subscription.activated.v1", broken)] == [where]


def test_event_json_writes_the_same_event_as_the_model():
    data = json.loads((CONTRACTS / "examples" / "billing.usage.recorded.v1" / "domestic_day.json").read_text())
    moment = parse_rfc3339(data["occurred_at"])
    options = {"source": "/crm/billing-adapter/boss", "subject": data["customer_id"], "data": data, "time": moment}
    made = json.loads(event_json("billing.usage.recorded.v1", event_id="e-1", **options))
    modelled = json.loads(new_event("billing.usage.recorded.v1", event_id="e-1", **options).to_json())
    assert made.keys() == modelled.keys()
    assert parse_rfc3339(made.pop("time")) == parse_rfc3339(modelled.pop("time")) == moment
    assert made == modelled
    assert parse_event(json.dumps({**made, "time": moment.isoformat()}).encode()).data == data
