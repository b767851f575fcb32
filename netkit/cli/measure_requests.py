"""Placeholder: being built."""

import click


@click.command(name="requests")
def requests() -> None:
    """Not built yet."""
    raise click.UsageError("not built yet")
