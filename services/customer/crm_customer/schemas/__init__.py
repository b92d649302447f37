"""Request and response shapes, one module per concern."""
