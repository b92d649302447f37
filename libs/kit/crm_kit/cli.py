"""`crm`: the operator's command line — simulate a BOSS feed, import a BOSS batch file, write a test file."""

import typer

from crm_kit import boss_files, simulator

cli = typer.Typer(help="Telecom CRM operator commands.", no_args_is_help=True, add_completion=False)
cli.command("simulate")(simulator.simulate)
cli.command("import")(boss_files.import_file)
cli.command("usage-file")(boss_files.write_usage_file)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
