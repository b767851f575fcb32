"""Placeholder: being built."""

import click


@click.command(name="probe")
def probe() -> None:
    """Not built yet."""
    raise click.UsageError("not built yet")
