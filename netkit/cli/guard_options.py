"""Click options for keys and server limits, shared by ``serve`` and the clients.

Kept apart so a server or client command gains them with one decorator and one call:

- ``@key_options(with_key=True)``: ``--key TEXT`` (unless the command defines its own),
  ``--key-file PATH``; ``NETKIT_KEY`` is read when neither is given.
- ``@limit_options``: ``--max-duration``, ``--min-interval``, ``--max-pps-per-source``,
  ``--max-packet``, ``--max-sessions``, ``--allow CIDR``, ``--deny CIDR`` (repeatable).
- :func:`server_limits`: the limit options -> :class:`netkit.core.limits.Limits` (the server
  runs a :class:`netkit.core.guard.Guard` only when a key or a limit is set), printing the
  exposure warning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from netkit.cli import params

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.keyed import Key
    from netkit.core.limits import Limits
    from netkit.render.output import Output


def key_options(with_key: bool = True) -> Callable[[Any], Any]:
    """Add ``--key`` (when ``with_key``) and ``--key-file`` to a command."""

    def deco(f: Any) -> Any:
        f = click.option("--key-file", type=click.Path(dir_okay=False),
                         help="Read the measurement key from this file (see --key).")(f)
        if with_key:
            f = click.option("--key", "key", default=None, metavar="TEXT",
                             help="Shared measurement key (HMAC-SHA256); or NETKIT_KEY, or --key-file.")(f)
        return f

    return deco


def limit_options(f: Any) -> Any:
    """The server limits a client cannot raise (see README, "Running netkit servers on a public address")."""
    opts = [
        click.option("--max-duration", type=params.DURATION, default=None,
                     help="Longest measurement session; longer ones are cut (e.g. 60s)."),
        click.option("--min-interval", type=params.DURATION, default=None,
                     help="Smallest interval between packets from one source (e.g. 10ms)."),
        click.option("--max-pps-per-source", type=params.Count(min=1), default=None,
                     help="Packets (UDP) or connections (TCP) per second per source address."),
        click.option("--max-packet", type=params.SIZE, default=None,
                     help="Largest UDP datagram answered; bigger ones are dropped."),
        click.option("--max-sessions", type=params.Count(min=1), default=None,
                     help="Measurement sessions served at once; more are refused."),
        click.option("--allow", multiple=True, metavar="CIDR",
                     help="Serve only these sources (repeatable)."),
        click.option("--deny", multiple=True, metavar="CIDR",
                     help="Never serve these sources (repeatable; wins over --allow)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def load_key_option(key: str | None, key_file: str | None) -> Key | None:
    """The derived key from ``--key``/``--key-file``/``NETKIT_KEY`` (None when none)."""
    from netkit.io.servers.server_guard import load_key

    return load_key(key, key_file)


def check_cidr_options(allow: Sequence[str], deny: Sequence[str]) -> None:
    """``--allow``/``--deny`` values that are not CIDRs are usage errors, named by their option."""
    from netkit.core.errors import InputError
    from netkit.core.limits import parse_cidr

    for opt, cidrs in (("allow", allow), ("deny", deny)):
        for c in cidrs:
            try:
                parse_cidr(c)
            except ValueError as exc:
                raise InputError(f"--{opt}: {exc}") from None


def warn_if_exposed(out: Output, host: str, warning: str) -> None:
    """Say ``warning`` on stderr (even with -q: it names a risk) when ``host`` is not loopback."""
    from netkit.core.guard import is_loopback_host

    if not is_loopback_host(host):
        out.warn(warning)
        out.stderr.flush()


def server_limits(out: Output, host: str, proto: str, key: Key | None, limits: dict[str, Any]) -> Limits:
    """The limit options as :class:`netkit.core.limits.Limits` (bad CIDRs are usage errors); warns
    on stderr when the server is reachable beyond this host."""
    from netkit.core.guard import exposure_warning
    from netkit.core.limits import Limits

    warning = exposure_warning(host, proto, key)
    if warning is not None:
        out.warn(warning)  # shown even with -q: it names a risk
        out.stderr.flush()
    check_cidr_options(limits.get("allow") or (), limits.get("deny") or ())

    def ns(v: float | None) -> int | None:
        return None if v is None or v <= 0 else int(v * 1e9)

    return Limits(
        max_duration_ns=ns(limits.get("max_duration")), min_interval_ns=ns(limits.get("min_interval")),
        max_pps_per_source=limits.get("max_pps_per_source") or None, max_packet=limits.get("max_packet") or None,
        max_sessions=limits.get("max_sessions") or None, allow=tuple(limits.get("allow") or ()),
        deny=tuple(limits.get("deny") or ()),
    )
