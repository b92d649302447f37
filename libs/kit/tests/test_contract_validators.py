"""The compiled contract validator answers exactly as the explaining one, so taking its "valid" is safe.

Every example of every contract, valid and invalid, and variations of each valid example that break it one
field at a time, must get the same verdict from both.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crm_kit.events import Contracts
from crm_kit.settings import find_contracts_dir

CONTRACTS = find_contracts_dir()
EXAMPLES = sorted((CONTRACTS / "examples").glob("*/*.json")) + sorted((CONTRACTS / "examples").glob("*/invalid/*.json"))
ODD_VALUES: list[Any] = [
    None,
    "",
    "x" * 300,
    "13812345678\n",
    -1,
    2**63,
    True,
    [],
    {},
    "2026-02-30",
    "2026-11-20 09:30",
]


@pytest.fixture(scope="module")
def contracts() -> Contracts:
    return Contracts.load(CONTRACTS)


def _event_type(path: Path) -> str:
    return (path.parent.parent if path.parent.name == "invalid" else path.parent).name


def _data(path: Path) -> Any:
    example = json.loads(path.read_text(encoding="utf-8"))
    return example["data"] if path.parent.name == "invalid" else example


def _variants(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The example with one top-level field dropped, replaced by an odd value, or one unexpected field added."""
    for name in data:
        dropped = copy.deepcopy(data)
        del dropped[name]
        yield dropped
        for odd in ODD_VALUES:
            yield {**copy.deepcopy(data), name: odd}
    yield {**copy.deepcopy(data), "unexpected_field": 1}


def _verdicts(contracts: Contracts, event_type: str, data: Any) -> tuple[bool, bool]:
    compiled = contracts.fast_validators[event_type].is_valid(data)
    explained = not any(True for _ in contracts.validators[event_type].iter_errors(data))
    return compiled, explained


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(CONTRACTS)))
def test_both_validators_agree_on_the_example_and_its_variations(contracts: Contracts, path: Path):
    event_type = _event_type(path)
    data = _data(path)
    compiled, explained = _verdicts(contracts, event_type, data)
    assert compiled == explained
    assert explained is (path.parent.name != "invalid")
    if isinstance(data, dict):
        for variant in _variants(data):
            compiled, explained = _verdicts(contracts, event_type, variant)
            assert compiled == explained, variant


def test_money_written_with_a_fraction_is_refused_though_json_schema_calls_it_an_integer(contracts: Contracts):
    path = next((CONTRACTS / "examples" / "billing.invoice.issued.v1").glob("*.json"))
    data = json.loads(path.read_text(encoding="utf-8"))
    assert contracts.violations("billing.invoice.issued.v1", data) == []
    amount = next(k for k, v in data.items() if k.endswith("_fen") and isinstance(v, int))
    # The adapter reads numbers with a fraction as Decimal, as they were written: 12900.0 is not whole fen.
    found = contracts.violations("billing.invoice.issued.v1", {**data, amount: Decimal(f"{data[amount]}.0")})
    assert [v.field for v in found] == [amount]
