"""``measure loss``: a paced UDP stream of probe packets to a reflector, with exact accounting.

Pacing sends what is due by the clock: at each wake-up it computes how many packets the rate
allows since the start (``floor(elapsed * rate)``) and sends the difference, then sleeps until
the next one is due (at least 1 ms, uvloop's timer resolution: shorter sleeps would spin), so a
high rate goes out in small bursts instead of busy-spinning a core. The average rate holds; the
burst after a stall is capped.

``--duration`` is wall-clock time, whatever the rate: once it has passed, only the packets due
before it go, in one last burst, and only when they are a stall's catch-up (``MAX_BURST_S``
worth). A burst reads the clock for every packet's send time anyway and gives the loop back
after ``SLICE_NS`` (so replies are read while the sender catches up, and Ctrl-C is seen at
once). A rate the sender cannot reach ends on time all the same; the result's sending time
gives the achieved rate.

Replies are drained per wake-up with ``recv_into`` (no kernel timestamps: at 100k packets/s the
RTTs feed only jitter, and the monotonic receive time of the batch is good enough for that).
The receive buffer is sized for the rate (``receive_buffer_bytes``), and the socket's own drop
counter, read before and after, says how many replies this host dropped: reported apart, never
as loss.

:func:`run_loss` is the command's one entry point: the stream under the stop signal, then the
thresholds, as a :class:`LossResult`.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Callable

from netkit.core import packet
from netkit.core.accounting import Accounting
from netkit.core.errors import CheckFailed
from netkit.core.kernel_rtt import Timestamps
from netkit.core.latency_models import (
    LossConfig,
    LossResult,
    ReflectorKind,
    TargetResult,
    check_thresholds,
    receive_buffer_bytes,
    stall_probes,
)
from netkit.core.targets import Target
from netkit.io.clients.reflector_query import NS, STOP_GRACE_S, ask_reflector_count
from netkit.io.resolve import resolve
from netkit.io.udp_buffers import BUFFER_BYTES, drops_since, socket_drops, tune_buffers

MIN_SLEEP_S = 0.001  # uvloop timers have 1 ms resolution: shorter sleeps would spin
MAX_BURST_S = 0.05  # after a stall, catch up at most this much of the schedule at once
SLICE_NS = 5_000_000  # the longest one burst keeps the loop (replies wait meanwhile)

Progress = Callable[[Accounting, int], None]


class LossStream:
    """One paced probe stream to one reflector."""

    def __init__(self, label: str, target: Target, cfg: LossConfig) -> None:
        self.label = label
        self.target = target
        self.cfg = cfg
        self.acc = Accounting(max(1, round(cfg.timeout_s * NS)))
        self.session = secrets.randbits(64)
        self.size = max(cfg.size, packet.HEADER_SIZE)
        # --key: a keyed reflector answers only signed probes of a session id it can check
        # (netkit.core.keyed), and the probe needs room for the 16-byte tag
        self.key = cfg.key
        if self.key is not None:
            from netkit.core.keyed import KEYED_MIN_SIZE
            from netkit.io.servers.server_guard import new_keyed_session

            self.session = new_keyed_session()
            self.size = max(self.size, KEYED_MIN_SIZE)
        self.sock: socket.socket | None = None
        self.address: str | None = None
        self.reflector: ReflectorKind | None = None
        self.error: str | None = None
        self.send_blocked = 0
        self._query_count: int | None = None
        self._rbuf = bytearray(65536)
        self._loop = asyncio.get_running_loop()
        self.changed = asyncio.Event()
        self.send_elapsed_ns = 0
        self._drops_at_open: int | None = None

    async def open(self) -> None:
        res = await resolve(self.target.host, self.target.port, family=self.cfg.family, type=socket.SOCK_DGRAM)
        self.address = res.address
        sock = socket.socket(res.family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        tune_buffers(sock, receive_buffer_bytes(self.cfg.rate_pps, self.size, BUFFER_BYTES))
        sock.connect(res.sockaddr)
        self.sock = sock
        self._drops_at_open = socket_drops(sock)
        self._loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        sock, buf, acc, session = self.sock, self._rbuf, self.acc, self.session
        if sock is None:
            return
        now = time.perf_counter_ns()
        peek = packet.peek_seq
        for _ in range(4096):
            try:
                n = sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionRefusedError:
                self.error = "port unreachable (nothing listening)"
                continue
            except OSError as exc:
                self.error = exc.strerror or str(exc)
                break
            ids = peek(memoryview(buf)[:n])
            if ids is None or ids[0] != session:
                continue
            flags = buf[5]
            reflected = bool(flags & packet.FLAG_REFLECTED)
            if flags & packet.FLAG_QUERY:
                if reflected:
                    self._query_count = int.from_bytes(buf[32:40], "big")
                continue
            if reflected:
                self.reflector = ReflectorKind.NETKIT
                acc.on_reply(ids[1], now, None, int.from_bytes(buf[32:40], "big"))
            else:
                if self.reflector is None:
                    self.reflector = ReflectorKind.PLAIN
                acc.on_reply(ids[1], now)
        self.changed.set()

    async def run(self, stop: asyncio.Event, progress: Progress | None = None) -> TargetResult:
        """Send for the duration (or until ``stop``), wait for the last replies, query the count."""
        cfg, acc = self.cfg, self.acc
        try:
            await self.open()
        except CheckFailed as exc:  # the name did not resolve: a result with nothing sent
            self.error = str(exc).split(": ", 1)[-1]
            return self._result(0)
        except OSError as exc:
            self.error = (exc.strerror or str(exc)).lower()
            return self._result(0)
        sock = self.sock
        assert sock is not None
        total = max(1, round(cfg.rate_pps * cfg.duration_s))
        rate = cfg.rate_pps
        max_burst = max(1, int(rate * MAX_BURST_S))
        buf = bytearray(self.size)
        encode = packet.encode_into
        session = self.session
        key = self.key  # sign each probe after encoding it: the tag covers the send time
        from netkit.core.keyed import sign_probe_into as sign
        clock = time.perf_counter_ns
        start = clock()
        end = start + round(cfg.duration_s * NS)
        last_expire = start
        last_progress = start
        seq = 0
        now = start
        # Past the end, the packets that were due before it still go in one last burst when they
        # are no more than a stall's catch-up (MAX_BURST_S worth: a timer or the scheduler woke
        # the sender late); a sender further behind cannot reach the rate and stops at the end.
        while seq < total and not stop.is_set():
            late = now >= end
            if late and total - seq > max_burst:
                break
            due = total if late else min(total, int((now - start) * rate / NS) + 1)
            if due - seq > max_burst:
                due = seq + max_burst
            slice_end = now + SLICE_NS if late else min(end, now + SLICE_NS)
            while seq < due:
                t = clock()
                if t >= slice_end:
                    break
                encode(buf, session, seq, t)
                if key is not None:
                    sign(key, buf)
                try:
                    sock.send(buf)
                except (BlockingIOError, InterruptedError):
                    self.send_blocked += 1  # socket buffer full: retry this sequence next wake-up
                    break
                except ConnectionRefusedError:
                    self.error = "port unreachable (nothing listening)"
                except OSError as exc:
                    self.error = exc.strerror or str(exc)
                acc.on_sent(seq, t)
                seq += 1
            now = clock()
            if now - last_expire > 10_000_000:
                acc.expire(now)
                last_expire = now
            if progress is not None and now - last_progress > 250_000_000:
                progress(acc, now - start)
                last_progress = now
            if late:
                break
            next_due = start + int(seq * NS / rate)
            if next_due <= now:
                await asyncio.sleep(0)  # behind: read the replies, then catch up at once
            else:
                await asyncio.sleep(max(MIN_SLEEP_S, (min(next_due, end) - now) / NS))
            now = clock()
        self.send_elapsed_ns = time.perf_counter_ns() - start
        grace_end = time.perf_counter_ns() + int(STOP_GRACE_S * NS)
        while acc.outstanding:
            now = time.perf_counter_ns()
            acc.expire(now)
            nd = acc.next_deadline()
            if nd is None:
                break
            if stop.is_set():  # Ctrl-C: only a short grace for replies in flight
                if now >= grace_end:
                    break
                nd = min(nd, grace_end)
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), max(0.0, (nd - now) / NS) + 0.001)
            except asyncio.TimeoutError:
                pass
        await self._final_query(hurry=stop.is_set())
        return self._result(self.send_elapsed_ns)

    async def _final_query(self, hurry: bool = False) -> None:
        if self.reflector is not ReflectorKind.NETKIT or self.sock is None:
            return
        count = await ask_reflector_count(
            self.sock, self.session, self.key, self.changed, lambda: self._query_count,
            timeout_s=self.cfg.timeout_s, hurry=hurry,
        )
        if count is not None:
            self.acc.on_reflector_count(count, final=True)

    def local_drops(self) -> int | None:
        """Replies this host's socket buffer dropped since ``open`` (None: not measured)."""
        return drops_since(self.sock, self._drops_at_open)

    def _result(self, elapsed_ns: int) -> TargetResult:
        acc = self.acc.finish(local_drops=self.local_drops())
        return TargetResult(
            target=self.label, address=self.address, acc=acc, reflector=self.reflector, error=self.error,
            elapsed_ns=elapsed_ns, send_ns=elapsed_ns, timestamps=Timestamps.USER if acc.rtts_ns else None,
        )

    def close(self) -> None:
        if self.sock is not None:
            try:
                self._loop.remove_reader(self.sock.fileno())
            except (ValueError, OSError, RuntimeError):
                pass
            self.sock.close()
            self.sock = None


async def measure_loss(target: Target, cfg: LossConfig, *, stop: asyncio.Event | None = None,
                       progress: Progress | None = None, label: str | None = None) -> TargetResult:
    """Run one paced stream; ``result.elapsed_ns`` is the sending time (for the achieved rate)."""
    stream = LossStream(label or str(target), target, cfg)
    stop = stop or asyncio.Event()

    async def relay() -> None:  # wake the drain wait at once on Ctrl-C
        await stop.wait()
        stream.changed.set()

    watcher = asyncio.ensure_future(relay())
    try:
        return await stream.run(stop, progress)
    finally:
        watcher.cancel()
        stream.close()


def measure_loss_sync(target: Target, cfg: LossConfig) -> TargetResult:
    from netkit.io.aio import run

    return run(measure_loss(target, cfg))


def run_loss(target: Target, cfg: LossConfig, *, max_loss_pct: float | None = None,
             max_rtt_ms: float | None = None, progress: Progress | None = None) -> LossResult:
    """``netkit measure loss`` from its config to its result: one paced stream until the duration
    ends or SIGINT/SIGTERM/SIGHUP arrives (then ``interrupted`` is True and the result holds what
    was measured). ``progress(acc, elapsed_ns)`` is called about four times a second while sending.
    Raises CheckFailed when a keyed run got nothing back (the reflector's key differs).
    """
    from netkit.io.aio import StopSignal, run

    async def main() -> tuple[TargetResult, bool]:
        stop = asyncio.Event()
        async with StopSignal() as sig:
            watcher = asyncio.ensure_future(sig.wait())
            watcher.add_done_callback(lambda _f: stop.set())
            try:
                res = await measure_loss(target, cfg, stop=stop, progress=progress)
            finally:
                watcher.cancel()
        return res, sig.signum is not None

    res, interrupted = run(main())
    if cfg.key is not None and res.acc.sent and not res.acc.received and not interrupted and not res.error:
        from netkit.io.servers.server_guard import WRONG_KEY_MESSAGE

        raise CheckFailed(WRONG_KEY_MESSAGE)
    thresholds = check_thresholds([res], max_loss_pct, max_rtt_ms, stall_after=stall_probes(1.0 / cfg.rate_pps))
    return LossResult(res, thresholds, cfg.rate_pps, res.achieved_pps, interrupted)
