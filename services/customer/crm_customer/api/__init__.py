"""The customer service's routes, one module per concern."""
