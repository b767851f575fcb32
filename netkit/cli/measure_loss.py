"""``netkit measure loss``: a paced UDP probe stream to a reflector; loss overall and by direction.

Options -> ``LossConfig`` -> ``netkit.io.measure.loss.run_loss`` -> ``LossResult`` ->
``netkit.render.loss`` (progress line, table / json / jsonl / csv) -> exit code (the same
thresholds as ``measure latency``).
"""

from __future__ import annotations

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.guard_options import key_options, load_key_option
from netkit.cli.options import family_options, threshold_options, timeout_option
from netkit.cli.params import Count, Duration, Size
from netkit.core.exitcodes import ExitCode

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
@timeout_option("-W", "--timeout", default="1s", help="A reply later than this counts as late, not received.")
@family_options
@threshold_options
@click.option("--samples", is_flag=True, help="Include every RTT sample (samples_ms) in JSON.")
@key_options(with_key=True)  # a keyed reflector answers only signed probes
@output_options
def loss(target: str, rate: float, duration: float, size: int, timeout: float, family: int,
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
    from netkit.core.latency_models import LossConfig
    from netkit.core.targets import parse_target
    from netkit.io.measure.loss import run_loss
    from netkit.render.loss import LossProgress, print_loss

    out = get_output()
    tgt = parse_target(target)
    cfg = LossConfig(rate_pps=float(rate), duration_s=duration, size=size, timeout_s=timeout, family=family,
                     key=load_key_option(key, key_file))
    with LossProgress(out, str(tgt), cfg) as progress:
        result = run_loss(tgt, cfg, max_loss_pct=max_loss, max_rtt_ms=None if max_rtt is None else max_rtt * 1000.0,
                          progress=progress)
    print_loss(out, result, samples=samples)
    return ExitCode.OK if result.thresholds.passed else ExitCode.CHECK_FAILED
