"""``netkit.render.mesh``: the matrix when it fits, one line per pair when it does not."""

from __future__ import annotations

import io

from netkit.core.mesh_matrix import MeshMatrix, assemble
from netkit.render.mesh import print_matrix
from netkit.render.output import Output


def mesh(hosts: list[str], lossy: tuple[str, str]) -> MeshMatrix:
    sent = {("lab", s, t, "udp"): 100.0 for s in hosts for t in hosts if s != t}
    return assemble({"sent": sent, "lost": {("lab", *lossy, "udp"): 12.0}, "rtt_sum": dict.fromkeys(sent, 0.1),
                     "rtt_count": sent}, mesh="lab", method="udp", origin="metrics", window_s=None)


def printed(matrix: MeshMatrix) -> list[str]:
    buf = io.StringIO()
    print_matrix(Output(stdout=buf), matrix)
    return buf.getvalue().splitlines()


def test_a_small_mesh_is_a_matrix() -> None:
    lines = printed(mesh(["a", "b", "c"], ("c", "a")))
    assert lines[0] == "mesh lab, udp probes: loss and mean RTT since each monitor started (/metrics)"
    assert lines[2].split() == ["source", "\\", "target", "a", "b", "c"]
    assert lines[7].split() == ["c", "12.0", "%", "0.0", "%", "·"]
    assert lines[8].split() == ["1.000", "ms", "1.000", "ms"]


def test_a_large_mesh_is_one_line_per_pair_worst_first() -> None:
    hosts = [f"host-{n:03d}" for n in range(100)]
    lines = printed(mesh(hosts, ("host-042", "host-007")))
    assert lines[1] == "100 hosts: too wide for a matrix, one row per pair, worst first"
    assert lines[2].split() == ["source", "target", "loss", "lost", "sent", "RTT", "mean"]
    assert lines[3].split() == ["host-042", "host-007", "12.0", "%", "12", "100", "1.000", "ms"]
    assert len(lines) == 3 + 100 * 99
    assert max(len(line) for line in lines) <= 80


def test_wide_characters_keep_the_columns_aligned() -> None:
    hosts = ["東京", "osaka", *(f"h{n}" for n in range(10))]
    lines = printed(mesh(hosts, ("東京", "osaka")))
    from rich.cells import cell_len

    assert lines[3].startswith("東京    osaka")  # 東京 takes four cells: padded to the six of "source"
    assert len({cell_len(line) for line in lines[2:]}) == 1  # every row ends at the same column
