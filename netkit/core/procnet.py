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
