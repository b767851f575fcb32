"""Placeholder: being built."""

import click


@click.command(name="info")
def info() -> None:
    """Not built yet."""
    raise click.UsageError("not built yet")
