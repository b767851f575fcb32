"""``netkit measure loss``: a paced UDP probe stream to a reflector; loss overall and by direction.

Options -> ``LossConfig`` -> ``netkit.io.measure.loss`` -> ``LossResult`` -> table / json / jsonl / csv
-> exit code (same thresholds as ``measure latency``). Rendering is shared with
``netkit.cli.measure_latency``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.guard_options import key_options, load_key_option
from netkit.cli.params import Count, Duration, Number, Size, usage_error
from netkit.core.exitcodes import ExitCode

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.accounting import Accounting

MAX_RATE = 10_000_000


@click.command(name="loss")
@click.argument("target", metavar="TARGET")
@click.option("-r", "--rate", type=Count(min=1, integer=False, max=MAX_RATE), default="1000", show_default=True,
              help="Packets per second (100k = 100,000).")
@click.option("-d", "--duration", type=Duration(min=0.0, min_open=True, max=24 * 3600.0), default="10s",
              show_default=True,
              help="Wall-clock time to send for, whatever the rate; then wait at most --timeout for replies.")
@click.option("-s", "--size", type=Size(min=56, max=65507), default="64", show_default=True,
              help="UDP payload bytes per probe (at least 56, the probe header).")
@click.option("-W", "--timeout", type=Duration(min=0.0, min_open=True), default="1s", show_default=True,
              help="A reply later than this counts as late, not received.")
@click.option("-4", "ipv4", is_flag=True, help="IPv4 only.")
@click.option("-6", "ipv6", is_flag=True, help="IPv6 only.")
@click.option("--max-loss", type=Number(0, 100), default=None, metavar="PCT",
              help="Exit 1 when loss exceeds PCT percent.")
@click.option("--max-rtt", type=Duration(min=0.0, min_open=True), default=None, metavar="DURATION",
              help="Exit 1 when the p95 RTT exceeds DURATION.")
@click.option("--samples", is_flag=True, help="Include every RTT sample (samples_ms) in JSON.")
@key_options(with_key=True)  # issue 10: --key/--key-file/NETKIT_KEY for a keyed reflector
@output_options
def loss(target: str, rate: float, duration: float, size: int, timeout: float, ipv4: bool, ipv6: bool,
         max_loss: float | None, max_rtt: float | None, samples: bool, key: str | None = None,
         key_file: str | None = None) -> ExitCode:
    """Send a paced stream of UDP probes to a reflector and account for every packet.

    Against `netkit serve udp --mode echo` the loss is split by direction (forward: lost on
    the way there; return: lost on the way back); against any other UDP echo, round trip only.
    Exit status: 0 ok, 1 no reply or a threshold breached, 2 usage, 3 runtime.

    \b
    Examples:
      netkit measure loss 127.0.0.1:9000 --rate 2000 --duration 5s
      netkit measure loss 127.0.0.1:9000 --rate 100k -d 10s --max-loss 0.5 --format json
    """
    import asyncio

    from netkit.cli.measure_latency import emit_summary
    from netkit.core.latency_models import (
        REFLECTOR_NETKIT,
        LossConfig,
        LossResult,
        check_thresholds,
        shortfall_note,
        stall_probes,
    )
    from netkit.core.pacing import fell_behind
    from netkit.core.targets import parse_target
    from netkit.io.aio import StopSignal, run
    from netkit.io.measure.loss import measure_loss
    from netkit.io.resolve import family_of

    out = get_output()
    if ipv4 and ipv6:
        raise usage_error("-4 and -6 exclude each other")
    tgt = parse_target(target)
    cfg = LossConfig(rate_pps=float(rate), duration_s=duration, size=size, timeout_s=timeout,
                     family=family_of(ipv4, ipv6), key=load_key_option(key, key_file))
    live = out.live_ok and out.format == "table"
    status: Any = None

    def progress(acc: Accounting, elapsed_ns: int) -> None:
        text = (f"sent {acc.sent}  received {acc.received}  lost so far {acc.expired}  "
                f"{elapsed_ns / 1e9:.1f}/{duration:g}s")
        if status is not None:
            status.update(text)
        elif out.format == "jsonl" and elapsed_ns // 1_000_000_000 != getattr(progress, "last", -1):
            progress.last = elapsed_ns // 1_000_000_000  # type: ignore[attr-defined]
            out.jsonl({"event": "progress", "target": str(tgt), "elapsed_s": round(elapsed_ns / 1e9, 3),
                       "sent": acc.sent, "received": acc.received, "lost_so_far": acc.expired})

    async def main() -> tuple[Any, bool]:
        nonlocal status
        stop = asyncio.Event()
        async with StopSignal() as sig:
            watcher = asyncio.ensure_future(sig.wait())
            watcher.add_done_callback(lambda _f: stop.set())
            try:
                if live:
                    with out.err_console.status(f"measure loss {tgt} at {rate:g} pps") as st:
                        status = st
                        res = await measure_loss(tgt, cfg, stop=stop, progress=progress)
                    status = None
                else:
                    res = await measure_loss(tgt, cfg, stop=stop, progress=progress)
            finally:
                watcher.cancel()
        return res, sig.signum is not None

    res, interrupted = run(main())
    if cfg.key is not None and res.acc.sent and not res.acc.received and not interrupted and not res.error:
        from netkit.core.errors import CheckFailed
        from netkit.io.servers.server_guard import WRONG_KEY_MESSAGE

        raise CheckFailed(WRONG_KEY_MESSAGE)  # issue 10: a keyed reflector drops what it cannot verify
    if res.reflector is not None and res.reflector != REFLECTOR_NETKIT:
        out.info(f"{tgt}: plain UDP echo (not netkit's reflector): round trip only, no per-direction loss")
    elif res.reflector == REFLECTOR_NETKIT and res.acc.lost_forward is None and res.acc.sent:
        out.info(f"{tgt}: the reflector's final count did not arrive: no per-direction loss")
    achieved = res.achieved_pps
    if fell_behind(cfg.rate_pps, achieved):
        out.warn(shortfall_note(str(tgt), cfg.rate_pps, achieved or 0.0))
    thresholds = check_thresholds([res], max_loss, None if max_rtt is None else max_rtt * 1000.0,
                                  stall_after=stall_probes(1.0 / cfg.rate_pps))
    result = LossResult(res, thresholds, cfg.rate_pps, achieved, interrupted)
    doc = result.to_json(samples=samples)
    rate_note = "-" if achieved is None else f"{achieved:,.0f}"
    emit_summary(out, doc, [res], thresholds,
                 f"measure loss: {cfg.rate_pps:,.0f} pps requested, {rate_note} pps achieved",
                 histograms=False)
    return ExitCode.OK if thresholds.passed else ExitCode.CHECK_FAILED
