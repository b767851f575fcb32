"""What a Linux socket's error queue holds, decoded: transmit timestamps and ICMP errors. Pure.

``recvmsg(MSG_ERRQUEUE)`` returns one record per call. Each carries a ``struct sock_extended_err``
(cmsg ``IP_RECVERR`` / ``IPV6_RECVERR``) whose ``ee_origin`` says what it is:

- ``SO_EE_ORIGIN_TIMESTAMPING`` (4): a transmit timestamp asked for with ``SO_TIMESTAMPING``. The
  stamp rides in an ``SCM_TIMESTAMPING`` cmsg (three timespecs: software, legacy, hardware);
  ``ee_info`` says which moment (``SCM_TSTAMP_SND``: handed to the device) and ``ee_data`` is the
  ``SOF_TIMESTAMPING_OPT_ID`` key of the datagram it belongs to. ``ee_errno`` is ENOMSG.
- ``SO_EE_ORIGIN_ICMP`` (2) / ``SO_EE_ORIGIN_ICMP6`` (3): an ICMP error about a datagram this
  socket sent (``IP_RECVERR`` on): ``ee_type``/``ee_code`` are the ICMP type and code, the offender's
  address follows the struct (``SO_EE_OFFENDER``), the data is the quoted datagram, and the receive
  timestamp (if stamps are on) says when the error arrived.
- ``SO_EE_ORIGIN_LOCAL`` (1): an error this host raised itself (e.g. EMSGSIZE with the path MTU in
  ``ee_info``).

The socket side (switching stamps on, draining the queue) is ``netkit.io.timestamps``; this module
only turns the bytes into records, so a latency meter and a tracer share one reading of them.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from netkit.core.kernel_rtt import decode_scm_timestamping, decode_timespec

SO_EE_ORIGIN_NONE = 0
SO_EE_ORIGIN_LOCAL = 1
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3
SO_EE_ORIGIN_TIMESTAMPING = 4

#: ``ee_info`` of a timestamp record: which moment of the datagram's way out it stamps.
SCM_TSTAMP_SND = 0  # handed to the device (software) or put on the wire (hardware)
SCM_TSTAMP_SCHED = 1  # entered the queueing discipline
SCM_TSTAMP_ACK = 2  # acknowledged (TCP)

#: ``struct sock_extended_err``: ee_errno u32, ee_origin/type/code/pad u8, ee_info u32, ee_data u32.
EXTENDED_ERR = struct.Struct("=IBBBBII")
#: Linux address family numbers of the offender sockaddr (the error queue exists only on Linux).
LINUX_AF_INET = 2
LINUX_AF_INET6 = 10


@dataclass(frozen=True)
class ExtendedError:
    """A decoded ``struct sock_extended_err`` and the offender address that follows it."""

    errno: int
    origin: int
    type: int
    code: int
    info: int
    data: int
    #: The address that sent the ICMP error (a router, the target), None when the kernel gave none.
    offender: str | None = None


@dataclass(frozen=True)
class TxStamp:
    """A transmit timestamp: datagram ``key`` (OPT_ID) left at ``stamp_ns`` (CLOCK_REALTIME)."""

    key: int
    stamp_ns: int
    #: ``SCM_TSTAMP_SND``, ``SCM_TSTAMP_SCHED`` or ``SCM_TSTAMP_ACK``.
    moment: int = SCM_TSTAMP_SND


@dataclass(frozen=True)
class QueuedError:
    """An error record (ICMP error from the path, or a local one): for the caller to interpret."""

    error: ExtendedError
    #: The datagram the error is about, as the kernel quotes it (may be truncated by the buffer).
    payload: bytes
    #: When the error arrived (kernel receive stamp, CLOCK_REALTIME ns), None without stamps.
    rx_stamp_ns: int | None


ErrQueueRecord = TxStamp | QueuedError


def decode_extended_err(data: bytes, *, af_inet: int = LINUX_AF_INET,
                        af_inet6: int = LINUX_AF_INET6) -> ExtendedError | None:
    """The ``sock_extended_err`` in a ``*_RECVERR`` cmsg, with its offender; None when too short."""
    if len(data) < EXTENDED_ERR.size:
        return None
    ee_errno, origin, etype, code, _pad, info, edata = EXTENDED_ERR.unpack_from(data)
    return ExtendedError(ee_errno, origin, etype, code, info, edata,
                         decode_offender(data[EXTENDED_ERR.size:], af_inet=af_inet, af_inet6=af_inet6))


def decode_offender(sa: bytes, *, af_inet: int = LINUX_AF_INET, af_inet6: int = LINUX_AF_INET6) -> str | None:
    """The address in a ``sockaddr_in``/``sockaddr_in6`` (native family, network-order fields)."""
    if len(sa) < 2:
        return None
    family = struct.unpack_from("=H", sa)[0]
    if family == af_inet and len(sa) >= 8:
        return str(ipaddress.IPv4Address(sa[4:8]))
    if family == af_inet6 and len(sa) >= 24:
        return str(ipaddress.IPv6Address(sa[8:24]))
    return None


def decode_record(payload: bytes, err: ExtendedError | None, scm_timestamping: bytes | None,
                  scm_timestampns: bytes | None = None) -> ErrQueueRecord | None:
    """One error-queue message as a record; None when it carries no extended error.

    ``scm_timestamping`` / ``scm_timestampns`` are the data of those cmsgs when present. A
    timestamp record without a usable stamp (e.g. hardware only) is None as well: nothing to pair.
    """
    if err is None:
        return None
    stamp = decode_scm_timestamping(scm_timestamping) if scm_timestamping is not None else None
    if stamp is None and scm_timestampns is not None:
        stamp = decode_timespec(scm_timestampns)
    if err.origin == SO_EE_ORIGIN_TIMESTAMPING:
        return None if stamp is None else TxStamp(err.data, stamp, err.info)
    return QueuedError(err, payload, stamp)
