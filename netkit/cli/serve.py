"""Placeholder: being built."""

import click


@click.command(name="serve")
def serve() -> None:
    """Not built yet."""
    raise click.UsageError("not built yet")
