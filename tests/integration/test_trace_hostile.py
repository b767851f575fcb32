"""Hostile ICMP while ``run_trace`` traces: forged errors that quote the probe socket's real
4-tuple, but wrong destination ports, another session's payload, wrong ICMP ids or sequence
numbers, or another destination, are never matched to a probe.

Each case runs in a private network namespace (``unshare -n``: nothing leaves it) with two
targets traced at once: 127.0.0.1, which answers, and 198.18.0.9 behind a veth whose far end
drops everything, which never does. A sniffer on the veth sees every probe to the silent target,
and an injector answers each one at once with forgeries from raw sockets (source addresses in
198.18.0.0/15 that are on no path). One forgery in the whole run is genuine in every respect
(the right port, session, sequence, id) from 198.18.0.77: it must be matched, exactly once, which
proves the forgeries reach the prober; nothing else may be.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from support import require_root_netns

pytestmark = pytest.mark.timeout(60)

SCRIPT = textwrap.dedent(r'''
    import json, socket, struct, subprocess, sys, threading, time

    method, ping_dgram = sys.argv[1], sys.argv[2] == "dgram"
    def sh(cmd):
        subprocess.run(cmd, shell=True, check=True, capture_output=True)
    sh("ip link set lo up")
    sh("ip link add nkh0 type veth peer name nkh1 && ip link set nkh1 up && ip link set nkh0 up")
    sh("ip addr add 198.18.0.1/24 dev nkh0")
    # The silent target: a fixed neighbour whose frames the far end (no address, other MAC) drops.
    sh("ip neigh replace 198.18.0.9 lladdr 02:00:00:00:00:09 dev nkh0 nud permanent")
    if ping_dgram:
        sh("sysctl -qw net.ipv4.ping_group_range='0 2147483647'")

    from netkit.core import icmp_errors as ie
    from netkit.core import packet
    from netkit.core.targets import Target
    from netkit.core.trace_models import TraceConfig, TraceMethod
    from netkit.io.measure import trace_probers as tp
    from netkit.io.measure.trace import run_trace

    # Count what reaches the probers' matchers (so a forgery the kernel dropped is not taken for
    # one the prober refused), and say which ICMP socket the prober opened.
    seen = {"records": 0, "replies": 0, "raw": 0, "sockets": []}
    def counted(key, f):
        def g(self, *args, **kw):
            seen[key] += 1
            return f(self, *args, **kw)
        return g
    tp.UdpTraceProber._on_record = counted("records", tp.UdpTraceProber._on_record)
    tp.IcmpTraceProber._on_record = counted("records", tp.IcmpTraceProber._on_record)
    tp.IcmpTraceProber._echo_reply = counted("replies", tp.IcmpTraceProber._echo_reply)
    tp.IcmpTraceProber._raw_packet = counted("raw", tp.IcmpTraceProber._raw_packet)
    _open = tp.IcmpTraceProber.open
    def opened(self):
        _open(self)
        seen["sockets"].append(self.detail)
    tp.IcmpTraceProber.open = opened

    US, SILENT, GENUINE, STRANGER = "198.18.0.1", "198.18.0.9", "198.18.0.77", "198.18.0.66"
    BASE = 33434
    a = socket.inet_aton

    def csum(b):
        return packet.icmp_checksum(b)

    def ip4(src, dst, proto, body, ttl=64):
        return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0x4000, ttl, proto, 0,
                           a(src), a(dst)) + body

    def icmp(kind, code, rest):
        msg = bytearray(struct.pack("!BBHI", kind, code, 0, 0) + rest)
        struct.pack_into("!H", msg, 2, csum(msg))
        return bytes(msg)

    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent = {}

    def inject(offender, kind, code, quoted, label):
        raw.sendto(ip4(offender, US, 1, icmp(kind, code, quoted)), (US, 0))
        sent[label] = sent.get(label, 0) + 1

    def echo_reply(src, ident, seq16, payload, label):
        msg = bytearray(struct.pack("!BBHHH", 0, 0, 0, ident, seq16) + payload)
        struct.pack_into("!H", msg, 2, csum(msg))
        raw.sendto(ip4(src, US, 1, bytes(msg)), (US, 0))
        sent[label] = sent.get(label, 0) + 1

    def payload(session, seq, magic=b"NKTR"):
        return struct.pack("!4sII", magic, session & 0xFFFFFFFF, seq & 0xFFFFFFFF) + bytes(20)

    def quoted_udp(sport, dport, data, dst=SILENT):
        udp = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
        return ip4(US, dst, 17, udp, ttl=1)

    def quoted_echo(ident, seq16, data, dst=SILENT):
        req = bytearray(struct.pack("!BBHHH", 8, 0, 0, ident, seq16) + data)
        struct.pack_into("!H", req, 2, csum(req))
        return ip4(US, dst, 1, bytes(req), ttl=1)

    genuine_done = []

    def forge_udp(sport, dport, session, seq, ttl):
        ours = payload(session, seq)
        for label, q in (
            ("port outside the range", quoted_udp(sport, dport + 1000 + 1024, ours)),
            ("port of a probe never sent", quoted_udp(sport, BASE + 1000, payload(session, 1000))),
            ("port and payload disagree", quoted_udp(sport, dport + 1, ours)),
            ("wrong session", quoted_udp(sport, dport, payload(session ^ 0x5A5A, seq))),
            ("wrong magic", quoted_udp(sport, dport, payload(session, seq, b"XKTR"))),
            ("wrong seq in payload", quoted_udp(sport, dport, payload(session, seq + 1))),
            ("another destination", quoted_udp(sport, dport, ours, dst="198.18.0.10")),
            ("wrong source port", quoted_udp(sport ^ 1, dport, ours)),
        ):
            inject(STRANGER, 11, 0, q, "udp te " + label)
            inject(STRANGER, 3, 3, q, "udp port unreachable " + label)
        if ttl == 2 and not genuine_done:
            genuine_done.append(seq)
            inject(GENUINE, 11, 0, quoted_udp(sport, dport, ours), "genuine")

    def forge_icmp(ident, seq16, session, seq, ttl):
        for label, q in (
            ("icmp te wrong seq16", quoted_echo(ident, (seq16 + 77) & 0xFFFF, payload(session, seq + 77))),
            ("icmp te seq16 and payload disagree", quoted_echo(ident, seq16, payload(session, seq + 1))),
            ("icmp te wrong session", quoted_echo(ident, seq16, payload(session ^ 0x5A5A, seq))),
            ("icmp te wrong id", quoted_echo(ident ^ 0x0101, seq16, payload(session, seq))),
            ("icmp te another destination", quoted_echo(ident, seq16, payload(session, seq), dst="198.18.0.10")),
        ):
            inject(STRANGER, 11, 0, q, label)
            inject(STRANGER, 3, 1, q, label.replace(" te ", " unreachable "))
        echo_reply(SILENT, ident ^ 0x0101, seq16, payload(session, seq), "icmp reply wrong id")
        echo_reply(SILENT, ident, (seq16 + 77) & 0xFFFF, payload(session, seq + 77), "icmp reply wrong seq16")
        echo_reply(SILENT, ident, seq16, payload(session ^ 0x5A5A, seq), "icmp reply wrong session")
        echo_reply(SILENT, ident, seq16, payload(session, seq + 1), "icmp reply seq16 and payload disagree")
        echo_reply(STRANGER, ident, seq16, payload(session, seq), "icmp reply from another address")
        echo_reply(SILENT, ident, seq16, b"", "icmp reply without the payload")
        if ttl == 2 and not genuine_done:
            genuine_done.append(seq)
            inject(GENUINE, 11, 0, quoted_echo(ident, seq16, payload(session, seq)), "genuine")

    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sniff.bind(("nkh0", 0))
    sniff.settimeout(0.1)
    done = threading.Event()
    probes = []

    def injector():
        while not done.is_set():
            try:
                frame = sniff.recv(2048)
            except socket.timeout:
                continue
            ip = frame[14:]
            if len(ip) < 20 or ip[0] >> 4 != 4 or ip[16:20] != a(SILENT):
                continue
            ttl, proto, hl = ip[8], ip[9], (ip[0] & 15) * 4
            body = ip[hl:]
            if proto == 17 and method == "udp":
                sport, dport = struct.unpack_from("!HH", body)
                magic, session, seq = struct.unpack_from("!4sII", body, 8)
                probes.append(seq)
                forge_udp(sport, dport, session, seq, ttl)
            elif proto == 1 and method == "icmp" and body[0] == 8:
                ident, seq16 = struct.unpack_from("!HH", body, 4)
                magic, session, seq = struct.unpack_from("!4sII", body, 8)
                probes.append(seq)
                forge_icmp(ident, seq16, session, seq, ttl)

    th = threading.Thread(target=injector, daemon=True)
    th.start()
    cfg = TraceConfig(method=TraceMethod(method), count=4, interval_s=0.15, timeout_s=0.8, max_hops=4,
                      resolve_names=False, window=8)
    t0 = time.monotonic()
    result = run_trace([Target(SILENT, 0), Target("127.0.0.1", 0)], cfg)
    took = time.monotonic() - t0
    done.set()
    th.join(2)
    out = {"took": took, "probes": len(probes), "sent": sent, "genuine": genuine_done, "seen": seen, "targets": [
        {"address": t.address, "reached": t.reached, "error": t.error,
         "hops": [{"ttl": h.ttl, "sent": h.sent, "received": h.received, "other": h.other_replies,
                   "responders": {r.address: r.replies for r in h.responders}} for h in t.hops]}
        for t in result.targets]}
    print(json.dumps(out))
''')


@pytest.mark.parametrize(("method", "socket_kind"), [("udp", "-"), ("icmp", "raw"), ("icmp", "dgram")])
def test_forged_icmp_errors_are_never_matched(method: str, socket_kind: str) -> None:
    require_root_netns()
    p = subprocess.run(["unshare", "-n", sys.executable, "-c", SCRIPT, method, socket_kind],
                       capture_output=True, text=True, timeout=50)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    silent, loop = out["targets"]
    # Every round's probes to the silent target were seen and answered with every forgery.
    assert out["probes"] >= 4 * 4, out
    forgeries = {k: n for k, n in out["sent"].items() if k != "genuine"}
    assert len(forgeries) == 16, forgeries
    assert min(forgeries.values()) == max(forgeries.values()) == out["probes"], forgeries
    # ... and reached the prober (the kernel itself drops only what quotes another socket: a wrong
    # source port for udp; a wrong id for an ICMP datagram socket, and every error as a reply).
    n, seen = out["probes"], out["seen"]
    if method == "udp":
        assert seen["records"] >= 14 * n, seen
    elif socket_kind == "raw":
        assert seen["sockets"] == ["raw icmp socket"] * 2
        assert seen["raw"] >= 16 * n, seen
    else:
        assert seen["sockets"] == ["icmp datagram socket, errors from its error queue"] * 2
        assert seen["records"] >= 8 * n and seen["replies"] >= 4 * n, seen
    assert out["sent"].get("genuine") == 1 and len(out["genuine"]) == 1
    # The silent target: only the one genuine answer, at TTL 2, from its sender; all else lost.
    assert not silent["reached"]
    by_ttl = {h["ttl"]: h for h in silent["hops"]}
    assert sorted(by_ttl) == [1, 2, 3, 4]
    assert {ttl: (h["sent"], h["received"]) for ttl, h in by_ttl.items()} == {
        1: (4, 0), 2: (4, 1), 3: (4, 0), 4: (4, 0)}, silent
    assert by_ttl[2]["responders"] == {"198.18.0.77": 1} and by_ttl[2]["other"] == 0
    # The answering target: its own answers only, one per probe, no stranger among the responders.
    assert loop["reached"], loop
    assert [(h["ttl"], h["sent"], h["received"], h["responders"]) for h in loop["hops"]] == [
        (1, 4, 4, {"127.0.0.1": 4})], loop
    assert out["took"] < 5.0
