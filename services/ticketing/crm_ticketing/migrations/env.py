"""Alembic environment of the ticketing service: its own tables plus the kit's outbox and inbox."""

from crm_kit.db import kit_metadata, run_migrations
from crm_ticketing.models import Base

run_migrations([kit_metadata, Base.metadata])
