"""Issue 10: what keys and limits cost the UDP reflector, in-process (no sockets, one core).

netkit = datagrams/s through the guarded reflector; reference = the bare Reflector on the same
datagrams. The ratio is the share of the reflector's per-datagram speed that survives the guard.
"""

from __future__ import annotations

import time
from typing import Any

from benchlib import Row

from netkit.core import keyed, packet
from netkit.core.limits import Limits
from netkit.io.servers.reflector import Reflector
from netkit.io.servers.server_guard import guarded_reflector, new_guard, new_keyed_session

N = 100_000
ADDR = ("127.0.0.1", 40000)


def _datagrams(key: keyed.Key | None, size: int = 100) -> list[bytes]:
    session = new_keyed_session()
    out = []
    for seq in range(N):
        buf = bytearray(size)
        packet.encode_into(buf, session, seq, seq)
        if key is not None:
            keyed.sign_probe_into(key, buf)
        out.append(bytes(buf))
    return out


def _rate(reflect: Any, data: list[bytes]) -> float:
    t0 = time.perf_counter_ns()
    for i, d in enumerate(data):
        reflect(d, ADDR, i)
    return len(data) / ((time.perf_counter_ns() - t0) / 1e9)


def reflector_guard_overhead() -> list[Row]:
    key = keyed.derive_key("bench")
    plain, signed = _datagrams(None), _datagrams(key)
    bare = _rate(Reflector().reflect, plain)
    limits = Limits(max_pps_per_source=10**9, max_sessions=1000, max_duration_ns=10**12, deny=("10.0.0.0/8",))
    limited = _rate(guarded_reflector(new_guard(limits, None)).reflect, plain)
    keyed_rate = _rate(guarded_reflector(new_guard(limits, key)).reflect, signed)
    t0 = time.perf_counter_ns()
    for d in signed[:20_000]:
        keyed.verify_probe(key, d)
    verify = 20_000 / ((time.perf_counter_ns() - t0) / 1e9)
    return [
        Row("reflect 100 B probes, limits on (no key)", limited, bare, "datagrams/s", "bare Reflector as reference"),
        Row("reflect 100 B probes, key + limits", keyed_rate, bare, "datagrams/s", "bare Reflector as reference"),
        Row("verify_probe alone (HMAC-SHA256/128)", verify, None, "probes/s"),
    ]


CASES = [reflector_guard_overhead]
