"""``netkit info``: interfaces, sockets and traffic rates of this machine (psutil).

Thin Click layer: options -> a filter or schedule -> ``netkit.sysinfo`` -> core models -> Output.
psutil and rich are imported inside the commands (start-up time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from netkit.cli.completion import complete_interface
from netkit.cli.context import get_output, output_options
from netkit.cli.params import PORT, POSITIVE_DURATION, Count
from netkit.core.exitcodes import ExitCode
from netkit.core.sysinfo_models import ALL_STATES

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.sysinfo_models import Connection, InterfaceInfo, TrafficSample


@click.group(name="info")
def info() -> None:
    """Interfaces, sockets and traffic counters of this machine.

    Read-only and local: nothing is sent anywhere. All three commands honour --format
    json|jsonl|csv with the fields listed in the README.
    """


# ----- interfaces --------------------------------------------------------------------------------
def _interface_table(ifaces: list[InterfaceInfo]) -> Any:
    from rich.text import Text

    from netkit.core.units import format_bytes
    from netkit.render.tables import add_row, cell, make_table, state_cell

    t = make_table(["interface", "state", ("mtu", "right"), ("speed", "right"), "duplex", "addresses",
                    ("rx bytes", "right"), ("rx pkts", "right"), ("tx bytes", "right"), ("tx pkts", "right"),
                    ("errors rx/tx", "right"), ("drops rx/tx", "right")])
    for i in ifaces:
        addrs = [*i.ipv4, *i.ipv6]
        if i.mac:
            addrs.append(f"link {i.mac}")
        add_row(
            t, i.name, state_cell("up" if i.up else "down"), i.mtu,
            f"{i.speed_mbps} Mb/s" if i.speed_mbps else None, i.duplex,
            Text("\n".join(addrs)) if addrs else cell(None),
            format_bytes(i.rx_bytes) if i.rx_bytes is not None else None, i.rx_packets,
            format_bytes(i.tx_bytes) if i.tx_bytes is not None else None, i.tx_packets,
            f"{i.rx_errors}/{i.tx_errors}", f"{i.rx_drops}/{i.tx_drops}",
        )
    return t


@info.command(name="interfaces")
@click.option("-a", "--all", "include_down", is_flag=True, help="Include interfaces that are down.")
@output_options
def interfaces(include_down: bool) -> int:
    """List network interfaces: state, MTU, speed, addresses and counters.

    One row per interface, in kernel index order, with its IPv4 (address/prefix), IPv6 and MAC
    addresses and its receive/transmit byte, packet, error and drop counters since it came up.
    Without --all only interfaces that are up are shown.
    """
    from netkit.core.sysinfo_models import INTERFACE_FIELDS
    from netkit.sysinfo.interfaces import list_interfaces

    out = get_output()
    ifaces = list_interfaces(include_down=include_down)
    out.emit({"interfaces": ifaces}, table=lambda: _interface_table(ifaces), rows=ifaces,
             fields=INTERFACE_FIELDS)
    return ExitCode.OK


# ----- connections -------------------------------------------------------------------------------
def _endpoint(addr: str | None, port: int | None) -> str:
    if addr is None:
        return "*"
    shown = f"[{addr}]" if ":" in addr else addr
    return f"{shown}:{port if port else '*'}"


def _connection_table(conns: tuple[Connection, ...]) -> Any:
    from netkit.render.tables import add_row, make_table

    t = make_table(["proto", "state", "local", "remote", ("pid", "right"), "process"])
    for c in conns:
        proto = c.proto if c.family == "ipv4" else f"{c.proto}6"
        add_row(t, proto, c.state, _endpoint(c.local_address, c.local_port),
                _endpoint(c.remote_address, c.remote_port), c.pid, c.process)
    return t


@info.command(name="connections")
@click.option("-t", "--tcp", is_flag=True, help="TCP sockets (default: TCP and UDP).")
@click.option("-u", "--udp", is_flag=True, help="UDP sockets (default: TCP and UDP).")
@click.option("-l", "--listening", is_flag=True, help="Only listening sockets (TCP listen, unconnected UDP).")
@click.option("--state", "state", type=click.Choice(ALL_STATES), multiple=True,
              help="Only sockets in this state (repeatable).")
@click.option("--port", "port", type=PORT, multiple=True,
              help="Only sockets with this local or remote port (repeatable).")
@click.option("--pid", "pid", type=click.IntRange(min=1), multiple=True,
              help="Only sockets owned by this process (repeatable).")
@output_options
def connections(tcp: bool, udp: bool, listening: bool, state: tuple[str, ...], port: tuple[int, ...],
                pid: tuple[int, ...]) -> int:
    """List TCP and UDP sockets with their owning process, like ss -tunap.

    Columns: protocol, state, local and remote address, PID and process name. State names are
    ss's, in lower case; an unconnected UDP socket is "unconn". Without the rights to inspect
    other users' processes their sockets are still listed, without PID and process, and one
    line on stderr says how many were hidden.
    """
    from netkit.core.sysinfo_models import CONNECTION_FIELDS, ConnectionFilter
    from netkit.sysinfo.connections import list_connections

    out = get_output()
    protos = frozenset({"tcp"} if tcp and not udp else {"udp"} if udp and not tcp else {"tcp", "udp"})
    flt = ConnectionFilter(protos=protos, listening=listening, states=frozenset(state),
                           ports=frozenset(port), pids=frozenset(pid))
    result = list_connections(flt)
    if result.owners_hidden:
        out.info(f"netkit: note: {result.owners_hidden} socket(s) shown without PID and process: they belong to "
                 f"{result.processes_hidden} process(es) this user may not inspect (run as root to see them)")
    out.emit(
        {"connections": result.connections, "processes_hidden": result.processes_hidden,
         "owners_hidden": result.owners_hidden},
        table=lambda: _connection_table(result.connections), rows=result.connections, fields=CONNECTION_FIELDS,
    )
    return ExitCode.OK


# ----- traffic -----------------------------------------------------------------------------------
def _rate(bytes_per_s: float) -> str:
    from netkit.core.units import format_bytes

    return f"{format_bytes(bytes_per_s)}/s"


def _pps(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _traffic_table(samples: list[TrafficSample], title: str) -> Any:
    from netkit.render.tables import add_row, make_table

    # Short headers and numbers: the table fits 80 columns, so a live view never wraps a row.
    t = make_table(["interface", ("rx/s", "right"), ("rx pkt/s", "right"), ("tx/s", "right"),
                    ("tx pkt/s", "right"), ("err rx/tx", "right"), ("drop rx/tx", "right")], title=title)
    for s in samples:
        add_row(t, s.interface, _rate(s.rx_bytes_per_s), _pps(s.rx_packets_per_s), _rate(s.tx_bytes_per_s),
                _pps(s.tx_packets_per_s), f"{s.rx_errors}/{s.tx_errors}", f"{s.rx_drops}/{s.tx_drops}")
    return t


TRAFFIC_HEADER = (f"{'time':<12} {'interface':<15} {'rx/s':>14} {'rx pkt/s':>10} {'tx/s':>14} {'tx pkt/s':>10} "
                  f"{'err rx/tx':>10} {'drop rx/tx':>10}")


def _traffic_line(s: TrafficSample) -> str:
    from netkit.core.escape import safe_text

    clock = (s.timestamp or "")[11:23]
    return (f"{clock:<12} {safe_text(s.interface):<15} {_rate(s.rx_bytes_per_s):>14} {_pps(s.rx_packets_per_s):>10} "
            f"{_rate(s.tx_bytes_per_s):>14} {_pps(s.tx_packets_per_s):>10} {f'{s.rx_errors}/{s.tx_errors}':>10} "
            f"{f'{s.rx_drops}/{s.tx_drops}':>10}")


class _Stop(Exception):
    """SIGINT, SIGTERM or SIGHUP arrived: raised from the sampling loop's sleep, so the summary prints."""


@info.command(name="traffic")
@click.option("-i", "--interval", type=POSITIVE_DURATION, default="1s", show_default=True,
              help="Time between readings (e.g. 200ms, 1s).")
@click.option("-c", "--count", type=Count(min=1), default=None,
              help="Stop after this many intervals (default: until Ctrl-C).")
@click.option("--interface", "interface", multiple=True, shell_complete=complete_interface, metavar="NAME",
              help="Only this interface (repeatable; default: every interface that is up).")
@output_options
def traffic(interval: float, count: int | None, interface: tuple[str, ...]) -> int:
    """Show receive and transmit rates per interface, every interval.

    Rates (bytes/s, packets/s) are counter differences divided by the measured time between
    readings; errors and drops are counts in the interval. Counters that wrap or restart are
    handled. On a terminal a live table runs until Ctrl-C or --count, then a table of the
    whole run is printed; off a terminal one line per interface per interval. Ctrl-C ends a run
    without --count normally (exit 0); one cut short before --count exits 130.
    """
    from netkit.core.sysinfo_models import TRAFFIC_FIELDS, TrafficReport
    from netkit.core.traffic import summarize
    from netkit.io.aio import StopSignal
    from netkit.sysinfo.traffic import iter_traffic

    out = get_output()
    samples: list[TrafficSample] = []
    rounds = 0
    interrupted = False
    live_view = out.format == "table" and out.stdout_is_tty and out.live_ok
    plain_lines = out.format == "table" and not live_view
    live: Any = None
    seconds = f"{interval:g}s"
    try:
        with StopSignal() as signals:
            def sleep(delay_s: float) -> None:
                if signals.flag.wait(delay_s):
                    raise _Stop()

            batches = iter_traffic(interval, count, interface, sleep=sleep)
            if live_view:
                from rich.live import Live

                live = Live(_traffic_table([], f"traffic every {seconds}: waiting for the first interval"),
                            console=out.err_console, transient=True, redirect_stdout=False, redirect_stderr=False,
                            auto_refresh=False)
                live.start()
            elif plain_lines:
                out.line(TRAFFIC_HEADER)
            for batch in batches:
                rounds += 1
                samples.extend(batch)
                if live is not None:
                    live.update(_traffic_table(batch, f"traffic every {seconds}, interval {rounds} (Ctrl-C stops)"),
                                refresh=True)
                elif plain_lines:
                    for s in batch:
                        out.line(_traffic_line(s))
                elif out.format == "jsonl":
                    for s in batch:
                        out.jsonl(s)
                elif out.format == "csv":
                    out.csv_rows(batch, TRAFFIC_FIELDS)
    except (KeyboardInterrupt, _Stop):
        interrupted = True
    finally:
        if live is not None:
            live.stop()
    summary = summarize(samples)
    report = TrafficReport(interval_s=interval, samples=tuple(samples), summary=tuple(summary),
                           interrupted=interrupted)
    if out.format == "json":
        out.json(report)
    elif live_view and summary:
        elapsed = max((s.elapsed_s for s in summary), default=0.0)
        out.print(_traffic_table(summary, f"traffic averaged over {elapsed:.1f}s ({rounds} intervals of {seconds})"))
    if interrupted and count is not None and rounds < count:
        return ExitCode.INTERRUPTED
    return ExitCode.OK
