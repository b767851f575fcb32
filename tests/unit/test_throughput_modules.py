"""How measure throughput's modules depend on each other, read from their source (nothing imported).

The stream engine knows none of its users, so the iperf3 client and netkit's own clients can each
use it without importing one another; only the dispatcher sees them all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "netkit"
MEASURE = "netkit.io.measure"


def _imports(relative: str) -> set[str]:
    tree = ast.parse((PACKAGE / relative).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):  # imports inside functions count too
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _measure_modules(relative: str) -> set[str]:
    return {name.removeprefix(MEASURE + ".") for name in _imports(relative) if name.startswith(MEASURE + ".")}


@pytest.mark.parametrize("engine", ["io/measure/streams.py", "io/measure/udp_streams.py"])
def test_the_engine_imports_none_of_its_users(engine: str) -> None:
    assert _measure_modules(engine) <= {"streams", "streams.send_queue_bytes", "streams.set_kernel_timeouts"}


@pytest.mark.parametrize("client", ["io/measure/throughput_tcp.py", "io/measure/throughput_udp.py"])
def test_netkits_clients_do_not_import_iperf3s(client: str) -> None:
    assert not {m for m in _measure_modules(client) if m.startswith("iperf3")}


@pytest.mark.parametrize("client", ["io/measure/iperf3.py", "io/measure/iperf3_udp.py"])
def test_iperf3s_clients_do_not_import_netkits(client: str) -> None:
    assert not {m for m in _measure_modules(client) if m.startswith(("throughput", "throughput_"))}


def test_only_the_dispatcher_sees_both() -> None:
    got = {m.split(".")[0] for m in _measure_modules("io/measure/throughput.py")}
    assert {"iperf3", "iperf3_udp", "throughput_tcp", "throughput_udp"} <= got


def test_pure_and_render_layers() -> None:
    for core in ("core/iperf3_wire.py", "core/iperf3_udp.py", "core/throughput_models.py"):
        assert all(name.split(".")[0] != "netkit" or name.startswith("netkit.core") for name in _imports(core)), core
    render = _imports("render/throughput.py")
    assert not any(name.startswith("netkit.io") for name in render)
    cli = _imports("cli/measure_throughput.py")
    assert not any(name.startswith("rich") for name in cli)  # drawing is render's
