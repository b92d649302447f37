"""Settings come from the environment under each service's prefix; logs are JSON lines with the request id."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from asgi_correlation_id import correlation_id
from pydantic_settings import SettingsConfigDict

from crm_kit.observability import configure_logging
from crm_kit.settings import KafkaSettings, ServiceSettings, find_contracts_dir


class BillingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_KITTEST_", extra="ignore")


def test_a_service_reads_its_own_prefix_and_the_shared_bus(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CRM_KITTEST_DATABASE_URL", "postgresql+asyncpg://crm@db/billing")
    monkeypatch.setenv("CRM_KITTEST_CONSUMER_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("CRM_KAFKA_BOOTSTRAP", "kafka-0:9092,kafka-1:9092")
    monkeypatch.setenv("CRM_OTHER_DATABASE_URL", "sqlite+aiosqlite:///not-mine.db")
    s = BillingSettings()
    assert s.database_url == "postgresql+asyncpg://crm@db/billing"
    assert s.consumer_max_attempts == 7
    assert s.kafka.bootstrap == "kafka-0:9092,kafka-1:9092"
    assert KafkaSettings().bootstrap == "kafka-0:9092,kafka-1:9092"


def test_explicit_values_beat_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CRM_KITTEST_DATABASE_URL", "postgresql+asyncpg://crm@db/billing")
    assert BillingSettings(database_url="sqlite+aiosqlite:///x.db").database_url == "sqlite+aiosqlite:///x.db"


def test_the_contracts_folder_is_found_from_anywhere_in_the_repo():
    root = find_contracts_dir()
    assert (root / "topics.yaml").is_file()
    assert find_contracts_dir(root / "events") == root
    assert ServiceSettings().contracts_dir == root


def test_the_contracts_folder_is_found_from_outside_the_repo(tmp_path: Path):
    assert (find_contracts_dir(tmp_path) / "topics.yaml").is_file()  # the kit's own location leads to it


def test_log_lines_are_json_with_service_level_and_request_id():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging("kit-logs", "INFO", json_logs=True)
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        token = correlation_id.set("req-log-1")
        try:
            logging.getLogger("crm_kit.test").info("customer %s created", "C1")
        finally:
            correlation_id.reset(token)
        logging.getLogger("crm_kit.test").debug("not at INFO")
        logging.getLogger("crm_kit.test").warning("no request")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "customer C1 created"
    assert first["level"] == "INFO"
    assert first["service"] == "kit-logs"
    assert first["request_id"] == "req-log-1"
    assert first["name"] == "crm_kit.test"
    assert "time" in first
    assert second["request_id"] == "-"
