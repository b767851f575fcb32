"""Placeholder: being built."""

import click


@click.command(name="monitor")
def monitor() -> None:
    """Not built yet."""
    raise click.UsageError("not built yet")
