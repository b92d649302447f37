"""The ticketing rules: lifecycle, SLA clock, assignment, duplicates; plain code, no HTTP."""
