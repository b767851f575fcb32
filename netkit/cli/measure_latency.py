"""Placeholder: being built."""

import click


@click.command(name="latency")
def latency() -> None:
    """Not built yet."""
    raise click.UsageError("not built yet")
