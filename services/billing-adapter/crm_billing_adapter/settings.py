"""billing-adapter settings (`CRM_BILLING_ADAPTER_*`)."""

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from crm_kit.settings import ServiceSettings
from crm_kit.signing import DEV_SECRET, DEV_SOURCE, REPLAY_WINDOW_SECONDS

SOURCE_NAME = re.compile(r"[a-z0-9-]{1,64}")


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_BILLING_ADAPTER_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/billing-adapter.db"
    max_batch_records: int = 5000
    max_decompressed_bytes: int = 64 * 1024 * 1024
    source_secrets: dict[str, SecretStr] = Field(default_factory=lambda: {DEV_SOURCE: SecretStr(DEV_SECRET)})
    """Each BOSS source (计费源) that may push, with the HMAC secret it signs with: JSON `{"boss": "…"}`."""
    signature_window_seconds: int = Field(REPLAY_WINDOW_SECONDS, ge=1)
    """How far a push's X-Boss-Timestamp may be from our clock, either way."""
    max_outbox_backlog: int = Field(2_000_000, ge=1)
    """Events waiting for the broker beyond which a push is refused with 503 rather than taken in."""
    retry_after_seconds: int = Field(30, ge=1)
    """The Retry-After of that 503."""

    @field_validator("source_secrets")
    @classmethod
    def _sources_are_names_with_secrets(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for source, secret in value.items():
            if not SOURCE_NAME.fullmatch(source):
                raise ValueError(f"source {source!r} must be 1-64 characters of a-z 0-9 -")
            if not secret.get_secret_value():
                raise ValueError(f"source {source!r} has an empty secret")
        return value

    # File imports of BOSS batch feeds (话单文件)
    import_dir: Path = Path("var/imports")
    """Where uploaded import files are kept while (and after) they are read."""
    import_max_bytes: int = Field(4 * 1024**3, ge=1)
    """The largest file an import takes, as uploaded (gzip counts compressed)."""
    import_chunk_lines: int = Field(5000, ge=1)
    """Lines read, ingested and committed together; a crash resumes after the last committed chunk."""
    import_lease_seconds: float = Field(60.0, gt=0)
    """A running job not heard from for this long is taken as abandoned (its worker crashed) and claimed again."""
    import_poll_seconds: float = Field(1.0, gt=0)
    """How often an idle import worker looks for queued jobs."""
    import_worker: bool = True
    """Whether this process runs an import worker (each replica may; a job is claimed by one at a time)."""
