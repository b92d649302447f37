"""Alembic environment of the campaign service: its own tables plus the kit's outbox and inbox."""

from crm_campaign.models import Base
from crm_kit.db import kit_metadata, run_migrations

run_migrations([kit_metadata, Base.metadata])
