"""Result models of ``netkit info``: interfaces, sockets and traffic rates.

Pure data: the psutil adapters in ``netkit.sysinfo`` fill them, the CLI renders them, and a script
that imports netkit gets the same objects. Field names are the JSON field names (README, "info").
Everything that has no value on this platform is ``None`` (JSON null), never missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum


class SocketProto(str, Enum):
    """A socket's transport (JSON ``proto``)."""

    TCP = "tcp"
    UDP = "udp"

    def __str__(self) -> str:
        return self.value


class IpFamily(str, Enum):
    """A socket's address family (JSON ``family``)."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"

    def __str__(self) -> str:
        return self.value


class SocketState(str, Enum):
    """ss(8)'s state names, lower-case (JSON ``state``); ``unconn`` is a UDP socket without a peer."""

    ESTABLISHED = "established"
    SYN_SENT = "syn-sent"
    SYN_RECV = "syn-recv"
    FIN_WAIT_1 = "fin-wait-1"
    FIN_WAIT_2 = "fin-wait-2"
    TIME_WAIT = "time-wait"
    CLOSE = "close"
    CLOSE_WAIT = "close-wait"
    LAST_ACK = "last-ack"
    LISTEN = "listen"
    CLOSING = "closing"
    UNCONN = "unconn"

    def __str__(self) -> str:
        return self.value


# ss(8)'s state names, lower-case. psutil reports "NONE" for every UDP socket: a UDP socket with a
# peer is shown as "established" (ss says ESTAB) and one without as "unconn" (ss says UNCONN).
TCP_STATES: tuple[str, ...] = tuple(s.value for s in SocketState if s is not SocketState.UNCONN)
UDP_STATES: tuple[str, ...] = (SocketState.ESTABLISHED.value, SocketState.UNCONN.value)
ALL_STATES: tuple[str, ...] = tuple(s.value for s in SocketState)
#: States that count as "listening" for ``--listening``, as ``ss -l`` shows them.
LISTENING_STATES: frozenset[SocketState] = frozenset({SocketState.LISTEN, SocketState.UNCONN})
#: States a socket can be in with no process holding it (orphans the kernel finishes alone),
#: so a missing PID there is not a sign of missing rights.
ORPHAN_STATES: frozenset[SocketState] = frozenset({SocketState.TIME_WAIT, SocketState.FIN_WAIT_2,
                                                   SocketState.SYN_RECV, SocketState.LAST_ACK, SocketState.CLOSING})

_PSUTIL_STATE = {
    "ESTABLISHED": SocketState.ESTABLISHED, "SYN_SENT": SocketState.SYN_SENT, "SYN_RECV": SocketState.SYN_RECV,
    "FIN_WAIT1": SocketState.FIN_WAIT_1, "FIN_WAIT2": SocketState.FIN_WAIT_2, "TIME_WAIT": SocketState.TIME_WAIT,
    "CLOSE": SocketState.CLOSE, "CLOSE_WAIT": SocketState.CLOSE_WAIT, "LAST_ACK": SocketState.LAST_ACK,
    "LISTEN": SocketState.LISTEN, "CLOSING": SocketState.CLOSING,
}


def socket_state(proto: str, raw_state: str, has_peer: bool) -> SocketState | str:
    """Map psutil's state name to ss's (lower-case); UDP gets ``established`` or ``unconn``.

    A state psutil reports only on other systems (``NONE``, ``BOUND``, ``IDLE``) stays as its own
    lower-case word: shown as the system names it rather than forced into a Linux state.
    """
    if proto == SocketProto.UDP:
        return SocketState.ESTABLISHED if has_peer else SocketState.UNCONN
    return _PSUTIL_STATE.get(raw_state, raw_state.lower().replace("_", "-"))


def prefix_length(netmask: str | None) -> int | None:
    """``255.255.255.0`` -> 24, ``ffff:ffff::`` -> 32; None when there is no (valid) mask."""
    if not netmask:
        return None
    import ipaddress

    try:
        packed = ipaddress.ip_address(netmask.split("%")[0]).packed
    except ValueError:
        return None
    bits = int.from_bytes(packed, "big")
    width = len(packed) * 8
    ones = bin(bits).count("1")
    # A valid mask is contiguous ones followed by zeros.
    if bits != ((1 << width) - 1) ^ ((1 << (width - ones)) - 1):
        return None
    return ones


# ----- interfaces --------------------------------------------------------------------------------
@dataclass(frozen=True)
class InterfaceInfo:
    """One network interface, as ``ip -s addr`` would show it, in one record.

    ``speed_mbps`` and ``duplex`` are None where the driver does not say (loopback, virtual links).
    ``ipv4``/``ipv6`` hold ``address/prefix`` strings; counters are totals since the link came up.
    """

    name: str
    up: bool
    mtu: int | None
    speed_mbps: int | None
    duplex: str | None
    mac: str | None
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]
    rx_bytes: int | None
    tx_bytes: int | None
    rx_packets: int | None
    tx_packets: int | None
    rx_errors: int | None
    tx_errors: int | None
    rx_drops: int | None
    tx_drops: int | None


INTERFACE_FIELDS: tuple[str, ...] = (
    "name", "up", "mtu", "speed_mbps", "duplex", "mac", "ipv4", "ipv6", "rx_bytes", "tx_bytes",
    "rx_packets", "tx_packets", "rx_errors", "tx_errors", "rx_drops", "tx_drops",
)


# ----- connections -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Connection:
    """One socket, like a row of ``ss -tunap``. ``pid``/``process`` are None when not visible."""

    proto: SocketProto
    family: IpFamily
    local_address: str
    local_port: int
    remote_address: str | None
    remote_port: int | None
    state: SocketState | str
    pid: int | None
    process: str | None


CONNECTION_FIELDS: tuple[str, ...] = (
    "proto", "family", "local_address", "local_port", "remote_address", "remote_port", "state", "pid",
    "process",
)


@dataclass(frozen=True)
class ConnectionFilter:
    """What ``--tcp/--udp/--listening/--state/--port/--pid`` keep. Empty means "everything"."""

    protos: frozenset[SocketProto] = frozenset(SocketProto)
    listening: bool = False
    states: frozenset[str] = frozenset()
    ports: frozenset[int] = frozenset()
    pids: frozenset[int] = frozenset()

    def matches(self, conn: Connection) -> bool:
        if conn.proto not in self.protos:
            return False
        if self.listening and conn.state not in LISTENING_STATES:
            return False
        if self.states and conn.state not in self.states:
            return False
        if self.ports and conn.local_port not in self.ports and conn.remote_port not in self.ports:
            return False
        return not (self.pids and conn.pid not in self.pids)


@dataclass(frozen=True)
class ConnectionTable:
    """The sockets found, and how much was hidden by missing rights.

    ``processes_hidden``: processes whose open files this user may not read. ``owners_hidden``:
    sockets shown without PID because of that (not counting orphans such as time-wait, which no
    process owns even for root).
    """

    connections: tuple[Connection, ...]
    processes_hidden: int = 0
    owners_hidden: int = 0


def count_hidden_owners(conns: Iterable[Connection], processes_hidden: int) -> int:
    """Sockets without a PID that a more privileged user would see an owner for."""
    if processes_hidden <= 0:
        return 0
    return sum(1 for c in conns if c.pid is None and c.state not in ORPHAN_STATES)


def sort_key(conn: Connection) -> tuple[object, ...]:
    """ss's order, roughly: protocol, family, local port, local address, remote."""
    return (conn.proto.value, conn.family.value, conn.local_port, conn.local_address, conn.remote_address or "",
            conn.remote_port or 0, conn.pid or 0)


# ----- traffic -----------------------------------------------------------------------------------
COUNTER_NAMES: tuple[str, ...] = (
    "rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_errors", "tx_errors", "rx_drops", "tx_drops",
)


@dataclass(frozen=True)
class CounterSnapshot:
    """An interface's raw counters read at ``at_ns`` (a monotonic clock, nanoseconds)."""

    interface: str
    at_ns: int
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int
    rx_errors: int
    tx_errors: int
    rx_drops: int
    tx_drops: int


@dataclass(frozen=True)
class TrafficSample:
    """Rates of one interface over one interval, divided by the measured elapsed time.

    ``rx_bytes`` etc. are the counts in the interval; ``*_per_s`` the rates; errors and drops are
    counts in the interval. ``wrapped``/``reset`` name counters that wrapped around their width or
    restarted (interface re-created) during the interval; their deltas are still right.
    """

    seq: int
    timestamp: str | None
    interface: str
    elapsed_s: float
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int
    rx_bytes_per_s: float
    tx_bytes_per_s: float
    rx_packets_per_s: float
    tx_packets_per_s: float
    rx_errors: int
    tx_errors: int
    rx_drops: int
    tx_drops: int
    wrapped: tuple[str, ...] = field(default=())
    reset: tuple[str, ...] = field(default=())


TRAFFIC_FIELDS: tuple[str, ...] = (
    "seq", "timestamp", "interface", "elapsed_s", "rx_bytes", "tx_bytes", "rx_packets", "tx_packets",
    "rx_bytes_per_s", "tx_bytes_per_s", "rx_packets_per_s", "tx_packets_per_s", "rx_errors", "tx_errors",
    "rx_drops", "tx_drops", "wrapped", "reset",
)


@dataclass(frozen=True)
class TrafficReport:
    """A whole ``info traffic`` run: every sample, and one summary row per interface (whole run)."""

    interval_s: float
    samples: tuple[TrafficSample, ...]
    summary: tuple[TrafficSample, ...]
    interrupted: bool = False
