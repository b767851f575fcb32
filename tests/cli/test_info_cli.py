"""``netkit info`` off a terminal, as scripts read it: plain text from the first line, units chosen."""

from __future__ import annotations

import re
import subprocess

import pytest
import support


@pytest.mark.parametrize("args", [["info", "interfaces"], ["info", "interfaces", "--all"], ["info", "connections"],
                                  ["info", "traffic", "-c", "1", "-i", "50ms"]])
def test_piped_output_starts_with_its_header(args: list[str]) -> None:
    """``netkit info ... | head -1`` prints the header: no blank first line, no box, no trailing spaces."""
    proc = subprocess.run([*support.netkit_cmd(*args)], capture_output=True, text=True, timeout=30,
                          env=support.clean_env())
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines and lines[0].strip() and lines[0] == lines[0].rstrip()
    assert lines[0].split()[0] in ("interface", "proto", "time")
    assert not set("─│┌└") & set(proc.stdout)
    assert all(line == line.rstrip() for line in lines)


def test_traffic_rates_are_bits_by_default_and_bytes_on_request() -> None:
    bits = support.invoke(["info", "traffic", "--interface", "lo", "-c", "1", "-i", "50ms"])
    assert bits.exit_code == 0, bits.stderr
    assert re.search(r" (k|M|G|T)?bit/s ", bits.stdout) and "B/s" not in bits.stdout
    octets = support.invoke(["info", "traffic", "--interface", "lo", "-c", "1", "-i", "50ms", "--bytes"])
    assert octets.exit_code == 0, octets.stderr
    assert re.search(r" (Ki|Mi|Gi|Ti)?B/s ", octets.stdout) and "bit/s" not in octets.stdout
    # the machine formats keep their byte fields whatever the option
    doc = support.invoke(["info", "traffic", "--interface", "lo", "-c", "1", "-i", "50ms", "--bytes",
                          "--format", "jsonl"]).jsonl()[0]
    assert "rx_bytes_per_s" in doc and "rx_bits_per_s" not in doc
