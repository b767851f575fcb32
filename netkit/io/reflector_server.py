"""A small UDP reflector server around :class:`netkit.io.reflector.Reflector`.

``netkit serve udp --mode echo`` is the user-facing server; this module is the minimal one that
tests, selftest and benchmarks can run in-process (or as ``python -m netkit.io.reflector_server
[HOST] [PORT]``, which prints ``listening on HOST:PORT`` on stderr and runs until SIGINT/SIGTERM).

It reads with ``add_reader`` and drains the socket per wake-up (``recvfrom_into`` until EAGAIN),
which keeps up with 100k probes/s where a per-datagram protocol callback would not.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from netkit.io.reflector import Reflector
from netkit.io.udp_buffers import tune_buffers

_BATCH = 256  # datagrams per wake-up before yielding to the loop


class ReflectorServer:
    """A bound UDP socket that answers each datagram with ``Reflector.reflect``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, reflector: Reflector | None = None) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        tune_buffers(self.sock)
        self.sock.bind((host, port))
        self.reflector = reflector or Reflector()
        self._buf = bytearray(65536)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.send_errors = 0

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return host, port

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        sock, buf, reflect = self.sock, self._buf, self.reflector.reflect
        view = memoryview(buf)
        for _ in range(_BATCH):
            try:
                n, addr = sock.recvfrom_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ICMP errors from earlier sends surface here; nothing to do
            reply = reflect(bytes(view[:n]), addr, time.perf_counter_ns())
            if reply is not None:
                try:
                    sock.sendto(reply, addr)
                except OSError:
                    self.send_errors += 1

    def close(self) -> None:
        if self._loop is not None:
            try:
                self._loop.remove_reader(self.sock.fileno())
            except (ValueError, OSError, RuntimeError):
                pass
            self._loop = None
        self.sock.close()


@contextmanager
def reflector_in_thread(host: str = "127.0.0.1", port: int = 0) -> Iterator[ReflectorServer]:
    """Run a ReflectorServer on its own event loop in a daemon thread (tests, benchmarks)."""
    server = ReflectorServer(host, port)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def _run() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(lambda: (server.start(), started.set()))
        loop.run_forever()

    thread = threading.Thread(target=_run, name="netkit-reflector", daemon=True)
    thread.start()
    if not started.wait(5.0):
        raise RuntimeError("reflector thread did not start")
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5.0)
        loop.close()


async def serve(host: str, port: int, stop: Any = None) -> dict[str, int]:
    """Serve until ``stop`` (a StopSignal) fires; return the reflector's counters."""
    from netkit.io.aio import StopSignal

    server = ReflectorServer(host, port)
    server.start()
    h, p = server.address
    shown = f"[{h}]" if ":" in h else h
    sys.stderr.write(f"reflector listening on {shown}:{p}\n")
    sys.stderr.flush()
    try:
        if stop is None:
            async with StopSignal() as sig:
                await sig.wait()
        else:
            await stop.wait()
    finally:
        server.close()
    return dict(server.reflector.stats)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    host = args[0] if args else "127.0.0.1"
    port = int(args[1]) if len(args) > 1 else 0
    from netkit.io.aio import run

    stats = run(serve(host, port))
    sys.stderr.write(" ".join(f"{k}={v}" for k, v in stats.items()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
