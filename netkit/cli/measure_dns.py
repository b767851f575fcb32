"""``netkit measure dns``: how fast and what name servers answer, over many queries, side by side.

Options -> :class:`~netkit.core.dns_config.DnsConfig` -> one call, :func:`netkit.io.measure.dns.measure_dns`
-> :class:`~netkit.core.dns_result.DnsResult` (checked by :func:`~netkit.core.dns_result.check_dns`) ->
:mod:`netkit.render.dns` -> exit code. Heavy imports happen inside the function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.options import timeout_option
from netkit.cli.params import Count, Duration, usage_error
from netkit.core.dns_wire import DEFAULT_EDNS_SIZE, QTYPES
from netkit.core.exitcodes import ExitCode

if TYPE_CHECKING:  # pragma: no cover
    from click.shell_completion import CompletionItem

RESOLV_CONF = "/etc/resolv.conf"


class QueryType(click.ParamType):
    """A query type in any case, given upper-case (``mx`` -> ``MX``)."""

    name = "TYPE"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).upper()
        if text not in QTYPES:
            self.fail(f"{value!r} is not a query type netkit asks ({', '.join(QTYPES)})", param, ctx)
        return text

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        from click.shell_completion import CompletionItem

        return [CompletionItem(t) for t in QTYPES if t.startswith(incomplete.upper())]


@click.command(name="dns")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("-s", "--server", "servers", multiple=True, metavar="ADDR[:PORT]",
              help="A server to ask (repeat to compare several; default: the nameserver lines of "
                   "/etc/resolv.conf).")
@click.option("-t", "--type", "qtype", type=QueryType(), default="A", show_default=True,
              help=f"Query type: {', '.join(QTYPES)}. PTR accepts an address and asks its reverse name.")
@click.option("--tcp", "transport", flag_value="tcp", help="Ask over TCP (one connection per query).")
@click.option("--tls", "transport", flag_value="tls",
              help="DNS over TLS (port 853 by default; one connection per query).")
@click.option("--https", "url", default=None, metavar="URL",
              help="DNS over HTTPS (RFC 8484) to URL, over HTTP/2 when the server offers it, else HTTP/1.1, "
                   "one connection per server kept for the run; its host is the server unless --server gives "
                   "the address to connect to.")
@click.option("--doh-get", is_flag=True,
              help="--https: send each query by GET (?dns=, id 0: cacheable) instead of POST.")
@click.option("--http1.1", "http1_only", is_flag=True, help="--https: use HTTP/1.1 even when the server has HTTP/2.")
@click.option("--udp", "transport", flag_value="udp", default=True,
              help="Ask over UDP, and over TCP again when the answer is truncated (the default).")
@click.option("-c", "--count", type=Count(min=1, max=1_000_000), default=1, show_default=True,
              help="Rounds: each asks every server every name.")
@click.option("-i", "--interval", type=Duration(min=0.0), default="200ms", show_default=True,
              help="Wait between rounds.")
@timeout_option("-W", "--timeout", default="2s", help="A query (with its TCP retry) not answered within this is lost.")
@click.option("--edns-size", type=Count(min=0, max=65535), default=DEFAULT_EDNS_SIZE, show_default=True,
              help="EDNS UDP payload size to advertise (0: no EDNS, the 512-byte limit).")
@click.option("--tls-name", default=None, metavar="NAME",
              help="--tls/--https: the name the server's certificate must hold (default: the --https URL's "
                   "host name; for an address, the chain is checked only).")
@click.option("-k", "--insecure", is_flag=True, help="--tls/--https: do not verify the server's certificate.")
@click.option("--cafile", type=click.Path(dir_okay=False), default=None,
              help="--tls/--https: trust the certificates in this PEM file.")
@click.option("--expect", default=None, metavar="REGEX",
              help="Exit 1 unless every answer's records (name ttl type data, one a line) match REGEX.")
@click.option("--expect-rcode", default="NOERROR", show_default=True, metavar="RCODE",
              help="Exit 1 when an answer's rcode is another (NXDOMAIN to check a name is absent).")
@click.option("--max-rtt", type=Duration(min=0.0, min_open=True), default=None, metavar="DURATION",
              help="Exit 1 when a server's p99 RTT for a name exceeds DURATION.")
@output_options
def dns(names: tuple[str, ...], servers: tuple[str, ...], qtype: str, transport: str, url: str | None,
        doh_get: bool, http1_only: bool, count: int,
        interval: float, timeout: float, edns_size: int, tls_name: str | None, insecure: bool,
        cafile: str | None, expect: str | None, expect_rcode: str, max_rtt: float | None) -> ExitCode:
    """Ask name servers for NAMEs; report each server's answers, rcode, RTT percentiles and loss.

    Each round asks every server every name, one query at a time. Over UDP a truncated answer is
    asked again over TCP and both times are kept. A reply from another address or port, with
    another id or question, or that does not parse, is ignored and counted, never taken as the
    answer. Answer data is the server's: shown escaped, never interpreted.

    Exit status: 0 ok, 1 a check failed (a name with no answer from a server, an rcode other than
    --expect-rcode, --expect or --max-rtt), 2 usage, 3 runtime, 130 interrupted by Ctrl-C.

    \b
    Examples:
      netkit measure dns example.com
      netkit measure dns example.com -s 127.0.0.1:5353 -s 9.9.9.9 -c 20
      netkit measure dns -t TXT big.test --server 127.0.0.1:5353 --expect 'v=spf1'
      netkit measure dns -t PTR 192.0.2.1 --server [::1]:53 --expect-rcode NXDOMAIN
      netkit measure dns example.com --https https://127.0.0.1:8443/dns-query -k
      netkit measure dns example.com --https https://127.0.0.1:8443/dns-query -k --doh-get -c 10
    """
    import dataclasses
    import re

    from netkit.core.dns_config import (
        DEFAULT_PORTS,
        DnsConfig,
        Transport,
        parse_doh_url,
        parse_server,
        resolv_conf_servers,
    )
    from netkit.core.dns_result import check_dns
    from netkit.core.dns_wire import rcode_valid, validate_name
    from netkit.core.errors import RuntimeFailure
    from netkit.io.measure.dns import measure_dns
    from netkit.render.dns import DnsSink, render_dns

    out = get_output()
    qtype = qtype.upper()
    doh = None
    if url is not None and transport != "udp":
        raise usage_error(f"--https and --{transport} exclude each other: give one")
    if url is None and (doh_get or http1_only):
        raise usage_error(f"{'--doh-get' if doh_get else '--http1.1'} goes with --https URL")
    if url is not None:
        import ipaddress

        try:
            url_host, port, authority, path = parse_doh_url(url)
        except ValueError as e:
            raise usage_error(str(e)) from None
        transport, doh = "https", (authority, path)
        try:
            ipaddress.ip_address(url_host)
            servers = servers or (f"[{url_host}]:{port}" if ":" in url_host else f"{url_host}:{port}",)
        except ValueError:
            tls_name = tls_name or url_host
            if not servers:
                raise usage_error(f"--https {url}: give --server ADDR[:PORT] to connect to {url_host}") from None
    else:
        port = DEFAULT_PORTS[transport]
    try:
        rcode = rcode_valid(expect_rcode)
        if expect is not None:
            re.compile(expect)
        for n in names:
            validate_name(n)
        chosen = tuple(parse_server(s, port) for s in servers)
    except (ValueError, re.error) as e:
        raise usage_error(str(e)) from None
    if not chosen:
        try:
            with open(RESOLV_CONF, encoding="utf-8", errors="replace") as f:
                chosen = resolv_conf_servers(f.read(10**6), port)
        except OSError as e:
            raise RuntimeFailure(f"cannot read {RESOLV_CONF}: {e.strerror}; give --server") from None
        if not chosen:
            raise RuntimeFailure(f"no nameserver line in {RESOLV_CONF}; give --server")
    try:
        cfg = DnsConfig(names=names, servers=chosen, qtype=qtype, transport=Transport(transport), count=count,
                        interval_s=interval, timeout_s=timeout, edns_size=edns_size, tls_server_name=tls_name, doh=doh,
                        doh_get=doh_get, http1_only=http1_only)
    except ValueError as e:
        raise usage_error(str(e)) from None
    with DnsSink(out) as sink:
        result = measure_dns(cfg, sink=sink.add, insecure=insecure, cafile=cafile)
    max_rtt_ms = None if max_rtt is None else max_rtt * 1000
    result = dataclasses.replace(result, checks=check_dns(result, expect=expect, expect_rcode=rcode,
                                                          max_rtt_ms=max_rtt_ms))
    render_dns(out, result)
    if result.by_sigint:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if result.checks.passed else ExitCode.CHECK_FAILED
