"""billing-adapter: the only door from the operator's BOSS/billing system into the CRM."""
