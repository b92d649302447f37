"""The campaign service consumes exactly the topics that list it as a consumer, and only types with a contract."""

from __future__ import annotations

import yaml

from crm_campaign.events import subscription
from crm_kit.events import load_contracts
from crm_kit.settings import find_contracts_dir


def test_campaign_subscribes_to_exactly_the_topics_that_name_it() -> None:
    contracts = load_contracts(find_contracts_dir())
    topics = yaml.safe_load((contracts.root / "topics.yaml").read_text(encoding="utf-8"))["topics"]
    ours = {name for name, t in topics.items() if "campaign" in t["consumers"]}
    handled = set(subscription(contracts, "campaign").handlers)

    assert set(subscription(contracts, "campaign").topics) == ours
    assert all(contracts.knows(t) for t in handled)
    assert handled <= {e for name in ours for e in topics[name]["events"]}
