"""The campaign service's HTTP API."""
