"""Interfaces: ``psutil.net_if_stats``, ``net_if_addrs`` and ``net_io_counters`` joined by name."""

from __future__ import annotations

import socket

from netkit.core.sysinfo_models import InterfaceInfo, prefix_length


def interface_order() -> dict[str, int]:
    """Kernel interface index by name (``ip link`` order); empty where the platform has none."""
    try:
        return {name: index for index, name in socket.if_nameindex()}
    except OSError:
        return {}


def _ordered(names: set[str]) -> list[str]:
    index = interface_order()
    return sorted(names, key=lambda n: (index.get(n, 1 << 30), n))


def interface_names() -> list[str]:
    """Every interface name the system knows, in kernel index order (for shell completion)."""
    import psutil

    names = set(psutil.net_if_addrs()) | set(psutil.net_if_stats())
    return _ordered(names)


def _duplex(value: object) -> str | None:
    import psutil

    if value == psutil.NIC_DUPLEX_FULL:
        return "full"
    if value == psutil.NIC_DUPLEX_HALF:
        return "half"
    return None


def _v6(address: str, name: str, netmask: str | None) -> str:
    # psutil appends "%<scope>" to link-local addresses; the row already names the interface.
    addr = address[: -len(name) - 1] if address.endswith("%" + name) else address
    plen = prefix_length(netmask)
    return f"{addr}/{plen}" if plen is not None else addr


def list_interfaces(*, include_down: bool = False) -> list[InterfaceInfo]:
    """Every interface that is up (or all with ``include_down``), in kernel index order."""
    import psutil

    stats = psutil.net_if_stats()
    addrs = psutil.net_if_addrs()
    counters = psutil.net_io_counters(pernic=True, nowrap=False)
    result = []
    for name in _ordered(set(stats) | set(addrs)):
        st = stats.get(name)
        up = bool(st.isup) if st is not None else False
        if not up and not include_down:
            continue
        ipv4: list[str] = []
        ipv6: list[str] = []
        mac: str | None = None
        for a in addrs.get(name, []):
            if a.family == socket.AF_INET:
                plen = prefix_length(a.netmask)
                ipv4.append(f"{a.address}/{plen}" if plen is not None else a.address)
            elif a.family == socket.AF_INET6:
                ipv6.append(_v6(a.address, name, a.netmask))
            elif a.family == psutil.AF_LINK and mac is None:
                mac = a.address or None
        c = counters.get(name)
        result.append(InterfaceInfo(
            name=name,
            up=up,
            mtu=(st.mtu or None) if st is not None else None,
            speed_mbps=(st.speed or None) if st is not None else None,
            duplex=_duplex(st.duplex) if st is not None else None,
            mac=mac,
            ipv4=tuple(ipv4),
            ipv6=tuple(ipv6),
            rx_bytes=c.bytes_recv if c else None,
            tx_bytes=c.bytes_sent if c else None,
            rx_packets=c.packets_recv if c else None,
            tx_packets=c.packets_sent if c else None,
            rx_errors=c.errin if c else None,
            tx_errors=c.errout if c else None,
            rx_drops=c.dropin if c else None,
            tx_drops=c.dropout if c else None,
        ))
    return result
