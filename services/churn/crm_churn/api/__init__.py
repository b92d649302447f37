"""Churn routes: thin; parse, authorise, call the domain, shape the answer."""
