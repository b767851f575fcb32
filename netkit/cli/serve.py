"""``netkit serve tcp|udp``: the peer for every measurement (thin layer over netkit.io)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from netkit.cli import guard_options, params
from netkit.cli.context import get_output, output_options
from netkit.cli.serving import finish_serving, start_serving

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.serve_models import ServerEventSink, TcpServeSummary, UdpServeSummary
    from netkit.io.stdout_queue import ServerStdout
    from netkit.render.output import Output


@click.group()
def serve() -> None:
    """Run a TCP, UDP, iperf3 or responsiveness server on loopback (or --host): the peer for every measurement.

    Prints exactly one line `listening on HOST:PORT` to stderr when ready; Ctrl-C or SIGTERM
    prints a summary and exits 0.
    """


def _serving(out: Output) -> tuple[ServerStdout, ServerEventSink]:
    """serve tcp/udp: stdout for a running server and the guarded event sink."""
    from netkit.render.serve import print_event

    return start_serving(out, lambda event: print_event(out, event))


def _finish(out: Output, serving: ServerStdout, summary: TcpServeSummary | UdpServeSummary, title: str) -> int:
    from netkit.render.serve import print_summary

    return finish_serving(serving, lambda dropped: print_summary(out, summary, title, dropped))


@serve.command("tcp", short_help="Serve TCP: echo, discard, source or reply; TLS optional.")
@click.option("--host", type=params.HOST, default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", "-p", type=params.LISTEN_PORT, default="8000", show_default=True,
              help="Port to bind; 0 picks a free one.")
@click.option("--mode", type=click.Choice(["echo", "discard", "source", "reply"]), default="echo",
              show_default=True, help="echo back, read and drop, write a pattern, or answer --reply.")
@click.option("--reply", "reply_text", type=params.BYTES, default="Message received", show_default=True, metavar="TEXT",
              help="Answer to each received chunk in --mode reply (escapes: \\n \\r \\t \\0 \\xHH).")
@click.option("--max-conns", type=params.Count(min=0), default="1024", show_default=True,
              help="Concurrent connections; more are closed at once and logged (0: no limit).")
@click.option("--idle-timeout", type=params.DURATION, default="5m", show_default=True,
              help="Close a connection idle this long in both directions (0: never).")
@click.option("--max-bytes", type=params.SIZE, default="0", show_default=True,
              help="Close a connection after this many bytes in+out (0: no limit).")
@click.option("--max-request", type=params.SIZE, default="1M", show_default=True,
              help="Largest request frame (and reply) of a request session; larger ones close it.")
@click.option("--once", is_flag=True, help="Serve one connection, then exit.")
@click.option("--tls", is_flag=True, help="Speak TLS (ephemeral self-signed certificate unless --cert).")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="TLS certificate (PEM) for --tls.")
@click.option("--key", default=None, metavar="TEXT",
              help="Measurement key (HMAC; or NETKIT_KEY, --key-file). With --cert and no --tls-key: "
                   "the TLS private key (PEM), as before.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="TLS private key (PEM) for --cert.")
@guard_options.key_options(with_key=False)
@guard_options.limit_options
@output_options
def serve_tcp_cmd(host: str, port: int, mode: str, reply_text: bytes, max_conns: int, idle_timeout: float,
                  max_bytes: int, max_request: int, once: bool, tls: bool, cert: str | None, key: str | None,
                  tls_key: str | None = None, key_file: str | None = None, **limits: Any) -> int:
    """Serve TCP: echo (default), discard, source or reply, with limits and optional TLS.

    \b
    Examples:
      netkit serve tcp --port 0
      netkit serve tcp --mode reply --reply 'hello' --once
      netkit serve tcp --tls --port 8443
      netkit --format jsonl serve tcp --port 0 > events.jsonl
    """
    from click.core import ParameterSource

    from netkit.core.serve_models import TcpServerConfig
    from netkit.io.servers.tcp_server import serve_tcp_sync
    from netkit.render.serve import print_ready, print_tls_certificate

    out = get_output()
    reply_source = click.get_current_context().get_parameter_source("reply_text")
    if mode != "reply" and reply_source is ParameterSource.COMMANDLINE:
        # Silently serving echo to someone who asked for a reply hides their mistake.
        raise params.usage_error("--reply needs --mode reply", "--reply")
    # --key names the measurement (HMAC) key; written with --cert and no --tls-key it keeps its
    # older meaning, the certificate's private key, so existing command lines still work.
    hmac_text = key
    if cert and not tls_key and key is not None:
        tls_key, hmac_text = key, None
    if (cert or tls_key) and not tls:
        raise params.usage_error("--cert/--key need --tls", "--cert")
    if tls_key and not os.path.isfile(tls_key):
        raise params.usage_error(f"TLS key file {tls_key!r} does not exist", "--key")
    mkey = guard_options.load_key_option(hmac_text, key_file)
    config = TcpServerConfig(
        host=host, port=port, mode=mode, reply=reply_text, max_conns=max_conns or None,
        idle_timeout=idle_timeout or None, max_bytes=max_bytes or None, once=once,
        max_request=max(1, max_request), tls=tls, tls_cert=cert, tls_key=tls_key, key=mkey,
        limits=guard_options.server_limits(out, host, "tcp", mkey, limits),
    )
    serving, sink = _serving(out)
    summary = serve_tcp_sync(config, on_event=sink, on_ready=lambda srv: print_ready(out, srv.address),
                             on_tls=lambda ephemeral, fp: print_tls_certificate(out, ephemeral, fp),
                             on_debug=out.debug, on_stop=serving.bind)
    return _finish(out, serving, summary, "netkit serve tcp")


@serve.command("udp", short_help="Serve UDP: show each datagram, or echo it.")
@click.option("--host", type=params.HOST, default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", "-p", type=params.LISTEN_PORT, default="8000", show_default=True,
              help="Port to bind; 0 picks a free one.")
@click.option("--mode", type=click.Choice(["show", "echo"]), default="show", show_default=True,
              help="show each datagram, or echo it to its sender (through the reflector).")
@click.option("--preview", type=params.Count(min=0, max=4096), default="64", show_default=True,
              help="Characters of escaped preview per datagram in --mode show.")
@guard_options.key_options(with_key=True)
@guard_options.limit_options
@output_options
def serve_udp_cmd(host: str, port: int, mode: str, preview: int, key: str | None = None,
                  key_file: str | None = None, **limits: Any) -> int:
    """Serve UDP: show each datagram (time, sender, size, escaped preview) or echo it.

    \b
    Examples:
      netkit serve udp --port 0
      netkit serve udp --mode echo --port 9000
    """
    from netkit.core.serve_models import UdpServerConfig
    from netkit.io.servers.udp_server import serve_udp_sync
    from netkit.render.serve import print_ready

    out = get_output()
    mkey = guard_options.load_key_option(key, key_file)
    config = UdpServerConfig(host=host, port=port, mode=mode, preview=preview, key=mkey,
                             limits=guard_options.server_limits(out, host, "udp", mkey, limits))
    if mode != "echo" and (mkey is not None or config.limits != UdpServerConfig().limits):
        out.warn("--key and the limits apply to --mode echo only (show mode never answers)")
    serving, sink = _serving(out)
    summary = serve_udp_sync(config, on_event=sink, on_ready=lambda srv: print_ready(out, srv.address),
                             on_debug=out.debug, on_stop=serving.bind)
    return _finish(out, serving, summary, "netkit serve udp")


@serve.command("iperf3", short_help="Serve iperf3 clients, many tests at once.")
@click.option("--host", type=params.HOST, default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", "-p", type=params.LISTEN_PORT, default="5201", show_default=True,
              help="TCP and UDP port to bind; 0 picks a free one.")
@click.option("--max-tests", type=params.Count(min=1), default="32", show_default=True,
              help="Tests running at once; a client beyond them is told the server is busy.")
@click.option("--max-duration", type=params.DURATION, default="60s", show_default=True,
              help="A test running longer is ended and logged (0: no limit).")
@click.option("--max-streams", type=params.Count(min=1, max=256), default="128", show_default=True,
              help="Data streams per test (-P, twice that with --bidir); more are refused.")
@click.option("--max-rate", type=params.BITRATE, default=None,
              help="A test above this many bit/s (both ways, per 1 s) is ended; a UDP -b above it is refused.")
@click.option("--idle-timeout", type=params.POSITIVE_DURATION, default="10s", show_default=True,
              help="End a test whose client is silent this long (control, or all streams while it runs).")
@click.option("--once", is_flag=True, help="Serve one test, then exit.")
@click.option("--allow", multiple=True, metavar="CIDR", help="Serve only these sources (repeatable).")
@click.option("--deny", multiple=True, metavar="CIDR", help="Never serve these sources (repeatable; beats --allow).")
@output_options
def serve_iperf3_cmd(host: str, port: int, max_tests: int, max_duration: float, max_streams: int,
                     max_rate: float | None, idle_timeout: float, once: bool, allow: tuple[str, ...],
                     deny: tuple[str, ...]) -> int:
    """Serve unmodified iperf3 clients (TCP, -R, --bidir, -P, -u, ...), many tests at once.

    Each test is isolated: its own cookie, streams and results. A jsonl event starts and ends
    each test (``test_start``, ``test``: what the server counted); a table run prints one row per
    finished test. Ctrl-C or SIGTERM ends every test and prints the totals.

    \b
    Examples:
      netkit serve iperf3 --port 5201
      iperf3 -c 127.0.0.1 -P 4 -t 5
      netkit --format jsonl serve iperf3 --port 0 --max-tests 8 > tests.jsonl
    """
    from netkit.core.iperf3_server import Iperf3ServerConfig
    from netkit.io.servers.iperf3_server import serve_iperf3_sync
    from netkit.render.iperf3_serve import EventState, print_event, print_summary
    from netkit.render.serve import print_ready

    out = get_output()
    guard_options.check_cidr_options(allow, deny)
    guard_options.warn_if_exposed(
        out, host, f"serving iperf3 on {host}: anyone who can reach this address can use it to burn this link's "
                   "bandwidth; consider --allow/--deny, --max-rate, --max-duration, --max-tests")
    config = Iperf3ServerConfig(
        host=host, port=port, max_tests=max_tests, max_duration_s=max_duration or None, max_streams=max_streams,
        max_rate_bps=max_rate or None, idle_timeout_s=idle_timeout, once=once, allow=tuple(allow), deny=tuple(deny),
    )
    rows = EventState()
    serving, sink = start_serving(out, lambda event: print_event(out, event, rows))
    summary = serve_iperf3_sync(config, on_event=sink, on_ready=lambda srv: print_ready(out, srv.address),
                                on_debug=out.debug, on_stop=serving.bind)
    return finish_serving(serving, lambda dropped: print_summary(out, summary, "netkit serve iperf3", dropped))


def _register_responsiveness() -> None:
    """``serve responsiveness`` lives in its own module (its options are many); it is a ``serve`` command."""
    from netkit.cli.serve_responsiveness import serve_responsiveness_cmd

    serve.add_command(serve_responsiveness_cmd)


_register_responsiveness()
