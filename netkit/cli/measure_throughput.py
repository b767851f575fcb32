"""Placeholder: being built."""

import click


@click.command(name="throughput")
def throughput() -> None:
    """Not built yet."""
    raise click.UsageError("not built yet")
