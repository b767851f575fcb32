"""Keys and limits wired to the world: the key file and environment, the clocks, the reflector.

The decisions are pure and live in :mod:`netkit.core.guard` (:class:`Guard`,
:class:`GuardedReflector`, :func:`exposure_warning`); this module reads what they need:

- :func:`load_key`: ``--key``, else ``--key-file``, else ``NETKIT_KEY``.
- :func:`new_guard`: a :class:`Guard` on the wall clock; :func:`guard_for`: one only when a key or
  a limit is set.
- :func:`guarded_reflector`: netkit's :class:`~netkit.io.servers.reflector.Reflector` behind a guard.
- :func:`new_keyed_session`: a session id for a keyed client (wall clock and random bits).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping

from netkit.core import keyed
from netkit.core.errors import InputError
from netkit.core.guard import WRONG_KEY_MESSAGE, Guard, GuardedReflector, exposure_warning
from netkit.core.limits import Limits
from netkit.core.serve_models import ServerEventSink

__all__ = ["KEY_ENV", "WRONG_KEY_MESSAGE", "Guard", "GuardedReflector", "exposure_warning", "guard_for",
           "guarded_reflector", "load_key", "new_guard", "new_keyed_session"]

KEY_ENV = "NETKIT_KEY"


def new_guard(limits: Limits | None, key: keyed.Key | None, on_event: ServerEventSink | None = None) -> Guard:
    """The guard of a running server: its wall clock is the system's."""
    return Guard(limits, key, wall_clock=time.time_ns, on_event=on_event)


def guard_for(key: keyed.Key | None, limits: Limits, on_event: ServerEventSink | None = None) -> Guard | None:
    """The guard of a server with a key or a limit; None for neither (the fast path stays as it is)."""
    if key is None and limits == Limits():
        return None
    return new_guard(limits, key, on_event)


def guarded_reflector(guard: Guard) -> GuardedReflector:
    """netkit's reflector behind ``guard`` (``serve udp --mode echo`` with a key or limits)."""
    from netkit.io.servers.reflector import Reflector

    return GuardedReflector(guard, Reflector())


def load_key(key: str | None = None, key_file: str | None = None,
             environ: Mapping[str, str] | None = None) -> keyed.Key | None:
    """The key from ``--key``, else ``--key-file``, else ``NETKIT_KEY``; None when none is set."""
    env = os.environ if environ is None else environ
    text: str | bytes | None = key
    where = "--key"
    if text is None and key_file:
        where = "--key-file"
        try:
            with open(key_file, "rb") as f:
                text = f.read(64 * 1024)
        except OSError as exc:
            raise InputError(f"--key-file: cannot read {key_file}: {exc.strerror or exc}") from None
    if text is None and env.get(KEY_ENV):
        text, where = env[KEY_ENV], KEY_ENV
    if text is None:
        return None
    try:
        return keyed.derive_key(text)
    except keyed.KeyTextError as exc:
        raise InputError(f"{where}: {exc}") from None


def new_keyed_session() -> int:
    """A session id for a keyed client (wall-clock second + 32 random bits, see core.keyed)."""
    return keyed.new_session_id(time.time_ns(), secrets.randbits(32))


