"""The /proc/net/udp parser: a socket's own drop counter, found by inode."""

from netkit.core.procnet import udp_socket_drops

TABLE = """\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  219: 0100007F:A2B1 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0
  220: 0100007F:A2B2 0100007F:1F40 01 00000000:00034000 00:00000000 00000000     0        0 777 2 0000000000000000 1532
"""


def test_drops_of_the_socket_with_that_inode() -> None:
    assert udp_socket_drops(TABLE, 777) == 1532
    assert udp_socket_drops(TABLE, 4242) == 0


def test_unknown_inode_or_short_row_is_none() -> None:
    assert udp_socket_drops(TABLE, 1) is None
    assert udp_socket_drops("header\n 1: a b c\n", 1) is None
