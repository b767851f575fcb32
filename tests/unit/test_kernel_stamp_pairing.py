"""Kernel transmit stamps paired with probes, and error-queue records decoded (pure, exact ns)."""

from __future__ import annotations

import struct

import pytest

from netkit.core.errqueue import (
    SO_EE_ORIGIN_ICMP,
    SO_EE_ORIGIN_ICMP6,
    SO_EE_ORIGIN_LOCAL,
    SO_EE_ORIGIN_TIMESTAMPING,
    ExtendedError,
    QueuedError,
    TxStamp,
    decode_extended_err,
    decode_record,
)
from netkit.core.kernel_rtt import Timestamps, TxStampBook, decode_scm_timestamping, pick_rtt_stamped, prevailing

S = 1_000_000_000_000  # a wall-clock second, somewhere in the past


# ----- which clocks time a round trip -------------------------------------------------------
def test_kernel_to_kernel_when_both_stamps_are_sane() -> None:
    # user send at S, kernel TX 2 us later, kernel RX 7 us after that, Python read at 60 us.
    assert pick_rtt_stamped(60_000, S, S + 2_000, S + 9_000) == (7_000, Timestamps.KERNEL_BOTH)


def test_no_transmit_stamp_falls_back_to_kernel_receive() -> None:
    assert pick_rtt_stamped(60_000, S, None, S + 9_000) == (9_000, Timestamps.KERNEL_RX)


def test_no_kernel_stamp_at_all_is_the_monotonic_rtt() -> None:
    assert pick_rtt_stamped(60_000, S, None, None) == (60_000, Timestamps.USER)
    assert pick_rtt_stamped(60_000, None, S, None) == (60_000, Timestamps.USER)


@pytest.mark.parametrize(("tx", "rx", "expect"), [
    (S + 9_000, S + 9_000, (9_000, Timestamps.KERNEL_RX)),  # zero: no kernel-to-kernel RTT
    (S + 10_000, S + 9_000, (9_000, Timestamps.KERNEL_RX)),  # TX after RX: not this probe's stamp
    (S - 5_000, S + 9_000, (9_000, Timestamps.KERNEL_RX)),  # TX before the send: an earlier datagram's
    (S + 1_000, S + 70_000, (60_000, Timestamps.USER)),  # longer than the monotonic RTT: a clock step
    (S - 90_000, S - 80_000, (60_000, Timestamps.USER)),  # both before the send: a step back
])
def test_insane_stamps_fall_back_one_way_down(tx: int, rx: int, expect: tuple[int, Timestamps]) -> None:
    assert pick_rtt_stamped(60_000, S, tx, rx) == expect


def test_the_prevailing_kind_is_the_most_used_and_a_tie_goes_to_the_weaker() -> None:
    both, rx, user = Timestamps.KERNEL_BOTH, Timestamps.KERNEL_RX, Timestamps.USER
    assert prevailing({both: 999, rx: 1, user: 0}) is both
    assert prevailing({both: 1, rx: 3, user: 2}) is rx
    assert prevailing({both: 2, rx: 0, user: 2}) is user
    assert prevailing({both: 0, rx: 0, user: 0}) is None
    assert [str(k) for k in Timestamps] == ["kernel-both", "kernel-rx", "user"]


# ----- which stamp belongs to which probe ---------------------------------------------------
def test_explicit_keys_are_the_sequence_numbers_and_survive_a_failed_send() -> None:
    book = TxStampBook(explicit=True)
    book.on_sent(0)
    book.on_send_failed(1)  # never sent: no stamp will come, and nothing else shifts
    book.on_sent(2)
    assert book.key_for(2) == 2 and book.key_for(2**32 + 5) == 5
    assert book.on_stamp(2, S + 20) == 2 and book.on_stamp(0, S) == 0  # any order
    assert (book.take(0), book.take(1), book.take(2)) == (S, None, S + 20)
    assert book.active and book.pending == 0


def test_counter_keys_follow_the_kernels_count_of_sent_datagrams() -> None:
    book = TxStampBook(explicit=False)
    for seq in (10, 11, 12):
        book.on_sent(seq)
    assert [book.on_stamp(k, S + k) for k in (0, 1, 2)] == [10, 11, 12]
    assert [book.take(s) for s in (10, 11, 12)] == [S, S + 1, S + 2]


def test_a_refused_explicit_key_turns_the_book_to_the_counter() -> None:
    book = TxStampBook(explicit=True)
    book.on_sent(0)  # sent with key 0 (the kernel took it)
    book.to_counter()
    book.on_sent(1)  # the kernel numbers from 0 as well: key 0 again is what it will report
    assert book.on_stamp(0, S + 1) == 1


def test_a_failed_send_in_counter_mode_stops_pairing_rather_than_pair_wrongly() -> None:
    book = TxStampBook(explicit=False)
    book.on_sent(0)
    book.on_send_failed(1)  # did the kernel count it? Unknown: every later key is in doubt
    book.on_sent(2)
    assert not book.active
    assert book.on_stamp(0, S) is None and book.on_stamp(1, S) is None
    assert book.take(0) is None and book.take(2) is None and book.pending == 0


def test_a_stamp_is_taken_once_and_a_late_or_foreign_one_is_not_kept() -> None:
    book = TxStampBook(explicit=True)
    book.on_sent(0)
    book.on_sent(1)
    book.on_stamp(0, S)
    assert book.take(0) == S and book.take(0) is None  # a duplicate reply: no stamp the second time
    book.forget(1)  # timed out before its stamp came
    assert book.on_stamp(1, S + 5) is None  # ... so it is dropped, not held forever
    assert book.on_stamp(77, S) is None  # a key no probe was sent with
    assert book.take(1) is None and book.pending == 0 and book.unmatched == 2


def test_a_reply_before_its_stamp_leaves_nothing_behind() -> None:
    book = TxStampBook(explicit=True)
    book.on_sent(5)
    assert book.take(5) is None  # the reply was handled first (kernel-rx for this probe)
    assert book.on_stamp(5, S) is None and book.pending == 0


def test_memory_is_bounded_by_the_probes_in_flight() -> None:
    book = TxStampBook(explicit=True)
    for seq in range(100_000):
        book.on_sent(seq)
        book.on_stamp(seq, S + seq)
        if seq >= 10:  # ten in flight: replies (or timeouts) for the older ones
            (book.take if seq % 2 else book.forget)(seq - 10)
    assert book.pending <= 20


# ----- the error queue's records ------------------------------------------------------------
def _ee(origin: int, etype: int = 0, code: int = 0, info: int = 0, data: int = 0, errno: int = 42) -> bytes:
    return struct.pack("=IBBBBII", errno, origin, etype, code, 0, info, data)


def _sin(addr: bytes, family: int = 2) -> bytes:
    return struct.pack("=H", family) + b"\x82\x35" + addr + b"\0" * 8


def _sin6(addr: bytes) -> bytes:
    return struct.pack("=H", 10) + b"\0\0" + b"\0" * 4 + addr + b"\0" * 4


def _ts(sec: int, nsec: int) -> bytes:
    return struct.pack("@qqqqqq", sec, nsec, 0, 0, 0, 0)


def test_a_timestamp_record_is_a_tx_stamp_keyed_by_ee_data() -> None:
    err = decode_extended_err(_ee(SO_EE_ORIGIN_TIMESTAMPING, data=1234) + _sin(b"\0" * 4, family=0))
    assert err == ExtendedError(42, SO_EE_ORIGIN_TIMESTAMPING, 0, 0, 0, 1234, None)
    assert decode_record(b"", err, _ts(1_700_000_000, 5)) == TxStamp(1234, 1_700_000_000_000_000_005)


def test_a_timestamp_record_without_a_software_stamp_is_nothing_to_pair() -> None:
    err = decode_extended_err(_ee(SO_EE_ORIGIN_TIMESTAMPING, data=1))
    assert decode_record(b"", err, _ts(0, 0)) is None
    assert decode_scm_timestamping(_ts(0, 0)) is None and decode_scm_timestamping(b"\0") is None


def test_an_icmp_error_record_is_handed_on_with_offender_quote_and_arrival() -> None:
    # Time Exceeded (11/0) from 198.18.0.1 about a datagram that was quoted back.
    err = decode_extended_err(_ee(SO_EE_ORIGIN_ICMP, 11, 0, errno=113) + _sin(bytes([198, 18, 0, 1])))
    assert err is not None and (err.origin, err.type, err.code, err.offender) == (2, 11, 0, "198.18.0.1")
    rec = decode_record(b"probe", err, _ts(3, 4))
    assert rec == QueuedError(err, b"probe", 3_000_000_004)


def test_an_icmp6_error_names_its_v6_offender_and_may_lack_a_stamp() -> None:
    addr = bytes.fromhex("20010db8000000000000000000000001")
    err = decode_extended_err(_ee(SO_EE_ORIGIN_ICMP6, 3, 0) + _sin6(addr))
    assert err is not None and err.offender == "2001:db8::1"
    assert decode_record(b"", err, None, None) == QueuedError(err, b"", None)
    assert decode_record(b"", err, None, struct.pack("@qq", 1, 2)) == QueuedError(err, b"", 1_000_000_002)


def test_a_local_error_carries_its_info_and_malformed_input_is_refused() -> None:
    err = decode_extended_err(_ee(SO_EE_ORIGIN_LOCAL, info=1400, errno=90))
    assert err is not None and (err.errno, err.info, err.offender) == (90, 1400, None)
    assert isinstance(decode_record(b"", err, None), QueuedError)
    assert decode_extended_err(b"\0" * 15) is None
    assert decode_record(b"", None, _ts(1, 1)) is None  # no extended error: not an error-queue record
    truncated = _sin(b"\1\2\3\4")[:6]  # a sockaddr_in cut short of its address
    assert decode_extended_err(_ee(SO_EE_ORIGIN_ICMP) + truncated) == ExtendedError(42, 2, 0, 0, 0, 0, None)
