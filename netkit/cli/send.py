"""``netkit send tcp|udp``: send a message, a file or stdin (like nc), with timings."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

import click

from netkit.cli import params
from netkit.cli.context import get_output, output_options
from netkit.cli.options import family_options
from netkit.core.exitcodes import ExitCode

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.targets import Target


@click.group()
def send() -> None:
    """Send a message, a file or stdin over TCP or UDP and show the reply (like nc)."""


def _target_and_message(args: tuple[str, ...]) -> tuple[Target, str | None]:
    """``HOST:PORT [MESSAGE]`` or ``HOST PORT [MESSAGE]``; bad input is a usage error (exit 2)."""
    from netkit.core.errors import InputError
    from netkit.core.targets import Target, parse_port, split_host_port

    if not args:
        raise params.usage_error("missing target: write HOST:PORT or HOST PORT", "TARGET")
    try:
        host, port_s = split_host_port(args[0])
        if port_s is not None:
            target = Target(host, parse_port(port_s))
            rest = args[1:]
        else:
            if len(args) < 2:
                raise InputError(f"invalid target {args[0]!r}: no port (write HOST:PORT)")
            target = Target(host, parse_port(args[1]))
            rest = args[2:]
    except InputError as exc:
        raise params.usage_error(str(exc), "TARGET") from None
    if len(rest) > 1:
        raise params.usage_error(f"too many arguments: {' '.join(rest[1:])!r} (quote the message)", "MESSAGE")
    return target, (rest[0] if rest else None)


def _payload(message: str | None, file: str | None, *, allow_stream: bool) -> bytes | IO[bytes]:
    """MESSAGE, or --file, or stdin when MESSAGE is '-' or absent and stdin is not a terminal."""
    if file is not None:
        if message is not None:
            raise params.usage_error("give MESSAGE or --file, not both", "--file")
        try:
            f = open(file, "rb")  # closed by the caller
        except OSError as exc:
            from netkit.core.errors import InputError

            raise InputError(f"cannot read --file {file}: {exc.strerror}") from None
        if allow_stream:
            return f
        with f:
            return f.read()
    if message is not None and message != "-":
        return message.encode()
    stdin = _binary("stdin")
    if message is None and stdin.isatty():
        raise params.usage_error("no message: give MESSAGE, --file F, or pipe data into stdin", "MESSAGE")
    return stdin if allow_stream else stdin.read()


def _binary(name: str) -> IO[bytes]:
    """The binary stream under sys.stdin (click.get_binary_stream is deprecated in 8.5)."""
    import sys

    stream: Any = getattr(sys, name)
    binary: IO[bytes] = getattr(stream, "buffer", stream)
    return binary


@send.command("tcp", short_help="Send over TCP, half-close, print the reply.")
@click.argument("args", nargs=-1, metavar="HOST:PORT [MESSAGE]")
@click.option("--file", "-f", "file", type=click.Path(dir_okay=False), help="Send this file's bytes.")
@click.option("--wait", "-w", type=params.DURATION, default="5s", show_default=True,
              help="Stop reading after this much silence once everything is sent.")
@click.option("--timeout", "-t", type=params.POSITIVE_DURATION, default="5s", show_default=True,
              help="Connect (and TLS handshake) timeout.")
@click.option("--tls", is_flag=True, help="Speak TLS; the certificate is verified.")
@click.option("--insecure", "-k", is_flag=True, help="With --tls: do not verify the certificate.")
@click.option("--cafile", type=click.Path(exists=True, dir_okay=False), help="With --tls: trust this CA (PEM).")
@click.option("--server-name", help="With --tls: name to send (SNI) and verify (default: HOST).")
@family_options
@output_options
def send_tcp_cmd(args: tuple[str, ...], file: str | None, wait: float, timeout: float, tls: bool,
                 insecure: bool, cafile: str | None, server_name: str | None, family: int) -> int:
    """Send MESSAGE (or --file, or stdin) over TCP, half-close, print the reply.

    The reply's raw bytes go to stdout (binary safe, like nc); with --format json a document
    with sizes, timings and the reply as escaped text. Exit 1 when the connection fails.

    \b
    Examples:
      netkit send tcp 127.0.0.1:8000 hello
      printf 'GET / HTTP/1.0\\r\\n\\r\\n' | netkit send tcp localhost 8080
      netkit send tcp --tls --cafile cert.pem localhost:8443 ping
    """
    from netkit.core.send_models import TcpSendConfig
    from netkit.io.aio import StopSignal
    from netkit.io.clients.tcp_client import send_tcp_sync
    from netkit.render.send import print_result, reply_writer

    out = get_output()
    target, message = _target_and_message(args)
    if (insecure or cafile or server_name) and not tls:
        raise params.usage_error("--insecure/--cafile/--server-name need --tls", "--tls")
    if insecure:
        out.warn("--insecure: the server's certificate is not verified")
    data = _payload(message, file, allow_stream=True)
    config = TcpSendConfig(
        host=target.host, port=target.port, timeout=timeout, wait=wait, tls=tls, insecure=insecure,
        cafile=cafile, server_name=server_name, family=family,
    )
    stop = StopSignal()
    try:
        result = send_tcp_sync(config, data, on_reply=reply_writer(out) if out.format == "table" else None,
                               stop=stop)
    finally:
        if not isinstance(data, bytes) and data is not _binary("stdin"):
            data.close()
    print_result(out, result)
    if stop.interrupted:
        return ExitCode.INTERRUPTED
    if result.error is not None:
        from netkit.core.errors import CheckFailed

        raise CheckFailed(f"{result.target}: {result.error}")
    return ExitCode.OK


@send.command("udp", short_help="Send UDP datagrams; with --wait print the replies.")
@click.argument("args", nargs=-1, metavar="HOST:PORT MESSAGE")
@click.option("--file", "-f", "file", type=click.Path(dir_okay=False), help="Send this file's bytes.")
@click.option("--count", "-c", type=params.Count(min=1), default="1", show_default=True,
              help="Datagrams to send.")
@click.option("--interval", "-i", type=params.DURATION, default="1s", show_default=True,
              help="Time between datagrams.")
@click.option("--wait", "-w", type=params.DURATION, default="0s", show_default=True,
              help="Listen this long after the last datagram and print replies (0: do not).")
@family_options
@output_options
def send_udp_cmd(args: tuple[str, ...], file: str | None, count: int, interval: float, wait: float,
                 family: int) -> int:
    """Send MESSAGE (or --file, or stdin) as UDP datagrams; with --wait print the replies.

    Replies' raw bytes go to stdout (table format) or into the JSON document. With --wait, exit 1
    when no reply came or the port is unreachable.

    \b
    Examples:
      netkit send udp 127.0.0.1:9000 hello
      netkit send udp 127.0.0.1:9000 ping --count 5 --interval 200ms --wait 1s
    """
    from netkit.core.errors import CheckFailed
    from netkit.core.send_models import UdpSendConfig
    from netkit.io.aio import StopSignal
    from netkit.io.clients.udp_client import send_udp_sync
    from netkit.render.send import print_result, reply_writer

    out = get_output()
    target, message = _target_and_message(args)
    data = _payload(message, file, allow_stream=False)
    assert isinstance(data, bytes)
    if len(data) > 65507:
        raise params.usage_error(f"message of {len(data)} bytes does not fit a UDP datagram (max 65507)",
                                 "MESSAGE")
    config = UdpSendConfig(host=target.host, port=target.port, count=count, interval=interval, wait=wait,
                           family=family)
    stop = StopSignal()
    result = send_udp_sync(config, data, on_reply=reply_writer(out) if out.format == "table" else None, stop=stop)
    print_result(out, result)
    if stop.interrupted:
        return ExitCode.INTERRUPTED
    if wait > 0 and stop.signum is None:  # stopped by SIGTERM/SIGHUP: the wait was cut, not failed
        if result.error is not None:
            raise CheckFailed(f"{result.target}: {result.error}")
        if result.datagrams_received == 0:
            raise CheckFailed(f"{result.target}: no reply within {wait:g}s")
    return ExitCode.OK
