"""Hand-written parts of the man pages: EXAMPLES, EXIT STATUS, extra ENVIRONMENT and SEE ALSO.

Keyed by the command path without "netkit" ("" is the root page, "measure latency" a subcommand).
Everything else on a page comes from the Click definitions. Every example is a real command line:
``tests/cli/test_man_pages.py`` parses each one with netkit's own Click tree, so an example that
uses an option that no longer exists fails the tests instead of misleading a reader.
"""

from __future__ import annotations

from typing import Any

DEFAULT_EXIT_STATUS: tuple[tuple[int, str], ...] = (
    (0, "Success."),
    (1, "The check failed: unreachable, refused, loss or RTT over a threshold."),
    (2, "Usage error or bad input (an unknown option, a malformed target, duration or size)."),
    (3, "Runtime error: cannot bind, permission denied, our own address does not resolve."),
    (130, "Interrupted by SIGINT (Ctrl-C) where the command has no result to report."),
)

_USAGE = (2, "Usage error or bad input; the message names the option or argument.")
_RUNTIME = (3, "Runtime error (permission denied, a system call failed).")

PAGES: dict[str, dict[str, Any]] = {
    "": {
        "summary": "network diagnostics with honest numbers",
        "exit_status": (
            *DEFAULT_EXIT_STATUS,
            (141, "stdout was closed by its reader (netkit ... | head -1): netkit stops quietly."),
        ),
        "environment": (
            ("NO_COLOR", "When set (to anything), no colour is used, as with --no-color."),
        ),
        "examples": (
            ("Run every capability against netkit's own servers on loopback:", "netkit selftest"),
            ("Wait until a database accepts connections, then start the application (a container "
             "entrypoint guard):", "netkit probe --wait --deadline 60s db:5432 && exec app"),
            ("Measure the TCP handshake time to a local service and keep the result as JSON:",
             "netkit --format json measure latency 127.0.0.1:22 > latency.json"),
            ("Install bash completion for the current user:",
             "netkit completion bash > ~/.local/share/bash-completion/completions/netkit"),
        ),
        "see_also": ("ss(8)", "ip(8)", "ping(8)", "iperf3(1)", "nc(1)"),
    },
    # ----- serve ---------------------------------------------------------------------------------
    "serve": {
        "exit_status": (
            (0, "The server stopped on Ctrl-C or SIGTERM and printed its summary."),
            _USAGE,
            (3, "The server could not start: the address is in use, binding is not permitted, "
                "or the TLS certificate or key cannot be read."),
        ),
        "examples": (
            ("An echo server on a fixed port:", "netkit serve tcp --port 9000"),
            ("A UDP reflector for netkit measure latency --method udp and measure loss:",
             "netkit serve udp --port 9000 --mode echo"),
        ),
    },
    "serve tcp": {
        "exit_status": (
            (0, "The server stopped on Ctrl-C or SIGTERM (or after one connection with --once) and "
                "printed its summary."),
            _USAGE,
            (3, "The server could not start: the address is in use, binding is not permitted, "
                "or the TLS certificate or key cannot be read."),
        ),
        "examples": (
            ("An echo server on a free port; the port is on the 'listening on' line (stderr):",
             "netkit serve tcp --port 0"),
            ("A sink for throughput tests:", "netkit serve tcp --port 9000 --mode discard"),
            ("A TLS echo server with an ephemeral self-signed certificate (its SHA-256 fingerprint is "
             "printed):", "netkit serve tcp --port 9443 --tls"),
            ("Log every connection as a JSON line:",
             "netkit --format jsonl serve tcp --port 9000 >> connections.jsonl"),
        ),
    },
    "serve udp": {
        "exit_status": (
            (0, "The server stopped on Ctrl-C or SIGTERM and printed its summary."),
            _USAGE,
            (3, "The server could not start: the address is in use or binding is not permitted."),
        ),
        "examples": (
            ("Show every datagram that arrives on port 9000:", "netkit serve udp --port 9000"),
            ("Reflect datagrams to their senders (the peer of measure latency --method udp):",
             "netkit serve udp --port 9000 --mode echo"),
        ),
    },
    "serve iperf3": {
        "exit_status": (
            (0, "The server stopped on Ctrl-C or SIGTERM (or after its one test with --once) and printed its totals."),
            _USAGE,
            (3, "The server could not start: the address is in use or binding is not permitted."),
        ),
        "examples": (
            ("Serve iperf3 clients on the usual port, many at once:", "netkit serve iperf3"),
            ("Then, from as many clients as you like:", "iperf3 -c 127.0.0.1 -P 4 -t 5"),
            ("Log every test as a JSON line, at most 8 at once and 30 s each:",
             "netkit --format jsonl serve iperf3 --max-tests 8 --max-duration 30s >> tests.jsonl"),
        ),
    },
    "serve responsiveness": {
        "exit_status": (
            (0, "The server stopped on Ctrl-C or SIGTERM and printed its totals."),
            _USAGE,
            (3, "The server could not start: the address is in use or binding is not permitted."),
        ),
        "examples": (
            ("Serve the responsiveness test with a certificate a client can trust:",
             "netkit serve responsiveness --cert-out /tmp/nq.pem"),
            ("Then, from a client (netkit, or curl for the configuration document):",
             "curl --http2 --cacert /tmp/nq.pem https://127.0.0.1:4443/.well-known/nq"),
            ("Cleartext HTTP/1.1 and HTTP/2 (prior knowledge), every connection logged as a JSON line:",
             "netkit --format jsonl serve responsiveness --no-tls --port 8080 >> events.jsonl"),
        ),
    },
    # ----- send ----------------------------------------------------------------------------------
    "send": {
        "exit_status": (
            (0, "Sent, and the reply (if any) was read."),
            (1, "The connection failed: refused, timed out, name not resolved or TLS verification failed."),
            _USAGE,
            _RUNTIME,
        ),
        "examples": (
            ("Send a line to an echo server and print the reply:", "netkit send tcp 127.0.0.1:9000 hello"),
            ("Send three datagrams and print the replies:",
             "netkit send udp 127.0.0.1:9000 ping --count 3 --wait 1s"),
        ),
    },
    "send tcp": {
        "exit_status": (
            (0, "Sent, and the reply was read until the peer closed or went quiet."),
            (1, "The connection failed: refused, timed out, name not resolved or TLS verification failed."),
            _USAGE,
            _RUNTIME,
        ),
        "examples": (
            ("Send a message and print the reply:", "netkit send tcp 127.0.0.1:9000 hello"),
            ("Send a file, keep the raw reply:", "netkit send tcp 127.0.0.1:9000 --file request.bin > reply.bin"),
            ("Send standard input:", "printf 'PING\\r\\n' | netkit send tcp 127.0.0.1:6379"),
            ("Sizes and timings as JSON:", "netkit --format json send tcp 127.0.0.1:9000 hello"),
        ),
    },
    "send udp": {
        "exit_status": (
            (0, "Sent (and, with --wait, at least one reply came)."),
            (1, "With --wait: no reply came, or the port is unreachable."),
            _USAGE,
            _RUNTIME,
        ),
        "examples": (
            ("Send one datagram:", "netkit send udp 127.0.0.1:9000 hello"),
            ("Send five datagrams 200 ms apart and show replies for up to a second:",
             "netkit send udp 127.0.0.1:9000 ping --count 5 --interval 200ms --wait 1s"),
        ),
    },
    # ----- probe ---------------------------------------------------------------------------------
    "probe": {
        "exit_status": (
            (0, "Every target is open (with --any: at least one is)."),
            (1, "A target is not open: closed, timeout, unreachable, dns-error, tls-error or mismatch."),
            _USAGE,
            _RUNTIME,
            (130, "Interrupted by SIGINT."),
        ),
        "examples": (
            ("Is a service up?", "netkit probe 127.0.0.1:22"),
            ("Which of these ports are open?", "netkit probe 127.0.0.1:22,80,8000-8100 --only open"),
            ("Wait up to a minute for a database, then start the application:",
             "netkit probe --wait --deadline 60s db:5432 && exec app"),
            ("Retry with exponential backoff before giving up:",
             "netkit probe 127.0.0.1:8080 --retries 5 --backoff 0.5s --max-backoff 5s"),
            ("Check a banner:", "netkit probe 127.0.0.1:22 --expect '^SSH-'"),
            ("Targets from a file, one JSON line per result:", "netkit --format jsonl probe --targets-file hosts.txt"),
        ),
    },
    # ----- measure -------------------------------------------------------------------------------
    "measure": {
        "exit_status": (
            (0, "Measured, and every threshold given was met."),
            (1, "No reply at all, a threshold was breached, or the connection failed."),
            _USAGE,
            _RUNTIME,
        ),
        "examples": (
            ("TCP handshake time to a local service:", "netkit measure latency 127.0.0.1:22"),
            ("Loss at 1000 packets/s against netkit's reflector:",
             "netkit measure loss 127.0.0.1:9000 --rate 1000 --duration 10s"),
            ("Bandwidth to netkit serve tcp:", "netkit measure throughput 127.0.0.1:9000 --duration 5s"),
        ),
    },
    "measure latency": {
        "exit_status": (
            (0, "Replies were received and every threshold given was met (also after Ctrl-C)."),
            (1, "No reply at all, or --max-loss or --max-rtt was breached (the summary says which)."),
            _USAGE,
            (3, "Runtime error, for example ICMP needs a raw socket or net.ipv4.ping_group_range."),
        ),
        "examples": (
            ("Handshake time of new TCP connections (like tcping):", "netkit measure latency 127.0.0.1:22"),
            ("UDP round trips against netkit's reflector, 100 probes 10 ms apart:",
             "netkit measure latency 127.0.0.1:9000 --method udp --count 100 --interval 10ms"),
            ("Fail a CI job when loss exceeds 1% or the p95 RTT exceeds 5 ms:",
             "netkit -q measure latency 127.0.0.1:9000 --method udp --count 200 --max-loss 1 --max-rtt 5ms"),
            ("Log every reply as a JSON line:",
             "netkit --format jsonl measure latency 127.0.0.1:22 --count 10 >> latency.jsonl"),
        ),
        "see_also": ("ping(8)", "fping(8)", "sockperf(1)"),
    },
    "measure loss": {
        "exit_status": (
            (0, "Replies were received and every threshold given was met."),
            (1, "No reply at all, or --max-loss was breached."),
            _USAGE,
            _RUNTIME,
        ),
        "examples": (
            ("Loss at 2000 packets/s for 10 s against netkit's reflector:",
             "netkit measure loss 127.0.0.1:9000 --rate 2000 --duration 10s"),
            ("Fail when loss exceeds 1%:",
             "netkit -q measure loss 127.0.0.1:9000 --rate 1000 --duration 5s --max-loss 1"),
        ),
    },
    "measure throughput": {
        "exit_status": (
            (0, "Measured (and at least --min-rate when given)."),
            (1, "The connection failed, no data got through for 5 s (a stalled path), nothing answered --udp, "
                "or the rate was below --min-rate."),
            _USAGE,
            _RUNTIME,
        ),
        "examples": (
            ("Single TCP stream to netkit serve tcp for 5 s:",
             "netkit measure throughput 127.0.0.1:9000 --duration 5s"),
            ("Four parallel streams, server to client:",
             "netkit measure throughput 127.0.0.1:9000 --parallel 4 --reverse"),
            ("Against a running iperf3 -s:", "netkit measure throughput 127.0.0.1:5201 --iperf3"),
        ),
        "see_also": ("iperf3(1)",),
    },
    "measure requests": {
        "exit_status": (
            (0, "Measured (and within --min-rps and --max-p99 when given)."),
            (1, "No request completed, no connection, or a threshold was breached (the summary says which)."),
            _USAGE,
            _RUNTIME,
            (130, "Interrupted by Ctrl-C (after the summary)."),
        ),
        "examples": (
            ("Closed loop, 100 persistent connections, 10 s, against netkit's echo server:",
             "netkit measure requests 127.0.0.1:9000 --connections 100 --duration 10s"),
            ("Open loop at 5000 requests/s (latency from the scheduled time, no coordinated omission):",
             "netkit measure requests 127.0.0.1:9000 --rate 5000 --duration 10s"),
            ("Fail when fewer than 10000 requests/s are answered:",
             "netkit -q measure requests 127.0.0.1:9000 --duration 5s --min-rps 10000"),
        ),
    },
    "measure connections": {
        "exit_status": (
            (0, "Measured (and within --min-rate and --max-errors when given)."),
            (1, "No connection completed, or a threshold was breached (the summary says which)."),
            _USAGE,
            _RUNTIME,
            (130, "Interrupted by Ctrl-C (after the summary)."),
        ),
        "examples": (
            ("New connections per second, 8 attempts at once, 5 s, against netkit's echo server:",
             "netkit measure connections 127.0.0.1:8000 --concurrency 8 --duration 5s"),
            ("Connect, send 64 bytes, wait for 64 back, close with a reset (TCP_CRR):",
             "netkit measure connections 127.0.0.1:8000 --send 64 --expect 64 --close rst"),
            ("Fail below 5000 connections/s or on any error:",
             "netkit -q measure connections 127.0.0.1:8000 --duration 5s --min-rate 5000 --max-errors 0"),
        ),
    },
    "measure http": {
        "exit_status": (
            (0, "Every request completed and passed the checks given."),
            (1, "A request failed, or a check (--expect-status, --expect-body, --max-total, --min-cert-days) "
                "failed (named on stderr)."),
            _USAGE,
            _RUNTIME,
            (130, "Interrupted by Ctrl-C (after the summary)."),
        ),
        "examples": (
            ("Twenty requests on one reused connection, the phases' percentiles and the median request:",
             "netkit measure http https://example.com/ -n 20"),
            ("Every request on a new connection (DNS, TCP and TLS each time), HTTP/1.1:",
             "netkit measure http https://127.0.0.1:8443/ -k --new-connection --http1.1"),
            ("A health check as blackbox does it, one JSON object per request:",
             "netkit measure http http://127.0.0.1:8080/health --expect-status 2xx --max-total 50 --format jsonl"),
        ),
    },
    "measure dns": {
        "exit_status": (
            (0, "Every server answered every name, with the expected rcode (and --expect, --max-rtt when given)."),
            (1, "A name got no answer from a server, or a check failed (the summary names it)."),
            _USAGE,
            (3, "No server to ask (no --server, and no nameserver line in /etc/resolv.conf)."),
            (130, "Interrupted by Ctrl-C (after the summary)."),
        ),
        "examples": (
            ("Compare two servers over 20 rounds:",
             "netkit measure dns example.com --server 127.0.0.1:5353 --server 198.18.0.53 --count 20"),
            ("A TXT record that UDP truncates, asked again over TCP:",
             "netkit measure dns -t TXT big.test --server 127.0.0.1:5353"),
            ("Check that a name is absent:",
             "netkit measure dns gone.example --server 127.0.0.1:5353 --expect-rcode NXDOMAIN"),
        ),
    },
    "measure responsiveness": {
        "exit_status": (
            (0, "Measured (and within --min-rpm and --max-added-latency when given)."),
            (1, "The server could not be reached or served no configuration, no RPM was measured, or a "
                "threshold was missed (the summary says which)."),
            _USAGE,
            _RUNTIME,
            (130, "Interrupted by Ctrl-C (after the summary of what was measured)."),
        ),
        "examples": (
            ("Against a server started with netkit serve responsiveness (both directions, in turn):",
             "netkit measure responsiveness https://127.0.0.1:4443 -k"),
            ("Download only, failing below 1000 RPM or 50 ms of added latency:",
             "netkit measure responsiveness https://host:4443 --download-only --min-rpm 1000 "
             "--max-added-latency 50ms"),
            ("Both directions at once over HTTP/1.1, one JSON object per interval then a summary:",
             "netkit measure responsiveness https://host:4443 --parallel --http1.1 --format jsonl"),
        ),
    },
    # ----- monitor -------------------------------------------------------------------------------
    # ----- trace ---------------------------------------------------------------------------------
    "trace": {
        "exit_status": (
            (0, "Every target's destination answered, within --max-loss and --max-rtt when given "
                "(also after Ctrl-C)."),
            (1, "A destination was not reached (or its name did not resolve), or its loss or p95 RTT "
                "breached a threshold; intermediate hops are not judged."),
            _USAGE,
            (3, "Runtime error, for example --method icmp as a user outside net.ipv4.ping_group_range."),
        ),
        "examples": (
            ("The path to a host, 10 rounds a second apart, live on a terminal (like mtr):",
             "netkit trace example.test"),
            ("One round, numeric (the path in milliseconds, like traceroute -n):",
             "netkit trace -n -c 1 198.18.0.9"),
            ("The path MTU and the hops where it drops (like tracepath):", "netkit trace --pmtu -n 198.18.0.9"),
            ("Fail when the destination loses more than 1% or its p95 RTT exceeds 20 ms:",
             "netkit -q trace -c 20 -i 100ms 198.18.0.9 --max-loss 1 --max-rtt 20ms"),
            ("Follow a long trace as JSON lines, one per probe:",
             "netkit --format jsonl trace -d 1h -i 10s 198.18.0.9 >> path.jsonl"),
        ),
        "see_also": ("mtr(8)", "traceroute(8)", "tracepath(8)"),
    },
    "monitor": {
        "exit_status": (
            (0, "Stopped with SIGTERM, or --rounds done with every target up in its last round."),
            (1, "With --rounds: a target failed its last round."),
            _USAGE,
            (3, "Runtime error: the metrics address is in use or the --textfile cannot be written "
                "(a missing, unreadable or invalid config file is bad input: 2)."),
            (130, "Stopped with SIGINT (Ctrl-C)."),
        ),
        "examples": (
            ("Probe two services every 10 s and serve Prometheus metrics on 127.0.0.1:9464:",
             "netkit monitor 127.0.0.1:22 127.0.0.1:5432 --interval 10s"),
            ("Write metrics for node_exporter's textfile collector instead:",
             "netkit monitor 127.0.0.1:22 --textfile /var/lib/node_exporter/textfile/netkit.prom"),
        ),
    },
    # ----- info ----------------------------------------------------------------------------------
    "info": {
        "exit_status": ((0, "Success."), _USAGE, _RUNTIME, (130, "Interrupted before --count intervals.")),
        "examples": (
            ("Interfaces, including those that are down:", "netkit info interfaces --all"),
            ("Who listens on port 8000?", "netkit info connections --listening --port 8000"),
            ("Rates of the loopback interface, five times 200 ms apart:",
             "netkit info traffic --interface lo --count 5 --interval 200ms"),
        ),
        "see_also": ("ip(8)", "ss(8)"),
    },
    "info interfaces": {
        "exit_status": ((0, "Success."), _USAGE, _RUNTIME),
        "examples": (
            ("Interfaces that are up:", "netkit info interfaces"),
            ("Every IPv4 address with its prefix length:",
             "netkit info interfaces --format json | jq -r '.interfaces[].ipv4[]'"),
            ("All interfaces as CSV:", "netkit info interfaces --all --format csv"),
        ),
        "see_also": ("ip(8)",),
    },
    "info connections": {
        "exit_status": ((0, "Success (also when no socket matches)."), _USAGE, _RUNTIME),
        "examples": (
            ("Every TCP and UDP socket with its process (like ss -tunap):", "netkit info connections"),
            ("Listening TCP sockets:", "netkit info connections --tcp --listening"),
            ("Which process has port 8000?",
             "netkit info connections --port 8000 --format json | jq '.connections[].pid'"),
            ("Established connections of one process:", "netkit info connections --state established --pid 1234"),
        ),
        "see_also": ("ss(8)", "netstat(8)"),
    },
    "info traffic": {
        "exit_status": (
            (0, "Done: --count intervals measured, or stopped with Ctrl-C or SIGTERM when no --count was given."),
            _USAGE,
            _RUNTIME,
            (130, "Interrupted by Ctrl-C before --count intervals were measured (the summary is still printed)."),
        ),
        "examples": (
            ("A live table of every interface that is up, every second, until Ctrl-C:", "netkit info traffic"),
            ("Three readings 200 ms apart as one JSON document (takes about 0.6 s):",
             "netkit info traffic --count 3 --interval 200ms --format json"),
            ("Log loopback rates as JSON lines, one per interval:",
             "netkit info traffic --interface lo --interval 10s --format jsonl >> traffic.jsonl"),
        ),
        "see_also": ("ip(8)", "sar(1)"),
    },
    # ----- mesh ----------------------------------------------------------------------------------
    "mesh": {
        "exit_status": ((0, "Success."), (2, "Unknown subcommand or option.")),
        "examples": (
            ("Prometheus' config and rules for every monitor of a mesh file:",
             "netkit mesh prometheus mesh.toml --write /etc/prometheus"),
            ("The loss and RTT between every pair, through Prometheus:",
             "netkit mesh matrix --prometheus http://127.0.0.1:9090"),
        ),
        "see_also": ("prometheus(1)", "promtool(1)"),
    },
    "mesh prometheus": {
        "exit_status": (
            (0, "The file was printed (or both were written)."),
            (2, "Bad input: the mesh file is missing, unreadable or invalid (the message names its key), "
                "or an option's value (a --window shorter than two scrapes)."),
            (3, "--write could not write into the directory."),
        ),
        "examples": (
            ("Print the scrape config (one job, a target per host):", "netkit mesh prometheus mesh.toml"),
            ("Print the alert rules, alerting on 1% loss over 10 minutes:",
             "netkit mesh prometheus mesh.toml --rules --max-loss 1 --window 10m"),
            ("Write prometheus.yml and netkit-mesh-rules.yml, then check them:",
             "netkit mesh prometheus mesh.toml --write /etc/prometheus\n"
             "promtool check config /etc/prometheus/prometheus.yml"),
        ),
        "see_also": ("prometheus(1)", "promtool(1)"),
    },
    "mesh matrix": {
        "exit_status": (
            (0, "The matrix was printed (within --max-loss when given)."),
            (1, "With --max-loss: a pair lost more, or its target did not answer at all."),
            (2, "Bad input: no URL or both kinds, a URL that is not http(s), an unknown --mesh or --method."),
            (3, "Prometheus or a monitor could not be reached, answered an HTTP error, or not as Prometheus "
                "does (no netkit mesh series at all is one such answer)."),
            (130, "Interrupted by SIGINT (Ctrl-C)."),
        ),
        "examples": (
            ("Loss and mean RTT over the last 5 minutes, rows sources and columns targets:",
             "netkit mesh matrix --prometheus http://127.0.0.1:9090"),
            ("The pairs as JSON over the last hour; exit 1 if one lost more than 1%:",
             "netkit --format json mesh matrix --prometheus http://127.0.0.1:9090 --window 1h --max-loss 1"),
            ("Without Prometheus, from the monitors' own /metrics (totals since each started):",
             "netkit mesh matrix --metrics http://198.18.0.1:9464 http://198.18.0.2:9464"),
        ),
        "see_also": ("prometheus(1)",),
    },
    # ----- the rest ------------------------------------------------------------------------------
    "selftest": {
        "exit_status": ((0, "Every check passed."), (1, "A check failed (the table says which)."), _USAGE, _RUNTIME),
        "examples": (
            ("Run every check:", "netkit selftest"),
            ("The results as JSON:", "netkit selftest --format json"),
        ),
    },
    "completion": {
        "exit_status": ((0, "The script was printed."), (2, "Unknown shell.")),
        "examples": (
            ("Load completion into the running bash:", 'eval "$(netkit completion bash)"'),
            ("Install it for bash, zsh and fish:",
             "netkit completion bash > ~/.local/share/bash-completion/completions/netkit\n"
             "netkit completion zsh > ~/.zfunc/_netkit\n"
             "netkit completion fish > ~/.config/fish/completions/netkit.fish"),
        ),
    },
}
