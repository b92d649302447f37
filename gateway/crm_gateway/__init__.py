"""gateway: the CRM's front door. One origin, routing by path, request ids, timeouts, problem+json."""
