"""``netkit serve tcp|udp``: the peer for every measurement (thin layer over netkit.io)."""

from __future__ import annotations

import os
from typing import Any

import click

from netkit.cli import guard_options, params
from netkit.cli.context import get_output, output_options
from netkit.core.exitcodes import ExitCode


@click.group()
def serve() -> None:
    """Run a TCP or UDP server on loopback (or --host): the peer for every measurement.

    Prints exactly one line `listening on HOST:PORT` to stderr when ready; Ctrl-C or SIGTERM
    prints a summary and exits 0.
    """


def _serving_output(out: Any) -> dict[str, Any]:
    """The state a server's event sink and :func:`_finish` share; stdout becomes a QueuedWriter.

    Printing an event must never block serving: a reader that stops (``| less``, a paused
    terminal) would otherwise freeze the event loop, new clients and SIGTERM with it. Events go
    through a bounded queue written by a thread; when the reader stalls they are dropped and
    counted (``events_dropped`` in the summary) and one warning on stderr says so.
    """
    from netkit.io.stdout_queue import QueuedWriter

    state: dict[str, Any] = {}

    def broken() -> None:  # from the writer's thread: the reader went away, stop like a signal
        state["broken"] = True
        loop, stop = state.get("loop"), state.get("stop")
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass  # the loop already ended

    def first_drop() -> None:
        _notice(out, "stdout is not keeping up: events are dropped while it stalls (counted in events_dropped)")

    writer = QueuedWriter.replacing(out.stdout, on_first_drop=first_drop, on_broken=broken)
    if writer is not None:
        out.stdout = writer
        state["writer"] = writer
        # An error ends the command before _finish: still give queued events their short chance.
        click.get_current_context().call_on_close(lambda: writer.close(idle_s=0.2, max_s=1.0))
    return state


def _notice(out: Any, message: str, wait_s: float = 0.5) -> None:
    """A warning on stderr that cannot hold the server: stderr may be the very pipe that stalled
    (``2>&1 | less``). A thread of its own writes it with ``os.write`` (no Python lock held while
    blocked); we wait for it at most ``wait_s``."""
    import os
    import threading

    try:
        fd = out.stderr.fileno()
        out.stderr.flush()
    except (AttributeError, OSError, ValueError):
        out.warn(message)  # no descriptor (tests): an in-memory stream never blocks
        return
    data = f"netkit: warning: {message}\n".encode(errors="replace")

    def write() -> None:
        try:
            os.write(fd, data)
        except OSError:
            pass

    writer = threading.Thread(target=write, name="netkit-notice", daemon=True)
    writer.start()
    writer.join(wait_s)


def _event_sink(out: Any, state: dict[str, Any]) -> Any:
    """jsonl: every event on stdout. table: one readable line per event on stdout."""
    import asyncio

    from netkit.core.escape import safe_text

    def sink(event: dict[str, Any]) -> None:
        if state.get("broken"):
            return
        if "loop" not in state:  # the writer's thread stops the server through this loop
            try:
                state["loop"] = asyncio.get_running_loop()
            except RuntimeError:
                pass
        try:
            if out.format == "jsonl":
                out.jsonl(event)
            elif out.format == "table" and event["event"] != "listening":
                out.line(_event_line(event, safe_text))
        except BrokenPipeError:  # stdout without a descriptor of its own (no QueuedWriter)
            state["broken"] = True
            stop = state.get("stop")
            if stop is not None:
                stop.set()

    return sink


def _event_line(ev: dict[str, Any], safe_text: Any) -> str:
    t = ev.get("time", "")[11:23]
    kind = ev["event"]
    if kind == "open":
        return f"{t} open   #{ev['id']} {ev['peer']}"
    if kind == "close":
        return (f"{t} close  #{ev['id']} {ev['peer']} in={ev['bytes_in']} out={ev['bytes_out']} "
                f"{ev['duration_ms']:.1f}ms {ev['reason']}")
    if kind == "limit":
        who = f"#{ev['id']} " if ev.get("id") is not None else ""
        return f"{t} limit  {ev['limit']} {who}{ev.get('peer', '')} (limit {ev.get('value')})"
    if kind == "datagram":
        return f"{t} {ev['peer']} {ev['size']}B {safe_text(ev.get('preview', ''))}"
    rest = " ".join(f"{k}={safe_text(str(v))}" for k, v in ev.items() if k not in ("event", "time"))
    return f"{t} {kind} {rest}"


def _ready(out: Any, address: str) -> None:
    # The ready line is the one thing printed even with -q: scripts wait for it to learn the port.
    out.stderr.write(f"listening on {address}\n")
    out.stderr.flush()


def _render_summary(out: Any, summary: Any, title: str, extra: dict[str, Any] | None = None) -> None:
    import dataclasses

    from netkit.render.output import to_jsonable
    from netkit.render.tables import add_row, make_table

    data = {**to_jsonable(summary), **(extra or {})}
    if out.format == "jsonl":
        out.jsonl({"event": "summary", **data})
        return

    def table() -> Any:
        t = make_table(["field", ("value", "right")], title=title)
        for f in dataclasses.fields(summary):
            value = getattr(summary, f.name)
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
            add_row(t, f.name, value)
        for name, value in (extra or {}).items():
            add_row(t, name, value)
        return t

    out.emit(data, table=table, rows=[data])


def _finish(out: Any, state: dict[str, Any], summary: Any, title: str) -> int:
    if state.get("broken"):
        raise BrokenPipeError  # stdout went away mid-run: leave quietly (exit 141)
    writer = state.get("writer")
    if writer is None:
        _render_summary(out, summary, title)
        return ExitCode.OK
    writer.droppable = False  # the summary is one document: queued whole, whatever the bound
    _render_summary(out, summary, title, {"events_dropped": writer.dropped})
    written = writer.close()
    if writer.broken:
        raise BrokenPipeError
    if not written:
        # A stalled reader: the server stopped at once all the same; say what was lost.
        _notice(out, "stdout is not being read: the summary (and any queued events) were not written")
    elif writer.dropped:
        _notice(out, f"{writer.dropped} events were dropped while stdout was not read")
    return ExitCode.OK


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
# issue 10: --key is the measurement (HMAC) key; with --cert and no --tls-key it stays the TLS key.
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
    from netkit.core.serve_models import TcpServerConfig
    from netkit.io.aio import StopSignal, run
    from netkit.io.servers.tcp_server import serve_tcp

    out = get_output()
    from click.core import ParameterSource

    reply_source = click.get_current_context().get_parameter_source("reply_text")
    if mode != "reply" and reply_source is ParameterSource.COMMANDLINE:
        # Silently serving echo to someone who asked for a reply hides their mistake.
        raise params.usage_error("--reply needs --mode reply", "--reply")
    # issue 10: split --key between TLS (old spelling, with --cert) and the measurement key.
    hmac_text = key
    if cert and not tls_key and key is not None:
        tls_key, hmac_text = key, None
    if (cert or tls_key) and not tls:
        raise params.usage_error("--cert/--key need --tls", "--cert")
    if tls_key and not os.path.isfile(tls_key):
        raise params.usage_error(f"TLS key file {tls_key!r} does not exist", "--key")
    key = tls_key
    config = TcpServerConfig(
        host=host, port=port, mode=mode, reply=reply_text, max_conns=max_conns or None,
        idle_timeout=idle_timeout or None, max_bytes=max_bytes or None, once=once,
        max_request=max(1, max_request),
    )
    ctx = None
    if tls:
        from netkit.io.tls import server_context

        server_tls = server_context(cert, key, host=host)
        ctx = server_tls.context
        kind = "ephemeral self-signed certificate" if server_tls.ephemeral else "certificate"
        # Shown even with -q, like the ready line: a client needs it to pin the certificate.
        out.stderr.write(f"TLS {kind}, SHA-256 fingerprint {server_tls.fingerprint_sha256}\n")
        out.stderr.flush()
    state = _serving_output(out)
    # issue 10: keys and limits (None when neither is set: the server runs as before)
    guard = guard_options.make_guard(out, host, "tcp", guard_options.load_key_option(hmac_text, key_file),
                                     limits, _event_sink(out, state))

    async def main() -> Any:
        async with StopSignal() as stop:
            state["stop"] = stop
            return await serve_tcp(
                config, tls=ctx, on_event=_event_sink(out, state), stop=stop,
                on_ready=lambda srv: _ready(out, srv.address), on_debug=out.debug, guard=guard,
            )

    summary = guard_options.with_guard_counts(run(main()), guard)
    return _finish(out, state, summary, "netkit serve tcp")


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
    from netkit.io.aio import StopSignal, run
    from netkit.io.servers.udp_server import serve_udp

    out = get_output()
    config = UdpServerConfig(host=host, port=port, mode=mode, preview=preview)
    state = _serving_output(out)
    # issue 10: in echo mode the reflector sits behind a Guard (key, limits, never amplifies)
    guard = guard_options.make_guard(out, host, "udp", guard_options.load_key_option(key, key_file),
                                     limits, _event_sink(out, state))
    reflector = None
    if guard is not None and mode == "echo":
        from netkit.io.servers.server_guard import GuardedReflector

        reflector = GuardedReflector(guard)
    elif guard is not None:
        out.warn("--key and the limits apply to --mode echo only (show mode never answers)")

    async def main() -> Any:
        async with StopSignal() as stop:
            state["stop"] = stop
            return await serve_udp(
                config, on_event=_event_sink(out, state), stop=stop,
                on_ready=lambda srv: _ready(out, srv.address), on_debug=out.debug, reflector=reflector,
            )

    summary = run(main())
    return _finish(out, state, summary, "netkit serve udp")
