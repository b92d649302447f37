"""Dead-letter replay puts records back on their topic once, with their key and bytes."""

from crm_kit.broker import ensure_topics
from crm_kit.dlq import replay_dead_letters
from crm_kit.events import load_contracts
from crm_kit.settings import find_contracts_dir
from crm_kit.testing import publish, read_topic


async def test_replay_moves_dead_letters_back_once(broker, kafka):
    await ensure_topics(broker.bootstrap, load_contracts(find_contracts_dir()))
    await publish(broker.bootstrap, "billing.subscription.dlq", [("C1", b'{"first": 1}'), ("C2", b'{"second": 2}')])

    first = await replay_dead_letters(kafka, "billing.subscription", idle_seconds=1)
    again = await replay_dead_letters(kafka, "billing.subscription", idle_seconds=1)

    assert (first.count, again.count) == (2, 0)
    replayed = await read_topic(broker.bootstrap, "billing.subscription", expect=2)
    assert sorted((r.key, r.value) for r in replayed) == [(b"C1", b'{"first": 1}'), (b"C2", b'{"second": 2}')]
    for r in replayed:
        headers = dict(r.headers)
        assert headers["dlq.replayed_from"].startswith(b"billing.subscription.dlq:0:")
        assert not any(k.startswith("dlq.") and k != "dlq.replayed_from" for k in headers)
