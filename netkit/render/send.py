"""How ``netkit send tcp|udp`` shows its result.

- ``table`` (the default): the reply's bytes themselves on stdout, as they arrive (:func:`reply_writer`).
  Into a pipe or a file they go verbatim (binary safe, like nc); onto a terminal they are shown to
  a person, so control characters and escape sequences are made visible (newlines and tabs kept):
  a peer must not be able to retitle, clear or reprogram the user's terminal.
- ``json``: the result document; ``jsonl``: the same object on one line with ``"event": "summary"``;
  ``csv``: one row (``send udp`` leaves out the list of replies).
- ``-v``: one line on stderr with what was sent and received, in units (:func:`result_line`).
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from netkit.core.escape import safe_text
from netkit.core.send_models import TcpSendResult, UdpSendResult
from netkit.core.units import format_bytes, format_count, format_duration, format_ms

if TYPE_CHECKING:  # pragma: no cover
    from netkit.render.output import Output

SendResult = TcpSendResult | UdpSendResult


def binary_stdout() -> IO[bytes]:
    """The binary stream under ``sys.stdout`` (itself when it has none, e.g. a test's BytesIO)."""
    stream: Any = sys.stdout
    buffer: IO[bytes] = getattr(stream, "buffer", stream)
    return buffer


def reply_writer(out: Output, stream: IO[bytes] | None = None, *, tty: bool | None = None) -> Callable[..., None]:
    """Write each reply chunk to stdout (``stream``), flushed: raw into a pipe, made visible on a terminal.

    Called as ``write(chunk)`` (TCP) or ``write(datagram, addr)`` (UDP). A multi-byte character
    split between two chunks is shown whole: the decoder keeps the first half until the rest comes.
    """
    target = stream if stream is not None else binary_stdout()
    on_terminal = out.stdout_is_tty if tty is None else tty
    decoder = codecs.getincrementaldecoder("utf-8")("backslashreplace")

    def write(chunk: bytes, *_: Any) -> None:
        if out.quiet:
            return
        if on_terminal:
            target.write(safe_text(decoder.decode(chunk), keep_newlines=True).encode())
        else:
            target.write(chunk)
        target.flush()

    return write


def result_line(result: SendResult) -> str:
    """``127.0.0.1:8000: sent 5 B, received 16 B in 1.31 ms, connect 0.311 ms`` (for ``-v``)."""
    if isinstance(result, TcpSendResult):
        return (f"{result.target}: sent {format_bytes(result.sent_bytes)}, received "
                f"{format_bytes(result.received_bytes)} in {_elapsed(result.elapsed_ms)}, "
                f"connect {format_ms(result.connect_ms)}")
    return (f"{result.target}: sent {format_count(result.datagrams_sent)} datagrams "
            f"({format_bytes(result.sent_bytes)}), received {format_count(result.datagrams_received)} "
            f"({format_bytes(result.received_bytes)}) in {_elapsed(result.elapsed_ms)}")


def _elapsed(ms: float) -> str:
    """Milliseconds below a second (``1.31 ms``), then a duration (``2.00s``)."""
    return format_ms(ms) if ms < 1000 else format_duration(ms / 1000)


def result_record(result: SendResult) -> dict[str, Any]:
    from netkit.render.output import to_jsonable

    record: dict[str, Any] = to_jsonable(result)
    return record


def print_result(out: Output, result: SendResult) -> None:
    """The result in a machine format; in ``table`` format the reply was the output (nothing more)."""
    out.debug(result_line(result))
    if out.format == "table":
        return
    record = result_record(result)
    if out.format == "jsonl":
        out.jsonl({"event": "summary", **record})
    elif out.format == "csv":
        # CSV has no room for the list of replies.
        out.csv_rows([{k: v for k, v in record.items() if k != "replies"}])
    else:
        out.json(record)


__all__ = ["binary_stdout", "print_result", "reply_writer", "result_line", "result_record"]
