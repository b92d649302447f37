"""The whole suite stands on the kit's fixtures: real broker, real database, real HTTP."""

pytest_plugins = ["crm_kit.testing"]
