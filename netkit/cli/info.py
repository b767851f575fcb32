"""``netkit info``: interfaces, sockets and traffic rates of this machine (psutil).

Thin Click layer: options -> a filter or schedule -> ``netkit.sysinfo`` (the one entry point per
command) -> core models -> ``netkit.render.info`` -> exit code. psutil and rich are imported inside
the commands (start-up time).
"""

from __future__ import annotations

import click

from netkit.cli.completion import complete_interface
from netkit.cli.context import get_output, output_options
from netkit.cli.params import PORT, POSITIVE_DURATION, Count
from netkit.core.exitcodes import ExitCode
from netkit.core.sysinfo_models import ALL_STATES


@click.group(name="info")
def info() -> None:
    """Interfaces, sockets and traffic counters of this machine.

    Read-only and local: nothing is sent anywhere. All three commands honour --format
    json|jsonl|csv with the fields listed in the README.
    """


# ----- interfaces --------------------------------------------------------------------------------
@info.command(name="interfaces")
@click.option("-a", "--all", "include_down", is_flag=True, help="Include interfaces that are down.")
@output_options
def interfaces(include_down: bool) -> int:
    """List network interfaces: state, MTU, speed, addresses and counters.

    One row per interface, in kernel index order, with its IPv4 (address/prefix), IPv6 and MAC
    addresses and its receive/transmit byte, packet, error and drop counters since it came up.
    Without --all only interfaces that are up are shown. On a narrow terminal the name, state
    and byte counters always show; the other columns give way, the least telling first.
    """
    from netkit.core.sysinfo_models import INTERFACE_FIELDS
    from netkit.render.info import interface_table
    from netkit.sysinfo.interfaces import list_interfaces

    out = get_output()
    ifaces = list_interfaces(include_down=include_down)
    out.emit({"interfaces": ifaces}, table=lambda: interface_table(ifaces, width=out.width), rows=ifaces,
             fields=INTERFACE_FIELDS)
    return ExitCode.OK


# ----- connections -------------------------------------------------------------------------------
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
    from netkit.core.sysinfo_models import CONNECTION_FIELDS, ConnectionFilter, SocketProto
    from netkit.render.info import connection_table, hidden_owners_note
    from netkit.sysinfo.connections import list_connections

    out = get_output()
    protos = frozenset({SocketProto.TCP} if tcp and not udp else {SocketProto.UDP} if udp and not tcp
                       else SocketProto)
    flt = ConnectionFilter(protos=protos, listening=listening, states=frozenset(state),
                           ports=frozenset(port), pids=frozenset(pid))
    result = list_connections(flt)
    if result.owners_hidden:
        out.info(hidden_owners_note(result.owners_hidden, result.processes_hidden))
    out.emit(
        {"connections": result.connections, "processes_hidden": result.processes_hidden,
         "owners_hidden": result.owners_hidden},
        table=lambda: connection_table(result.connections, width=out.width), rows=result.connections,
        fields=CONNECTION_FIELDS,
    )
    return ExitCode.OK


# ----- traffic -----------------------------------------------------------------------------------
@info.command(name="traffic")
@click.option("-i", "--interval", type=POSITIVE_DURATION, default="1s", show_default=True,
              help="Time between readings (e.g. 200ms, 1s).")
@click.option("-c", "--count", type=Count(min=1), default=None,
              help="Stop after this many intervals (default: until Ctrl-C).")
@click.option("--interface", "interface", multiple=True, shell_complete=complete_interface, metavar="NAME",
              help="Only this interface (repeatable; default: every interface that is up).")
@click.option("--bytes", "in_bytes", is_flag=True,
              help="Show rates in bytes per second (KiB/s, MiB/s) instead of bits per second (kbit/s, Mbit/s).")
@output_options
def traffic(interval: float, count: int | None, interface: tuple[str, ...], in_bytes: bool) -> int:
    """Show receive and transmit rates per interface, every interval.

    Rates are counter differences divided by the measured time between readings, in bits per
    second like every rate netkit prints (--bytes: bytes per second); errors and drops are counts
    in the interval. JSON, JSONL and CSV always carry bytes and packets per second. Counters that
    wrap or restart are handled. On a terminal a live table runs until Ctrl-C or --count, then a
    table of the whole run is printed; off a terminal one line per interface per interval. Ctrl-C
    ends a run without --count normally (exit 0); one cut short before --count exits 130.
    """
    from netkit.render.info import TrafficView
    from netkit.sysinfo.traffic import watch_traffic

    view = TrafficView(get_output(), interval, in_bytes=in_bytes)
    with view.screen():
        report = watch_traffic(interval, count, interface, view.on_batch, view.on_start)
    view.finish(report)
    if report.interrupted and count is not None and view.rounds < count:
        return ExitCode.INTERRUPTED
    return ExitCode.OK
