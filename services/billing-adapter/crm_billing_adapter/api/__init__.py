"""The adapter's routes, one module per concern."""

from crm_billing_adapter.api import imports, push, quarantine

routers = [push.router, quarantine.router, imports.router]
