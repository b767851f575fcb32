"""DNS peers for the ``measure dns`` and monitor ``dns`` tests: Debian's dnsmasq with local records on
a loopback port, and answers built with dnspython for hostile peers.

Importable without pytest; a missing dnsmasq raises :class:`DnsmasqUnavailable`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dns.message
import dns.rrset
from support import recv_exact

#: One character string of a TXT record is at most 255 bytes: six of them make a 1.5 KB answer,
#: beyond the 1232-byte EDNS size the client advertises, so the UDP answer comes back truncated.
BIG_TXT_PART = "x" * 250
BIG_TXT_PARTS = 6
RECORDS = {
    ("A", "a.test"): ["198.18.0.7"],
    ("AAAA", "a.test"): ["2001:db8::7"],
    ("TXT", "t.test"): ['"hello world"'],
    ("MX", "m.test"): ["10 mail.m.test."],
    ("SRV", "_x._tcp.s.test"): ["1 2 8080 host.s.test."],
    ("PTR", "198.18.0.7"): ["a.test."],
}


class DnsmasqUnavailable(Exception):
    pass


def dnsmasq_binary() -> str | None:
    return shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None)


def free_port() -> int:
    """A loopback port free for UDP and TCP right now (dnsmasq cannot be given port 0)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return int(port)
    raise RuntimeError("no free port")


def _answers(port: int) -> bool:
    q = dns.message.make_query("a.test", "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.sendto(q.to_wire(), ("127.0.0.1", port))
            s.recvfrom(4096)
        except OSError:
            return False
    return True


@dataclass
class Dnsmasq:
    port: int
    pid: int

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextmanager
def dnsmasq() -> Iterator[Dnsmasq]:
    """dnsmasq answering :data:`RECORDS`, ``big.test`` TXT (truncated over UDP) and ``nx.test``
    (NXDOMAIN), on a free loopback port; stopped by its PID."""
    binary = dnsmasq_binary()
    if binary is None:
        raise DnsmasqUnavailable("dnsmasq is not installed (Debian: apt-get install dnsmasq-base)")
    port = free_port()
    big = ",".join([BIG_TXT_PART] * BIG_TXT_PARTS)
    argv = [binary, "--keep-in-foreground", "--no-daemon", "--no-resolv", "--no-hosts", "--pid-file=",
            "--conf-file=/dev/null", f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces",
            "--edns-packet-max=4096",
            "--address=/a.test/198.18.0.7", "--address=/a.test/2001:db8::7", "--address=/nx.test/",
            '--txt-record=t.test,hello world', "--mx-host=m.test,mail.m.test,10",
            "--srv-host=_x._tcp.s.test,host.s.test,8080,1,2", "--ptr-record=7.0.18.198.in-addr.arpa,a.test",
            f"--txt-record=big.test,{big}"]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 5
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise DnsmasqUnavailable(f"dnsmasq did not start: {log.read()[-400:].decode(errors='replace')}")
            time.sleep(0.02)
        yield Dnsmasq(port, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def answer_for(query: bytes, *, txt: str | None = None, address: str = "198.18.0.9") -> dns.message.Message:
    """A NOERROR response to ``query``: an A record (or a TXT record holding ``txt``)."""
    q = dns.message.from_wire(query)
    r = dns.message.make_response(q)
    qname = q.question[0].name
    if txt is not None:
        r.answer.append(dns.rrset.from_text(qname, 60, "IN", "TXT", txt))
    else:
        r.answer.append(dns.rrset.from_text(qname, 60, "IN", "A", address))
    return r


def pointer_loop(query: bytes) -> bytes:
    """The right id and question, then an answer whose owner name is a label and a compression pointer
    back to that label: a naive reader loops forever (``a.a.a...``)."""
    head = bytearray(query[:12])
    head[2] |= 0x80  # QR
    head[6:8] = (1).to_bytes(2, "big")  # ANCOUNT 1
    head[10:12] = (0).to_bytes(2, "big")  # ARCOUNT 0 (the query's OPT record is dropped below)
    qlen = len(query)
    # The question ends where the query's OPT record (11 bytes: root, type, class, ttl, rdlen) starts.
    question = query[12:qlen - 11] if query[11] else query[12:]
    offset = 12 + len(question)
    loop = b"\x01a" + (0xC000 | offset).to_bytes(2, "big")
    return bytes(head) + question + loop + b"\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc6\x12\x00\x09"


def dot_relay(tls_ctx: Any, upstream_port: int) -> Callable[[socket.socket], None]:
    """A ``support.tcp_peer`` handler: a DNS-over-TLS front relaying each query to dnsmasq's TCP port."""

    def handler(c: socket.socket) -> None:
        with tls_ctx.wrap_socket(c, server_side=True) as t:
            size = int.from_bytes(recv_exact(t, 2), "big")
            query = recv_exact(t, size)
            with socket.create_connection(("127.0.0.1", upstream_port), timeout=2) as up:
                up.sendall(size.to_bytes(2, "big") + query)
                rsize = int.from_bytes(recv_exact(up, 2), "big")
                t.sendall(rsize.to_bytes(2, "big") + recv_exact(up, rsize))

    return handler
