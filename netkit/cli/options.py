"""Options that several commands share, declared once so they read and behave the same everywhere.

- :func:`family_options`: ``-4``/``-6`` given to the command as one ``family`` argument
  (``socket.AF_INET``, ``socket.AF_INET6`` or ``socket.AF_UNSPEC``); both at once is a usage error.
- :func:`timeout_option`: a positive duration with the command's own default and help.
- :func:`threshold_options`: ``--max-loss PCT`` and ``--max-rtt DURATION`` (exit 1 when exceeded).
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from typing import Any

import click

from netkit.cli.params import Duration, Number, usage_error


def family_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``-4``/``-6``; the command receives ``family`` instead of two flags."""

    @functools.wraps(f)
    def with_family(*args: Any, ipv4: bool, ipv6: bool, **kwargs: Any) -> Any:
        if ipv4 and ipv6:
            raise usage_error("-4 and -6 exclude each other: give one, or neither for either family")
        family = socket.AF_INET if ipv4 else socket.AF_INET6 if ipv6 else socket.AF_UNSPEC
        return f(*args, family=family, **kwargs)

    with_family = click.option("-6", "ipv6", is_flag=True, help="IPv6 only.")(with_family)
    return click.option("-4", "ipv4", is_flag=True, help="IPv4 only.")(with_family)


def timeout_option(*names: str, default: str, help: str, max_s: float | None = None) -> Callable[[Any], Any]:
    """A positive duration option (``--timeout``, ``-W``, ``--connect-timeout``...) shown with its default."""
    return click.option(*names, type=Duration(min=0.0, min_open=True, max=max_s), default=default,
                        show_default=True, help=help)


def threshold_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--max-loss PCT`` and ``--max-rtt DURATION``: the run's check fails (exit 1) above either."""
    f = click.option("--max-rtt", type=Duration(min=0.0, min_open=True), default=None, metavar="DURATION",
                     help="Exit 1 when the p95 RTT (of any target) exceeds DURATION.")(f)
    return click.option("--max-loss", type=Number(0, 100), default=None, metavar="PCT",
                        help="Exit 1 when the loss (of any target) exceeds PCT percent.")(f)
