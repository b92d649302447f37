"""`crm`: the operator's command line — simulate a BOSS feed, import a BOSS batch file, write a test file, run a
service's outbox relay as a process of its own, migrate a service's database; and the commands services add as
plugins (entry points in the group `crm.commands`, e.g. the churn service's `crm train`), which the kit cannot import
itself."""

from importlib.metadata import entry_points

import typer

from crm_kit import boss_files, migrate, relay, simulator

cli = typer.Typer(help="Telecom CRM operator commands.", no_args_is_help=True, add_completion=False)
cli.command("simulate")(simulator.simulate)
cli.command("import")(boss_files.import_file)
cli.command("usage-file")(boss_files.write_usage_file)
cli.command("relay")(relay.relay)
cli.command("migrate")(migrate.migrate)
for plugin in entry_points(group="crm.commands"):
    cli.command(plugin.name)(plugin.load())


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
