"""Sequence accounting for probe streams: sent, received, lost, duplicates, reordered, late.

Pure code fed by events with times passed in as integer nanoseconds (sans-IO)::

    acc = Accounting(timeout_ns=1_000_000_000)
    acc.on_sent(0, t_send)                 # sequences must be 0, 1, 2, ... in send order
    ev = acc.on_reply(0, t_recv)           # -> ReplyEvent(kind="ok", rtt_ns=..., reordered=False)
    acc.expire(now)                        # -> sequences whose timeout passed with no reply
    acc.on_reflector_count(n)              # netkit's reflector: probes it received (final query)
    summary = acc.finish()                 # -> AccountingSummary

Definitions (also in the README):
- ``received``: distinct sequences answered within the timeout. RTT samples come from these only.
- ``late``: distinct sequences answered after their timeout. Counted apart, not as lost.
- ``lost``: sent - received - late (never answered by the end of the run).
- ``duplicates``: replies for a sequence already answered (in time or late).
- ``reordered``: first replies whose sequence is lower than the highest sequence answered before.
- With netkit's reflector, which reports how many probes of the session it received
  (``refl_count``): ``lost_forward = sent - refl_count`` and
  ``lost_return = refl_count - (received + late)`` (both clamped at 0). Without a count: None.
- ``local_drops`` (passed to :meth:`Accounting.finish` by the caller, who read the socket's own
  drop counter): replies that reached this host and were discarded by its socket buffer. They
  are taken out of ``lost``, ``lost_return`` and ``trailing_lost``: a meter's overflow is not
  loss on the network. So ``lost = sent - received - late - local_drops``.

Memory: one byte of state per sequence sent, the sends still inside their timeout, and 8 bytes
per RTT sample up to ``max_samples`` (default 2,000,000). Past that the statistics continue
exactly in O(1) memory (:class:`netkit.core.stats.StreamingStats`) except the percentiles,
which then come from a log histogram (``samples_complete`` is False).
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from netkit.core.stats import RttSummary, StreamingStats

# Per-sequence state in a bytearray (one byte each).
_PENDING = 0
_RECEIVED = 1
_EXPIRED = 2
_LATE = 3


class ProbeOutcome(str, Enum):
    """What became of one probe; the values are the words of the jsonl ``kind`` field."""

    OK = "ok"
    LATE = "late"  # answered after its timeout: not received, not lost
    DUPLICATE = "duplicate"  # a second answer to a probe already answered
    UNKNOWN = "unknown"  # an answer to a sequence never sent
    TIMEOUT = "timeout"  # no answer within the timeout (so far: a late one may still come)
    ERROR = "error"  # the probe failed at once (connection refused, ...)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    """What one reply meant: ``kind`` is OK, LATE, DUPLICATE or UNKNOWN (never sent)."""

    seq: int
    kind: ProbeOutcome
    rtt_ns: int | None = None
    reordered: bool = False


@dataclass(frozen=True)
class AccountingSummary:
    sent: int
    received: int
    lost: int
    late: int
    duplicates: int
    reordered: int
    unknown: int
    lost_forward: int | None
    lost_return: int | None
    reflector_count: int | None
    rtts_ns: Sequence[int] = field(default_factory=list, repr=False)
    #: False when more RTTs arrived than were kept: use ``streamed`` for the statistics.
    samples_complete: bool = True
    streamed: RttSummary | None = field(default=None, repr=False)
    #: Probes at the end of the run with no reply, in a row: a peer that went away mid-run.
    trailing_lost: int = 0
    #: Replies dropped by this host's socket buffer (not in ``lost``); None when not measured.
    local_drops: int | None = None

    @property
    def loss_pct(self) -> float | None:
        """Lost as a percentage of sent (None when nothing was sent)."""
        return None if self.sent == 0 else 100.0 * self.lost / self.sent


class Accounting:
    """Event-driven accounting for one probe stream (one target, one session)."""

    def __init__(self, timeout_ns: int, *, keep_rtts: bool = True, max_samples: int = 2_000_000) -> None:
        if timeout_ns <= 0:
            raise ValueError("timeout must be positive")
        self.timeout_ns = timeout_ns
        self.keep_rtts = keep_rtts
        self.max_samples = max_samples
        self.stream = StreamingStats()  # fed only once more than max_samples RTTs arrived
        self._streaming = False
        self._state = bytearray()
        self._send_ns: dict[int, int] = {}  # sequences still inside their timeout
        self._order: deque[int] = deque()  # those sequences in send order (for expire)
        self.sent = 0
        self.received = 0
        self.late = 0
        self.expired = 0
        self.duplicates = 0
        self.reordered = 0
        self.unknown = 0
        self.highest = -1
        self.reflector_count: int | None = None
        self.rtts_ns: array[int] = array("q")

    # ----- events -----------------------------------------------------------------------
    def on_sent(self, seq: int, t_ns: int) -> None:
        """A probe left. Sequences are consecutive from 0 (a gap is a programming error)."""
        if seq != self.sent:
            raise ValueError(f"expected sequence {self.sent}, got {seq}")
        self._state.append(_PENDING)
        self._send_ns[seq] = t_ns
        self._order.append(seq)
        self.sent += 1

    def send_time(self, seq: int) -> int | None:
        """The send time of a sequence still inside its timeout (None otherwise)."""
        return self._send_ns.get(seq)

    def on_reply(self, seq: int, t_ns: int, rtt_ns: int | None = None,
                 refl_count: int | None = None) -> ReplyEvent:
        """A reply arrived at ``t_ns``. ``rtt_ns`` overrides ``t_ns - send`` (kernel timestamps).

        ``refl_count`` is the reflector's count carried in this reply (netkit's reflector only).
        """
        if refl_count is not None:
            self.on_reflector_count(refl_count, final=False)
        if not 0 <= seq < self.sent:
            self.unknown += 1
            return ReplyEvent(seq, ProbeOutcome.UNKNOWN)
        state = self._state[seq]
        if state in (_RECEIVED, _LATE):
            self.duplicates += 1
            return ReplyEvent(seq, ProbeOutcome.DUPLICATE)
        reordered = seq < self.highest
        if reordered:
            self.reordered += 1
        if seq > self.highest:
            self.highest = seq
        if state == _EXPIRED:
            self._state[seq] = _LATE
            self.expired -= 1
            self.late += 1
            return ReplyEvent(seq, ProbeOutcome.LATE, None, reordered)
        send = self._send_ns.pop(seq)
        if rtt_ns is None:
            rtt_ns = t_ns - send
        if rtt_ns > self.timeout_ns:
            # Answered after its deadline but before expire() ran: late all the same.
            self._state[seq] = _LATE
            self.late += 1
            return ReplyEvent(seq, ProbeOutcome.LATE, None, reordered)
        self._state[seq] = _RECEIVED
        self.received += 1
        if self.keep_rtts:
            if len(self.rtts_ns) < self.max_samples:
                self.rtts_ns.append(rtt_ns)
            else:
                if self._streaming is False:  # the cap is reached: continue in O(1) memory
                    self._streaming = True
                    for x in self.rtts_ns:
                        self.stream.add(x)
                self.stream.add(rtt_ns)
        return ReplyEvent(seq, ProbeOutcome.OK, rtt_ns, reordered)

    def on_error(self, seq: int) -> bool:
        """The probe failed for sure before its timeout (a refused connect): lost now.

        Returns False when the sequence was not outstanding (already answered or expired).
        """
        if self._send_ns.pop(seq, None) is None:
            return False
        self._state[seq] = _EXPIRED
        self.expired += 1
        return True

    def expire(self, now_ns: int) -> list[int]:
        """Mark sequences whose timeout has passed by ``now_ns`` as lost; return them."""
        out: list[int] = []
        deadline = now_ns - self.timeout_ns
        order, send_ns = self._order, self._send_ns
        while order:
            seq = order[0]
            t = send_ns.get(seq)
            if t is None:  # answered already
                order.popleft()
                continue
            if t > deadline:
                break
            order.popleft()
            del send_ns[seq]
            self._state[seq] = _EXPIRED
            self.expired += 1
            out.append(seq)
        return out

    def next_deadline(self) -> int | None:
        """When the oldest outstanding probe times out (None when nothing is outstanding)."""
        while self._order and self._order[0] not in self._send_ns:
            self._order.popleft()
        if not self._order:
            return None
        return self._send_ns[self._order[0]] + self.timeout_ns

    @property
    def outstanding(self) -> int:
        """Probes sent and neither answered nor timed out yet."""
        return len(self._send_ns)

    def on_reflector_count(self, count: int, *, final: bool = True) -> None:
        """The reflector's received count for this session; the largest seen wins.

        ``final=True`` is the answer to the end-of-run query (every probe has landed by then).
        """
        if self.reflector_count is None or count > self.reflector_count:
            self.reflector_count = count
        if final:
            self._final_count = True

    _final_count = False

    @property
    def lost(self) -> int:
        return self.sent - self.received - self.late

    def finish(self, *, require_final_count: bool = True, local_drops: int | None = None) -> AccountingSummary:
        """The summary. Outstanding probes count as lost (the run is over).

        Per-direction loss needs the reflector's final count (``on_reflector_count(final=True)``):
        the counts carried by replies cannot say where the probes after the last reply went.

        ``local_drops``: how many datagrams this host's socket buffer discarded during the run
        (None: not measured). Each was a reply that reached this host, so it is taken out of the
        loss (at most the probes left unanswered: a dropped duplicate is not a probe).
        """
        count = self.reflector_count
        if require_final_count and not self._final_count:
            count = None
        unanswered = self.lost
        dropped_here = None if local_drops is None else min(max(0, local_drops), unanswered)
        here = dropped_here or 0
        if count is not None:
            answered = self.received + self.late
            lost_forward: int | None = max(0, self.sent - count)
            lost_return: int | None = max(0, min(count, self.sent) - answered - here)
        else:
            lost_forward = lost_return = None
        trailing = 0
        for state in reversed(self._state):
            if state in (_RECEIVED, _LATE):
                break
            trailing += 1
        return AccountingSummary(
            trailing_lost=max(0, trailing - here), local_drops=dropped_here,
            sent=self.sent, received=self.received, lost=unanswered - here, late=self.late,
            duplicates=self.duplicates, reordered=self.reordered, unknown=self.unknown,
            lost_forward=lost_forward, lost_return=lost_return, reflector_count=count,
            rtts_ns=self.rtts_ns, samples_complete=not self._streaming,
            streamed=self.stream.summary() if self._streaming else None,
        )
