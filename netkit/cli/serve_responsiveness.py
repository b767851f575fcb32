"""``netkit serve responsiveness``: the responsiveness (RPM) test server (thin layer over netkit.io)."""

from __future__ import annotations

import click

from netkit.cli import params
from netkit.cli.context import get_output, output_options
from netkit.cli.guard_options import check_cidr_options, warn_if_exposed
from netkit.cli.serving import finish_serving, start_serving


@click.command("responsiveness", short_help="Serve the responsiveness (RPM) test: HTTP/2 and HTTP/1.1.")
@click.option("--host", type=params.HOST, default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", "-p", type=params.LISTEN_PORT, default="4443", show_default=True,
              help="Port to bind; 0 picks a free one.")
@click.option("--no-tls", is_flag=True, help="Cleartext: HTTP/1.1, and HTTP/2 with prior knowledge (h2c).")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False),
              help="TLS certificate (PEM); default: an ephemeral self-signed one.")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="TLS private key (PEM) for --cert.")
@click.option("--cert-out", type=click.Path(dir_okay=False, writable=True), metavar="PATH",
              help="Write the ephemeral certificate here, for a client's --cafile.")
@click.option("--url-host", metavar="HOST",
              help="Host the configuration's URLs name (default: the one the client used).")
@click.option("--test-endpoint", metavar="HOST", help="Add a test_endpoint to the configuration document.")
@click.option("--max-conns", type=params.Count(min=0), default="1024", show_default=True,
              help="Connections open at once; more are closed at accept (0: no limit).")
@click.option("--max-conns-per-ip", type=params.Count(min=0), default="256", show_default=True,
              help="Connections open at once from one address (0: no limit).")
@click.option("--max-streams", type=params.Count(min=1, max=1000), default="100", show_default=True,
              help="HTTP/2 streams at once per connection; more are refused.")
@click.option("--max-upload", type=params.SIZE, default="64G", show_default=True,
              help="Bytes one upload may send; more are answered 413 (0: no limit).")
@click.option("--max-duration", type=params.DURATION, default="2m", show_default=True,
              help="Longest life of any connection (0: no limit).")
@click.option("--idle-timeout", type=params.DURATION, default="10s", show_default=True,
              help="Close a connection with no byte either way this long (0: never).")
@click.option("--max-header", type=params.Size(min=1024, max=1024 * 1024), default="16K", show_default=True,
              help="Largest request header block; larger ones end the connection.")
@click.option("--allow", multiple=True, metavar="CIDR", help="Serve only these sources (repeatable).")
@click.option("--deny", multiple=True, metavar="CIDR", help="Never serve these sources (repeatable; beats --allow).")
@output_options
def serve_responsiveness_cmd(host: str, port: int, no_tls: bool, cert: str | None, key: str | None,
                             cert_out: str | None, url_host: str | None, test_endpoint: str | None, max_conns: int,
                             max_conns_per_ip: int, max_streams: int, max_upload: int, max_duration: float,
                             idle_timeout: float, max_header: int, allow: tuple[str, ...],
                             deny: tuple[str, ...]) -> int:
    """Serve the IETF responsiveness test: /.well-known/nq, /large, /small, /upload.

    HTTP/2 over TLS (ALPN h2) and HTTP/1.1 on one port, with an ephemeral self-signed
    certificate unless --cert; --no-tls serves cleartext HTTP/1.1 and HTTP/2 (prior knowledge).
    Prints the configuration URL and the client command to run. Every limit is the server's:
    a client never raises it. Ctrl-C or SIGTERM prints the totals and exits 0.

    \b
    Examples:
      netkit serve responsiveness --port 0 --cert-out /tmp/nq.pem
      netkit measure responsiveness https://127.0.0.1:4443/.well-known/nq --cafile /tmp/nq.pem
      curl --http2 -k https://127.0.0.1:4443/.well-known/nq
      netkit --format jsonl serve responsiveness --no-tls --port 8080 > events.jsonl
    """
    from netkit.core.nq_server import NqServerConfig, is_host_text
    from netkit.io.servers.responsiveness_server import ResponsivenessServer, serve_responsiveness_sync
    from netkit.render.responsiveness_serve import print_event, print_start, print_summary
    from netkit.render.serve import print_ready, print_tls_certificate

    out = get_output()
    if no_tls and (cert or key or cert_out):
        raise params.usage_error("--cert/--key/--cert-out need TLS (leave out --no-tls)", "--no-tls")
    if key and not cert:
        raise params.usage_error("--key needs --cert", "--key")
    if cert and cert_out:
        raise params.usage_error("--cert-out writes the ephemeral certificate: with --cert, give clients that file",
                                 "--cert-out")
    for opt, value in (("--url-host", url_host), ("--test-endpoint", test_endpoint)):
        if value is not None and not is_host_text(value):
            raise params.usage_error(f"{opt} {value!r} is not a host name or address", opt)
    check_cidr_options(allow, deny)
    warn_if_exposed(out, host, f"serving responsiveness on {host}: anyone who can reach this address can use "
                    f"it to fill this link; consider --allow/--deny, --max-conns-per-ip, --max-duration")
    config = NqServerConfig(
        host=host, port=port, tls=not no_tls, tls_cert=cert, tls_key=key, cert_out=cert_out, url_host=url_host,
        test_endpoint=test_endpoint, max_conns=max_conns or None, max_conns_per_ip=max_conns_per_ip or None,
        max_streams=max_streams, max_upload=max_upload or None, max_duration_s=max_duration or None,
        idle_timeout_s=idle_timeout or None, max_header_bytes=max_header, allow=tuple(allow), deny=tuple(deny),
    )
    serving, sink = start_serving(out, lambda event: print_event(out, event))
    cafile: list[str | None] = [cert]

    def on_tls(ephemeral: bool, fp: str, path: str | None) -> None:
        cafile[0] = path
        print_tls_certificate(out, ephemeral, fp)

    def on_ready(srv: ResponsivenessServer) -> None:
        # The ready line last: a script that waits for it has the lines before it too.
        print_start(out, srv.config_url, cafile[0], srv.tls is not None)
        print_ready(out, srv.address)

    summary = serve_responsiveness_sync(config, on_event=sink, on_ready=on_ready, on_tls=on_tls,
                                        on_debug=out.debug, on_stop=serving.bind)
    return finish_serving(serving, lambda dropped: print_summary(out, summary, "netkit serve responsiveness",
                                                                 dropped))
