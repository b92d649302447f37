"""Ticketing: complaints and trouble tickets (投诉/障碍申告, TMF621) under an SLA clock."""
