"""Property tests: every parser of user input gives a value or a usage error, never another exception.

A diagnostics tool is fed whatever a script or a tired person types, and whatever a peer sends.
Hypothesis throws random and near-valid text at the parsers in ``netkit.core.units``,
``netkit.core.targets`` and the Click types of ``netkit.cli.params``, and random bytes at the probe
packet decoder (``netkit.core.packet``). Each must answer with a value (checked for its invariants)
or with its documented rejection: ``InputError`` (exit 2), a Click ``BadParameter`` (exit 2) or a
``PacketError`` with a reason.
"""

from __future__ import annotations

import math

import click
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from netkit.cli import params
from netkit.core import packet, targets, units
from netkit.core.errors import InputError

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that looks like what people type: numbers, units, separators, brackets, and some noise.
_ALPHABET = st.sampled_from(list("0123456789.,:-[]%eE+ kKmMgGtTiIbBsSuµnh/x_ab\t\n\x00\x1b²٣"))
near_valid = st.text(_ALPHABET, max_size=24)
any_text = st.one_of(st.text(max_size=40), near_valid)

number = st.one_of(
    st.integers(min_value=0, max_value=10**12).map(str),
    st.floats(min_value=0, allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e308", "1e-400", "9" * 400, ".5", "5.", "0x10", "1_000", "-1", "+1", "nan", "inf"]),
)
unit = st.sampled_from(["", "ns", "us", "µs", "ms", "s", "sec", "m", "min", "h", "k", "K", "KiB", "kb",
                        "M", "MiB", "G", "GiB", "T", "Tbit", "bps", "bit/s", "mbps", "Gbit", "x", "d"])
number_with_unit = st.builds(lambda n, u, sp: f"{n}{sp}{u}", number, unit, st.sampled_from(["", " "]))
value_text = st.one_of(any_text, number_with_unit)


def _value_or_input_error(fn, text):  # type: ignore[no-untyped-def]
    """Call ``fn(text)``; return the value, or None when it raised ``InputError`` with a message."""
    try:
        return fn(text)
    except InputError as exc:
        assert str(exc), "an InputError must carry a message"
        assert "\n" not in str(exc), "error messages are one line"
        return None


# ----- netkit.core.units ----------------------------------------------------------------------

@SETTINGS
@given(value_text)
@example("1e308h")
@example("1e-400")
def test_parse_duration_value_or_usage_error(text: str) -> None:
    v = _value_or_input_error(units.parse_duration, text)
    if v is not None:
        assert isinstance(v, float) and math.isfinite(v) and 0 <= v <= units.MAX_DURATION_S
        ns = units.parse_duration_ns(text)
        assert isinstance(ns, int) and ns >= 0


@SETTINGS
@given(value_text)
@example("1e308G")
@example("0.5")
def test_parse_size_value_or_usage_error(text: str) -> None:
    v = _value_or_input_error(units.parse_size, text)
    if v is not None:
        assert isinstance(v, int) and 0 <= v <= units.MAX_SIZE


@SETTINGS
@given(value_text)
@example("1e308T")
@example("9" * 400 + "Tbit")
def test_parse_bitrate_value_or_usage_error(text: str) -> None:
    v = _value_or_input_error(units.parse_bitrate, text)
    if v is not None:
        assert math.isfinite(v) and v >= 0, f"{text!r} gave {v!r}"


@SETTINGS
@given(value_text)
@example("1e308T")
def test_parse_count_value_or_usage_error(text: str) -> None:
    v = _value_or_input_error(units.parse_count, text)
    if v is not None:
        assert math.isfinite(v) and v >= 0, f"{text!r} gave {v!r}"


# ----- netkit.core.targets --------------------------------------------------------------------

host_part = st.one_of(
    st.sampled_from(["127.0.0.1", "localhost", "::1", "[::1]", "fe80::1%lo", "[fe80::1%eth0]", "a.b-c.example",
                     "", "-bad", "1.2.3", "999.1.1.1", "[", "]", "[::1", "a..b", "x" * 70, "é.example"]),
    st.text(st.sampled_from(list("abc012.:-[]%_")), max_size=20),
)
port_part = st.one_of(
    st.integers(min_value=-5, max_value=70000).map(str),
    st.sampled_from(["", "0", "65535", "65536", "1-65535", "22,80,8000-8100", "10-1", "1--2", ",", "²", "٣",
                     "80,", "-", " 80 ", "1-", "-5"]),
    st.text(st.sampled_from(list("0123456789,- ")), max_size=16),
)
target_text = st.one_of(
    any_text,
    st.builds(lambda h, p: f"{h}:{p}", host_part, port_part),
    st.builds(lambda h, p: f"[{h}]:{p}", host_part, port_part),
)


@SETTINGS
@given(target_text)
@example("127.0.0.1:²")
@example("[::1]:٣")
def test_parse_target_value_or_usage_error(text: str) -> None:
    t = _value_or_input_error(targets.parse_target, text)
    if t is not None:
        assert isinstance(t, targets.Target) and 1 <= t.port <= 65535
        # A parsed target prints back as something that parses to the same target.
        assert targets.parse_target(str(t)) == t


@SETTINGS
@given(target_text)
def test_expand_target_value_or_usage_error(text: str) -> None:
    ts = _value_or_input_error(targets.expand_target, text)
    if ts is not None:
        assert ts and all(1 <= t.port <= 65535 for t in ts)
        assert len({t.port for t in ts}) == len(ts), "duplicates are dropped"


@SETTINGS
@given(port_part)
@example("²")
@example("1-²")
def test_parse_ports_value_or_usage_error(text: str) -> None:
    ports = _value_or_input_error(targets.parse_ports, text)
    if ports is not None:
        assert ports and all(isinstance(p, int) and 1 <= p <= 65535 for p in ports)


@SETTINGS
@given(st.lists(target_text, min_size=0, max_size=3))
def test_target_from_args_value_or_usage_error(items: list[str]) -> None:
    _value_or_input_error(targets.target_from_args, items)


@SETTINGS
@given(host_part)
def test_validate_host_value_or_usage_error(text: str) -> None:
    h = _value_or_input_error(targets.validate_host, text)
    if h is not None:
        assert h and not h.startswith("[")


@SETTINGS
@given(st.lists(st.text(max_size=30), max_size=5))
def test_read_target_lines_never_raises(lines: list[str]) -> None:
    for item in targets.read_target_lines(lines):
        assert item and "#" not in item and not any(c.isspace() for c in item if c in " \t\n")


# ----- netkit.cli.params (what the command line actually calls) -------------------------------

CLICK_TYPES = {
    "DURATION": params.DURATION,
    "POSITIVE_DURATION": params.POSITIVE_DURATION,
    "bounded Duration": params.Duration(min=0.001, max=60.0),
    "SIZE": params.SIZE,
    "bounded Size": params.Size(min=56, max=65507),
    "BITRATE": params.BITRATE,
    "COUNT": params.COUNT,
    "float Count": params.Count(min=0, integer=False, max=100),
    "PORT": params.PORT,
    "LISTEN_PORT": params.LISTEN_PORT,
    "HOST": params.HOST,
    "TARGET": params.TARGET,
}


def _convert(ptype: click.ParamType, text: str) -> object | None:
    """Convert like Click does for ``--opt TEXT``; None when it is a usage error (exit 2)."""
    cmd = click.Command("t", params=[click.Option(["--opt"], type=ptype)])
    ctx = click.Context(cmd)
    param = cmd.params[0]
    try:
        return ptype.convert(text, param, ctx)
    except click.BadParameter as exc:
        assert exc.exit_code == 2
        msg = exc.format_message()
        assert msg and "\n" not in msg.strip()
        return None


@pytest.mark.parametrize("name", sorted(CLICK_TYPES))
@SETTINGS
@given(text=st.one_of(value_text, target_text))
@example(text="²")
@example(text="1e308T")
@example(text="1e308")
def test_click_types_value_or_usage_error(name: str, text: str) -> None:
    v = _convert(CLICK_TYPES[name], text)
    if isinstance(v, float):
        assert math.isfinite(v)


@SETTINGS
@given(st.lists(st.one_of(value_text, target_text, st.sampled_from(["--count", "--rate", "--port", "--size",
                                                                     "--timeout", "--max-bytes"])),
                max_size=6))
def test_whole_command_line_parse_is_value_or_exit_2(argv: list[str]) -> None:
    """Through Click's own option parsing too: a parse either succeeds or is a UsageError (exit 2)."""
    seen: dict[str, object] = {}

    @click.command()
    @click.option("--count", type=params.COUNT)
    @click.option("--rate", type=params.BITRATE)
    @click.option("--port", type=params.LISTEN_PORT)
    @click.option("--size", type=params.SIZE)
    @click.option("--timeout", type=params.POSITIVE_DURATION)
    @click.option("--max-bytes", type=params.SIZE)
    @click.argument("target", type=params.TARGET, required=False)
    def cmd(**kw: object) -> None:
        seen.update(kw)

    try:
        cmd.main(argv, standalone_mode=False)
    except click.UsageError as exc:
        assert exc.exit_code == 2
    for key in ("count", "rate", "timeout"):
        v = seen.get(key)
        if isinstance(v, float):
            assert math.isfinite(v)


# ----- netkit.core.packet: the probe decoder fed random bytes ---------------------------------

def _probe_bytes() -> st.SearchStrategy[bytes]:
    u64 = st.integers(min_value=0, max_value=packet.U64)
    valid = st.builds(
        lambda s, q, t, f, c, r, w, size: packet.encode(packet.ProbePacket(s, q, t, f, c, r, w, size)),
        u64, u64, u64, st.sampled_from([0, 1, 2, 3]), u64, u64, u64,
        st.integers(min_value=packet.HEADER_SIZE, max_value=packet.HEADER_SIZE + 64),
    )

    def mutate(data: bytes, pos: int, byte: int, cut: int) -> bytes:
        b = bytearray(data)
        b[pos % len(b)] = byte
        return bytes(b[: max(cut, 0)]) if cut < len(b) else bytes(b)

    mutated = st.builds(mutate, valid, st.integers(0, 200), st.integers(0, 255), st.integers(0, 140))
    prefixed = st.binary(max_size=120).map(lambda b: packet.MAGIC + bytes([packet.VERSION]) + b)
    return st.one_of(st.binary(max_size=200), valid, mutated, prefixed)


@settings(max_examples=1000, deadline=None)
@given(_probe_bytes())
def test_packet_decoder_gives_packet_or_rejection(data: bytes) -> None:
    try:
        p = packet.decode(data)
    except packet.PacketError as exc:
        assert exc.reason and isinstance(exc.reason, str)
        probe, reason = packet.try_decode(data)
        assert probe is None and reason == exc.reason
        return
    assert p.size == len(data) and p.size >= packet.HEADER_SIZE
    for v in (p.session, p.seq, p.client_send_ns, p.refl_count, p.refl_recv_ns, p.refl_send_ns):
        assert 0 <= v <= packet.U64
    # Accepted packets re-encode to the same header, and the cheap peek agrees with the decoder.
    assert packet.encode(p)[: packet.HEADER_SIZE] == bytes(data[: packet.HEADER_SIZE])
    assert packet.peek_seq(data) == (p.session, p.seq)
    # Decoding a memoryview or bytearray gives the same answer (the reflector passes buffers).
    assert packet.decode(memoryview(bytearray(data))) == p


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_packet_peek_and_looks_like_never_raise(data: bytes) -> None:
    assert isinstance(packet.looks_like_probe(data), bool)
    peeked = packet.peek_seq(data)
    assert peeked is None or len(peeked) == 2


# ----- netkit.core.session_header: what `serve tcp` sniffs from any client, and the client's replies ----

def _session_bytes() -> st.SearchStrategy[bytes]:
    from netkit.core import session_header as sh

    valid = st.builds(
        lambda d, sid, dur, omit, block, cookie: sh.encode_header(sh.Header(d, sid, dur, omit, block, cookie)),
        st.sampled_from([sh.SINK, sh.SOURCE]), st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1), st.integers(1, 2**32 - 1), st.binary(min_size=12, max_size=12),
    )

    def mutate(data: bytes, pos: int, byte: int, cut: int) -> bytes:
        b = bytearray(data)
        b[pos % len(b)] = byte
        return bytes(b[:cut])

    mutated = st.builds(mutate, valid, st.integers(0, 100), st.integers(0, 255), st.integers(0, 60))
    prefixed = st.binary(max_size=60).map(lambda b: sh.MAGIC + b)
    reports = st.one_of(st.binary(min_size=40, max_size=40).map(lambda b: sh.REPORT_MAGIC + b[5:]),
                        st.binary(max_size=50))
    return st.one_of(st.binary(max_size=80), valid, mutated, prefixed, reports)


@settings(max_examples=1000, deadline=None)
@given(_session_bytes())
def test_session_header_decoders_give_a_value_or_a_rejection(data: bytes) -> None:
    """The throughput session header, ack and report: a message or HeaderError/None, never a crash."""
    from netkit.core import session_header as sh

    try:
        h = sh.decode_header(data)
    except sh.HeaderError as exc:
        assert str(exc)
    else:
        assert h.direction in sh.DIRECTIONS and h.block_size > 0
        # An accepted header re-encodes to the bytes it came from (the last, reserved byte aside).
        assert sh.encode_header(h)[:-1] == bytes(data[: sh.HEADER_LEN - 1])
    ack = sh.decode_ack(data)
    assert ack is None or isinstance(ack.ok, bool)
    try:
        r = sh.decode_report(data)
    except sh.HeaderError as exc:
        assert str(exc)
    else:
        assert r.bytes >= 0 and (r.retransmits is None or r.retransmits >= 0)


def test_a_positive_duration_names_zero_as_its_floor_without_a_unit() -> None:
    with pytest.raises(click.BadParameter) as excinfo:
        params.POSITIVE_DURATION.convert("0", None, None)
    assert str(excinfo.value.message).endswith("must be more than 0")  # not "0us", a floor it is not
    with pytest.raises(click.BadParameter) as excinfo:
        params.Duration(min=0.001, min_open=True).convert("1ms", None, None)
    assert str(excinfo.value.message).endswith("must be more than 1ms")
