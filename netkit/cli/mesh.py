"""``netkit mesh``: Prometheus' config for a mesh of monitors, and the mesh's loss/RTT matrix."""

from __future__ import annotations

import click

from netkit.cli.context import get_output, output_options
from netkit.cli.params import Duration, Number
from netkit.core.errors import UsageError


@click.group(short_help="Prometheus config and matrix for a mesh.")
def mesh() -> None:
    """A mesh of monitors: every host probes every other (netkit monitor --mesh).

    `mesh prometheus` writes Prometheus' scrape config and alert rules for all
    the monitors; `mesh matrix` shows the loss and RTT between every pair.
    """


@mesh.command(name="prometheus", short_help="Print Prometheus' scrape config or rules.")
@click.argument("mesh_file", metavar="MESH.toml", type=click.Path(dir_okay=False))
@click.option("--rules", is_flag=True, help="Print the alert rules file instead of the scrape config.")
@click.option("--write", "write_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Write prometheus.yml and the rules file into DIR (made if missing) instead of printing.")
@click.option("--scrape-interval", type=Duration(min=0.001, max=300.0), default=None,
              help="How often Prometheus scrapes each monitor [default: the fastest probe's interval, at least 5s].")
@click.option("--max-loss", type=Number(min=0.0, max=99.999), default="5", show_default=True, metavar="PCT",
              help="Alert when a pair loses more than PCT percent over --window.")
@click.option("--window", type=Duration(min=1.0, max=86400.0), default="5m", show_default=True,
              help="The window loss and mean RTT are computed over.")
@click.option("--rtt-factor", type=Number(min=1.0, min_open=True, max=1000.0), default="2", show_default=True,
              help="Alert when a pair's mean RTT is above this many times its 1-day mean...")
@click.option("--rtt-floor", type=Duration(min=0.0, max=60.0), default="5ms", show_default=True,
              help="...and above this (microsecond paths double on any hiccup).")
def prometheus(mesh_file: str, rules: bool, write_dir: str | None, scrape_interval: float | None, max_loss: float,
               window: float, rtt_factor: float, rtt_floor: float) -> None:
    """Print Prometheus' scrape config for every monitor of MESH.toml.

    One job (netkit_mesh_NAME) with a static target per host, its monitor's
    ADDRESS:metrics_port, labelled with the host's labels from the mesh file.
    The monitors export source, target, method and mesh on every series
    themselves. The config names the rules file, netkit-mesh-rules.yml.
    The output is YAML whatever --format says.

    With --rules, print that file: per-pair recording rules (loss ratio and
    mean RTT over --window) and alerts: loss over --max-loss, mean RTT above
    --rtt-factor times its 1-day mean and above --rtt-floor, a monitor that
    cannot be scraped, and (with a trace probe) a path whose hop count changed.

    \b
    Examples:
      netkit mesh prometheus mesh.toml > /etc/prometheus/prometheus.yml
      netkit mesh prometheus mesh.toml --rules --max-loss 1
      netkit mesh prometheus mesh.toml --write /etc/prometheus
    """
    from netkit.core import mesh_prometheus as mp
    from netkit.io.config_files import load_mesh

    out = get_output()
    if rules and write_dir is not None:
        raise UsageError("--rules prints the rules file; --write writes both files: give one")
    config = load_mesh(mesh_file)
    settings = mp.RuleSettings(max_loss_pct=max_loss, window_s=window, rtt_factor=rtt_factor, rtt_floor_s=rtt_floor)
    scrape_text = mp.scrape_config(config, scrape_interval_s=scrape_interval)
    rules_text = mp.alert_rules(config, settings, scrape_interval_s=scrape_interval)
    if write_dir is None:
        out.line((rules_text if rules else scrape_text).rstrip("\n"))
        return
    from pathlib import Path

    directory = Path(write_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, body in (("prometheus.yml", scrape_text), (mp.RULES_FILE, rules_text)):
            (directory / name).write_text(body, encoding="utf-8")
            out.info(f"wrote {directory / name}")
    except OSError as exc:
        from netkit.core.errors import RuntimeFailure

        raise RuntimeFailure(f"cannot write into {write_dir}: {exc.strerror or exc}") from None


@mesh.command(name="matrix", short_help="Show the loss and RTT between every pair.")
@click.option("--prometheus", "prometheus_url", metavar="URL", default=None,
              help="Prometheus' base URL (http://HOST:9090): figures over --window.")
@click.option("--metrics", "metrics_urls", metavar="URL", multiple=True,
              help="A monitor's /metrics URL instead (repeatable; more URLs may follow): totals since it started.")
@click.argument("more_metrics", nargs=-1, metavar="[URL...]")
@click.option("--mesh", "mesh_name", metavar="NAME", default=None,
              help="The mesh to show, when Prometheus holds several.")
@click.option("--method", default=None, metavar="METHOD",
              help="The probe to show (udp, icmp, tcp-connect, ...) [default: udp, or the only one].")
@click.option("--window", type=Duration(min=1.0, max=31 * 86400.0), default="5m", show_default=True,
              help="With --prometheus: the window loss and RTT are over.")
@click.option("--max-loss", type=Number(min=0.0, max=100.0), default=None, metavar="PCT",
              help="Exit 1 when a pair loses more than PCT percent.")
@click.option("--timeout", type=Duration(min=0.1, max=300.0), default="10s", show_default=True,
              help="Give up on an HTTP answer after this long.")
@output_options
def matrix(prometheus_url: str | None, metrics_urls: tuple[str, ...], more_metrics: tuple[str, ...],
           mesh_name: str | None, method: str | None, window: float, max_loss: float | None, timeout: float) -> None:
    """Show the loss and mean RTT between every pair of a mesh.

    Reads Prometheus (--prometheus URL, figures over --window) or the monitors'
    /metrics (--metrics URL [URL...], totals since each started). The table has
    a row per source and a column per target, or, when the mesh is too wide
    for the screen, a row per pair, worst first. --format json gives a list of
    pairs: mesh, source, target, method, window_s, sent, lost, loss_pct,
    rtt_mean_ms, rtt_samples, reachable; csv and jsonl one row per pair.

    Exit status 1 when --max-loss is given and a pair loses more (or gets no
    answer at all); 3 when a URL cannot be read or does not answer as
    Prometheus does.

    \b
    Examples:
      netkit mesh matrix --prometheus http://127.0.0.1:9090
      netkit mesh matrix --prometheus http://prom:9090 --window 1h --max-loss 1
      netkit mesh matrix --metrics http://198.18.0.1:9464 http://198.18.0.2:9464
    """
    from netkit.core import mesh_matrix
    from netkit.core.mesh_prometheus import prom_duration
    from netkit.core.units import format_duration
    from netkit.io.clients import prometheus_query as pq
    from netkit.render.mesh import print_matrix

    out = get_output()
    urls = (*metrics_urls, *more_metrics)
    if more_metrics and not metrics_urls:
        raise UsageError("URL arguments are monitors' /metrics: give them after --metrics")
    if (prometheus_url is None) == (not urls):
        raise UsageError("give --prometheus URL or --metrics URL [URL...] (one of the two)")
    if prometheus_url is not None:
        base = pq.check_url(prometheus_url, "--prometheus")
        duration = prom_duration(window)
        out.debug(f"querying {base} over {format_duration(window)}")
        result = pq.query_matrix(base, window=duration, window_s=window, mesh=mesh_name, method=method,
                                 timeout_s=timeout)
    else:
        for url in urls:
            pq.check_url(url, "--metrics")
        result = pq.metrics_matrix(urls, mesh=mesh_name, method=method, timeout_s=timeout)
    print_matrix(out, result)
    mesh_matrix.check_max_loss(result, max_loss)

