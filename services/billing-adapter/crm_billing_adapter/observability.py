"""The adapter's own Prometheus instruments: what came in, by kind and outcome, and how long a batch took.

The kit's instruments (HTTP RED, outbox backlog, age and publish rate) come with every service.
"""

from prometheus_client import Counter, Histogram

RECORDS = Counter(
    "crm_billing_adapter_records_total",
    "BOSS records taken in, by event kind, outcome (accepted, duplicate, rejected) and channel (push, file, replay)",
    ["kind", "outcome", "channel"],
)
BATCH_SECONDS = Histogram(
    "crm_billing_adapter_batch_seconds",
    "Time to check, de-duplicate and stage one batch, by channel",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PUSH_REFUSED = Counter(
    "crm_billing_adapter_push_refused_total",
    "Pushes refused as a whole before they were read, by reason (missing_source, unknown_source, missing_header, "
    "bad_timestamp, stale_timestamp, bad_signature, backlog_full); the BOSS keeps what it sent",
    ["reason"],
)
