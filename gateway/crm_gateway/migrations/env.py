"""Alembic environment of the gateway: its identity store (users, clients, API keys, signing keys)."""

from crm_gateway.models import Base
from crm_kit.db import run_migrations

run_migrations([Base.metadata])
