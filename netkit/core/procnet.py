"""Parse the kernel's per-socket UDP table (``/proc/net/udp``, ``/proc/net/udp6``).

Pure: the text goes in, numbers come out. The ``drops`` column is the socket's own count of
datagrams the kernel discarded on receive, mostly because the receive buffer was full: what a
meter must report as dropped by this host, never as loss on the network.
"""

from __future__ import annotations

#: Whitespace-separated field positions of a data row (the header names them).
_INODE_FIELD = 9
_DROPS_FIELD = 12


def udp_socket_drops(table_text: str, inode: int) -> int | None:
    """The ``drops`` count of the socket with ``inode`` in a ``/proc/net/udp[6]`` table, or None."""
    wanted = str(inode)
    for line in table_text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > _DROPS_FIELD and fields[_INODE_FIELD] == wanted:
            try:
                return int(fields[_DROPS_FIELD])
            except ValueError:
                return None
    return None


#: ``st`` of a ``/proc/net/tcp[6]`` row in TIME_WAIT (the kernel's TCP_TIME_WAIT).
TCP_TIME_WAIT = 0x06
_LOCAL_FIELD = 1
_REMOTE_FIELD = 2
_STATE_FIELD = 3


def _proc_address(text: str) -> tuple[bytes, int] | None:
    """``0100007F:1F40`` -> (the address bytes in network order, port); IPv6 is four host-order words."""
    addr, _, port = text.partition(":")
    try:
        raw = bytes.fromhex(addr)
        return b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)), int(port, 16)
    except ValueError:
        return None


def _v4_mapped(raw: bytes) -> bytes:
    """An IPv4-mapped IPv6 address as its 4 IPv4 bytes; any other address unchanged."""
    if len(raw) == 16 and raw[:12] == b"\0" * 10 + b"\xff\xff":
        return raw[12:]
    return raw


def tcp_state_count(table_text: str, remote: tuple[bytes, int], state: int = TCP_TIME_WAIT) -> int:
    """Rows of a ``/proc/net/tcp[6]`` table in ``state`` whose remote end is ``remote``
    (packed address as :func:`socket.inet_pton` gives it, port): the sockets toward one target."""
    want_addr, want_port = _v4_mapped(remote[0]), remote[1]
    n = 0
    for line in table_text.splitlines()[1:]:
        fields = line.split()
        if len(fields) <= _STATE_FIELD:
            continue
        try:
            st = int(fields[_STATE_FIELD], 16)
        except ValueError:
            continue
        if st != state:
            continue
        rem = _proc_address(fields[_REMOTE_FIELD])
        if rem is not None and rem[1] == want_port and _v4_mapped(rem[0]) == want_addr:
            n += 1
    return n
