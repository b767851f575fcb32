"""Sockets: ``psutil.net_connections`` with process names, and an honest count of what is hidden.

Without the rights to read other users' ``/proc/<pid>/fd``, psutil still lists their sockets
(from ``/proc/net/*``) but cannot say who owns them. We count the processes we could not inspect
so the CLI can say once what was hidden, instead of showing empty PIDs as if they meant nothing.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from netkit.core.sysinfo_models import (
    Connection,
    ConnectionFilter,
    ConnectionTable,
    IpFamily,
    SocketProto,
    count_hidden_owners,
    socket_state,
    sort_key,
)


def count_uninspectable_processes(proc: str = "/proc") -> int:
    """Processes whose open files this user may not list (0 where there is no /proc)."""
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return 0
    hidden = 0
    for pid in pids:
        try:
            os.listdir(f"{proc}/{pid}/fd")
        except PermissionError:
            hidden += 1
        except OSError:
            pass  # gone meanwhile, or a kernel thread
    return hidden


def _from_psutil(c: Any, pid: int | None, names: dict[int, str | None]) -> Connection:
    import psutil

    proto = SocketProto.TCP if c.type == socket.SOCK_STREAM else SocketProto.UDP
    family = IpFamily.IPV6 if c.family == socket.AF_INET6 else IpFamily.IPV4
    raddr = c.raddr if c.raddr else None
    pid = pid or None
    if pid is not None and pid not in names:
        try:
            names[pid] = psutil.Process(pid).name()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            names[pid] = None
    return Connection(
        proto=proto,
        family=family,
        local_address=c.laddr.ip if c.laddr else "",
        local_port=c.laddr.port if c.laddr else 0,
        remote_address=raddr.ip if raddr else None,
        remote_port=raddr.port if raddr else None,
        state=socket_state(proto, c.status, raddr is not None),
        pid=pid,
        process=names.get(pid) if pid is not None else None,
    )


def _raw_connections() -> list[tuple[Any, int | None]]:
    """(psutil connection, owner PID or None) for every inet socket we may see."""
    import psutil

    try:
        return [(c, c.pid) for c in psutil.net_connections(kind="inet")]
    except psutil.AccessDenied:
        # Some platforms (macOS) refuse the system-wide table: fall back to process by process.
        found: list[tuple[Any, int | None]] = []
        for p in psutil.process_iter():
            try:
                # psutil < 6 calls it connections()
                method = getattr(p, "net_connections", None) or p.connections
                found.extend((c, p.pid) for c in method(kind="inet"))
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found


def list_connections(flt: ConnectionFilter | None = None) -> ConnectionTable:
    """The system's TCP and UDP sockets (IPv4 and IPv6) that pass ``flt``, in ss's order."""
    flt = flt or ConnectionFilter()
    names: dict[int, str | None] = {}
    hidden_procs = count_uninspectable_processes()
    conns = [_from_psutil(c, pid, names) for c, pid in _raw_connections()]
    kept = sorted((c for c in conns if flt.matches(c)), key=sort_key)
    return ConnectionTable(
        connections=tuple(kept),
        processes_hidden=hidden_procs,
        owners_hidden=count_hidden_owners(kept, hidden_procs),
    )
