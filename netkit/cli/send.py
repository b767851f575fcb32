"""Placeholder: being built."""

import click


@click.command(name="send")
def send() -> None:
    """Not built yet."""
    raise click.UsageError("not built yet")
