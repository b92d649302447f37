"""TMF621 shapes and the ticketing API's own."""
