"""Placeholder: being built."""

import click


@click.command(name="loss")
def loss() -> None:
    """Not built yet."""
    raise click.UsageError("not built yet")
