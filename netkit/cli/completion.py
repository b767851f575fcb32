"""Placeholder: being built."""

import click


@click.command(name="completion")
def completion() -> None:
    """Not built yet."""
    raise click.UsageError("not built yet")
