"""The customer rules, one module per concern; plain functions and classes, no HTTP."""
